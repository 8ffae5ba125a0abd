"""The tables the workflow writes, each registered once with its builder.

``table_names(report)`` (the outputs the tables rule declares) and ``build_tables`` (what
the tables job runs) both read this registry, so a table is named in one place only.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import fill_defaults
from ..registry import Registry
from ..pipeline.runs import DEFAULT_PRESET, GROUP_KEYS, PAPER_PRESET, weight_key

if TYPE_CHECKING:
    from .render import Table


class _OnUse:
    """A module imported on its first attribute use. Listing the tables (``table_names``:
    the Snakefile, on every dry run) needs their names, not the builders' modules and the
    scipy and pandas they import (0.7 s and 0.2 s of a 4 s dry run)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name, __package__), attribute)


_power, _stats = _OnUse("..analysis.power"), _OnUse("..analysis.stats")
_paper, _statistics, _baseline = _OnUse(".paper"), _OnUse(".statistics"), _OnUse(".baseline")
_contrasts, _versus, _scale = _OnUse(".contrasts"), _OnUse(".versus"), _OnUse(".scale")
_render, _runs, _published, pd = _OnUse(".render"), _OnUse(".runs"), _OnUse(".published"), _OnUse("pandas")

#: The paper's Tables 2 and 3: lambda_s 1 vs 2 and 1 vs 0 (differences a - b).
PAPER_TABLE_PAIRS = {"table2": (1.0, 2.0), "table3": (1.0, 0.0)}


@dataclass(frozen=True)
class TableInputs:
    """What a builder reads: the collected results and the config's ``report`` section
    (with ``showcase_model`` / ``showcase_dataset`` from ``evaluation.showcase``)."""

    history: pd.DataFrame
    per_image: pd.DataFrame
    comparisons: pd.DataFrame
    report: dict
    #: each dataset's split method (config ``datasets.<name>.split.method``): a ``random``
    #: split is one draw of many, which the paper-vs-ours noise accounts for
    splits: dict = field(default_factory=dict)
    #: the bicubic baseline per image (``results/eval/baseline.csv``: ``dataset, set, image,
    #: origin`` and the metric columns); an empty frame when there are no baseline rows
    baseline: pd.DataFrame = field(default_factory=lambda: pd.DataFrame())
    #: the bicubic baseline per offline resize filter (``results/eval/preprocessing.csv``,
    #: ``ssimsr.evaluation.preprocessing.COLUMNS``): the preprocessing uncertainty; empty when absent
    preprocessing: pd.DataFrame = field(default_factory=lambda: pd.DataFrame())

    @property
    def study(self) -> str:
        return self.report["table1_study"]

    @property
    def stats_study(self) -> str:
        return self.report["stats"]["study"]

    @property
    def preset(self) -> str:
        return self.report["preset"]

    @property
    def model(self) -> str:
        return self.report["stats"]["model"]

    @property
    def dataset(self) -> str:
        return self.report["stats"]["dataset"]

    @property
    def showcase(self) -> tuple[str, str]:
        return self.report["showcase_model"], self.report["showcase_dataset"]


@dataclass(frozen=True)
class TableEntry:
    """A table the workflow writes: ``build(inputs)`` when ``when(report)`` holds."""

    name: str
    build: Callable[[TableInputs], Table]
    when: Callable[[dict], bool]


#: every table, in the order the workflow lists them
TABLES: Registry[TableEntry] = Registry("table")


def _always(report: dict) -> bool:
    return True


def register_table(name: str, when: Callable[[dict], bool] = _always):
    """Decorator: ``build(inputs) -> Table`` writes table ``name`` when ``when(report)`` holds."""
    def register(build: Callable[[TableInputs], Table]) -> Callable[[TableInputs], Table]:
        TABLES.add(name, TableEntry(name, build, when))
        return build
    return register


def table_names(report: dict) -> list[str]:
    """The tables :func:`build_tables` writes for this ``report`` config, in registration order."""
    return [name for name, entry in TABLES.items() if entry.when(report)]


