"""How far ours may lie from the paper by chance, and a verdict that is right as often as it says.

Units of replication. A published cell is one training run of the authors, validated on
their own random split (BSDS300: 50 of 300 images; no seed anywhere in their code, so each
run drew its own split). Ours is the mean of ``k`` runs (seeds). Two noise sources:

* σ_seed, the SD of one run's value across seeds (estimated from our ``k`` runs: k − 1 df);
* σ_split, the SD of a validation mean over the possible random splits (estimated from one
  split's per-image values, :func:`split_sampling_sd`: n − 1 df). Where the split is not
  random (DIV2K's official archives, a fixed list) both sides validate on the same images
  and σ_split = 0. With ``split.per_seed`` each of our runs draws its own split, so the SD
  across our runs already holds the split (:data:`PER_SEED`).

An **absolute cell** (ours − paper) has ``Var = σ_seed² (1 + 1/k) + 2 σ_split²`` (shared
split; per-seed splits: ``σ_run² (1 + 1/k)``), plus the paper cell's rounding ``u²/12``
(``u`` its printed last digit, :func:`rounding_variance`).

A **contrast** Δ = value(λ_a) − value(λ_b) is made as the paper made it: their two runs
started independently (each on its own split), so their Δ has ``2 σ_run²`` with σ_run from
our per-λ_s SDs across seeds (pooled; k − 1 df, as both λ_s share the seeds); ours is the mean of the per-seed
*paired* differences (λ_s runs of one seed share initial weights, data order and split), so
its variance is ``SD_d² / k`` from the differences themselves (k − 1 df), plus, with a
shared split, the split-sampling variance of a mean of per-image differences.

**The rule** (:func:`verdict`). ``s² = Σ v_j`` over the estimated variance components
``v_j`` (each with its degrees of freedom ν_j) and the known ones (rounding). The
statistic ``(ours − paper) / s`` is referred to Student's t with the *guarded*
Welch–Satterthwaite degrees of freedom (:func:`guarded_df`): the Satterthwaite df computed
once per component with that component raised to its one-sided 90 % upper confidence
bound, the smallest of them. Plain Welch–Satterthwaite (and the normal cut-off |z| < 2)
reads "differs" far more often than 5 % when a component with few df dominates, because a
low draw of that component also raises the estimated df; the guard removes that. With one
component the rule is the exact t test. ``tests/test_noise.py`` simulates it with no true
difference over k ∈ {2, 3, 5, 10}, every mix of seed and split noise and within-seed
correlation ρ ∈ {0, 0.5, 0.9}: the false-"differs" rate stays at or below 5 %.

Words: "differs" when |ours − paper| > t_{0.975, df} · s; "inconclusive" when not and the
noise estimate rests on fewer than :data:`MIN_DF` degrees of freedom (the interval is then
more than twice as wide as a known-noise one: "within noise" would say little);
"within noise" otherwise. One seed gives no σ_seed and no verdict. Each cell also carries
the interval ``diff ± critical · s`` and its two-sided p value (for Holm's adjustment
across a table, :func:`holm`).

``sd_upper_bound`` is the one-sided upper confidence bound on an SD from ``n`` values (the
chi-square interval), which the verdict table's detectable difference uses.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

import numpy as np
from scipy import stats as sps

__all__ = ["split_sampling_sd", "welch_df", "guarded_df", "verdict", "cell_components",
           "contrast_components", "contrast_agreement", "rounding_variance", "holm", "multiplicity_note", "agreement",
           "sd_upper_bound", "ALPHA", "GUARD_CONFIDENCE", "MIN_DF", "SD_CONFIDENCE", "MIN_SEEDS_FOR_POWER",
           "ONE_SEED", "WITHIN", "DIFFERS", "INCONCLUSIVE", "NO_SPLIT", "UNAVAILABLE", "PER_SEED"]

#: Two-sided level of every verdict: "differs" with no true difference at most this often.
ALPHA = 0.05
#: Confidence of the upper bound that guards the Satterthwaite degrees of freedom.
GUARD_CONFIDENCE = 0.9
#: Below this many degrees of freedom a cell that does not differ reads "inconclusive":
#: t_{0.975, 2} = 4.30 is 2.2 times the known-noise 1.96; at 1 df, 12.7 (6.5 times).
MIN_DF = 2.0
#: Confidence of the upper bound on the SD across seeds used for the detectable difference.
SD_CONFIDENCE = 0.9
#: Fewer seeds than this: the detectable difference reads "n/a" (the SD bound is too loose).
MIN_SEEDS_FOR_POWER = 4

WITHIN, DIFFERS, INCONCLUSIVE = "within noise", "differs", "inconclusive"
ONE_SEED = "one seed: no noise estimate"
NO_SPLIT = "no per-image values: no split estimate"
UNAVAILABLE = "ours unavailable"
#: The ``splits`` value of a dataset whose every seed draws its own random split.
PER_SEED = "random_per_seed"


# --------------------------------------------------------------------------- the noise parts

def split_sampling_sd(values, n_total: int | None) -> float:
    """SD of the mean of ``len(values)`` images drawn at random, without replacement, from
    ``n_total`` images, estimated from the drawn images' values (``len − 1`` df).

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


