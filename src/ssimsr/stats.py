"""Statistical comparison of two loss variants (e.g. lambda_s = 1 vs 2) per image.

Section 3.2 of the paper reports, per metric, a t statistic with its df, a
p-value, the mean difference, a 95 % confidence interval and Cohen's d.  The text
says "paired t-test", but the reported numbers are those of an *unpaired Welch*
test: with n = 50 images per variant the df are about 97-98 (a paired test has
df = 49), and for PSNR in Table 2 df = 83.49 (the Welch-Satterthwaite value for
unequal variances).  Cohen's d there equals ``t_welch * sqrt(2 / n)`` (e.g.
4.2626 * 0.2 = 0.8525), i.e. the pooled-SD d, and the CI half-width equals
``t_{0.975, df_welch} * SE_welch`` (PSNR: 2.7828 +- 1.9888 * 0.6528).

Because the same validation images are reconstructed by both variants, the
appropriate analysis is the *paired* one, so :func:`compare` reports both:

* paired (primary): mean difference ``a - b`` with its t-based 95 % CI
  (df = n - 1), ``scipy.stats.ttest_rel``, Cohen's ``d_z`` and the Wilcoxon
  signed-rank test as a distribution-free check;
* unpaired (what the paper's tables contain): Welch's t-test
  (``scipy.stats.ttest_ind(equal_var=False)``), Welch-Satterthwaite df, the Welch
  95 % CI of the difference of means, and Cohen's d with the pooled SD.

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

__all__ = ["compare", "compare_variants", "STAT_KEYS"]

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

_CONF = 0.95


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
    """Compare per-image values of variant A (``a``) and variant B (``b``).

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
        ind = sps.ttest_ind(a, b, equal_var=False)

    if np.all(d == 0):
        w_stat, w_p = math.nan, math.nan
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))
            w = sps.wilcoxon(d)
        w_stat, w_p = float(w.statistic), float(w.pvalue)

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
        "metric": metric_name,
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
        "t_welch": float(ind.statistic),
        "df_welch": float(df_welch),
        "p_welch": float(ind.pvalue),
        "ci_low_welch": float(ci_w[0]),
        "ci_high_welch": float(ci_w[1]),
        "cohens_d_pooled": _ratio(mean_a - mean_b, s_pooled),
    }


def _nan_row(metric: str, n: int) -> dict:
    row = {"metric": metric}
    row.update({k: math.nan for k in STAT_KEYS})
    row["n"] = n
    return row


