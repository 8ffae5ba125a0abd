"""The paper's tables from the training histories and per-image metrics: Table 1, the loss
shares (Table 1's companion), Table A2 and Table 4."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from .. import registry
from ..training.balance import DOMINANCE_RATIO, weighted_terms
from ..training.balance import shares as _term_shares
from ..evaluation.lpips_nets import LPIPS_COLUMNS
from ..pipeline.runs import weight_key
from .render import Table, base_column, best_mask
from .runs import aggregate_seeds, default_study, run_keys, run_stages, select_rows, several, unique_or_fail

#: Lower is better for these metrics and every registered loss term (``lower_is_better``);
#: everything else: higher is better.
LOWER_IS_BETTER = ("total", *LPIPS_COLUMNS)


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or metric in registry.loss_terms()


# --------------------------------------------------------------------------- Table 1

#: Table 1's quantities, named as the history's columns (a loss term: its registry name).
TABLE1_METRICS = ("total", "bw_mse", "psnr", "ssim")
TABLE1_VALUES = [f"{m}_{s}" for m in TABLE1_METRICS for s in ("start", "end")]


def table1(history: pd.DataFrame, seeds_agg: bool = True, *, study: str | None,
           split: str = "val", allow_incomplete: bool = False) -> Table:
    """Table 1: validation total loss, bwMSE, PSNR, SSIM after epoch 1 and after the last epoch.

    Expects ``history`` columns ``dataset, model, lambda_s, seed, epoch, split, total,
    bw_mse, psnr, ssim`` (+ ``study, preset, vgg, dataset_size, epochs`` when present).
    Rows of ``study`` only (when that study is present). One row per ([preset,]
    dataset, model, [vgg,] lambda_s) — preset / vgg only when several occur.
    ``seeds_agg``: columns ``<metric>_<start|end>_mean`` / ``_sd`` and ``n_seeds``;
    otherwise one row per seed with plain ``<metric>_<start|end>`` columns.
    Bold: best end-of-training value per ([preset,] dataset, model) group
    (lower total/bwMSE, higher PSNR/SSIM). A run whose history is shorter than its configured
    epochs raises ``IncompleteRun`` unless ``allow_incomplete``; then ``n_incomplete``
    counts such runs per row and a note names them. ``readout_psnr`` (learned downscalers:
    the linear read-out PSNR of the downscaler at initialisation, ``ssimsr.training.readout``) is
    carried when the history has it.
    """
    hist = select_rows(history, "table1", study=default_study(history, study))
    per_run = run_stages(hist, {m: m for m in TABLE1_METRICS}, split=split, allow_incomplete=allow_incomplete)
    extra_values = []
    if "readout_psnr" in hist.columns and hist["readout_psnr"].notna().any():
        keys = run_keys(hist)
        readout = hist.groupby(keys, dropna=False)["readout_psnr"].first().reset_index()
        per_run = per_run.merge(readout, on=keys, how="left")
        extra_values.append("readout_psnr")
    per_run["n_incomplete"] = (~per_run["complete"].astype(bool)).astype(int)
    group = [c for c in ("preset",) if several(per_run, c)] + ["dataset", "model"]
    group += [c for c in ("vgg",) if several(per_run, c)]
    attrs = [c for c in ("dataset_size", "epochs") if c in per_run.columns]
    if seeds_agg:
        data = aggregate_seeds(per_run, group + ["lambda_s"] + attrs, TABLE1_VALUES + extra_values)
        incomplete = per_run.groupby(group + ["lambda_s"] + attrs, dropna=False)["n_incomplete"].sum()
        data = data.merge(incomplete.reset_index(), on=group + ["lambda_s"] + attrs, how="left")
        end_cols = [f"{m}_end_mean" for m in TABLE1_METRICS]
    else:
        cols = group + ["lambda_s", "seed"] + attrs + TABLE1_VALUES + extra_values + ["n_incomplete"]
        data = per_run[[c for c in cols if c in per_run.columns]]
        data = data.sort_values(group + ["lambda_s", "seed"], kind="mergesort").reset_index(drop=True)
        end_cols = [f"{m}_end" for m in TABLE1_METRICS]
    hib = {c: not lower_is_better(m) for m, c in zip(TABLE1_METRICS, end_cols)}
    bold = best_mask(data, group, end_cols, hib)
    n_seeds = per_run.groupby(group + ["lambda_s"])["seed"].nunique() if "seed" in per_run else pd.Series([1])
    lo, hi = int(n_seeds.min()), int(n_seeds.max())
    seed_note = f"{lo}" if lo == hi else f"{lo}-{hi}"
    caption = ("Training without and with the SSIM loss (λ_s = 0: none, 1: normalised (1 − SSIM)/2, "
               "2: non-normalised 1 − SSIM): validation results after epoch 1 (start) and after the "
               f"last epoch (end); {'mean ± sd over ' + seed_note + ' seed(s)' if seeds_agg else 'one row per seed'}. "
               "Best end-of-training value per dataset and model in bold."
               + (" readout_psnr: PSNR of a linear read-out of the learned downscaler at initialisation "
                  "(how much of the image a frozen random downscaler keeps; ssimsr.training.readout)." if extra_values else ""))
    notes = []
    if per_run["n_incomplete"].any():
        bad = per_run[per_run["n_incomplete"] > 0]
        notes.append("incomplete runs (report.allow_incomplete_runs), 'end' = their last logged epoch: "
                     + "; ".join(f"{r['model']} {r['dataset']} λ_s={float(r['lambda_s']):g} seed {r.get('seed', '?')} "
                                 f"(epoch {int(r['epoch_end'])} of {int(r['epochs'])})" for _, r in bad.iterrows()))
    else:
        data = data.drop(columns=["n_incomplete"])
        bold = bold.drop(columns=[c for c in ("n_incomplete",) if c in bold.columns])
    return Table(data=data, caption=caption, bold=bold, notes=notes)


# --------------------------------------------------------------------------- loss shares

def share_columns() -> tuple[str, ...]:
    """``share_<term>`` of every registered loss term, in the loss's order."""
    return tuple(f"share_{term}" for term, _ in weighted_terms())


