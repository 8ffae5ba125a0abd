"""The paper's statistics tables: Tables 2 / 3 (one λ_s comparison, three tests) and the verdict."""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..evaluation.lpips_nets import LPIPS_COLUMNS
from ..pipeline.runs import GROUP_KEYS, parse_lambda_tag, same_weight, weight_key
from ..analysis.power import ALPHA, POWER
from ..analysis.stats import DEFAULT_PAIRS, IMAGE_SET, check_pairs, comparison_label
from .published import load_published
from .render import METRIC_LABELS, NA, Table, fmt_p
from .runs import default_study, select_rows, several, unique_or_fail

#: Metrics of Tables 2/3 in the paper's column order.
STATS_METRICS = (*LPIPS_COLUMNS, "psnr", "ssim")


# --------------------------------------------------------------------------- Tables 2 / 3

WELCH_ROWS = [("t_welch", "t statistic"), ("df_welch", "df"), ("p_welch", "p-value"),
              ("mean_diff", "mean difference"), ("ci_low_welch", "95 % CI (min)"),
              ("ci_high_welch", "95 % CI (max)"), ("cohens_d_pooled", "Cohen's d (pooled SD)")]
_PAIRED_ROWS = [("t_paired", "t statistic"), ("df_paired", "df"), ("p_paired", "p-value"),
                ("mean_diff", "mean difference"), ("ci_low", "95 % CI (min)"), ("ci_high", "95 % CI (max)"),
                ("cohens_dz", "Cohen's d_z"), ("wilcoxon_W", "Wilcoxon W"),
                ("p_wilcoxon", "Wilcoxon p-value")]
_SEED_ROWS = [("t_seed", "t statistic"), ("df_seed", "df"), ("p_seed", "p-value"), ("mean_diff", "mean difference"),
              ("ci_low_seed", "95 % CI (min)"), ("ci_high_seed", "95 % CI (max)"),
              ("sd_seed_diff", "SD of the per-seed differences"),
              ("mde_seed", f"detectable at {POWER * 100:g} % power (SD at its 90 % upper bound)")]
SEED_BLOCK = "per-seed means, n = seeds (verdict)"
WELCH_BLOCK = "unpaired Welch, n = images (the paper's analysis)"
PAIRED_BLOCK = "paired by image, n = images (these models)"


def _parse_comparison(comparison: str) -> tuple[float, float]:
    """``ls<a>_vs_ls<b>`` (:func:`~ssimsr.analysis.stats.comparison_label`) -> (a, b)."""
    m = re.fullmatch(r"ls(?P<a>[^_]+)_vs_ls(?P<b>[^_]+)", comparison)
    try:
        return parse_lambda_tag(m["a"]), parse_lambda_tag(m["b"])
    except (TypeError, ValueError):  # no match, or not two λ_s tags
        raise ValueError(f"comparison {comparison!r} is not of the form 'ls<a>_vs_ls<b>'") from None


def _fmt_stat(key: str, v) -> str:
    if v is None or pd.isna(v):
        return NA
    if key.startswith("p_"):
        return fmt_p(float(v))
    if key in ("df_paired", "df_seed"):
        return f"{int(round(float(v)))}"
    if key.startswith("df"):
        return f"{float(v):.2f}"
    if key == "wilcoxon_W":
        return f"{float(v):g}"
    return f"{float(v):.4f}"


