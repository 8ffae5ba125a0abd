"""ssimsr.analysis.noise against simulations with a known answer and the chi-square / noncentral t."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from ssimsr.analysis import noise as N
from ssimsr.analysis.power import detectable_effect, t_test_power

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
    def s(seed, split):
        return math.sqrt(sum(N.cell_components(seed, k, split)[0]))

    assert diffs.std(ddof=1) == pytest.approx(s(seed_sd, split_sd), rel=0.03)
    # leaving out either part is visibly wrong
    assert diffs.std(ddof=1) > 1.1 * s(seed_sd, 0.0)
    assert diffs.std(ddof=1) > 1.1 * s(0.0, split_sd)


def test_agreement_words():
    assert N.agreement(31.0, 33.0, math.nan, 1, 0.3)["agreement"] == N.ONE_SEED
    within = N.agreement(32.5, 33.0, 0.3, 5, 0.2, 49)
    s = math.sqrt(0.3 ** 2 * (1 + 1 / 5) + 2 * 0.2 ** 2)
    assert within["s"] == pytest.approx(s) and within["z"] == pytest.approx(-0.5 / s)
    assert within["agreement"] == N.WITHIN
    assert within["low"] == pytest.approx(-0.5 - within["critical"] * s)
    assert within["p"] == pytest.approx(2 * sps.t.sf(0.5 / s, within["df"]))
    assert N.agreement(31.0, 33.0, 0.3, 5, 0.2, 49)["agreement"] == N.DIFFERS
    assert N.agreement(31.0, 33.0, 0.3, 3, math.nan)["agreement"] == N.NO_SPLIT
    assert N.agreement(math.nan, 0.02, 0.3, 3, 0.1)["agreement"] == N.UNAVAILABLE  # e.g. LPIPS offline
    # two seeds, the seeds dominating: one df, t = 12.7; not differing then says nothing
    two = N.agreement(32.0, 33.0, 0.3, 2, 0.0)
    assert two["df"] == pytest.approx(1.0) and two["critical"] == pytest.approx(12.706, abs=1e-3)
    assert two["agreement"] == N.INCONCLUSIVE
    # per-seed splits: the SD across runs holds the split; one component, the exact t
    per_seed = N.agreement(32.0, 33.0, 0.5, 5, math.nan, per_seed=True)
    assert per_seed["s"] == pytest.approx(0.5 * math.sqrt(1.2)) and per_seed["df"] == pytest.approx(4.0)


def test_rounding_variance_from_the_printed_digits():
    assert N.rounding_variance("0.002") == pytest.approx(1e-6 / 12)
    assert N.rounding_variance("31.45") == pytest.approx(1e-4 / 12)
    assert N.rounding_variance("50520") == pytest.approx(1 / 12)
    assert N.rounding_variance("14:02") == pytest.approx(3600 / 12)
    assert N.rounding_variance("") == 0.0
    with pytest.raises(ValueError, match="'abc'"):
        N.rounding_variance("abc")
    # u^2/12 is the variance of a uniform rounding error on +-u/2
    x = np.random.default_rng(7).uniform(0, 1, DRAWS)
    assert np.var(np.round(x, 2) - x) == pytest.approx(N.rounding_variance("0.01"), rel=0.05)


def test_holm_against_hand_computed_values():
    adjusted = N.holm([0.01, 0.04, 0.03, math.nan])
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])
    note = N.multiplicity_note([N.DIFFERS, N.WITHIN, N.DIFFERS, "n/a"], [0.001, 0.5, 0.04, math.nan])
    assert "2 of 3 verdicts" in note and "about 0.15 would" in note and "1 remain" in note


def test_welch_df_matches_the_two_sample_welch_test():
    """Two samples' variances of the mean: welch_df is scipy's Welch df (independent check)."""
    rng = np.random.default_rng(8)
    a, b = rng.normal(0, 1, 6), rng.normal(0, 3, 11)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = N.welch_df([va, vb], [a.size - 1, b.size - 1])
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    p = sps.ttest_ind(a, b, equal_var=False).pvalue
    assert 2 * sps.t.sf(abs(t), df) == pytest.approx(p, rel=1e-9)
    # one estimated component alone: its own df (the exact t); the guard lowers a mix's df
    assert N.guarded_df([va, 0.0], [5, math.inf]) == pytest.approx(5.0)
    assert 5.0 < N.guarded_df([va, vb], [5, 10]) < N.welch_df([va, vb], [5, 10])


# --------------------------------------------------------------------------- calibration by simulation
# The unit of replication is the training run (a seed); the split enters as the SD of a mean
# over the validation images, estimated from n_images per-image values. With no true
# difference, "differs" must come out at most 5 % of the time (+ 3 Monte Carlo SEs) in every
# case; "inconclusive" counts as not "differs".

SEED_COUNTS = (2, 3, 5, 10)
SEED_SHARES = (0.0, 0.5, 0.9, 1.0)
RHOS = (0.0, 0.5, 0.9)
N_IMAGES = 50  # BSDS300's validation split
FALSE_ALARM_LIMIT = N.ALPHA + 3 * math.sqrt(N.ALPHA * (1 - N.ALPHA) / DRAWS)


def _estimated_sd(rng, true_sd, n_values):
    """An SD estimated from n_values normal values (n_values - 1 df)."""
    return true_sd * np.sqrt(rng.chisquare(n_values - 1, DRAWS) / (n_values - 1))


def _simulate_cell(rng, k, seed_share, effect=0.0, n_images=N_IMAGES):
    """ours (mean of k runs on one shared split) - paper (one run on its own split); the
    true SD of the difference is 1. Returns the draws' differences and noise components."""
    seed_sd = math.sqrt(seed_share / (1 + 1 / k))
    split_sd = math.sqrt((1 - seed_share) / 2)
    runs = seed_sd * rng.standard_normal((DRAWS, k))
    ours = runs.mean(axis=1) + split_sd * rng.standard_normal(DRAWS) + effect
    paper = seed_sd * rng.standard_normal(DRAWS) + split_sd * rng.standard_normal(DRAWS)
    parts = N.cell_components(runs.std(axis=1, ddof=1), k, _estimated_sd(rng, split_sd, n_images), n_images - 1)
    return (ours - paper, *parts)