def _pct(v: float) -> str:
    return f"{100 * float(v):.1f} %"


def _ratio(v: float) -> str:
    v = float(v)
    return "∞" if math.isinf(v) else f"{v:.3g}"


def _top_ratio(parts: dict) -> float:
    """The largest weighted term over the sum of the others (NaN with fewer than two)."""
    if len(parts) < 2:
        return math.nan
    top = max(parts.values())
    others = sum(parts.values()) - top
    return top / others if others else math.inf


def loss_shares(history: pd.DataFrame, study: str | None, split: str = "val",
                seeds_agg: bool = True) -> Table:
    """Each weighted loss term's share of the validation total, before training and at the end.

    Expects ``history`` columns ``epoch, split, bw_mse, fw_mse, perceptual, ssim_n`` and the
    lambdas ``lambda_b, lambda_f, lambda_p, lambda_s`` (the collect job adds them from
    params.json) (+ run columns, ``perceptual_norm``). Two rows per run: ``stage`` ``start``
    (epoch 0: the initial weights, before the first step) and ``end`` (last epoch); columns
    ``share_<term>`` = lambda * term / (sum of the weighted terms), NaN for a term of weight
    0, and ``top_ratio`` = the largest weighted term / the sum of the others (> 100: it
    drowns them; the train log warns). Runs without an epoch-0 row (trained before it was
    logged) have no start row, named in a note. Seeds: ``_mean`` / ``_sd`` columns.
    """
    hist = select_rows(history, "loss_shares", study=default_study(history, study))
    terms = weighted_terms()
    lambda_columns = [lam for _, lam in terms]
    missing = [c for c in ("epoch", "split", *lambda_columns, *(t for t, _ in terms))
               if c not in hist.columns]
    if missing:
        raise ValueError(f"loss_shares: history lacks columns {missing} (rerun the collect job)")
    rows = hist[hist["split"] == split]
    extra = [c for c in ("perceptual_norm",) if c in rows.columns]
    long, no_start = _share_rows(rows, terms, extra)
    if not long:
        raise ValueError(f"loss_shares: no {split!r} rows")
    data = _shares_by_group(pd.DataFrame(long), extra, seeds_agg)
    formats = {c: _pct for c in share_columns()} | {"top_ratio": _ratio}
    # every term's header and the notes on the VGG19 terms: the registry's labels (one spelling)
    labels = {name: term.label or name for name, term in registry.loss_terms().items()}
    headers = {f"share_{t}": f"{labels[t]} share" for t, _ in terms}
    headers["top_ratio"] = "Largest / rest"
    vgg_terms = [term for term in registry.loss_terms().values() if term.needs_extractor]
    vgg_labels = " / ".join(labels[t.name] for t in vgg_terms)
    if vgg_terms:
        headers["perceptual_norm"] = f"{vgg_labels} norm"
    notes = []
    if no_start:
        notes.append("no epoch-0 row (trained before it was logged), start not shown: " + "; ".join(no_start))
    shown = {base_column(c) for c in data.columns}
    for term in vgg_terms:
        if f"share_{term.name}" not in shown:
            notes.append(f"{labels[term.name]} has weight 0 in every run shown ({term.weight} = 0).")
    caption = ("Share of each weighted loss term in the validation total (λ · term / total) before the first "
               "training step (start, epoch 0) and after the last epoch (end)"
               + (", mean ± sd over seeds" if seeds_agg and "n_seeds" in data.columns else "")
               + f". n/a: weight 0. Largest / rest: the largest weighted term divided by the sum of the others "
               f"(above {DOMINANCE_RATIO:g} it drowns them; the train log warns)."
               + (f" With {vgg_labels}, the values depend on the VGG19 weights file: only ImageNet weights give "
                  "the magnitudes of the paper's setting." if vgg_terms else ""))
    return Table(data=data, caption=caption, formats=formats, headers=headers, notes=notes)