def table_stats(comparisons: pd.DataFrame, model: str, dataset: str, comparison: str, *,
                study: str | None = None, preset: str | None = None, vgg: str | None = None,
                metrics: Sequence[str] = STATS_METRICS, alpha: float = ALPHA) -> Table:
    """Tables 2 / 3: statistics (rows) x metrics (columns) of one comparison.

    Expects ``comparisons`` columns ``model, dataset, comparison, metric, status`` (+
    ``study, preset, vgg, pairing``) and the :data:`ssimsr.analysis.stats.STAT_KEYS`. After
    filtering, each metric must have one row (else ValueError: choose study/preset/vgg).
    ``data`` has columns ``test`` (the block), ``statistic`` (the stats key), ``label``
    and one column per metric; three blocks, each with its n and unit: the verdict test
    (paired t on per-seed mean differences, n = seeds: t, df, p, mean difference, CI, SD of
    the per-seed differences, the difference detectable at 80 % power), the paper's unpaired
    Welch test on per-image values averaged over seeds (n = images: t, Welch df, p, mean
    difference, Welch 95 % CI, pooled-SD Cohen's d) and the image-level paired analysis of
    these trained models (n = images: t, p, mean difference, CI, Cohen's d_z, Wilcoxon W, p).
    ``display`` writes t as "t (df ≈ x)" like the paper; unavailable metrics read
    "unavailable" (reason in the notes). p-values below ``alpha`` are bold.
    """
    a, b = _parse_comparison(comparison)
    sel = select_rows(comparisons, "table_stats", model=model, dataset=dataset, comparison=comparison,
                      study=study, preset=preset, vgg=vgg)
    rows = _metric_rows(sel, metrics)
    status, notes = _metric_status(rows)
    n_seeds, n_images = _counts(rows, "n_seeds"), _counts(rows, "n")
    records, disp_rows, bold_rows = [], [], []
    for block, spec in ((SEED_BLOCK, _SEED_ROWS), (WELCH_BLOCK, WELCH_ROWS), (PAIRED_BLOCK, _PAIRED_ROWS)):
        for key, label in spec:
            rec = {"test": block, "statistic": key, "label": label}
            for m in metrics:
                r = rows[m]
                rec[m] = float(r[key]) if (r is not None and status[m] == "ok" and key in r
                                           and not pd.isna(r[key])) else math.nan
            records.append(rec)
        for key, label in spec:
            if key.startswith("df"):
                continue  # shown with t
            drow = {"test": block, "statistic": label + (" (df)" if key.startswith("t_") else "")}
            brow = {"test": False, "statistic": False}
            for m in metrics:
                drow[m], brow[m] = _stat_cell(key, rows[m], status[m], alpha)
            disp_rows.append(drow)
            bold_rows.append(brow)
    data = pd.DataFrame(records)
    display = pd.DataFrame(disp_rows)
    bold = pd.DataFrame(bold_rows).astype(bool)
    setting = ", ".join(f"{k} {v}" for k, v in (("study", study), ("preset", preset), ("vgg", vgg)) if v)
    caption = _stats_caption(f"{dataset} {model}{' (' + setting + ')' if setting else ''}", a, b, n_seeds, n_images,
                             alpha)
    headers = {"test": "Test", "statistic": "Statistic"}
    return Table(data=data, caption=caption, bold=bold, display=display, notes=notes, headers=headers)


def _metric_rows(sel: pd.DataFrame, metrics: Sequence[str]) -> dict:
    """Each metric's one row of the selected comparisons (None where it has none); several is a
    ValueError naming the keys that tell them apart."""
    rows = {}
    for m in metrics:
        part = sel[sel["metric"] == m]
        if len(part) > 1:
            unique_or_fail(part, ("study", "preset", "vgg"), f"table_stats({m})")
            raise ValueError(f"table_stats: {len(part)} rows for metric {m!r}")
        rows[m] = part.iloc[0] if len(part) else None
    return rows


def _metric_status(rows: dict) -> tuple[dict, list[str]]:
    """Each metric's status ("ok", or why it is unavailable), and a note per metric not "ok"."""
    notes, status = [], {}
    for m, r in rows.items():
        if r is None:
            status[m] = "unavailable: metric not in the comparisons table"
        else:
            st = str(r.get("status", "ok")) if not pd.isna(r.get("status", "ok")) else "ok"
            status[m] = st
        if status[m] != "ok":
            notes.append(f"{m}: {status[m]}")
    return status, notes