def _simulate_contrast(rng, k, seed_share, rho, effect=0.0):
    """Our mean paired difference over k seeds (the two lambda_s runs of a seed correlated
    rho, one shared split) - the paper's difference of two independent runs, each on its own
    split; true SD of the difference 1."""
    seed_part = 2 * (1 - rho) / k + 2  # x sigma^2: ours' paired mean + the paper's two runs
    split_parts = 0.5 + 2  # x split_sd^2: ours' per-image-difference split + the paper's two splits
    sigma = math.sqrt(seed_share / seed_part)
    split_sd = math.sqrt((1 - seed_share) / split_parts)
    split_diff_sd = math.sqrt(0.5) * split_sd
    common = rng.standard_normal((DRAWS, k))
    a = sigma * (math.sqrt(rho) * common + math.sqrt(1 - rho) * rng.standard_normal((DRAWS, k)))
    b = sigma * (math.sqrt(rho) * common + math.sqrt(1 - rho) * rng.standard_normal((DRAWS, k)))
    ours = (a - b).mean(axis=1) + split_diff_sd * rng.standard_normal(DRAWS) + effect
    paper = sigma * (rng.standard_normal(DRAWS) - rng.standard_normal(DRAWS)) + split_sd * (
        rng.standard_normal(DRAWS) - rng.standard_normal(DRAWS))
    pooled = np.sqrt((a.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / 2)
    parts = N.contrast_components((a - b).std(axis=1, ddof=1), pooled, k, _estimated_sd(rng, split_diff_sd, N_IMAGES),
                                  _estimated_sd(rng, split_sd, N_IMAGES), N_IMAGES - 1)
    return N.verdict(ours - paper, *parts)


def _differs(result) -> float:
    return float(np.mean(result["agreement"] == N.DIFFERS))


def test_cell_verdict_is_calibrated_for_every_seed_count_and_noise_mix():
    rng = np.random.default_rng(10)
    rates = {(k, w): _differs(N.verdict(*_simulate_cell(rng, k, w))) for k in SEED_COUNTS for w in SEED_SHARES}
    worst = max(rates, key=rates.get)
    assert rates[worst] <= FALSE_ALARM_LIMIT, f"false 'differs' {rates[worst]:.3f} at (k, seed share) {worst}"
    # General100's 8 validation images: a split SD on 7 df
    small = {(k, w): _differs(N.verdict(*_simulate_cell(rng, k, w, n_images=8))) for k in (3, 5) for w in (0.05, 0.5)}
    assert max(small.values()) <= FALSE_ALARM_LIMIT, small


def test_the_old_rules_fail_the_same_simulation():
    """|z| < 2 (s taken as known) and plain Welch-Satterthwaite df: the simulation above
    tells them apart from the guarded rule."""
    rng = np.random.default_rng(11)
    diff, variances, dfs = _simulate_cell(rng, 3, 1.0)
    z = diff / np.sqrt(sum(variances))
    assert np.mean(np.abs(z) >= 2.0) > 0.15  # the rule this replaces: 18 % at k = 3
    diff, variances, dfs = _simulate_cell(rng, 2, 0.9)
    z = diff / np.sqrt(sum(variances))
    plain = np.mean(np.abs(z) > sps.t.ppf(0.975, N.welch_df(variances, dfs)))
    assert plain > 0.09  # 12 % (the figure)
    assert _differs(N.verdict(diff, variances, dfs)) <= FALSE_ALARM_LIMIT


def test_per_seed_split_verdict_is_the_exact_t():
    rng = np.random.default_rng(12)
    for k in SEED_COUNTS:
        runs = rng.standard_normal((DRAWS, k))
        paper = rng.standard_normal(DRAWS)
        parts = N.cell_components(runs.std(axis=1, ddof=1), k, math.nan, per_seed=True)
        assert _differs(N.verdict(runs.mean(axis=1) - paper, *parts)) <= FALSE_ALARM_LIMIT


def test_contrast_verdict_is_calibrated_for_every_correlation():
    rng = np.random.default_rng(13)
    rates = {(k, w, rho): _differs(_simulate_contrast(rng, k, w, rho))
             for k in SEED_COUNTS for w in SEED_SHARES for rho in RHOS}
    worst = max(rates, key=rates.get)
    assert rates[worst] <= FALSE_ALARM_LIMIT, f"false 'differs' {rates[worst]:.3f} at (k, seed share, rho) {worst}"


def test_verdict_keeps_its_power():
    """A true difference of 4 true SDs of (ours - paper) is called "differs" in at least half
    of the draws for k >= 5 in every mix ("inconclusive" counts as a miss)."""
    rng = np.random.default_rng(14)
    for k in (5, 10):
        for w in SEED_SHARES:
            assert _differs(N.verdict(*_simulate_cell(rng, k, w, effect=4.0))) >= 0.5, (k, w)
            for rho in RHOS:
                assert _differs(_simulate_contrast(rng, k, w, rho, effect=4.0)) >= 0.5, (k, w, rho)


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