def _share_rows(rows: pd.DataFrame, terms: list, extra: list[str]) -> tuple[list[dict], list[str]]:
    """Per run, its ``start`` (epoch 0) and ``end`` (last epoch) row of term shares and top
    ratio; and the runs without an epoch-0 row, named."""
    keys = run_keys(rows)
    lambda_columns = [lam for _, lam in terms]
    long, no_start = [], []
    for key, run in rows.groupby(keys, sort=True, dropna=False):
        run = run.sort_values("epoch")
        trained = run[run["epoch"] >= 1]
        stages = [("start", run[run["epoch"] == 0]), ("end", trained.tail(1))]
        rec = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for stage, row in stages:
            if row.empty:
                if stage == "start":
                    no_start.append(", ".join(f"{k} {v}" for k, v in rec.items()))
                continue
            row = row.iloc[0]
            lambdas = {lam: float(row[lam]) for lam in lambda_columns}
            shares = _term_shares(row, lambdas)
            parts = {t: lambdas[lam] * float(row[t]) for t, lam in terms if lambdas[lam] > 0}
            long.append({**rec, **{c: row[c] for c in extra}, "stage": stage, "epoch": int(row["epoch"]),
                         **{f"share_{t}": shares.get(t, math.nan) for t, _ in terms},
                         "top_ratio": _top_ratio(parts)})
    return long, no_start


def _shares_by_group(long: pd.DataFrame, extra: list[str], seeds_agg: bool) -> pd.DataFrame:
    """The per-run share rows per group (seeds aggregated with ``seeds_agg``), start before end;
    a share column that no run weights is dropped."""
    pre = [c for c in ("preset",) if several(long, c)]
    group = pre + ["dataset", "model"] + [c for c in ("vgg",) if several(long, c)]
    group += [c for c in extra if several(long, c)] + ["lambda_s", "stage", "epoch"]
    group = [c for c in group if c in long.columns]
    values = list(share_columns()) + ["top_ratio"]
    if seeds_agg and "seed" in long.columns:
        data = aggregate_seeds(long, group, values)
    else:
        data = long[group + [c for c in ("seed",) if c in long.columns] + values]
    data["_s"] = (data["stage"] == "end").astype(int)
    data = data.sort_values([c for c in group if c not in ("stage", "epoch")] + ["_s"],
                            kind="mergesort").drop(columns="_s").reset_index(drop=True)
    # a column of a term no run weights is dropped (e.g. perceptual with lambda_p = 0)
    for col in share_columns():
        cols = [c for c in data.columns if base_column(c) == col]
        if cols and data[cols].isna().all().all():
            data = data.drop(columns=cols)
    return data


# --------------------------------------------------------------------------- Table A2