def _counts(rows: dict, col: str) -> str:
    """The values of count ``col`` (``n_seeds``, ``n``) over the metrics' rows: "2", "2/3", or "?"."""
    found = sorted({int(r[col]) for r in rows.values() if r is not None and not pd.isna(r.get(col, math.nan))})
    return "/".join(map(str, found)) if found else "?"


def _stat_cell(key: str, r, status: str, alpha: float) -> tuple[str, bool]:
    """One shown cell of Tables 2/3 (statistic ``key`` of a metric's row ``r``) and whether it is
    bold (p < ``alpha``); a t carries its df."""
    if status != "ok":
        return "unavailable", False
    val = r.get(key, math.nan)
    text = _fmt_stat(key, val)
    if key == "mde_seed" and pd.isna(val) and not pd.isna(r.get("n_seeds", math.nan)):
        text = _mde_na(int(r["n_seeds"]))
    if key.startswith("t_"):
        dfkey = {"t_welch": "df_welch", "t_seed": "df_seed"}.get(key, "df_paired")
        sym = "≈" if key == "t_welch" else "="
        text = f"{text} (df {sym} {_fmt_stat(dfkey, r.get(dfkey, math.nan))})"
    return text, bool(key.startswith("p_") and not pd.isna(val) and float(val) < alpha)


def _stats_caption(subject: str, a: float, b: float, n_seeds: str, n_images: str, alpha: float) -> str:
    return (f"{subject}: λ_s = {a:g} vs λ_s = {b:g} on the "
            f"validation images (differences λ_s = {a:g} minus λ_s = {b:g}). First block, the verdict test: "
            f"paired t on the per-seed mean differences, n = {n_seeds} seed{'' if n_seeds == '1' else 's'} (unit: the training run), with "
            f"the smallest difference detectable at {POWER * 100:g} % power. Second, the paper's analysis: "
            "unpaired Welch "
            "test (Welch-Satterthwaite df, pooled-SD Cohen's d) on the per-image values averaged over the "
            f"seeds, n = {n_images} images per variant (the paper's n = 50). Third, paired tests on the "
            f"per-image differences averaged over the seeds, n = {n_images} images (df = n − 1, Cohen's d_z, "
            f"Wilcoxon signed-rank): they describe these trained models, not training in general. "
            f"p < {alpha:g} in bold.")


# --------------------------------------------------------------------------- verdict

def _mde_na(n_seeds: int) -> str:
    from ..analysis.noise import MIN_SEEDS_FOR_POWER

    return f"n/a (fewer than {MIN_SEEDS_FOR_POWER} seeds)" if n_seeds < MIN_SEEDS_FOR_POWER else NA


MDE_TEXT = ("detectable Δ = the smallest true difference these seeds detect with {power:g} % power at α = {alpha:g}, "
            "for the SD across seeds at its one-sided 90 % upper confidence bound (chi-square; the observed SD of "
            "a few seeds is often far below the true one), n/a with fewer than 4 seeds")


def _group_text(gd: Mapping) -> str:
    return " ".join(f"{k}={v}" for k, v in gd.items())


def _span(values) -> str:
    values = sorted(set(int(v) for v in values))
    return f"{values[0]}" if len(values) == 1 else f"{values[0]}-{values[-1]}"


def _compared(comparisons: pd.DataFrame, group: Mapping, label: str, metrics: Sequence[str]) -> pd.DataFrame:
    """The rows of ``comparisons`` of one group and comparison, indexed by metric; a metric
    without its row is a ValueError (comparisons made before per_image, or for other pairs)."""
    rows = comparisons
    for key, value in dict(group, comparison=label).items():
        if key in rows.columns:
            rows = rows[rows[key].isna() if pd.isna(value) else rows[key] == value]
    missing = [m for m in metrics if "metric" not in rows.columns or (rows["metric"] == m).sum() != 1]
    if missing:
        raise ValueError(f"verdict: {label} of {_group_text(group)}: not one row per metric {missing} in the "
                         "comparisons (results/stats/comparisons.csv): rerun the stats rule")
    return rows.set_index("metric")


