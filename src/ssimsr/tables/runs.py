"""Runs in the long result frames: selecting rows, per-run start/end values, seed aggregates."""

from __future__ import annotations

from typing import Iterable, Mapping

import pandas as pd

from ..pipeline.runs import Run, same_weight

#: Columns identifying one training run.
RUN_KEYS = Run.keys()


def run_keys(df: pd.DataFrame) -> list[str]:
    return [c for c in RUN_KEYS if c in df.columns]


def select_rows(df: pd.DataFrame, what: str, **filters) -> pd.DataFrame:
    """Rows matching every non-None filter; ValueError naming the values present otherwise."""
    for col, value in filters.items():
        if value is None:
            continue
        if col not in df.columns:
            raise ValueError(f"{what}: column {col!r} missing (cannot select {col}={value!r})")
        sel = same_weight(df[col], value) if col.startswith("lambda_") else df[col] == value
        if not sel.any():
            raise ValueError(f"{what}: no rows with {col} == {value!r} "
                             f"(present: {sorted(map(str, df[col].dropna().unique()))})")
        df = df[sel]
    return df


def unique_or_fail(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    for col in cols:
        if col in df.columns and df[col].nunique(dropna=False) > 1:
            raise ValueError(f"{what}: several values of {col!r} remain "
                             f"({sorted(map(str, df[col].unique()))}); pass {col}=... to choose one")


def default_study(df: pd.DataFrame, preferred: str | None) -> str | None:
    if preferred is None or "study" not in df.columns:
        return None
    return preferred if (df["study"] == preferred).any() else None


class IncompleteRun(ValueError):
    """A run's history has fewer epochs than configured (``report.allow_incomplete_runs``)."""


def run_stages(history: pd.DataFrame, metrics: Mapping[str, str], split: str = "val",
               train_seconds: bool = False, allow_incomplete: bool = False) -> pd.DataFrame:
    """One row per run: ``<name>_start`` (epoch 1) and ``<name>_end`` (last epoch) values.

    Epoch-0 rows (validation before training) are ignored here; see :func:`loss_shares`.

    ``metrics`` maps output names to history columns (the paper's tables keep the history's
    names: ``{"psnr": "psnr"}``); values are taken from the ``split`` rows. Adds
    ``epoch_start``, ``epoch_end`` and, with ``train_seconds``, ``training_time_s`` (sum of
    ``seconds`` over the run's train rows).
    Run attributes ``vgg_layers``, ``epochs``, ``dataset_size`` are carried when present.
    A run whose last epoch is below its configured ``epochs`` raises :class:`IncompleteRun`
    naming it; with ``allow_incomplete`` its last logged epoch is its "end" and the column
    ``complete`` (False) marks it.
    """
    keys = run_keys(history)
    if not keys:
        raise ValueError("run_stages: history has none of the run columns " + str(RUN_KEYS))
    need = ["epoch", "split", *metrics.values()]
    missing = [c for c in need if c not in history.columns]
    if missing:
        raise ValueError(f"run_stages: history lacks columns {missing}")
    # epoch 0 (the initial weights, before any step) is neither "start" nor "end"
    rows = history[(history["split"] == split) & (history["epoch"] >= 1)]
    if rows.empty:
        raise ValueError(f"run_stages: no rows with split == {split!r} and epoch >= 1")
    dup = rows.duplicated(subset=keys + ["epoch"], keep=False)
    if dup.any():
        raise ValueError(f"run_stages: duplicated (run, epoch) rows in split {split!r}: "
                         f"{rows.loc[dup, keys + ['epoch']].head(3).to_dict('records')}")
    attrs = [c for c in ("vgg_layers", "epochs", "dataset_size") if c in rows.columns]
    out = []
    for key, run in rows.groupby(keys, sort=True, dropna=False):
        run = run.sort_values("epoch")
        first = run[run["epoch"] == 1]
        first = first.iloc[0] if len(first) else run.iloc[0]
        last = run.iloc[-1]
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for a in attrs:
            rec[a] = run[a].iloc[0]
        rec["epoch_start"], rec["epoch_end"] = int(first["epoch"]), int(last["epoch"])
        rec["complete"] = not ("epochs" in rec and int(last["epoch"]) < int(rec["epochs"]))
        if not rec["complete"] and not allow_incomplete:
            where = Run.from_mapping({k: rec[k] for k in RUN_KEYS}).path if set(RUN_KEYS) <= set(rec) else rec
            raise IncompleteRun(f"run {where}: history.csv has {int(last['epoch'])} of {int(rec['epochs'])} epochs "
                                "(killed or still running); rerun it, or set report.allow_incomplete_runs: true "
                                "to tabulate its last epoch, marked")
        for name, col in metrics.items():
            rec[f"{name}_start"] = float(first[col])
            rec[f"{name}_end"] = float(last[col])
        out.append(rec)
    frame = pd.DataFrame(out)
    if train_seconds:
        if "seconds" not in history.columns:
            raise ValueError("run_stages: history lacks 'seconds'")
        train = history[history["split"] == "train"]
        secs = train.groupby(keys, dropna=False)["seconds"].sum().rename("training_time_s").reset_index()
        frame = frame.merge(secs, on=keys, how="left")
    return frame


def aggregate_seeds(per_run: pd.DataFrame, group: list[str], values: list[str]) -> pd.DataFrame:
    """mean / sd (ddof=1) over seeds of ``values`` per ``group``; adds ``n_seeds``."""
    g = per_run.groupby(group, sort=True, dropna=False)
    out = g.size().rename("n_seeds").reset_index()
    stats = []
    for v in values:
        stats.append(g[v].mean().rename(f"{v}_mean"))
        stats.append(g[v].std(ddof=1).rename(f"{v}_sd"))
    stats = pd.concat(stats, axis=1).reset_index()
    return out.merge(stats, on=group, how="left")


def several(df: pd.DataFrame, col: str) -> bool:
    return col in df.columns and df[col].nunique(dropna=False) > 1

