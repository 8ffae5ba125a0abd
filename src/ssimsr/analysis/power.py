"""Power of the verdict test: how many seeds a study needs, and what its seeds can detect.

The verdict test (:func:`ssimsr.analysis.stats.seed_level_test`) is a two-sided paired t on the
per-seed mean differences, so its power is exact from the noncentral t: effects are in
units of the SD of one per-seed difference. ``detectable_effect`` gives the verdict
table's smallest detectable difference (``mde_seed``); ``seeds_needed`` plans a study
(docs/lambda-verdict.md, "How many seeds a conclusive study needs").
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize
from scipy import stats as sps

__all__ = ["ALPHA", "POWER", "t_test_power", "detectable_effect", "seeds_needed"]

#: The study's significance level, and the power at which its detectable difference is stated
#: (the verdict's ``mde_seed``, the seeds a study needs).
ALPHA, POWER = 0.05, 0.8


def t_test_power(effect_sd, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample (paired) t-test with ``n`` observations.

    ``effect_sd`` is the true mean difference in units of the SD of one observation
    (here: of one per-seed mean difference). Exact, from the noncentral t with
    df = n - 1 and noncentrality ``effect_sd * sqrt(n)``.
    """
    if int(n) != n or n < 2:
        raise ValueError(f"t_test_power: n must be an integer >= 2, got {n!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"t_test_power: alpha must lie in (0, 1), got {alpha!r}")
    df = n - 1
    nc = np.abs(np.asarray(effect_sd, dtype=float)) * math.sqrt(n)  # symmetric in the sign
    tcrit = sps.t.ppf(1 - alpha / 2, df)
    # scipy's nct.cdf returns NaN where the wrong-side tail underflows (df = 1, large nc): it is ~0
    wrong_side = np.nan_to_num(sps.nct.cdf(-tcrit, df, nc), nan=0.0)
    power = sps.nct.sf(tcrit, df, nc) + wrong_side
    return float(power) if np.ndim(power) == 0 else power


def detectable_effect(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true difference, in SDs of one per-seed difference, that ``n`` seeds detect
    with probability ``power`` (two-sided paired t at ``alpha``). NaN for n < 2."""
    if not 0 < power < 1:
        raise ValueError(f"detectable_effect: power must lie in (0, 1), got {power!r}")
    if n < 2:
        return math.nan
    return _detectable_effect(int(n), float(alpha), float(power))


@functools.lru_cache(maxsize=256)
def _detectable_effect(n: int, alpha: float, power: float) -> float:
    if power <= alpha:
        return 0.0
    upper = 1.0
    while t_test_power(upper, n, alpha) < power:  # power -> 1 as the effect grows, for any n >= 2
        upper *= 2
    return float(optimize.brentq(lambda d: t_test_power(d, n, alpha) - power, 0.0, upper, xtol=1e-10))


def seeds_needed(effect_sd: float, alpha: float = ALPHA, power: float = POWER, max_seeds: int = 10_000) -> int:
    """Fewest seeds (>= 2) whose paired t on per-seed differences reaches ``power`` for a true
    difference of ``effect_sd`` SDs of one per-seed difference."""
    if not effect_sd > 0:
        raise ValueError(f"seeds_needed: effect_sd must be > 0, got {effect_sd!r}")
    for n in range(2, max_seeds + 1):
        if t_test_power(effect_sd, n, alpha) >= power:
            return n
    raise ValueError(f"seeds_needed: more than {max_seeds} seeds for effect_sd={effect_sd!r}")