def verdict(per_image: pd.DataFrame, comparisons: pd.DataFrame, pairs=None,
            published: pd.DataFrame | str | None = "table1", *, study: str | None,
            metrics: Sequence[str] = ("ssim", "psnr"), alpha: float = ALPHA) -> Table:
    """Does λ_s = a change what training produces, against λ_s = b? Ours beside the paper's Table 1.

    The statistics are read from ``comparisons`` (results/stats/comparisons.csv: the rows of
    :func:`ssimsr.analysis.stats.compare_studies` for the same ``pairs``), not computed again;
    ``per_image`` (columns ``model, dataset, lambda_s, seed, set, image`` + ``study, preset,
    vgg``) gives the groups and the λ_s values each holds. ``pairs`` is ``report.comparisons``
    (default :data:`ssimsr.analysis.stats.DEFAULT_PAIRS`: 1 vs 0, 1 vs 2). One row per (preset, model,
    dataset, [vgg,] comparison) of the :data:`ssimsr.analysis.stats.IMAGE_SET` images: for each metric
    ``d<metric>_mean`` = the mean difference a − b, ``d<metric>_sd`` = SD over seeds of the
    per-seed mean differences, ``p_<metric>`` = the verdict test (paired t on the per-seed
    means, n = seeds), ``mde_<metric>`` = the smallest true difference the seeds detect
    (:data:`ssimsr.analysis.power.POWER` at :data:`ssimsr.analysis.power.ALPHA`) given that SD,
    ``pimg_<metric>`` = paired t on per-image differences averaged over seeds (n = images;
    these trained models only), and ``paper_d<metric>`` = the paper's Table 1
    end-of-training difference. ``agree_<metric>`` is 1 where our mean difference has the
    paper's sign, 0 where not; "p < ``alpha``" in the verdict's words. A configured pair
    that a group lacks is named in a note; no pair in any group gives an empty table with
    those notes.
    """
    pairs = check_pairs(DEFAULT_PAIRS if pairs is None else pairs)
    sel = select_rows(per_image, "verdict", set=IMAGE_SET, study=default_study(per_image, study))
    if isinstance(published, str):
        published = load_published(published)
    keys = [c for c in GROUP_KEYS if c in sel.columns]
    out, notes = [], []
    for gkey, group in sel.groupby(keys, sort=True, dropna=False):
        gd = dict(zip(keys, gkey if isinstance(gkey, tuple) else (gkey,)))
        present = set(weight_key(group["lambda_s"]))  # as the pairs (check_pairs)
        for a, b in pairs:
            if a not in present or b not in present:
                notes.append(f"λ_s {a:g} vs {b:g} (report.comparisons): not in {_group_text(gd)} "
                             f"(λ_s present: {', '.join(f'{x:g}' for x in sorted(present))}).")
                continue
            out.append(_verdict_record(comparisons, gd, a, b, published, metrics, alpha))
    value_cols = [f"{p}{m}{s}" for m in metrics for p, s in (("d", "_mean"), ("d", "_sd"), ("p_", ""),
                                                               ("mde_", ""), ("pimg_", ""), ("paper_d", ""),
                                                               ("agree_", ""))]
    data = pd.DataFrame(out, columns=keys + ["comparison", "n_seeds", "n_images"] + value_cols + ["verdict"])
    drop = [c for c in ("study", "vgg") if c in data.columns and not several(data, c)]
    data = data.drop(columns=drop)
    headers, formats = _verdict_headers_formats(metrics)
    n_text = (f"n = {_span(data['n_seeds'])} seeds" if len(data) else "n = seeds")
    img_text = (f"n = {_span(data['n_images'])} images" if len(data) else "n = images")
    caption = (f"λ_s comparisons (a − b) on the {IMAGE_SET} images. Verdict test: paired t on the per-seed mean "
               f"differences ({n_text}; unit: the training run); Δ (ours) = mean ± SD over seeds of the per-seed "
               f"mean difference; {MDE_TEXT.format(power=POWER * 100, alpha=ALPHA)}. p (images): paired t on the "
               "per-image "
               f"differences averaged over seeds ({img_text}), which describes these trained models only. "
               "Δ (paper): difference of the paper's Table 1 end-of-training values.")
    return Table(data=data, caption=caption, formats=formats, headers=headers, notes=notes)