def rounding_variance(printed) -> float:
    """``u² / 12``: the variance a value printed to the last digit ``u`` carries (the
    rounding error is uniform on ±u/2). ``printed`` is the cell as printed (``"0.002"`` ->
    u = 0.001; ``"31.45"`` -> 0.01; ``"14:02"`` (h:mm) -> 60 s); NaN/empty -> 0."""
    text = "" if printed is None else str(printed).strip()
    if not text or text.lower() == "nan":
        return 0.0
    if ":" in text:  # h:mm as printed (Table A2's training time), in seconds
        return 60.0 ** 2 / 12.0
    try:
        exponent = Decimal(text).as_tuple().exponent
    except InvalidOperation as exc:
        raise ValueError(f"rounding_variance: {printed!r} is not a printed number") from exc
    unit = 10.0 ** min(int(exponent), 0) if isinstance(exponent, int) else 0.0
    return unit ** 2 / 12.0


def cell_components(seed_sd, n_seeds, split_sd, split_df=math.inf, *, per_seed: bool = False,
                    rounding_var=0.0) -> tuple[list, list]:
    """The variance components of an absolute cell (ours − paper) and their df.

    Ours: the mean of ``n_seeds`` runs; the paper: one run. ``per_seed``: our runs each drew
    their own split, so ``seed_sd`` (the SD across runs) holds the split on both sides and
    ``split_sd`` is not added. ``split_df``: the per-image values' count − 1 behind
    ``split_sd`` (``inf``: known). ``rounding_var``: the paper cell's :func:`rounding_variance`.
    """
    k = np.asarray(n_seeds, dtype=float)
    variances = [np.asarray(seed_sd, dtype=float) ** 2 * (1.0 + 1.0 / k)]
    dfs = [k - 1.0]
    if not per_seed:
        variances.append(2.0 * np.asarray(split_sd, dtype=float) ** 2)
        dfs.append(np.asarray(split_df, dtype=float))
    variances.append(np.asarray(rounding_var, dtype=float))
    dfs.append(math.inf)
    return variances, dfs


def contrast_components(diff_sd, pooled_sd, n_seeds, split_diff_sd=0.0, split_sd=0.0, split_df=math.inf, *,
                        per_seed: bool = False, rounding_var=0.0) -> tuple[list, list]:
    """The variance components of (our contrast − the paper's contrast) and their df.

    Ours: the mean over ``n_seeds`` of the per-seed paired differences, whose SD is
    ``diff_sd`` (k − 1 df). The paper's: two independent runs, each ``pooled_sd`` (our SD
    across seeds of one λ_s's value, pooled over the two λ_s; k − 1 df, since both λ_s come from
    the same seeds, correlated), each on its own
    split. With a shared split (not ``per_seed``) ours adds the split-sampling SD of a mean
    of per-image differences (``split_diff_sd``) and the paper's two runs ``2 split_sd²``;
    with per-seed splits both are inside the SDs across runs. ``rounding_var``: of the
    paper's contrast (the sum of its two cells' :func:`rounding_variance`).
    """
    k = np.asarray(n_seeds, dtype=float)
    variances = [np.asarray(diff_sd, dtype=float) ** 2 / k, 2.0 * np.asarray(pooled_sd, dtype=float) ** 2]
    # the pooled SD's two groups are the same seeds (correlated by ρ): k − 1 df, not 2(k − 1)
    dfs = [k - 1.0, k - 1.0]
    if not per_seed:
        variances += [np.asarray(split_diff_sd, dtype=float) ** 2, 2.0 * np.asarray(split_sd, dtype=float) ** 2]
        dfs += [np.asarray(split_df, dtype=float)] * 2
    variances.append(np.asarray(rounding_var, dtype=float))
    dfs.append(math.inf)
    return variances, dfs