#: Table A2's quantities in the paper's order, named as the history's columns.
A2_METRICS = ("bw_mse", "perceptual", "fw_mse", "ssim_n", "total", "psnr", "ssim")
#: The paper's experiment numbers of Table A2: (vgg tag, lambda_s) -> E<n>.
A2_EXPERIMENTS = {("b4c4-b5c4", 1.0): "E1", ("b4c4-b5c4", 0.0): "E2", ("b1c2-b4c4", 1.0): "E3",
                  ("b1c2-b4c4", 0.0): "E4", ("b2c2-b5c2", 1.0): "E5", ("b2c2-b5c2", 0.0): "E6",
                  ("b3c2-b4c4", 1.0): "E7", ("b3c2-b4c4", 0.0): "E8"}


def table_a2(history: pd.DataFrame, study: str | None, split: str = "val",
             seeds_agg: bool = True, allow_incomplete: bool = False) -> Table:
    """Table A2: the VGG19 layer-pair grid (IRN, DIV2K in the paper).

    Expects ``history`` columns ``vgg, lambda_s, seed, epoch, split, bw_mse, perceptual,
    fw_mse, ssim_n, total, psnr, ssim, seconds`` (+ ``study, preset, vgg_layers, model,
    dataset``). Two rows per (vgg pair, lambda_s) as in the paper: ``stage`` ``start``
    (epoch 1) and ``end`` (last epoch), with bwMSE, L_perc, fwMSE, L_SSIM_N, total loss,
    PSNR, SSIM on the ``split`` rows and ``training_time_s`` = sum of ``seconds`` over the
    run's train rows. ``experiment`` is the paper's E1-E8 label of that (vgg, lambda_s).
    Seeds: ``_mean``/``_sd`` columns when ``seeds_agg``. Bold: best end-of-training values
    per lambda_s (and preset) across the layer pairs (lower losses, higher PSNR/SSIM).
    """
    hist = select_rows(history, "table_a2", study=default_study(history, study))
    per_run = run_stages(hist, {m: m for m in A2_METRICS}, split=split, train_seconds=True,
                         allow_incomplete=allow_incomplete)
    for col in ("model", "dataset"):
        if several(per_run, col):
            raise ValueError(f"table_a2: several values of {col!r} ({sorted(per_run[col].unique())}); "
                             "filter the history first")
    pre = [c for c in ("preset",) if several(per_run, c)]
    layer_cols = ["vgg"] + [c for c in ("vgg_layers",) if c in per_run.columns]
    long = []
    for stage in ("start", "end"):
        part = per_run[run_keys(per_run) + [c for c in ("vgg_layers",) if c in per_run.columns]].copy()
        part["stage"] = stage
        part["epoch"] = per_run[f"epoch_{stage}"]
        for m in A2_METRICS:
            part[m] = per_run[f"{m}_{stage}"]
        part["training_time_s"] = per_run["training_time_s"]
        long.append(part)
    long = pd.concat(long, ignore_index=True)
    values = list(A2_METRICS) + ["training_time_s"]
    group = pre + layer_cols + ["lambda_s", "stage", "epoch"]
    if seeds_agg:
        data = aggregate_seeds(long, group, values)
        value_cols = [f"{m}_mean" for m in A2_METRICS]
    else:
        data = long[group + ["seed"] + values].copy()
        value_cols = list(A2_METRICS)
    data.insert(0, "experiment", [A2_EXPERIMENTS.get((v, float(l)), "") for v, l in
                                  zip(data["vgg"], data["lambda_s"])])
    order = {e: i for i, e in enumerate(sorted(set(A2_EXPERIMENTS.values()), key=lambda s: int(s[1:])))}
    data["_o"] = [order.get(e, len(order)) for e in data["experiment"]]
    data["_s"] = (data["stage"] == "end").astype(int)
    data = data.sort_values(["_o", *pre, "vgg", "lambda_s", "_s"] + (["seed"] if "seed" in data else []),
                            ascending=[True] * (len(pre) + 2) + [False, True] + ([True] if "seed" in data else []),
                            kind="mergesort").drop(columns=["_o", "_s"]).reset_index(drop=True)
    hib = {c: base_column(c) in ("psnr", "ssim") for c in value_cols}
    bold = best_mask(data, pre + ["lambda_s"], value_cols, hib, rows=data["stage"] == "end")
    caption = ("Perceptual-loss VGG19 layer pairs (Appendix A grid): validation losses and metrics after "
               "epoch 1 (start) and the last epoch (end), training time = sum of the training epochs' "
               "wall-clock seconds. Best end-of-training value per λ_s across layer pairs in bold.")
    return Table(data=data, caption=caption, bold=bold)