def build_tables(history: pd.DataFrame, per_image: pd.DataFrame, comparisons: pd.DataFrame,
                 report: dict, out_dir: str | Path, *, splits: dict | None = None,
                 baseline: pd.DataFrame | None = None, preprocessing: pd.DataFrame | None = None,
                 provenance: str | None = None) -> list[Path]:
    """Write every table of ``table_names(report)`` into ``out_dir``. ``splits``: each
    dataset's split method (:attr:`TableInputs.splits`); ``baseline``: the bicubic baseline
    (:attr:`TableInputs.baseline`); ``preprocessing``: the baseline per offline resize filter
    (:attr:`TableInputs.preprocessing`); ``provenance``: which code and config produced them
    (``ssimsr.pipeline.provenance.describe``), in every table's caption (``render.write_table``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = fill_defaults(report, "report")
    inputs = TableInputs(history, per_image, comparisons, report, splits=dict(splits or {}),
                         baseline=pd.DataFrame() if baseline is None else baseline,
                         preprocessing=pd.DataFrame() if preprocessing is None else preprocessing)
    # all are built before any is written: a builder that fails leaves the old tables as they were
    built = {name: TABLES[name].build(inputs) for name in table_names(report)}
    written = []
    for name, table in built.items():
        written += list(table.write(out / name, label=f"tab:{name}", provenance=provenance).values())
    return written


def _with_appendix(report: dict) -> bool:
    return bool(fill_defaults(report, "report")["appendix_study"])


# --------------------------------------------------------------------------- the paper's tables

@register_table("table1")
def _table1(inputs: TableInputs) -> Table:
    table = _paper.table1(inputs.history, study=inputs.study, allow_incomplete=inputs.report["allow_incomplete_runs"])
    return _baseline.table1_with_baseline(table, inputs.baseline)


@register_table("scale_reference")
def _scale_reference(inputs: TableInputs) -> Table:
    """Table 1's rows beside the paper-scale run measured on a GPU and the paper."""
    return _scale.scale_reference(_table1(inputs).data, inputs.preset)


@register_table("loss_shares")
def _loss_shares(inputs: TableInputs) -> Table:
    """Table 1's companion: the loss terms' shares; a history without the lambdas gives a note."""
    try:
        return _paper.loss_shares(inputs.history, study=inputs.study)
    except ValueError as exc:
        return _render.Table(pd.DataFrame(columns=["stage", "epoch"]),
                             "Share of each weighted loss term in the validation total: not available.",
                             notes=[str(exc)])


def _stats_table(comparisons: pd.DataFrame, model: str, dataset: str, pair: tuple[float, float],
                 name: str, **select) -> Table:
    """Table 2 / 3 for ``pair``; a pair the comparisons lack gives an empty table naming it."""
    label = _stats.comparison_label(*pair)
    present = comparisons
    for col, value in dict(model=model, dataset=dataset, **select).items():
        if value is not None and col in present.columns:
            present = present[present[col] == value]
    if "comparison" not in present.columns or not (present["comparison"] == label).any():
        have = sorted(present["comparison"].unique()) if "comparison" in present.columns else []
        where = ", ".join(f"{k} {v}" for k, v in dict(model=model, dataset=dataset, **select).items() if v)
        note = (f"λ_s {pair[0]:g} vs {pair[1]:g} (the paper's {name}) was not compared for {where}: the study "
                "lacks one of the values or report.comparisons does not list the pair "
                f"(comparisons present: {', '.join(have) or 'none'}).")
        return _render.Table(pd.DataFrame(columns=["test", "statistic"]), f"{name}: λ_s = {pair[0]:g} vs "
                             f"λ_s = {pair[1]:g} ({dataset} {model}): not available.", notes=[note])
    return _statistics.table_stats(comparisons, model, dataset, label, **select)


@register_table("table2")
def _table2(inputs: TableInputs) -> Table:
    return _stats_table(inputs.comparisons, inputs.model, inputs.dataset, PAPER_TABLE_PAIRS["table2"], "Table 2",
                        study=inputs.stats_study, preset=inputs.preset)


@register_table("table3")
def _table3(inputs: TableInputs) -> Table:
    return _stats_table(inputs.comparisons, inputs.model, inputs.dataset, PAPER_TABLE_PAIRS["table3"], "Table 3",
                        study=inputs.stats_study, preset=inputs.preset)


@register_table("table4")
def _table4(inputs: TableInputs) -> Table:
    return _paper.table4(inputs.per_image, *inputs.showcase, study=inputs.stats_study, preset=inputs.preset)


@register_table("verdict")
def _verdict(inputs: TableInputs) -> Table:
    return _statistics.verdict(inputs.per_image, inputs.comparisons, inputs.report["comparisons"], study=inputs.study)


