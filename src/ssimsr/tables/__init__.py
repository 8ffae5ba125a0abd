"""The paper's tables from the workflow's long result tables, plus "paper vs ours".

Inputs (long ``pandas`` frames written by the collect and stats jobs, ``ssimsr.jobs``):

``history``
    one row per (run, epoch, split): run columns ``study, preset, model, dataset,
    lambda_s, seed, vgg`` (+ ``vgg_layers, epochs, dataset_size, lambda_b, lambda_f,
    lambda_p, perceptual_norm``) and ``epoch`` (0: the validation of the initial weights,
    before the first step, val only; training epochs from 1),
    ``split`` (``train`` / ``val``), ``total, bw_mse, fw_mse, perceptual, ssim_n, psnr,
    ssim, seconds``.
``per_image``
    one row per (run, image): run columns, ``set`` (``val`` / ``showcase`` / a benchmark's
    dataset name such as ``set5``), ``image``, ``origin`` (the folder of the image's source
    member) and ``psnr, ssim, psnr_y, ssim_y, lpips_alex, lpips_squeeze, lpips_vgg`` (LPIPS
    NaN where unavailable, with ``lpips_<net>_status`` = ``ok`` / ``unavailable: <reason>``).
    The statistics and the paper's tables read ``set == "val"`` (Table 4: ``showcase``).
``comparisons``
    one row per (study, preset, model, dataset, vgg, comparison, metric) with ``status``
    and the statistics of :func:`ssimsr.stats.compare`; ``comparison`` is ``ls1_vs_ls2``
    (variant a minus variant b).

Modules: ``render`` (the generic :class:`Table` and its .tex/.csv/.md files), ``runs``
(row selection, per-run values, seed aggregates), ``paper`` (Tables 1, A2, 4, the loss
shares), ``statistics`` (Tables 2 / 3, the verdict), ``published`` and ``versus`` (the
paper's values, paper vs ours), ``baseline`` (the bicubic rows of Table 1 and paper vs
ours), ``benchmarks`` (Set5 / Set14 beside the bicubic baseline, results by image origin),
``registry`` (which tables the workflow writes).
Several seeds are aggregated into ``<x>_mean`` and ``<x>_sd`` columns (SD with ddof = 1;
NaN for one seed).
"""

from .paper import (
    A2_EXPERIMENTS,
    A2_METRICS,

    LOWER_IS_BETTER,
    lower_is_better,
    share_columns,
    TABLE1_METRICS,
    TABLE1_VALUES,
    TABLE4_METRICS,
    loss_shares,
    table1,
    table4,
    table_a2,
)
from .published import PUBLISHED, load_published
from .registry import PAPER_TABLE_PAIRS, TableInputs, build_tables, register_table, table_names
from .render import Table, best_mask, format_value, tex_escape, write_table
from .runs import RUN_KEYS, IncompleteRun, run_stages
from .statistics import PAIRED_BLOCK, SEED_BLOCK, STATS_METRICS, WELCH_BLOCK, table_stats, verdict
from .versus import BESIDE_PRESET, PAPER_PRESET, paper_vs_ours

#: the paper's published values (CSV files) these tables read: in the tables digest (ssimsr.code_digest)
DIGEST_DATA = ("published",)

__all__ = [
    "Table",
    "write_table",
    "format_value",
    "best_mask",
    "tex_escape",
    "run_stages",
    "IncompleteRun",
    "table1",
    "loss_shares",
    "table_a2",
    "table_stats",
    "table4",
    "verdict",
    "paper_vs_ours",
    "load_published",
    "build_tables",
    "table_names",
    "register_table",
    "TableInputs",
    "PUBLISHED",
    "RUN_KEYS",
    "LOWER_IS_BETTER",
    "STATS_METRICS",
    "share_columns",
    "lower_is_better",

    "TABLE1_METRICS",
    "TABLE1_VALUES",
    "TABLE4_METRICS",
    "A2_METRICS",
    "A2_EXPERIMENTS",
    "SEED_BLOCK",
    "WELCH_BLOCK",
    "PAIRED_BLOCK",
    "PAPER_TABLE_PAIRS",
    "PAPER_PRESET",
    "BESIDE_PRESET",
]
