"""ssimsr.noise against simulations with a known answer and the chi-square / noncentral t."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from ssimsr import noise as N
from ssimsr.power import detectable_effect, t_test_power

DRAWS = 20_000  # Monte Carlo SEs below: an SD to ~0.5 %, a proportion near 0.9 to 0.002


def _population(n_total=300, seed=0):
    """Per-image PSNRs of a finite set of images: skewed, several dB of spread (as BSDS300)."""
    rng = np.random.default_rng(seed)
    return 30.0 + 3.0 * rng.gamma(2.0, 1.0, n_total)


def test_split_sampling_sd_matches_simulated_splits():
    pop = _population()
    n = 50
    rng = np.random.default_rng(1)
    means = np.array([rng.choice(pop, n, replace=False).mean() for _ in range(DRAWS)])
    # the formula with the population's S^2 (ddof = 1) is exact for simple random sampling
    exact = pop.std(ddof=1) * math.sqrt((1 - n / len(pop)) / n)
    assert means.std(ddof=1) == pytest.approx(exact, rel=0.03)
    # estimated from one split's 50 values: unbiased for the variance of the split mean
    estimates = np.array([N.split_sampling_sd(rng.choice(pop, n, replace=False), len(pop)) ** 2
                          for _ in range(4000)])
    assert estimates.mean() == pytest.approx(exact ** 2, rel=0.03)
    # without the finite-population correction the SD would be 9 % larger: the test can tell
    assert pop.std(ddof=1) / math.sqrt(n) > 1.08 * exact


def test_difference_sd_matches_a_simulated_reproduction():
    """The paper: one run on its own random split; ours: the mean of k runs on another split."""
    pop = _population(seed=2)
    n, k, seed_sd = 50, 3, 0.4
    rng = np.random.default_rng(3)
    diffs = np.empty(DRAWS)
    for i in range(DRAWS):
        paper = rng.choice(pop, n, replace=False).mean() + seed_sd * rng.standard_normal()
        ours = rng.choice(pop, n, replace=False).mean() + seed_sd * rng.standard_normal(k).mean()
        diffs[i] = ours - paper
    split_sd = pop.std(ddof=1) * math.sqrt((1 - n / len(pop)) / n)
    assert diffs.mean() == pytest.approx(0.0, abs=4 * diffs.std() / math.sqrt(DRAWS))
    assert diffs.std(ddof=1) == pytest.approx(N.difference_sd(seed_sd, k, split_sd), rel=0.03)
    # leaving out either part is visibly wrong
    assert diffs.std(ddof=1) > 1.1 * N.difference_sd(seed_sd, k, 0.0)
    assert diffs.std(ddof=1) > 1.1 * N.difference_sd(0.0, k, split_sd)


def test_agreement_words():
    assert N.agreement(31.0, 33.0, math.nan, 1, 0.3)["agreement"] == N.ONE_SEED
    within = N.agreement(32.5, 33.0, 0.3, 3, 0.2)
    s = math.sqrt(0.3 ** 2 * (1 + 1 / 3) + 2 * 0.2 ** 2)
    assert within["s"] == pytest.approx(s) and within["z"] == pytest.approx(-0.5 / s)
    assert within["agreement"] == N.WITHIN
    assert N.agreement(31.0, 33.0, 0.3, 3, 0.2)["agreement"] == N.DIFFERS
    assert N.agreement(31.0, 33.0, 0.3, 3, math.nan)["agreement"] == N.NO_SPLIT
    assert N.agreement(math.nan, 0.02, 0.3, 3, 0.1)["agreement"] == N.UNAVAILABLE  # e.g. LPIPS offline


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        N.split_sampling_sd([1.0], 10)
    with pytest.raises(ValueError, match="population of 3"):
        N.split_sampling_sd([1.0, 2.0, 3.0, 4.0], 3)
    with pytest.raises(ValueError, match="confidence"):
        N.sd_upper_bound(1.0, 4, confidence=1.5)


def test_sd_upper_bound_covers_the_true_sd_at_its_confidence():
    rng = np.random.default_rng(4)
    for n in (2, 4, 8):
        sd = rng.standard_normal((DRAWS, n)).std(axis=1, ddof=1)  # true SD 1
        covered = np.mean(N.sd_upper_bound(sd, n) >= 1.0)
        assert covered == pytest.approx(N.SD_CONFIDENCE, abs=0.01)
    # the figure: with 2 values the observed SD is below half the true one 38 % of the time
    assert sps.chi2.cdf(0.25, 1) == pytest.approx(0.38, abs=0.005)


def test_detectable_difference_from_the_bound_has_its_power_in_most_studies():
    """mde = detectable_effect(n) x the SD's upper bound: judged by the noncentral t with the
    true SD, it reaches 80 % power whenever the bound covers the SD (90 % of studies), while
    the observed-SD version falls short in about half of them."""
    n, true_sd = 4, 1.0
    rng = np.random.default_rng(5)
    observed = rng.standard_normal((4000, n)).std(axis=1, ddof=1) * true_sd
    k = detectable_effect(n)
    power_bound = t_test_power(k * N.sd_upper_bound(observed, n) / true_sd, n)
    power_observed = t_test_power(k * observed / true_sd, n)
    assert np.mean(power_bound >= 0.8) == pytest.approx(N.SD_CONFIDENCE, abs=0.02)
    assert np.mean(power_observed >= 0.8) < 0.6
    # and the noncentral t's power is what simulated paired t-tests achieve at that difference
    diffs = k * true_sd + true_sd * rng.standard_normal((DRAWS, n))
    p = sps.ttest_1samp(diffs, 0.0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.015)
