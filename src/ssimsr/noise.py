"""How far ours may lie from the paper by chance: seeds, the validation split, an SD's bound.

A published cell is one training run of the authors, validated on their own random split
(BSDS300: 50 of 300 images, seed unknown). Ours is the mean of ``k`` runs (seeds) on our
split. With σ_seed the SD of one run's value across seeds and σ_split the SD of a split's
mean over the possible splits,

    Var(ours − paper) = σ_seed² (1 + 1/k) + 2 σ_split²

(the two splits are independent draws from the same images, so their means' covariance is
0 and each contributes σ_split²). ``s`` is its square root with σ_seed estimated by the SD
across our seeds and σ_split by the finite-population formula from the per-image values
(:func:`split_sampling_sd`); ``z = (ours − paper) / s``. Where the split is not random
(DIV2K's official archives, a fixed list) both sides validate on the same images and
σ_split = 0. One seed gives no σ_seed, hence no verdict.

``sd_upper_bound`` is the one-sided upper confidence bound on an SD from ``n`` values (the
chi-square interval), which the verdict's detectable difference uses instead of the
observed SD: with 2 seeds the observed SD is below half the true one 38 % of the time.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

__all__ = ["split_sampling_sd", "difference_sd", "standardised_difference", "agreement",
           "sd_upper_bound", "Z_LIMIT", "SD_CONFIDENCE", "MIN_SEEDS_FOR_POWER", "ONE_SEED", "WITHIN", "DIFFERS"]

#: |z| below this reads "within noise" (about a 95 % two-sided band under normality).
Z_LIMIT = 2.0
#: Confidence of the upper bound on the SD across seeds used for the detectable difference.
SD_CONFIDENCE = 0.9
#: Fewer seeds than this: the detectable difference reads "n/a" (the SD bound is too loose).
MIN_SEEDS_FOR_POWER = 4

WITHIN, DIFFERS, ONE_SEED = "within noise", "differs", "one seed: no noise estimate"
NO_SPLIT = "no per-image values: no split estimate"
UNAVAILABLE = "ours unavailable"


def split_sampling_sd(values, n_total: int | None) -> float:
    """SD of the mean of ``len(values)`` images drawn at random, without replacement, from
    ``n_total`` images, estimated from the drawn images' values.

    ``sqrt(S² / n · (1 − n / N))``, with S² the sample variance (ddof = 1, unbiased for the
    finite population's variance under simple random sampling). ``n_total = None`` means
    the population is unbounded (no finite-population correction).
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    n = v.size
    if n < 2:
        raise ValueError(f"split_sampling_sd: need at least 2 per-image values, got {n}")
    fpc = 1.0
    if n_total is not None:
        if n_total < n:
            raise ValueError(f"split_sampling_sd: {n} images drawn from a population of {n_total}")
        fpc = 1.0 - n / n_total
    return float(v.std(ddof=1) * math.sqrt(fpc / n))


def difference_sd(seed_sd: float, n_seeds: int, split_sd: float) -> float:
    """SD of (mean of ``n_seeds`` of our runs − one published run), each on its own split."""
    if n_seeds < 1:
        raise ValueError(f"difference_sd: n_seeds must be >= 1, got {n_seeds}")
    return math.sqrt(seed_sd ** 2 * (1.0 + 1.0 / n_seeds) + 2.0 * split_sd ** 2)


def standardised_difference(ours: float, paper: float, s: float) -> float:
    """z = (ours − paper) / s; NaN when any part is missing or s is 0."""
    if any(x is None or not math.isfinite(x) for x in (ours, paper, s)) or s == 0:
        return math.nan
    return (ours - paper) / s


def agreement(ours: float, paper: float, seed_sd: float, n_seeds: int, split_sd: float) -> dict:
    """``s``, ``z`` and the words for one published cell (see the module docstring)."""
    if ours is None or not math.isfinite(ours):
        return {"s": math.nan, "z": math.nan, "agreement": UNAVAILABLE}
    if n_seeds is None or not n_seeds >= 2 or seed_sd is None or not math.isfinite(seed_sd):
        return {"s": math.nan, "z": math.nan, "agreement": ONE_SEED}
    if split_sd is None or not math.isfinite(split_sd):
        return {"s": math.nan, "z": math.nan, "agreement": NO_SPLIT}
    s = difference_sd(seed_sd, int(n_seeds), split_sd)
    z = standardised_difference(ours, paper, s)
    if math.isnan(z):
        return {"s": s, "z": z, "agreement": "n/a"}
    return {"s": s, "z": z, "agreement": WITHIN if abs(z) < Z_LIMIT else DIFFERS}


def sd_upper_bound(sd, n: int, confidence: float = SD_CONFIDENCE):
    """One-sided upper confidence bound on a normal SD from its sample SD over ``n`` values:
    ``sd · sqrt((n − 1) / χ²_{1−confidence, n−1})``. NaN for n < 2."""
    if not 0 < confidence < 1:
        raise ValueError(f"sd_upper_bound: confidence must lie in (0, 1), got {confidence!r}")
    if n < 2:
        return np.nan * np.asarray(sd, dtype=float) if np.ndim(sd) else math.nan
    factor = math.sqrt((n - 1) / sps.chi2.ppf(1.0 - confidence, n - 1))
    out = np.asarray(sd, dtype=float) * factor
    return float(out) if np.ndim(out) == 0 else out