@register_table("stats_all")
def _stats_all(inputs: TableInputs) -> Table:
    comparisons = inputs.comparisons
    keep = [*GROUP_KEYS, "comparison", "metric", "status", "n_seeds",
            "mean_diff", "sd_seed_diff", "ci_low_seed", "ci_high_seed", "t_seed", "df_seed", "p_seed", "mde_seed",
            "n", "ci_low", "ci_high", "t_paired", "df_paired", "p_paired", "cohens_dz", "p_wilcoxon",
            "t_welch", "df_welch", "p_welch", "cohens_d_pooled", "pairing"]
    data = comparisons[[c for c in keep if c in comparisons.columns]].reset_index(drop=True)
    return _render.Table(
        data, "All comparisons of λ_s variants (validation images, differences a − b). *_seed: "
        "the verdict test, a paired t on the per-seed mean differences (n_seeds = n, unit: "
        f"the training run; mde_seed = the difference detectable with {_power.POWER * 100:g} % power). "
        "n = images: "
        "paired t, Wilcoxon and d_z on the per-image differences averaged over seeds (these "
        "trained models), and Welch, the paper's unpaired test, on the per-image values "
        "averaged over seeds.")


# --------------------------------------------------------------------------- paper vs ours

def _of(frame: pd.DataFrame, **values) -> pd.DataFrame:
    """Rows of ``frame`` with these column values (columns it lacks are not filtered)."""
    for col, value in values.items():
        if value is not None and col in frame.columns:
            frame = frame[frame[col] == value]
    return frame


def _table1_runs(inputs: TableInputs, preset: str) -> tuple[pd.DataFrame, pd.DataFrame, Table]:
    """One preset's Table 1 runs, one row per seed (the unit of replication): epoch-1 cells
    from training's validation, end cells from the evaluation's unclipped outputs (the
    authors' convention); with its history and per-image rows."""
    history = inputs.history[inputs.history["preset"] == preset]
    if history.empty:
        raise ValueError(f"preset {preset!r} was not run")
    # like for like: the paper's total is the authors' validation total (with fwMSE)
    history = history.assign(total=_versus.authors_total(history))
    per_image = _of(inputs.per_image, preset=preset, study=_runs.default_study(inputs.per_image, inputs.study))
    runs = _paper.table1(history, seeds_agg=False, study=inputs.study,
                         allow_incomplete=inputs.report["allow_incomplete_runs"])
    runs.data = _versus.end_cells_from_evaluation(runs.data.assign(preset=preset), per_image)
    return runs.data, per_image, runs


@register_table("paper_vs_ours_table1")
def _paper_vs_ours_table1(inputs: TableInputs) -> Table:
    def for_preset(preset: str) -> Table:
        runs, per_image, table = _table1_runs(inputs, preset)
        history = inputs.history[inputs.history["preset"] == preset]
        out = _versus.paper_vs_ours(runs.drop(columns=["preset"]), table="table1",
                                    split_sd=_versus.split_sd_lookup(per_image, history, inputs.splits))
        return _mark_incomplete(out, table)

    table = _baseline.versus_with_baseline(_versus.paper_vs_presets("table1", for_preset), inputs.baseline)
    table.caption += (" End-of-training cells: the evaluation of the final model, unclipped output (the authors' "
                      "validation did not clip); epoch-1 cells: training's own validation (clipped output). "
                      "Total = λ_b·bwMSE + fwMSE + λ_s·SSIM_N as the authors' validation computed it (forward "
                      "MSE of the real downscaled reconstruction added although training's was 0; perceptual 0).")
    table.notes.extend(_preprocessing_notes(inputs, table.data))
    return table


def _preprocessing_notes(inputs: TableInputs, data: pd.DataFrame) -> list[str]:
    """The preprocessing uncertainty of each dataset in ``data`` (``ssimsr.evaluation.preprocessing``),
    which the verdict's interval does not cover."""
    from ..evaluation.preprocessing import preprocessing_note

    if inputs.preprocessing.empty or "dataset" not in data.columns:
        return []
    notes = [preprocessing_note(inputs.preprocessing, d) for d in sorted(data["dataset"].dropna().unique())]
    return [n + " The verdict's interval does not cover this." for n in notes if n]