# --------------------------------------------------------------------------- the rule

def welch_df(variances, dfs):
    """Welch–Satterthwaite degrees of freedom of a sum of independent variance estimates:
    ``(Σ v_j)² / Σ (v_j² / ν_j)`` (a component with ν = inf is known and adds nothing to the
    denominator; all known: inf)."""
    variances = [np.asarray(v, dtype=float) for v in variances]
    total = sum(variances)
    denominator = sum(np.where(np.isinf(nu), 0.0, v ** 2 / np.where(np.isinf(nu), 1.0, nu))
                      for v, nu in zip(variances, np.broadcast_arrays(*[np.asarray(d, float) for d in dfs])))
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, total ** 2 / np.where(denominator > 0, denominator, 1.0), np.inf)
    return float(df) if np.ndim(df) == 0 else df


def guarded_df(variances, dfs, confidence: float = GUARD_CONFIDENCE):
    """The guarded Satterthwaite df: for each estimated component, :func:`welch_df` with
    that component raised to its one-sided ``confidence`` upper bound ``v ν / χ²_{1−conf, ν}``;
    the smallest. One estimated component: its own ν (the exact t)."""
    if not 0 < confidence < 1:
        raise ValueError(f"guarded_df: confidence must lie in (0, 1), got {confidence!r}")
    variances = [np.asarray(v, dtype=float) for v in variances]
    dfs = [np.asarray(d, dtype=float) for d in dfs]
    best = np.asarray(welch_df(variances, dfs), dtype=float)
    for j, nu in enumerate(dfs):
        finite = np.isfinite(nu) & (nu > 0)
        if not np.any(finite):
            continue
        safe = np.where(finite, nu, 1.0)
        raised = np.where(finite, variances[j] * safe / sps.chi2.ppf(1.0 - confidence, safe), variances[j])
        best = np.fmin(best, welch_df(variances[:j] + [raised] + variances[j + 1:], dfs))
    return float(best) if np.ndim(best) == 0 else best


