"""False-"differs" rate of the paper-vs-ours verdict with no true difference, by simulation.

Prints, per number of seeds k and seed share of the noise, the rate of the rule the project
used before (|z| >= 2, s taken as known), of plain Welch–Satterthwaite t, and of the guarded
rule that ssimsr.analysis.noise.verdict applies (absolute cells, one shared split of 50 images), and
the guarded rule's power at a true difference of 4 true SDs. Run:
``python benchmarks/verdict_calibration.py [--draws N]``.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats as sps

from ssimsr.analysis import noise as N


def simulate(rng, k: int, share: float, draws: int, effect: float = 0.0, n_images: int = 50):
    seed_sd, split_sd = math.sqrt(share / (1 + 1 / k)), math.sqrt((1 - share) / 2)
    runs = seed_sd * rng.standard_normal((draws, k))
    diff = (runs.mean(axis=1) + split_sd * rng.standard_normal(draws) + effect
            - seed_sd * rng.standard_normal(draws) - split_sd * rng.standard_normal(draws))
    split_hat = split_sd * np.sqrt(rng.chisquare(n_images - 1, draws) / (n_images - 1))
    variances, dfs = N.cell_components(runs.std(axis=1, ddof=1), k, split_hat, n_images - 1)
    return diff, variances, dfs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'k':>3} {'seed share':>10} {'|z|>=2':>8} {'plain WS':>9} {'guarded':>8} {'power@4SD':>10}")
    for k in (2, 3, 5, 10):
        for share in (0.0, 0.5, 0.9, 1.0):
            diff, variances, dfs = simulate(rng, k, share, args.draws)
            z = diff / np.sqrt(sum(variances))
            old = np.mean(np.abs(z) >= 2.0)
            plain = np.mean(np.abs(z) > sps.t.ppf(0.975, N.welch_df(variances, dfs)))
            guarded = np.mean(N.verdict(diff, variances, dfs)["agreement"] == N.DIFFERS)
            power = np.mean(N.verdict(*simulate(rng, k, share, args.draws, effect=4.0))["agreement"] == N.DIFFERS)
            print(f"{k:>3} {share:>10.1f} {old:>8.3f} {plain:>9.3f} {guarded:>8.3f} {power:>10.3f}")


if __name__ == "__main__":
    main()