# --------------------------------------------------------------------------- Table 4

TABLE4_METRICS = (*LPIPS_COLUMNS, "psnr", "ssim")


def table4(per_image: pd.DataFrame, model: str = "sr", dataset: str = "bsds300", image_set: str = "showcase",
           *, study: str | None = None, preset: str | None = None, vgg: str | None = None,
           metrics: Sequence[str] = TABLE4_METRICS, lambdas: Sequence[float] | None = None) -> Table:
    """Table 4: per showcase image (columns), each metric for each lambda_s (rows).

    Expects ``per_image`` columns ``model, dataset, set, image, lambda_s, seed`` and the
    metric columns (+ ``study, preset, vgg`` and ``<metric>_status``). The paper used the
    SR model trained on BSDS300. Rows ``metric, lambda_s``; one column per image
    (``<image>_mean``/``_sd`` with several seeds, plain ``<image>`` with one). Bold: best
    per image and metric (lowest LPIPS, highest PSNR/SSIM). All values 4 decimals as in the paper.
    """
    sel = select_rows(per_image, "table4", model=model, dataset=dataset, set=image_set, study=study,
                      preset=preset, vgg=vgg)
    unique_or_fail(sel, ("study", "preset", "vgg"), "table4")
    sel = sel.assign(lambda_s=weight_key(sel["lambda_s"]))  # λ_s values compare as keys below
    if lambdas is not None:
        sel = sel[sel["lambda_s"].isin([weight_key(x) for x in lambdas])]
    metrics = [m for m in metrics if m in sel.columns]
    images = sorted(sel["image"].astype(str).unique())
    lams = sorted(sel["lambda_s"].unique())
    multi = "seed" in sel.columns and sel["seed"].nunique() > 1
    records, notes = [], []
    for m in metrics:
        scol = f"{m}_status"
        if scol in sel.columns and sel[m].isna().all():
            reasons = sorted({str(s) for s in sel[scol].dropna().unique() if str(s) != "ok"})
            notes.append(f"{m}: {'; '.join(reasons) or 'unavailable'}")
        for lam in lams:
            rec = {"metric": m, "lambda_s": lam}
            part = sel[sel["lambda_s"] == lam]
            for img in images:
                vals = pd.to_numeric(part.loc[part["image"].astype(str) == img, m], errors="coerce")
                if multi:
                    rec[f"{img}_mean"] = float(vals.mean()) if vals.notna().any() else math.nan
                    rec[f"{img}_sd"] = float(vals.std(ddof=1)) if vals.notna().sum() > 1 else math.nan
                else:
                    if len(vals) > 1:
                        raise ValueError(f"table4: {len(vals)} rows for image {img!r}, λ_s={lam:g}")
                    rec[img] = float(vals.iloc[0]) if len(vals) else math.nan
            if multi:
                rec["n_seeds"] = int(part["seed"].nunique())
            records.append(rec)
    data = pd.DataFrame(records)
    value_cols = [f"{img}_mean" if multi else img for img in images]
    bold = pd.DataFrame(False, index=data.index, columns=data.columns)
    for m in metrics:
        rows = data["metric"] == m
        sub = best_mask(data, [], value_cols, not lower_is_better(m), rows=rows, decimals=4)
        bold |= sub
    formats = {img: "{:.4f}" for img in images}
    display = None
    caption = (f"Per-image metrics of the showcase crops ({dataset} {model} models, λ_s = "
               f"{', '.join(f'{x:g}' for x in lams)}{', mean ± sd over seeds' if multi else ''}). "
               "Best value per image and metric in bold (lowest LPIPS, highest PSNR / SSIM).")
    headers = {"metric": "Metric", "lambda_s": "λ_s"}
    return Table(data=data, caption=caption, bold=bold, display=display, notes=notes, formats=formats,
                 headers=headers)