def verdict(diff, variances, dfs, alpha: float = ALPHA) -> dict:
    """The calibrated verdict of ``diff`` (ours − paper; arrays broadcast) given the noise
    components (:func:`cell_components`, :func:`contrast_components`).

    Returns ``s``, ``df`` (:func:`guarded_df`), ``critical`` = t_{1−α/2, df}, the interval
    ``low`` / ``high`` = diff ∓ critical · s, ``z`` = diff / s, the two-sided ``p`` and
    ``agreement``: "differs", "inconclusive" (not differing, df < :data:`MIN_DF`) or "within
    noise"; "n/a" where s is 0 or a part is NaN.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"verdict: alpha must lie in (0, 1), got {alpha!r}")
    diff = np.asarray(diff, dtype=float)
    s = np.sqrt(sum(np.asarray(v, dtype=float) for v in variances))
    df = np.asarray(guarded_df(variances, dfs), dtype=float)
    ok = np.isfinite(diff) & np.isfinite(s) & (s > 0) & ~np.isnan(df) & (df > 0)
    safe_df = np.where(ok, df, 1.0)
    critical = np.where(ok, sps.t.ppf(1.0 - alpha / 2.0, safe_df), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(ok, diff / np.where(ok, s, 1.0), np.nan)
    p = np.where(ok, 2.0 * sps.t.sf(np.abs(np.nan_to_num(z)), safe_df), np.nan)
    differs = ok & (np.abs(np.nan_to_num(z)) > np.nan_to_num(critical))
    words = np.where(~ok, "n/a", np.where(differs, DIFFERS, np.where(df < MIN_DF, INCONCLUSIVE, WITHIN)))
    out = {"s": s, "df": df, "critical": critical, "low": diff - critical * s, "high": diff + critical * s,
           "z": z, "p": p, "agreement": words}
    if np.ndim(diff) == 0 and all(np.ndim(v) == 0 for v in variances):
        out = {k: (str(v) if k == "agreement" else float(v)) for k, v in out.items()}
    return out


_EMPTY = {"s": math.nan, "df": math.nan, "critical": math.nan, "low": math.nan, "high": math.nan,
          "z": math.nan, "p": math.nan}


def _missing(x) -> bool:
    return x is None or not math.isfinite(float(x))


def agreement(ours: float, paper: float, seed_sd: float, n_seeds: float, split_sd: float,
              split_df: float = math.inf, *, per_seed: bool = False, rounding_var: float = 0.0) -> dict:
    """The verdict of one absolute cell (:func:`cell_components`, :func:`verdict`), with the
    reason in words where there is none (ours unavailable, one seed, no split estimate)."""
    if _missing(ours):
        return {**_EMPTY, "agreement": UNAVAILABLE}
    if _missing(n_seeds) or not n_seeds >= 2 or _missing(seed_sd):
        return {**_EMPTY, "agreement": ONE_SEED}
    if not per_seed and _missing(split_sd):
        return {**_EMPTY, "agreement": NO_SPLIT}
    variances, dfs = cell_components(seed_sd, n_seeds, split_sd, split_df, per_seed=per_seed,
                                     rounding_var=rounding_var)
    return verdict(float(ours) - float(paper), variances, dfs)


def contrast_agreement(ours: float, paper: float, diff_sd: float, pooled_sd: float, n_seeds: float,
                       split_diff_sd: float = 0.0, split_sd: float = 0.0, split_df: float = math.inf, *,
                       per_seed: bool = False, rounding_var: float = 0.0) -> dict:
    """The verdict of one contrast (our mean paired difference vs the paper's difference of
    two runs; :func:`contrast_components`, :func:`verdict`)."""
    if _missing(ours):
        return {**_EMPTY, "agreement": UNAVAILABLE}
    if _missing(n_seeds) or not n_seeds >= 2 or _missing(diff_sd) or _missing(pooled_sd):
        return {**_EMPTY, "agreement": ONE_SEED}
    if not per_seed and (_missing(split_diff_sd) or _missing(split_sd)):
        return {**_EMPTY, "agreement": NO_SPLIT}
    variances, dfs = contrast_components(diff_sd, pooled_sd, n_seeds, split_diff_sd, split_sd, split_df,
                                         per_seed=per_seed, rounding_var=rounding_var)
    return verdict(float(ours) - float(paper), variances, dfs)


# --------------------------------------------------------------------------- many verdicts

def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p values (family-wise error ≤ α across the finite ones;
    NaN stays NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def multiplicity_note(agreements, pvalues, alpha: float = ALPHA) -> str:
    """One line for a table: how many verdicts read "differs", how many would with no true
    difference anywhere (α × verdicts), and how many survive Holm's adjustment."""
    words = np.asarray(agreements, dtype=object)
    judged = np.isin(words, [WITHIN, DIFFERS, INCONCLUSIVE])
    n, n_differs = int(judged.sum()), int(np.sum(words == DIFFERS))
    if n == 0:
        return "Multiplicity: no verdicts."
    adjusted = holm(np.where(judged, np.asarray(pvalues, dtype=float), np.nan))
    n_holm = int(np.sum(adjusted < alpha))
    return (f"Multiplicity: {n_differs} of {n} verdicts read \"differs\"; with no true difference anywhere "
            f"about {alpha * n:.2g} would by chance (α = {alpha:g} each); {n_holm} remain after Holm's "
            "adjustment (family-wise error ≤ α), column holm_differs.")


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
