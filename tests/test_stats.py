"""Tests for ssimsr.analysis.stats, ssimsr.analysis.power and ssimsr.analysis.simulation against scipy, hand
computations, simulations and the paper's Table 2."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ssimsr.analysis import stats as S
from ssimsr.analysis.power import detectable_effect, seeds_needed, t_test_power
from ssimsr.analysis.simulation import rejection_rates, simulate_differences
from ssimsr.analysis.stats import SEED_KEYS, STAT_KEYS, compare, compare_variants


@pytest.fixture
def ab():
    rng = np.random.default_rng(0)
    a = rng.normal(30.0, 2.0, 50)
    b = a - 0.5 + rng.normal(0.0, 1.0, 50)
    return a, b


def test_keys(ab):
    r = compare(*ab, "psnr")
    assert r["metric"] == "psnr"
    assert tuple(k for k in r if k != "metric") == STAT_KEYS


def test_against_scipy(ab):
    a, b = ab
    r = compare(a, b, "psnr")
    rel = sps.ttest_rel(a, b)
    ind = sps.ttest_ind(a, b, equal_var=False)
    w = sps.wilcoxon(a - b)
    assert r["n"] == 50
    assert r["mean_a"] == pytest.approx(a.mean())
    assert r["mean_b"] == pytest.approx(b.mean())
    assert r["mean_diff"] == pytest.approx(a.mean() - b.mean())
    assert r["t_paired"] == pytest.approx(rel.statistic)
    assert r["p_paired"] == pytest.approx(rel.pvalue)
    assert r["df_paired"] == 49
    assert r["t_welch"] == pytest.approx(ind.statistic)
    assert r["p_welch"] == pytest.approx(ind.pvalue)
    if hasattr(ind, "df"):
        assert r["df_welch"] == pytest.approx(ind.df)
    assert r["wilcoxon_W"] == pytest.approx(w.statistic)
    assert r["p_wilcoxon"] == pytest.approx(w.pvalue)
    # the p-value of the paired t follows from t and df
    assert r["p_paired"] == pytest.approx(2 * sps.t.sf(abs(r["t_paired"]), 49))
    assert r["p_welch"] == pytest.approx(2 * sps.t.sf(abs(r["t_welch"]), r["df_welch"]))


def test_cohens_dz_hand_computed():
    r = compare([2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0, 4.0], "x")  # diffs 1, 2, 3, 4
    assert r["mean_diff"] == pytest.approx(2.5)
    assert r["sd_diff"] == pytest.approx(1.2909944, abs=1e-6)
    assert r["cohens_dz"] == pytest.approx(1.9364917, abs=1e-6)
    assert r["t_paired"] == pytest.approx(r["cohens_dz"] * math.sqrt(4))


def test_cohens_d_pooled_hand_computed():
    a = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, var 5/3
    b = np.array([2.0, 4.0, 6.0, 8.0])  # mean 5, var 20/3
    r = compare(a, b, "x")
    s_pooled = math.sqrt((5 / 3 + 20 / 3) / 2)
    assert r["cohens_d_pooled"] == pytest.approx(-2.5 / s_pooled)
    assert r["cohens_d_pooled"] == pytest.approx(-1.2247449, abs=1e-6)


def test_welch_df_known_example():
    a = np.array([1.0, 2.0, 3.0, 4.0])  # var 5/3
    b = np.array([2.0, 4.0, 6.0, 8.0])  # var 20/3
    r = compare(a, b, "x")
    va, vb, n = 5 / 3, 20 / 3, 4
    df = (va / n + vb / n) ** 2 / ((va / n) ** 2 / (n - 1) + (vb / n) ** 2 / (n - 1))
    assert df == pytest.approx(3 * 625 / 425)  # = 4.4117647...
    assert r["df_welch"] == pytest.approx(4.4117647, abs=1e-6)
    assert r["t_welch"] == pytest.approx(-2.5 / math.sqrt(va / n + vb / n))
    # equal variances -> df = 2(n-1)
    r2 = compare([1.0, 2.0, 3.0], [11.0, 12.0, 13.0], "y")
    assert r2["df_welch"] == pytest.approx(4.0)


def test_paired_ci(ab):
    a, b = ab
    r = compare(a, b, "psnr")
    d = a - b
    half = sps.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert r["ci_low"] < r["mean_diff"] < r["ci_high"]
    assert r["ci_low"] == pytest.approx(d.mean() - half)
    assert r["ci_high"] == pytest.approx(d.mean() + half)
    lo, hi = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))


def test_welch_ci_and_pooled_d_relations(ab):
    a, b = ab
    r = compare(a, b, "psnr")
    se = math.sqrt(a.var(ddof=1) / 50 + b.var(ddof=1) / 50)
    half = sps.t.ppf(0.975, r["df_welch"]) * se
    assert r["ci_low_welch"] == pytest.approx(r["mean_diff"] - half)
    assert r["ci_high_welch"] == pytest.approx(r["mean_diff"] + half)
    # equal n: pooled d = t_welch * sqrt(2/n) (the relation seen in the paper's tables)
    assert r["cohens_d_pooled"] == pytest.approx(r["t_welch"] * math.sqrt(2 / 50))


def test_reproduces_paper_table2_psnr_from_summary_stats():
    """Data with the summary statistics behind Table 2's PSNR column (n = 50 each).

    Table 2: t = 4.2626 (df ~ 83.49), p = 0.000053, mean diff 2.7828,
    95 % CI [1.4845, 4.0812], Cohen's d 0.8525 -- an unpaired Welch analysis.
    """
    n, t, df, diff = 50, 4.2626, 83.49, 2.7828
    s = (diff / t) ** 2  # va/n + vb/n
    q = (n - 1) * s**2 / df  # (va/n)^2 + (vb/n)^2
    disc = math.sqrt(2 * q - s**2)
    sa2, sb2 = (s + disc) / 2, (s - disc) / 2
    rng = np.random.default_rng(1)

    def sample(mean, var):
        z = rng.standard_normal(n)
        z = (z - z.mean()) / z.std(ddof=1)
        return mean + math.sqrt(var * n) * z

    a, b = sample(32.0 + diff, sa2), sample(32.0, sb2)
    r = compare(a, b, "psnr")
    assert r["t_welch"] == pytest.approx(4.2626, abs=1e-4)
    assert r["df_welch"] == pytest.approx(83.49, abs=1e-2)
    assert r["p_welch"] == pytest.approx(0.000053, abs=1e-6)
    assert r["mean_diff"] == pytest.approx(2.7828, abs=1e-4)
    assert r["ci_low_welch"] == pytest.approx(1.4845, abs=1e-3)
    assert r["ci_high_welch"] == pytest.approx(4.0812, abs=1e-3)
    assert r["cohens_d_pooled"] == pytest.approx(0.8525, abs=1e-3)


def test_wilcoxon_all_zero_differences():
    x = [0.5, 0.6, 0.7, 0.8]
    r = compare(x, list(x), "ssim")
    assert math.isnan(r["wilcoxon_W"]) and math.isnan(r["p_wilcoxon"])
    assert r["mean_diff"] == 0.0
    assert math.isnan(r["cohens_dz"])


def test_constant_nonzero_difference():
    r = compare([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], "x")
    assert r["cohens_dz"] == math.inf
    assert r["ci_low"] == pytest.approx(1.0) and r["ci_high"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "a, b, match",
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "same length"),
        ([1.0], [2.0], "at least 2"),
        ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], "finite"),
        ([1.0, 2.0, 3.0], [1.0, np.inf, 3.0], "finite"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
        (["a", "b"], [1.0, 2.0], "numeric"),
    ],
)
def test_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match) as exc:
        compare(a, b, "lpips_vgg")
    assert "lpips_vgg" in str(exc.value)


def _long_table(rng, n_img=8, seeds=(0, 1)):
    rows = []
    for lam in (0, 1, 2):
        for seed in seeds:
            for i in range(n_img):
                rows.append(
                    {
                        "model": "SR",
                        "dataset": "BSDS300",
                        "lambda_s": lam,
                        "seed": seed,
                        "image": f"img{i:02d}",
                        "psnr": 30 + 0.1 * i + 0.3 * lam + rng.normal(0, 0.2),
                        "ssim": 0.9 + 0.001 * i + 0.002 * lam + rng.normal(0, 0.001),
                        "lpips_alex": np.nan,
                        "lpips_alex_status": "unavailable: /w/alexnet-owt-7be5be79.pth missing",
                    }
                )
    return pd.DataFrame(rows)


def test_compare_variants_pairs_shuffled_rows():
    rng = np.random.default_rng(0)
    df = _long_table(rng)
    out = compare_variants(df, ["psnr", "ssim", "lpips_alex"], a=1, b=2)
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    out2 = compare_variants(shuffled, ["psnr", "ssim", "lpips_alex"], a=1, b=2)
    pd.testing.assert_frame_equal(out, out2)

    assert list(out["metric"]) == ["psnr", "ssim", "lpips_alex"]
    assert list(out.columns[:5]) == ["metric", "variant_col", "a", "b", "status"]
    ra = df[df.lambda_s == 1].set_index(["seed", "image"]).sort_index()
    rb = df[df.lambda_s == 2].set_index(["seed", "image"]).sort_index()
    for m in ("psnr", "ssim"):
        row = out.set_index("metric").loc[m]
        assert row["status"] == "ok"
        # image level: per-image values averaged over the 2 seeds, n = 8 images
        img_a, img_b = ra[m].groupby("image").mean(), rb[m].groupby("image").mean()
        ref = compare(img_a.to_numpy(), img_b.loc[img_a.index].to_numpy(), m)
        assert row["n"] == 8
        for k in STAT_KEYS:
            assert row[k] == pytest.approx(ref[k], nan_ok=True), (m, k)
        # seed level: per-seed mean differences, n = 2 seeds
        per_seed = (ra[m] - rb.loc[ra.index, m]).groupby("seed").mean()
        t = sps.ttest_1samp(per_seed, 0.0)
        assert row["n_seeds"] == 2 and row["df_seed"] == 1
        assert row["t_seed"] == pytest.approx(t.statistic) and row["p_seed"] == pytest.approx(t.pvalue)
        assert row["sd_seed_diff"] == pytest.approx(per_seed.std(ddof=1))
    # paired t really is paired: differs from what mis-aligned pairs would give
    img_a, img_b = ra["psnr"].groupby("image").mean(), rb["psnr"].groupby("image").mean()
    wrong = compare(img_a.to_numpy(), img_b.to_numpy()[::-1], "psnr")
    assert out.set_index("metric").loc["psnr", "t_paired"] != pytest.approx(wrong["t_paired"])

    lp = out.set_index("metric").loc["lpips_alex"]
    assert lp["status"] == "unavailable: /w/alexnet-owt-7be5be79.pth missing"
    assert math.isnan(lp["t_welch"]) and math.isnan(lp["mean_diff"]) and math.isnan(lp["p_seed"])
    assert lp["n"] == 8 and lp["n_seeds"] == 2


def test_compare_variants_one_seed_has_no_seed_level_test():
    df = _long_table(np.random.default_rng(5), seeds=(0,))
    row = compare_variants(df, ["psnr"], a=1, b=0).iloc[0]
    assert row["n_seeds"] == 1 and row["n"] == 8
    assert all(math.isnan(row[k]) for k in SEED_KEYS if k != "n_seeds")
    assert row["p_paired"] == pytest.approx(
        sps.ttest_rel(df[df.lambda_s == 1].psnr, df[df.lambda_s == 0].psnr).pvalue)


def test_compare_variants_all_nan_without_status_column():
    df = _long_table(np.random.default_rng(1)).drop(columns="lpips_alex_status")
    out = compare_variants(df, ["lpips_alex"], a=1, b=0)
    assert out.loc[0, "status"] == "unavailable"
    assert out.loc[0, "a"] == 1 and out.loc[0, "b"] == 0


def test_compare_variants_errors():
    rng = np.random.default_rng(2)
    df = _long_table(rng)
    missing = df.drop(index=df[(df.lambda_s == 2) & (df.image == "img03") & (df.seed == 1)].index)
    with pytest.raises(ValueError, match="img03"):
        compare_variants(missing, ["psnr"], a=1, b=2)
    # the same image missing from both variants of seed 1: paired, but the seeds' image sets differ
    unbalanced = df.drop(index=df[(df.image == "img03") & (df.seed == 1)].index)
    with pytest.raises(ValueError, match=r"do not share one image set.*img03"):
        compare_variants(unbalanced, ["psnr"], a=1, b=2)
    with pytest.raises(ValueError, match="several rows"):
        compare_variants(pd.concat([df, df.iloc[:1]]), ["psnr"], a=0, b=1)
    with pytest.raises(ValueError, match="no rows"):
        compare_variants(df, ["psnr"], a=1, b=5)
    with pytest.raises(ValueError, match="columns missing"):
        compare_variants(df, ["psnr_y"], a=1, b=2)
    partial = df.copy()
    partial.loc[partial.index[0], "psnr"] = np.nan
    with pytest.raises(ValueError, match="psnr"):
        compare_variants(partial, ["psnr"], a=0, b=1)


# ----------------------------------------------------------------------------- the run as unit

def test_seed_level_test_against_scipy():
    d = np.array([0.012, -0.003, 0.020, 0.007])
    r = S.seed_level_test(d)
    ref = sps.ttest_1samp(d, 0.0)
    lo, hi = sps.t.interval(0.95, 3, loc=d.mean(), scale=sps.sem(d))
    assert r["n_seeds"] == 4 and r["df_seed"] == 3
    assert r["t_seed"] == pytest.approx(ref.statistic) and r["p_seed"] == pytest.approx(ref.pvalue)
    assert (r["ci_low_seed"], r["ci_high_seed"]) == pytest.approx((lo, hi))
    assert r["sd_seed_diff"] == pytest.approx(d.std(ddof=1))
    # the detectable effect is the one the noncentral t gives 80 % power, for the SD at its
    # one-sided 90 % upper confidence bound (chi-square with n - 1 = 3 df, by hand)
    sd_upper = d.std(ddof=1) * math.sqrt(3 / sps.chi2.ppf(0.10, 3))
    assert t_test_power(r["mde_seed"] / sd_upper, 4) == pytest.approx(0.8, abs=1e-6)
    assert math.isnan(S.seed_level_test(d[:3])["mde_seed"])  # n/a with fewer than 4 seeds
    # vectorised over leading axes: same numbers row by row
    rows = np.stack([d, d[::-1] * 2, d + 1])
    vec = S.seed_level_test(rows)
    for i, row in enumerate(rows):
        one = S.seed_level_test(row)
        assert vec["n_seeds"] == one["n_seeds"]
        for k in SEED_KEYS[1:]:
            assert vec[k][i] == pytest.approx(one[k]), k


def test_seed_level_test_degenerate_and_bad_input():
    one = S.seed_level_test([0.3])
    assert one["mean_diff"] == 0.3 and math.isnan(one["p_seed"]) and math.isnan(one["mde_seed"])
    const = S.seed_level_test([0.25, 0.25, 0.25])
    assert const["t_seed"] == math.inf and const["p_seed"] == 0.0
    zero = S.seed_level_test([0.0, 0.0])
    assert math.isnan(zero["t_seed"]) and math.isnan(zero["p_seed"])
    with pytest.raises(ValueError, match="finite"):
        S.seed_level_test([0.1, np.nan])
    with pytest.raises(ValueError, match="last axis"):
        S.seed_level_test(0.5)


def test_power_and_seeds_needed_match_published_sample_sizes():
    # G*Power / Cohen (1988), one-sample t, two-sided alpha 0.05, power 0.8
    assert [seeds_needed(d) for d in (0.5, 0.8, 1.0)] == [34, 15, 10]
    assert t_test_power(0.5, 34) >= 0.8 > t_test_power(0.5, 33)
    assert detectable_effect(1) != detectable_effect(1)  # NaN: one seed shows no run variance
    with pytest.raises(ValueError, match="n must be"):
        t_test_power(1.0, 1)
    with pytest.raises(ValueError, match="effect_sd"):
        seeds_needed(0.0)
    with pytest.raises(ValueError, match="power"):
        detectable_effect(5, power=1.0)


RUN_SD, IMAGE_SD, N_IMAGES, DRAWS = 0.3, 1.0, 50, 4000


def test_verdict_test_is_calibrated_and_image_level_tests_are_not():
    for n_seeds, seed in ((3, 11), (5, 12)):
        null = simulate_differences(DRAWS, n_seeds, N_IMAGES, RUN_SD, IMAGE_SD, seed=seed)
        rates = rejection_rates(null)
        assert 0.03 <= rates["seed"] <= 0.07, (n_seeds, rates)
        # with run-level variance, tests over images reject a true null far too often
        assert rates["image"] > 0.3 and rates["pooled"] > 0.3, (n_seeds, rates)


def test_power_of_the_verdict_test_in_simulation():
    effect = 3 * RUN_SD
    # one seed's difference: two runs' deviations plus the mean of N_IMAGES image-level ones
    sd_per_seed = math.sqrt(2 * RUN_SD**2 + IMAGE_SD**2 / N_IMAGES)
    power = {}
    for n_seeds, seed in ((3, 21), (5, 22)):
        sim = simulate_differences(DRAWS, n_seeds, N_IMAGES, RUN_SD, IMAGE_SD, effect=effect, seed=seed)
        power[n_seeds] = rejection_rates(sim)["seed"]
        exact = t_test_power(effect / sd_per_seed, n_seeds)
        assert power[n_seeds] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / DRAWS))
    assert power[5] >= 0.8
    assert 0.35 <= power[3] <= 0.6


def test_simulate_differences_components_and_bad_input():
    sim = simulate_differences(20000, 2, 40, run_sd=0.5, image_sd=2.0, effect=1.0, seed=0)
    assert sim.shape == (20000, 2, 40)
    assert sim.mean() == pytest.approx(1.0, abs=0.02)
    per_seed = sim.mean(axis=2)
    assert per_seed.var() == pytest.approx(2 * 0.25 + 4.0 / 40, rel=0.03)
    assert (sim - per_seed[..., None]).var() == pytest.approx(4.0 * 39 / 40, rel=0.02)
    with pytest.raises(ValueError, match="n_seeds"):
        simulate_differences(10, 0, 5, 0.3, 1.0)
    with pytest.raises(ValueError, match="run_sd"):
        simulate_differences(10, 3, 5, -0.3, 1.0)
    with pytest.raises(ValueError, match="draw, seed, image"):
        rejection_rates(np.zeros((3, 4)))


@pytest.mark.parametrize("pairs, match", [
    ([[1, 1]], r"report.comparisons\[0\]: compares lambda_s 1 with itself"),
    ([[1, 0], [1]], r"report.comparisons\[1\]: expected a pair"),
    (["10"], r"report.comparisons\[0\]: expected a pair"),
    ([[1, "x"]], r"report.comparisons\[0\]: lambda_s values must be numbers"),
    ([[1, 0], [1.0, 0.0]], r"report.comparisons\[1\]: pair .* listed twice"),
])
def test_check_pairs_names_the_entry(pairs, match):
    with pytest.raises(ValueError, match=match):
        S.check_pairs(pairs)


def test_compare_studies_any_lambdas_and_missing_pairs_skipped():
    df = _long_table(np.random.default_rng(7), n_img=5)
    df["lambda_s"] = df["lambda_s"].map({0: 0.5, 1: 1.5, 2: 3.0}).astype(float)
    df = df.assign(study="s", preset="corrected", vgg="b4c4-b5c4", set="val")
    out = S.compare_studies(df, pairs=[[1.5, 0.5], [1, 0]])
    assert set(out.comparison) == {"ls1.5_vs_ls0.5"}
    psnr = out.set_index("metric").loc["psnr"]
    a = df[df.lambda_s == 1.5].groupby("seed").psnr.mean()
    b = df[df.lambda_s == 0.5].groupby("seed").psnr.mean()
    assert psnr.p_seed == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert "n = 2 seeds" in psnr.pairing and "n = 5 images" in psnr.pairing
    assert S.compare_studies(df, pairs=[[1, 2]]).empty


def test_compare_studies_a_split_per_seed_averages_each_image_over_its_seeds():
    """split.per_seed: each seed validated its own images (one count); the seed-level test is
    as usual, each image's value the mean over the seeds that validated it."""
    df = _long_table(np.random.default_rng(8), n_img=6, seeds=(0, 1))
    df.loc[df.seed == 1, "image"] = df.loc[df.seed == 1, "image"].map(lambda s: s.replace("img0", "img1"))
    df.loc[(df.seed == 1) & (df.image == "img10"), "image"] = "img00"  # one image in both seeds' val
    df = df.assign(study="s", preset="corrected", vgg="b4c4-b5c4", set="val")
    psnr = S.compare_studies(df, pairs=[[1, 0]]).set_index("metric").loc["psnr"]
    a, b = (df[df.lambda_s == v] for v in (1, 0))
    seed_means = [side.groupby("seed").psnr.mean() for side in (a, b)]
    assert psnr.p_seed == pytest.approx(sps.ttest_rel(*seed_means).pvalue)
    assert psnr.n == 11 and psnr.n_seeds == 2  # 6 + 6 images, one of them in both
    diff = (a.groupby("image").psnr.mean() - b.groupby("image").psnr.mean())
    assert psnr.mean_diff == pytest.approx(diff.mean())
    assert "averaged over the seeds that validated each image (a split per seed), n = 11 images" in psnr.pairing
    with pytest.raises(ValueError, match="do not share one image set"):  # a missing image is still an error
        S.compare_studies(df[~((df.seed == 1) & (df.image == "img15"))], pairs=[[1, 0]])


def test_docs_seed_table_matches_the_power_computation():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "lambda-verdict.md").read_text(encoding="utf-8")
    section = page.split("## How many seeds a conclusive study needs")[1].split("\n## ")[0]
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) σ \| \| ([\d.]+) σ \| (\d+) \|$", section, flags=re.M)
    assert len(rows) == 5
    for seeds, detectable, effect, needed in rows:
        assert detectable_effect(int(seeds)) == pytest.approx(float(detectable), abs=0.051)
        assert seeds_needed(float(effect)) == int(needed)