@register_table("paper_vs_ours_contrasts")
def _paper_vs_ours_contrasts(inputs: TableInputs) -> Table:
    """The paper's λ_s contrasts beside ours, both presets (a column ``preset``)."""
    def for_preset(preset: str) -> Table:
        runs, per_image, _ = _table1_runs(inputs, preset)
        return _contrasts.table1_contrasts(runs, per_image, inputs.history, inputs.splits)

    return _stack_presets(for_preset, lambda reasons: _render.Table(
        pd.DataFrame(columns=["preset", "dataset", "model", "contrast", "quantity"]),
        "The paper's λ_s contrasts beside ours: not available.", notes=reasons))


def _stack_presets(build: Callable[[str], Table], unavailable: Callable[[list[str]], Table]) -> Table:
    """``build(preset)`` for the paper's preset and the one beside it, stacked (their rows
    carry ``preset``); a preset that raises ``ValueError`` is named in a note;
    ``unavailable(reasons)`` when both do."""
    tables, reasons = [], []
    for preset in (PAPER_PRESET, DEFAULT_PRESET):
        try:
            table = build(preset)
        except ValueError as exc:
            reasons.append(f"{preset}: {exc}")
            continue
        if "preset" not in table.data.columns:
            table.data.insert(0, "preset", preset)
            table.display.insert(0, "preset", preset)
        table.notes = [n if n.startswith(f"{preset}: ") else f"{preset}: {n}" for n in table.notes]
        tables.append(table)
    if not tables:
        return unavailable(reasons)
    return _render.Table(pd.concat([t.data for t in tables], ignore_index=True), tables[0].caption,
                         display=pd.concat([t.display for t in tables], ignore_index=True), headers=tables[0].headers,
                         notes=[n for t in tables for n in t.notes] + [f"ours unavailable ({r})" for r in reasons])


def _mark_incomplete(out: Table, table: Table) -> Table:
    if "n_incomplete" not in table.data.columns:
        return out
    out.notes.extend(table.notes)
    out.caption += " Cells of incomplete runs: see the notes."
    return out


def _paper_vs_ours_stats(inputs: TableInputs, name: str) -> Table:
    label = _stats.comparison_label(*PAPER_TABLE_PAIRS[name])
    # the paper's per-image numbers came from the authors' inference convention
    present = set(inputs.comparisons.get("metric", pd.Series(dtype=str)))
    # (results from before the authors' columns existed: the project's own)
    authors = _versus.AUTHORS_METRICS
    metrics = {m: authors[m] if authors.get(m) in present else m for m in _statistics.STATS_METRICS}

    def for_preset(preset: str) -> Table:
        ours = _statistics.table_stats(inputs.comparisons, inputs.model, inputs.dataset, label,
                                       study=inputs.stats_study, preset=preset, metrics=tuple(metrics.values()))
        ours.data = ours.data.rename(columns={v: k for k, v in metrics.items()})
        rows = _of(inputs.comparisons, model=inputs.model, dataset=inputs.dataset, comparison=label,
                   study=inputs.stats_study, preset=preset)
        per_image = _of(inputs.per_image, model=inputs.model, dataset=inputs.dataset, set="val", preset=preset,
                        study=_runs.default_study(inputs.per_image, inputs.stats_study))
        noise = _versus.stats_noise(rows, per_image, _of(inputs.history, preset=preset), inputs.splits, inputs.dataset,
                                    metrics, PAPER_TABLE_PAIRS[name])
        return _versus.paper_vs_ours(ours, table=name, noise=noise)

    table = _versus.paper_vs_presets(name, for_preset)
    if metrics["psnr"] == "psnr_authors":
        table.caption += (" Ours in the authors' inference convention (PSNR of the unclipped output, "
                          "scikit-image's default 7x7 uniform SSIM), as the paper's numbers.")
    return table


@register_table("paper_vs_ours_table2")
def _paper_vs_ours_table2(inputs: TableInputs) -> Table:
    return _paper_vs_ours_stats(inputs, "table2")


@register_table("paper_vs_ours_table3")
def _paper_vs_ours_table3(inputs: TableInputs) -> Table:
    return _paper_vs_ours_stats(inputs, "table3")


