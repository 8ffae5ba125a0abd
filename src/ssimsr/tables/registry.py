"""The tables the workflow writes, each registered once with its builder.

``table_names(report)`` (the outputs the tables rule declares) and ``build_tables`` (what
the tables job runs) both read this registry, so a table is named in one place only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from ..config import fill_defaults
from ..runs import GROUP_KEYS
from ..stats import comparison_label
from .paper import loss_shares, table1, table4, table_a2
from .render import Table
from .statistics import table_stats, verdict
from .versus import paper_vs_ours, paper_vs_presets, published_alone, table4_means

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
class _Registration:
    build: Callable[[TableInputs], Table]
    when: Callable[[dict], bool]


_REGISTRY: dict[str, _Registration] = {}


def _always(report: dict) -> bool:
    return True


def register_table(name: str, when: Callable[[dict], bool] = _always):
    """Decorator: ``build(inputs) -> Table`` writes table ``name`` when ``when(report)`` holds."""
    def register(build: Callable[[TableInputs], Table]) -> Callable[[TableInputs], Table]:
        if name in _REGISTRY:
            raise ValueError(f"register_table: {name!r} is registered twice")
        _REGISTRY[name] = _Registration(build, when)
        return build
    return register


def table_names(report: dict) -> list[str]:
    """The tables :func:`build_tables` writes for this ``report`` config, in registration order."""
    return [name for name, registration in _REGISTRY.items() if registration.when(report)]


def build_tables(history: pd.DataFrame, per_image: pd.DataFrame, comparisons: pd.DataFrame,
                 report: dict, out_dir: str | Path) -> list[Path]:
    """Write every table of ``table_names(report)`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = fill_defaults(report, "report")
    inputs = TableInputs(history, per_image, comparisons, report)
    # all are built before any is written: a builder that fails leaves the old tables as they were
    built = {name: _REGISTRY[name].build(inputs) for name in table_names(report)}
    written = []
    for name, table in built.items():
        written += list(table.write(out / name, label=f"tab:{name}").values())
    return written


def _with_appendix(report: dict) -> bool:
    return bool(fill_defaults(report, "report")["appendix_study"])


# --------------------------------------------------------------------------- the paper's tables

@register_table("table1")
def _table1(inputs: TableInputs) -> Table:
    return table1(inputs.history, study=inputs.study)


@register_table("loss_shares")
def _loss_shares(inputs: TableInputs) -> Table:
    """Table 1's companion: the loss terms' shares; a history without the lambdas gives a note."""
    try:
        return loss_shares(inputs.history, study=inputs.study)
    except ValueError as exc:
        return Table(pd.DataFrame(columns=["stage", "epoch"]),
                     "Share of each weighted loss term in the validation total: not available.",
                     notes=[str(exc)])


def _stats_table(comparisons: pd.DataFrame, model: str, dataset: str, pair: tuple[float, float],
                 name: str, **select) -> Table:
    """Table 2 / 3 for ``pair``; a pair the comparisons lack gives an empty table naming it."""
    label = comparison_label(*pair)
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
        return Table(pd.DataFrame(columns=["test", "statistic"]), f"{name}: λ_s = {pair[0]:g} vs "
                     f"λ_s = {pair[1]:g} ({dataset} {model}): not available.", notes=[note])
    return table_stats(comparisons, model, dataset, label, **select)


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
    return table4(inputs.per_image, *inputs.showcase, study=inputs.stats_study, preset=inputs.preset)


@register_table("verdict")
def _verdict(inputs: TableInputs) -> Table:
    return verdict(inputs.per_image, inputs.report["comparisons"], study=inputs.study)


@register_table("stats_all")
def _stats_all(inputs: TableInputs) -> Table:
    comparisons = inputs.comparisons
    keep = [*GROUP_KEYS, "comparison", "metric", "status", "n_seeds",
            "mean_diff", "sd_seed_diff", "ci_low_seed", "ci_high_seed", "t_seed", "df_seed", "p_seed", "mde_seed",
            "n", "ci_low", "ci_high", "t_paired", "df_paired", "p_paired", "cohens_dz", "p_wilcoxon",
            "t_welch", "df_welch", "p_welch", "cohens_d_pooled", "pairing"]
    data = comparisons[[c for c in keep if c in comparisons.columns]].reset_index(drop=True)
    return Table(data, "All comparisons of λ_s variants (validation images, differences a − b). *_seed: "
                       "the verdict test, a paired t on the per-seed mean differences (n_seeds = n, unit: "
                       "the training run; mde_seed = the difference detectable with 80 % power). n = images: "
                       "paired t, Wilcoxon and d_z on the per-image differences averaged over seeds (these "
                       "trained models), and Welch, the paper's unpaired test, on the per-image values "
                       "averaged over seeds.")


# --------------------------------------------------------------------------- paper vs ours

@register_table("paper_vs_ours_table1")
def _paper_vs_ours_table1(inputs: TableInputs) -> Table:
    def for_preset(preset: str) -> Table:
        history = inputs.history[inputs.history["preset"] == preset]
        if history.empty:
            raise ValueError(f"preset {preset!r} was not run")
        return paper_vs_ours(table1(history, study=inputs.study), table="table1")

    return paper_vs_presets("table1", for_preset)


def _paper_vs_ours_stats(inputs: TableInputs, name: str) -> Table:
    label = comparison_label(*PAPER_TABLE_PAIRS[name])
    return paper_vs_presets(name, lambda preset: paper_vs_ours(table_stats(
        inputs.comparisons, inputs.model, inputs.dataset, label, study=inputs.stats_study, preset=preset), table=name))


@register_table("paper_vs_ours_table2")
def _paper_vs_ours_table2(inputs: TableInputs) -> Table:
    return _paper_vs_ours_stats(inputs, "table2")


@register_table("paper_vs_ours_table3")
def _paper_vs_ours_table3(inputs: TableInputs) -> Table:
    return _paper_vs_ours_stats(inputs, "table3")


@register_table("paper_vs_ours_table4")
def _paper_vs_ours_table4(inputs: TableInputs) -> Table:
    return paper_vs_presets("table4", lambda preset: table4_means(
        table4(inputs.per_image, *inputs.showcase, study=inputs.stats_study, preset=preset)))


# --------------------------------------------------------------------------- the appendix grid (optional)

@register_table("table_a2", when=_with_appendix)
def _table_a2(inputs: TableInputs) -> Table:
    # the layer grid only exists with the perceptual loss on, i.e. in the corrected preset
    return table_a2(inputs.history, study=inputs.report["appendix_study"])


@register_table("paper_vs_ours_table_a2", when=_with_appendix)
def _paper_vs_ours_table_a2(inputs: TableInputs) -> Table:
    ours = _table_a2(inputs)
    try:
        return paper_vs_ours(ours, table="table_a2")
    except ValueError as exc:
        return published_alone("table_a2", [str(exc)])
