"""The paper's tables from the workflow's long result tables, plus "paper vs ours".

Inputs (long ``pandas`` frames written by the collect and stats jobs, ``ssimsr.pipeline.jobs``):

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
    and the statistics of :func:`ssimsr.analysis.stats.compare`; ``comparison`` is ``ls1_vs_ls2``
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

import importlib

#: What the package exports, by the module that defines it: each imported on first use
#: (PEP 562), so that ``from ssimsr.tables import table_names`` (the Snakefile, every dry
#: run) does not import the builders and scipy.
_EXPORTS_BY_MODULE = {
    "paper": ("A2_EXPERIMENTS", "A2_METRICS", "LOWER_IS_BETTER", "lower_is_better", "share_columns",
              "TABLE1_METRICS", "TABLE1_VALUES", "TABLE4_METRICS", "loss_shares", "table1", "table4", "table_a2"),
    "published": ("PUBLISHED", "load_published"),
    "registry": ("PAPER_TABLE_PAIRS", "TableInputs", "build_tables", "register_table", "table_names"),
    "render": ("Table", "best_mask", "format_value", "tex_escape", "write_table"),
    "runs": ("RUN_KEYS", "IncompleteRun", "run_stages"),
    "statistics": ("PAIRED_BLOCK", "SEED_BLOCK", "STATS_METRICS", "WELCH_BLOCK", "table_stats", "verdict"),
    "versus": ("BESIDE_PRESET", "PAPER_PRESET", "paper_vs_ours"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS_BY_MODULE.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


#: the paper's published values (CSV files) these tables read: in the tables digest (ssimsr.pipeline.code_digest)
DIGEST_DATA = ("published",)

__all__ = sorted(_MODULE_OF)