@register_table("paper_vs_ours_table4")
def _paper_vs_ours_table4(inputs: TableInputs) -> Table:
    present = set(inputs.per_image.columns)
    authors = _versus.AUTHORS_METRICS
    metrics = {m: authors[m] if authors.get(m) in present else m for m in _paper.TABLE4_METRICS}

    def for_preset(preset: str) -> Table:
        model, dataset = inputs.showcase
        rows = _of(inputs.per_image, model=model, dataset=dataset, set="showcase", preset=preset,
                   study=_runs.default_study(inputs.per_image, inputs.stats_study))
        if rows.empty:
            raise ValueError(f"table4: no rows with preset == {preset!r}")
        return _contrasts.table4_contrasts(rows, metrics)

    return _stack_presets(for_preset, lambda reasons: _versus.published_alone("table4", reasons))


# --------------------------------------------------------------------------- the appendix grid (optional)

@register_table("table_a2", when=_with_appendix)
def _table_a2(inputs: TableInputs) -> Table:
    # the layer grid only exists with the perceptual loss on, i.e. in the corrected preset
    return _paper.table_a2(inputs.history, study=inputs.report["appendix_study"],
                           allow_incomplete=inputs.report["allow_incomplete_runs"])


@register_table("paper_vs_ours_table_a2", when=_with_appendix)
def _paper_vs_ours_table_a2(inputs: TableInputs) -> Table:
    """Like for like: the paper's A2 ran with the perceptual term at 0 (its VGG19 collapsed),
    so its eight runs are four replicates per λ_s whose layer pair did nothing. Ours: the
    appendix study's as_run runs (one per λ_s and seed: the layer axis does not expand where
    λ_p = 0), beside every one of the paper's layer rows."""
    study = inputs.report["appendix_study"]
    history = _of(inputs.history, preset=PAPER_PRESET, study=study)
    try:
        if history.empty:
            raise ValueError(f"no {PAPER_PRESET} run in the appendix study (add {PAPER_PRESET} to its presets)")
        runs = _paper.table_a2(history, study=inputs.report["appendix_study"], seeds_agg=False,
                               allow_incomplete=inputs.report["allow_incomplete_runs"]).data
        paper_vgg = _published.load_published("table_a2")[["experiment", "vgg", "lambda_s"]].drop_duplicates()
        paper_vgg = paper_vgg.assign(lambda_s=weight_key(paper_vgg["lambda_s"]))
        ours = runs.drop(columns=[c for c in ("experiment", "vgg", "vgg_layers") if c in runs.columns])
        ours = ours.assign(lambda_s=weight_key(ours["lambda_s"])).merge(paper_vgg, on="lambda_s")
        lookup = _versus.split_sd_lookup(_of(inputs.per_image, preset=PAPER_PRESET, study=study), history,
                                         inputs.splits)
        dataset = str(history["dataset"].iloc[0])  # the appendix study's own runs: table_a2 refuses several
        table = _versus.paper_vs_ours(ours, table="table_a2",
                                      split_sd=lambda keys, q: lookup({**keys, "dataset": dataset}, q))
    except ValueError as exc:
        return _versus.published_alone("table_a2", [str(exc)])
    table.caption = ("Table A2, ours vs the paper, like for like: the paper's eight runs had the perceptual term "
                     "at 0 (its VGG19 collapsed), so a layer pair did nothing and each λ_s has four replicate "
                     f"runs. Ours: the appendix study's {PAPER_PRESET} runs (one per λ_s and seed), beside every "
                     "one of the paper's layer rows; DIV2K validates on its official 100 images on both sides, so "
                     "the split SD is 0. " + table.caption.split("; difference = ours − paper. ", 1)[-1])
    return table


# --------------------------------------------------------------------------- benchmarks, image origins (issue 15)

@register_table("benchmarks")
def _benchmarks(inputs: TableInputs) -> Table:
    """Set5 / Set14 (``evaluation.benchmarks``) beside the bicubic baseline; a note when none."""
    from .benchmarks import benchmarks_table

    return benchmarks_table(inputs.per_image, inputs.baseline, inputs.report.get("benchmarks"), study=inputs.study)


@register_table("by_origin")
def _by_origin(inputs: TableInputs) -> Table:
    """Validation results and the bicubic baseline per origin of the images (e.g. BSDS300 test / train)."""
    from .benchmarks import by_origin_table

    return by_origin_table(inputs.per_image, inputs.baseline, study=inputs.study)
