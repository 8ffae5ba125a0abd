"""Statistical comparison of two loss variants (e.g. lambda_s = 1 vs 2).

Three questions, three units of replication (every table states n and its unit):

* **Does lambda_s change what training produces?** (the verdict). The unit is the
  training run: seeds differ in initialisation and data order, and every image of one run
  shares that run's luck. :func:`seed_level_test` is a paired t on the per-seed mean
  differences (variant a minus b over the images of one seed; n = seeds, df = n - 1).
  A linear mixed model with seed and image effects gives the same test for the fixed
  effect in this balanced, complete design (its Satterthwaite df is n_seeds - 1 as well),
  but needs an extra dependency and estimates a variance component from 2-5 groups, so
  the per-seed means are used. :func:`detectable_effect` states, from the observed SD of
  the per-seed differences, the smallest difference the study's seeds detect with 80 %
  power (noncentral t; :mod:`ssimsr.analysis.power`).
* **Do these particular trained models differ?** Image-level tests on the per-image
  differences averaged over seeds (n = images): paired t, CI, Cohen's d_z, Wilcoxon.
  They describe the models at hand; as a test of the training procedure they reject a
  true null far too often when runs differ (see :func:`ssimsr.analysis.simulation.rejection_rates`).
* **The paper's analysis.** Section 3.2 reports a t statistic with its df, a p-value,
  the mean difference, a 95 % CI and Cohen's d. The text says "paired t-test", but the
  numbers are those of an *unpaired Welch* test: with n = 50 images per variant the df are
  about 97-98 (a paired test has df = 49), and for PSNR in Table 2 df = 83.49 (the
  Welch-Satterthwaite value). Cohen's d there equals ``t_welch * sqrt(2 / n)`` (e.g.
  4.2626 * 0.2 = 0.8525), the pooled-SD d, and the CI half-width equals
  ``t_{0.975, df_welch} * SE_welch`` (PSNR: 2.7828 +- 1.9888 * 0.6528). It is kept, on
  the per-image values averaged over seeds (n = images, like the paper's n = 50).

All tests are two-sided.  The sign convention is ``a - b`` throughout (positive
``mean_diff`` means variant ``a`` has the larger mean).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..evaluation.lpips_nets import LPIPS_COLUMNS
from .power import ALPHA, POWER, detectable_effect
from ..pipeline.runs import GROUP_KEYS, check_pairs, weight_key

__all__ = [
    "compare",
    "compare_variants",
    "compare_studies",
    "seed_level_test",
    "check_pairs",
    "STAT_KEYS",
    "SEED_KEYS",
    "DEFAULT_PAIRS",
]

#: Keys of the dict returned by :func:`compare` (after ``metric``), in order.
STAT_KEYS = (
    "n",
    "mean_a",
    "mean_b",
    "mean_diff",
    "sd_diff",
    "ci_low",
    "ci_high",
    "t_paired",
    "df_paired",
    "p_paired",
    "cohens_dz",
    "wilcoxon_W",
    "p_wilcoxon",
    "t_welch",
    "df_welch",
    "p_welch",
    "ci_low_welch",
    "ci_high_welch",
    "cohens_d_pooled",
)

#: Keys of the seed-level (verdict) test, added by :func:`compare_variants`.
SEED_KEYS = (
    "n_seeds",
    "sd_seed_diff",
    "ci_low_seed",
    "ci_high_seed",
    "t_seed",
    "df_seed",
    "p_seed",
    "mde_seed",
)

_CONF = 0.95
#: The paper's comparisons (config ``report.comparisons``): normalised vs none, vs non-normalised.
DEFAULT_PAIRS = ((1.0, 0.0), (1.0, 2.0))
#: The images :func:`compare_studies` compares (each run's validation split).
IMAGE_SET = "val"


def _validate(a, b, metric_name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{metric_name}: values must be numeric ({exc})") from exc
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{metric_name}: a and b must be 1-D, got shapes {a.shape} and {b.shape}")
    if a.size != b.size:
        raise ValueError(
            f"{metric_name}: a and b must have the same length (paired by image), "
            f"got {a.size} and {b.size}"
        )
    if a.size < 2:
        raise ValueError(f"{metric_name}: need at least 2 paired values, got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"{metric_name}: values must be finite (found NaN or inf)")
    return a, b


def _ratio(num: float, den: float) -> float:
    """num / den with 0/0 -> NaN and x/0 -> +-inf (no warnings)."""
    if den == 0.0:
        return math.nan if num == 0.0 else math.copysign(math.inf, num)
    return num / den


def compare(a, b, metric_name: str = "metric") -> dict:
    """Compare per-image values of variant A (``a``) and variant B (``b``) (n = images).

    ``a[i]`` and ``b[i]`` must belong to the same image.  Raises ``ValueError``
    (naming ``metric_name``) unless both are 1-D, of the same length n >= 2 and
    finite.  Returns a dict with ``metric`` and:

    ``n``
        number of pairs.
    ``mean_a``, ``mean_b``, ``mean_diff``
        means and ``mean(a - b)`` (= ``mean_a - mean_b``).
    ``sd_diff``
        SD of the paired differences ``d = a - b`` (ddof = 1).
    ``ci_low``, ``ci_high``
        95 % CI of the mean paired difference:
        ``mean_diff -+ t_{0.975, n-1} * sd_diff / sqrt(n)``.
    ``t_paired``, ``df_paired``, ``p_paired``
        ``scipy.stats.ttest_rel(a, b)``, df = n - 1.
    ``cohens_dz``
        ``mean_diff / sd_diff`` (Cohen's d for paired data; NaN if all differences
        are 0, +-inf if the differences are constant and non-zero).
    ``wilcoxon_W``, ``p_wilcoxon``
        ``scipy.stats.wilcoxon(a - b)`` (zero differences dropped,
        ``zero_method="wilcox"``; scipy chooses exact or normal approximation).
        NaN for both when every difference is zero.
    ``t_welch``, ``df_welch``, ``p_welch``
        ``scipy.stats.ttest_ind(a, b, equal_var=False)``; df by Welch-Satterthwaite:
        ``(va/na + vb/nb)^2 / ((va/na)^2/(na-1) + (vb/nb)^2/(nb-1))``.
    ``ci_low_welch``, ``ci_high_welch``
        95 % Welch CI of ``mean_a - mean_b``:
        ``-+ t_{0.975, df_welch} * sqrt(va/na + vb/nb)`` (the paper's CIs).
    ``cohens_d_pooled``
        ``(mean_a - mean_b) / s_pooled`` with
        ``s_pooled = sqrt(((na-1) va + (nb-1) vb) / (na + nb - 2))`` (the paper's d).

    Variances use ddof = 1.  Degenerate data (zero variance) gives NaN/inf
    statistics rather than an exception.
    """
    a, b = _validate(a, b, metric_name)
    return {"metric": metric_name, **_paired(a, b), **_welch(a, b, float((a - b).mean()))}


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    """:func:`compare`'s paired statistics (n to ``p_wilcoxon``) of validated ``a`` and ``b``."""
    n = int(a.size)
    d = a - b
    mean_a, mean_b = float(a.mean()), float(b.mean())
    mean_diff = float(d.mean())
    sd_diff = float(d.std(ddof=1))
    se_diff = sd_diff / math.sqrt(n)
    tcrit = float(sps.t.ppf(0.5 + _CONF / 2, n - 1))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rel = sps.ttest_rel(a, b)

    if np.all(d == 0):
        w_stat, w_p = math.nan, math.nan
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))
            w = sps.wilcoxon(d)
        w_stat, w_p = float(w.statistic), float(w.pvalue)

    return {
        "n": n,
        "mean_a": mean_a,
        "mean_b": mean_b,
        "mean_diff": mean_diff,
        "sd_diff": sd_diff,
        "ci_low": mean_diff - tcrit * se_diff,
        "ci_high": mean_diff + tcrit * se_diff,
        "t_paired": float(rel.statistic),
        "df_paired": n - 1,
        "p_paired": float(rel.pvalue),
        "cohens_dz": _ratio(mean_diff, sd_diff),
        "wilcoxon_W": w_stat,
        "p_wilcoxon": w_p,
    }