def compare_variants(
    df: pd.DataFrame,
    metrics: Sequence[str],
    variant_col: str = "lambda_s",
    a=1,
    b=2,
    pair_on: Sequence[str] = ("seed", "image"),
) -> pd.DataFrame:
    """Compare variant ``a`` with variant ``b`` for each metric of a long table.

    ``df`` has one row per (variant, pair key) with a column per metric, e.g.
    ``model, dataset, lambda_s, seed, image, psnr, ssim, lpips_alex, ...``; filter
    it to one model/dataset first (or add those columns to ``pair_on``).  Rows
    with ``df[variant_col] == a`` and ``== b`` are paired on the ``pair_on``
    columns (inner join).  Errors (``ValueError``): missing columns, a variant
    with no rows, a key duplicated within one variant, or a key present in one
    variant only (a missing image would silently bias the comparison).

    Returns one row per metric (in the given order) with columns ``metric``,
    ``variant_col`` (its name), ``a``, ``b`` (the compared values), ``status`` and
    the :func:`compare` statistics (:data:`STAT_KEYS`).
    A metric whose values are all NaN in both variants (e.g. an unavailable LPIPS
    backbone) gives NaN statistics with ``status`` ``"unavailable"`` (followed by
    ``": <reason>"`` taken from a ``<metric>_status`` column, if present);
    otherwise ``status`` is ``"ok"``.  Partially missing or non-finite values
    raise ``ValueError`` naming the metric.
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    pair_on = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    needed = [variant_col, *pair_on, *metrics]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"compare_variants: columns missing from the table: {missing}")

    sides = {}
    for label, value in (("a", a), ("b", b)):
        part = df[df[variant_col] == value]
        if part.empty:
            raise ValueError(f"compare_variants: no rows with {variant_col} == {value!r}")
        dup = part.duplicated(subset=pair_on, keep=False)
        if dup.any():
            example = part.loc[dup, pair_on].iloc[0].tolist()
            raise ValueError(
                f"compare_variants: {variant_col} == {value!r} has several rows for "
                f"{dict(zip(pair_on, example))}; filter the table (e.g. one model and "
                f"dataset) or add columns to pair_on"
            )
        sides[label] = part

    keys_a = set(map(tuple, sides["a"][pair_on].itertuples(index=False, name=None)))
    keys_b = set(map(tuple, sides["b"][pair_on].itertuples(index=False, name=None)))
    only_a, only_b = sorted(keys_a - keys_b, key=str), sorted(keys_b - keys_a, key=str)
    if only_a or only_b:
        raise ValueError(
            f"compare_variants: unpaired rows on {pair_on}: only in {variant_col}={a!r}: "
            f"{only_a[:5]}{' ...' if len(only_a) > 5 else ''}; only in {variant_col}={b!r}: "
            f"{only_b[:5]}{' ...' if len(only_b) > 5 else ''}"
        )

    status_cols = [f"{m}_status" for m in metrics if f"{m}_status" in df.columns]
    cols = pair_on + metrics + status_cols
    merged = sides["a"][cols].merge(
        sides["b"][cols], on=pair_on, how="inner", suffixes=("_a", "_b"), validate="one_to_one"
    )
    merged = merged.sort_values(pair_on, kind="mergesort").reset_index(drop=True)

    rows = []
    for m in metrics:
        va = pd.to_numeric(merged[f"{m}_a"], errors="coerce").to_numpy(dtype=float)
        vb = pd.to_numeric(merged[f"{m}_b"], errors="coerce").to_numpy(dtype=float)
        if np.all(np.isnan(va)) and np.all(np.isnan(vb)):
            row = _nan_row(m, len(merged))
            status = "unavailable"
            scol = f"{m}_status"
            if scol in df.columns:
                reasons = [
                    str(r) for r in pd.concat([merged[f"{scol}_a"], merged[f"{scol}_b"]]).dropna().unique()
                    if str(r) != "ok"
                ]
                if reasons:
                    reason = reasons[0]
                    if reason.startswith("unavailable: "):
                        reason = reason[len("unavailable: "):]
                    status = f"unavailable: {reason}"
            row["status"] = status
        else:
            row = compare(va, vb, m)
            row["status"] = "ok"
        row["variant_col"], row["a"], row["b"] = variant_col, a, b
        rows.append(row)

    return pd.DataFrame(rows, columns=["metric", "variant_col", "a", "b", "status", *STAT_KEYS])


#: Comparisons of the paper's Section 3.2: normalised vs non-normalised, normalised vs none.
COMPARISONS = ((1.0, 2.0), (1.0, 0.0))
GROUP_COLUMNS = ("study", "preset", "model", "dataset", "vgg")
PER_IMAGE_METRICS = ("psnr", "ssim", "psnr_y", "ssim_y", "lpips_alex", "lpips_squeeze", "lpips_vgg")


def compare_studies(per_image: pd.DataFrame, image_set: str = "val") -> pd.DataFrame:
    """Every available lambda_s comparison per (study, preset, model, dataset, vgg).

    Images are paired across variants on (seed, image): within a seed the same image is
    reconstructed by both variants; with several seeds, n = seeds x images pairs
    (``pairing`` column says so). Returns one row per group, comparison and metric.
    """
    frame = per_image[per_image["set"] == image_set]
    metrics = [m for m in PER_IMAGE_METRICS if m in frame.columns]
    out = []
    for keys, group in frame.groupby(list(GROUP_COLUMNS), sort=True):
        present = set(group["lambda_s"].unique())
        n_seeds = group["seed"].nunique()
        for a, b in COMPARISONS:
            if a not in present or b not in present:
                continue
            rows = compare_variants(group, metrics, "lambda_s", a, b, pair_on=("seed", "image"))
            rows.insert(0, "comparison", f"ls{a:g}_vs_ls{b:g}")
            for col, value in reversed(list(zip(GROUP_COLUMNS, keys))):
                rows.insert(0, col, value)
            rows["pairing"] = (f"paired on (seed, image): {n_seeds} seed(s) x "
                               f"{group['image'].nunique()} images")
            out.append(rows)
    if not out:
        return pd.DataFrame(columns=list(GROUP_COLUMNS) + ["comparison", "metric"])
    return pd.concat(out, ignore_index=True)