def _verdict_record(comparisons: pd.DataFrame, gd: dict, a: float, b: float, published: pd.DataFrame | None,
                    metrics: Sequence[str], alpha: float) -> dict:
    """The verdict row of group ``gd``'s comparison λ_s ``a`` vs ``b``: each metric's statistics,
    the paper's difference and whether ours has its sign, and the verdict in words."""
    res = _compared(comparisons, gd, comparison_label(a, b), metrics)
    rec = dict(gd, comparison=comparison_label(a, b), n_seeds=int(res.loc[metrics[0], "n_seeds"]),
               n_images=int(res.loc[metrics[0], "n"]))
    words = []
    for m in metrics:
        r = res.loc[m]
        rec.update({f"d{m}_mean": r["mean_diff"], f"d{m}_sd": r["sd_seed_diff"], f"p_{m}": r["p_seed"],
                    f"mde_{m}": r["mde_seed"], f"pimg_{m}": r["p_paired"]})
        paper = _paper_difference(published, gd, m, a, b)
        rec[f"paper_d{m}"] = paper
        ours = rec[f"d{m}_mean"]
        rec[f"agree_{m}"] = (float(np.sign(ours) == np.sign(paper))
                             if not (pd.isna(paper) or pd.isna(ours) or paper == 0 or ours == 0)
                             else math.nan)
        p = rec[f"p_{m}"]
        rel = "higher" if ours > 0 else "lower" if ours < 0 else "equal"
        sig = ("one seed: no run-level test" if rec["n_seeds"] < 2
               else f"p < {alpha:g}" if p < alpha else "n.s.")
        words.append(f"{m.upper()} {rel} ({sig})")
    rec["verdict"] = f"λ_s={a:g} vs {b:g}: " + ", ".join(words)
    return rec


def _paper_difference(published: pd.DataFrame | None, gd: dict, m: str, a: float, b: float) -> float:
    """The paper's Table 1 end-of-training difference of metric ``m``, λ_s ``a`` − ``b``, for
    the group's dataset and model; NaN where it has no one value of each."""
    paper = math.nan
    if published is not None and f"{m}_end" in published.columns:
        pub = published[(published["dataset"] == gd.get("dataset")) & (published["model"] == gd.get("model"))]
        va = pub.loc[same_weight(pub["lambda_s"], a), f"{m}_end"]
        vb = pub.loc[same_weight(pub["lambda_s"], b), f"{m}_end"]
        if len(va) == 1 and len(vb) == 1:
            paper = float(va.iloc[0]) - float(vb.iloc[0])
    return paper


def _verdict_headers_formats(metrics: Sequence[str]) -> tuple[dict, dict]:
    """The verdict table's column headers and value formats."""
    headers = {"comparison": "Comparison", "verdict": "Verdict"}
    formats = {}
    for m in metrics:
        label = METRIC_LABELS.get(m, m)
        headers.update({f"d{m}": f"Δ{label} (ours)", f"p_{m}": f"p {label} (seeds)",
                        f"mde_{m}": f"detectable Δ{label}", f"pimg_{m}": f"p {label} (images)",
                        f"paper_d{m}": f"Δ{label} (paper)", f"agree_{m}": f"sign as paper ({label})"})
        formats[f"d{m}"] = "{:+.2f}" if "psnr" in m else "{:+.4f}"
        formats[f"mde_{m}"] = "{:.2f}" if "psnr" in m else "{:.4f}"
        formats[f"paper_d{m}"] = formats[f"d{m}"]
        formats[f"agree_{m}"] = lambda v: "yes" if v == 1 else "no"
        formats[f"pimg_{m}"] = fmt_p
    return headers, formats