def _welch(a: np.ndarray, b: np.ndarray, mean_diff: float) -> dict:
    """:func:`compare`'s unpaired statistics (the paper's: Welch's t, its CI, pooled-SD d)."""
    n = int(a.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ind = sps.ttest_ind(a, b, equal_var=False)
    mean_a, mean_b = float(a.mean()), float(b.mean())
    va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
    sa2, sb2 = va / n, vb / n
    se_welch = math.sqrt(sa2 + sb2)
    df_welch = _ratio((sa2 + sb2) ** 2, sa2**2 / (n - 1) + sb2**2 / (n - 1))
    if math.isfinite(df_welch):
        tcrit_w = float(sps.t.ppf(0.5 + _CONF / 2, df_welch))
        ci_w = (mean_diff - tcrit_w * se_welch, mean_diff + tcrit_w * se_welch)
    else:
        ci_w = (math.nan, math.nan)
    s_pooled = math.sqrt(((n - 1) * va + (n - 1) * vb) / (2 * n - 2))
    return {
        "t_welch": float(ind.statistic),
        "df_welch": float(df_welch),
        "p_welch": float(ind.pvalue),
        "ci_low_welch": float(ci_w[0]),
        "ci_high_welch": float(ci_w[1]),
        "cohens_d_pooled": _ratio(mean_a - mean_b, s_pooled),
    }


# --------------------------------------------------------------------------- unit: the training run

def seed_level_test(per_seed_diffs, alpha: float = ALPHA, power: float = POWER) -> dict:
    """The verdict's test: paired t on per-seed mean differences (unit: the training run).

    ``per_seed_diffs[..., s]`` is seed ``s``'s mean difference (variant a minus b over the
    images); leading axes are independent studies (vectorised for simulations). Returns
    :data:`SEED_KEYS` (floats for 1-D input, arrays otherwise): ``n_seeds``, the mean,
    ``sd_seed_diff`` (ddof = 1), the t-based 95 % CI, ``t_seed`` / ``df_seed`` (n - 1) /
    ``p_seed`` (two-sided) and ``mde_seed`` = the smallest true difference detected with
    ``power`` at ``alpha`` (:func:`detectable_effect`) for an SD at the one-sided 90 % upper
    confidence bound of the observed one (:func:`ssimsr.analysis.noise.sd_upper_bound`): the observed
    SD of a few seeds is often far below the true one (2 seeds: below half of it 38 % of the
    time), so the observed SD would overclaim. NaN with fewer than
    :data:`ssimsr.analysis.noise.MIN_SEEDS_FOR_POWER` (4) seeds, where even the bound is too loose to
    plan with. One seed gives NaN for all but the mean: no run-level variation is observable.
    """
    from .noise import MIN_SEEDS_FOR_POWER, sd_upper_bound

    d = np.asarray(per_seed_diffs, dtype=float)
    if d.ndim == 0 or d.shape[-1] == 0:
        raise ValueError(f"seed_level_test: need a last axis of seeds, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("seed_level_test: per-seed differences must be finite (found NaN or inf)")
    n = d.shape[-1]
    mean = d.mean(axis=-1)
    if n < 2:
        nan = np.full(mean.shape, math.nan)
        out = {"n_seeds": n, "mean_diff": mean, "sd_seed_diff": nan, "ci_low_seed": nan, "ci_high_seed": nan,
               "t_seed": nan, "df_seed": nan, "p_seed": nan, "mde_seed": nan}
    else:
        sd = d.std(axis=-1, ddof=1)
        se = sd / math.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            # constant differences: t = +-inf (p = 0) if non-zero, NaN if all zero
            t = np.where(se > 0, mean / np.where(se > 0, se, 1.0),
                         np.where(mean == 0, math.nan, np.copysign(math.inf, mean)))
        half = sps.t.ppf(0.5 + _CONF / 2, n - 1) * se
        out = {"n_seeds": n, "mean_diff": mean, "sd_seed_diff": sd, "ci_low_seed": mean - half,
               "ci_high_seed": mean + half, "t_seed": t, "df_seed": np.full(mean.shape, float(n - 1)),
               "p_seed": 2 * sps.t.sf(np.abs(t), n - 1),
               "mde_seed": (detectable_effect(n, alpha, power) * sd_upper_bound(sd, n) if n >= MIN_SEEDS_FOR_POWER
                            else np.full(mean.shape, math.nan))}
    if d.ndim == 1:
        return {k: (v if k == "n_seeds" else float(v)) for k, v in out.items()}
    return out


# --------------------------------------------------------------------------- long tables

def _nan_row(metric: str, n_images: int, n_seeds: int) -> dict:
    row = {"metric": metric}
    row.update({k: math.nan for k in (*SEED_KEYS, *STAT_KEYS)})
    row["n"], row["n_seeds"] = n_images, n_seeds
    return row


def compare_variants(
    df: pd.DataFrame,
    metrics: Sequence[str],
    variant_col: str = "lambda_s",
    a=1,
    b=2,
    run_col: str = "seed",
    unit_col: str = "image",
    alpha: float = ALPHA,
    power: float = POWER,
) -> pd.DataFrame:
    """Compare variant ``a`` with variant ``b`` for each metric of a long table.

    ``df`` has one row per (variant, run, image) with a column per metric, e.g.
    ``model, dataset, lambda_s, seed, image, psnr, ssim, lpips_alex, ...``; filter it to
    one model/dataset first. Rows of ``a`` and ``b`` are paired on (``run_col``,
    ``unit_col``). Errors (``ValueError``): missing columns, a variant with no rows, a key
    duplicated within one variant, a key present in one variant only, or runs that do not
    share one image set (a missing image would silently bias the comparison). Runs whose
    image sets differ but are of one size drew a split each (``split.per_seed``,
    ``ssimsr.data.seed_split``): allowed, each image averaged over the runs that validated it.

    Returns one row per metric (in the given order) with ``metric``, ``variant_col`` (its
    name), ``a``, ``b``, ``status``, the seed-level test (:data:`SEED_KEYS`, on the per-run
    mean differences) and the image-level statistics of :func:`compare` (:data:`STAT_KEYS`,
    ``n`` = images) on the per-image values averaged over runs: paired t / Wilcoxon / d_z
    (these trained models) and the paper's Welch test.
    A metric whose values are all NaN in both variants (e.g. an unavailable LPIPS
    backbone) gives NaN statistics with ``status`` ``"unavailable"`` (followed by
    ``": <reason>"`` taken from a ``<metric>_status`` column, if present);
    otherwise ``status`` is ``"ok"``.  Partially missing or non-finite values
    raise ``ValueError`` naming the metric.
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    pair_on = [run_col, unit_col]
    needed = [variant_col, *pair_on, *metrics]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"compare_variants: columns missing from the table: {missing}")
    sides = {label: _variant_rows(df, variant_col, value, pair_on) for label, value in (("a", a), ("b", b))}
    _check_paired(sides, variant_col, a, b, run_col, unit_col)

    status_cols = [f"{m}_status" for m in metrics if f"{m}_status" in df.columns]
    cols = pair_on + metrics + status_cols
    merged = sides["a"][cols].merge(
        sides["b"][cols], on=pair_on, how="inner", suffixes=("_a", "_b"), validate="one_to_one"
    )
    merged = merged.sort_values(pair_on, kind="mergesort").reset_index(drop=True)
    rows = []
    for m in metrics:
        row = _metric_comparison(merged, m, run_col, unit_col, alpha, power)
        row["variant_col"], row["a"], row["b"] = variant_col, a, b
        rows.append(row)

    return pd.DataFrame(rows, columns=["metric", "variant_col", "a", "b", "status", *SEED_KEYS, *STAT_KEYS])


def _variant_rows(df: pd.DataFrame, variant_col: str, value, pair_on: list[str]) -> pd.DataFrame:
    """The rows of one variant; none, or a key of ``pair_on`` twice, is a ValueError."""
    part = df[df[variant_col] == value]
    if part.empty:
        raise ValueError(f"compare_variants: no rows with {variant_col} == {value!r}")
    dup = part.duplicated(subset=pair_on, keep=False)
    if dup.any():
        example = part.loc[dup, pair_on].iloc[0].tolist()
        raise ValueError(
            f"compare_variants: {variant_col} == {value!r} has several rows for "
            f"{dict(zip(pair_on, example))}; filter the table (e.g. one model and dataset)"
        )
    return part


def _check_paired(sides: dict, variant_col: str, a, b, run_col: str, unit_col: str) -> None:
    """ValueError unless both variants hold the same (run, unit) keys and the runs share one
    unit set (or, a split per seed, sets of one size)."""
    pair_on = [run_col, unit_col]
    keys_a = set(map(tuple, sides["a"][pair_on].itertuples(index=False, name=None)))
    keys_b = set(map(tuple, sides["b"][pair_on].itertuples(index=False, name=None)))
    only_a, only_b = sorted(keys_a - keys_b, key=str), sorted(keys_b - keys_a, key=str)
    if only_a or only_b:
        raise ValueError(
            f"compare_variants: unpaired rows on {pair_on}: only in {variant_col}={a!r}: "
            f"{only_a[:5]}{' ...' if len(only_a) > 5 else ''}; only in {variant_col}={b!r}: "
            f"{only_b[:5]}{' ...' if len(only_b) > 5 else ''}"
        )
    units_per_run = sides["a"].groupby(run_col)[unit_col].agg(frozenset)
    # runs of equal size with different images: a split per seed (split.per_seed), each
    # run's own val images; an image's per-unit value is its mean over the runs that had it
    if units_per_run.nunique() > 1 and units_per_run.map(len).nunique() > 1:
        union = frozenset().union(*units_per_run)
        lacking = {r: sorted(union - u, key=str)[:5] for r, u in units_per_run.items() if u != union}
        raise ValueError(f"compare_variants: the {run_col}s do not share one {unit_col} set; "
                         f"missing per {run_col}: {lacking}")


def _metric_comparison(merged: pd.DataFrame, m: str, run_col: str, unit_col: str, alpha: float,
                       power: float) -> dict:
    """Metric ``m``'s row of :func:`compare_variants` (without the variant columns) from the
    paired rows ``merged`` (``<m>_a``, ``<m>_b``)."""
    n_runs, n_units = merged[run_col].nunique(), merged[unit_col].nunique()
    va = pd.to_numeric(merged[f"{m}_a"], errors="coerce").to_numpy(dtype=float)
    vb = pd.to_numeric(merged[f"{m}_b"], errors="coerce").to_numpy(dtype=float)
    if np.all(np.isnan(va)) and np.all(np.isnan(vb)):
        row = _nan_row(m, n_units, n_runs)
        row["status"] = _unavailable_status(merged, f"{m}_status")
        return row
    if not (np.all(np.isfinite(va)) and np.all(np.isfinite(vb))):
        raise ValueError(f"{m}: values must be finite (found NaN or inf)")
    values = pd.DataFrame({run_col: merged[run_col], unit_col: merged[unit_col], "a": va, "b": vb})
    per_run = values.groupby(run_col, sort=True)[["a", "b"]].mean()
    per_unit = values.groupby(unit_col, sort=True)[["a", "b"]].mean()
    row = {"metric": m}
    seed = seed_level_test((per_run["a"] - per_run["b"]).to_numpy(), alpha, power)
    row.update({k: seed[k] for k in SEED_KEYS})
    row.update({k: v for k, v in compare(per_unit["a"].to_numpy(), per_unit["b"].to_numpy(), m).items()
                if k != "metric"})
    row["status"] = "ok"
    return row


def _unavailable_status(merged: pd.DataFrame, scol: str) -> str:
    if f"{scol}_a" not in merged.columns:
        return "unavailable"
    reasons = [str(r) for r in pd.concat([merged[f"{scol}_a"], merged[f"{scol}_b"]]).dropna().unique()
               if str(r) != "ok"]
    if not reasons:
        return "unavailable"
    reason = reasons[0]
    if reason.startswith("unavailable: "):
        reason = reason[len("unavailable: "):]
    return f"unavailable: {reason}"


def comparison_label(a: float, b: float) -> str:
    from ..pipeline.runs import lambda_tag

    return f"ls{lambda_tag(a)}_vs_ls{lambda_tag(b)}"


PER_IMAGE_METRICS = ("psnr", "ssim", "psnr_y", "ssim_y", "psnr_authors", "ssim_authors", *LPIPS_COLUMNS)


def compare_studies(per_image: pd.DataFrame, image_set: str = IMAGE_SET, pairs=DEFAULT_PAIRS,
                    alpha: float = ALPHA, power: float = POWER) -> pd.DataFrame:
    """Every configured lambda_s comparison per (study, preset, model, dataset, vgg).

    ``pairs`` is ``report.comparisons`` (``[[a, b], ...]``, differences a - b); a pair whose
    values a group lacks is skipped there (the tables name it in a note). Returns one row
    per group, comparison and metric; ``pairing`` states each test's n and unit.
    """
    pairs = check_pairs(pairs)
    frame = per_image[per_image["set"] == image_set]
    frame = frame.assign(lambda_s=weight_key(frame["lambda_s"]))  # as the pairs: runs.weight_key
    metrics = [m for m in PER_IMAGE_METRICS if m in frame.columns]
    out = []
    for keys, group in frame.groupby(list(GROUP_KEYS), sort=True):
        present = set(group["lambda_s"])
        n_seeds, n_images = group["seed"].nunique(), group["image"].nunique()
        for a, b in pairs:
            if a not in present or b not in present:
                continue
            rows = compare_variants(group, metrics, "lambda_s", a, b, alpha=alpha, power=power)
            rows.insert(0, "comparison", comparison_label(a, b))
            for col, value in reversed(list(zip(GROUP_KEYS, keys))):
                rows.insert(0, col, value)
            over = ("the seeds" if group.groupby("seed")["image"].agg(frozenset).nunique() <= 1
                    else "the seeds that validated each image (a split per seed)")
            rows["pairing"] = (f"verdict test: paired t on per-seed mean differences, n = {n_seeds} seeds; "
                               f"image-level tests: per-image values averaged over {over}, n = {n_images} images")
            out.append(rows)
    if not out:
        return pd.DataFrame(columns=list(GROUP_KEYS) + ["comparison", "metric"])
    return pd.concat(out, ignore_index=True)
