"""Simulated studies: how often each test of the comparison rejects, with run-level variance.

Used to show (tests/test_stats.py, docs/lambda-verdict.md) that the verdict test (n = seeds) holds its
level when training runs differ, and that tests over images reject a true null far too
often; and to check the exact power of :mod:`ssimsr.analysis.power` by simulation.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from .stats import seed_level_test

__all__ = ["simulate_differences", "rejection_rates"]


def simulate_differences(n_draws: int, n_seeds: int, n_images: int, run_sd: float, image_sd: float,
                         effect: float = 0.0, seed: int = 0) -> np.ndarray:
    """Simulated (draw, seed, image) differences ``a - b`` with run-level and image-level variance.

    Each training run (variant, seed) deviates from its variant's expectation by its own
    ``N(0, run_sd^2)`` (so one seed's difference carries two runs' deviations), and each
    image's difference scatters around its seed's by ``N(0, image_sd^2)``. ``effect`` is
    the true difference. Vectorised: thousands of studies take milliseconds.
    """
    for name, value in (("n_draws", n_draws), ("n_seeds", n_seeds), ("n_images", n_images)):
        if int(value) != value or value < 1:
            raise ValueError(f"simulate_differences: {name} must be a positive integer, got {value!r}")
    for name, value in (("run_sd", run_sd), ("image_sd", image_sd)):
        if not value >= 0:
            raise ValueError(f"simulate_differences: {name} must be >= 0, got {value!r}")
    rng = np.random.default_rng(seed)
    runs = rng.normal(0.0, run_sd, (n_draws, n_seeds, 2))
    images = rng.normal(0.0, image_sd, (n_draws, n_seeds, n_images))
    return effect + (runs[..., 0] - runs[..., 1])[..., None] + images


def rejection_rates(diffs: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """Share of simulated studies (``diffs[draw, seed, image]``) each test rejects at ``alpha``.

    ``seed``: the verdict's test (:func:`seed_level_test` on per-seed means, n = seeds);
    ``image``: paired t on per-image differences averaged over seeds (n = images);
    ``pooled``: paired t over every (seed, image) pair (n = seeds x images, pseudo-replicated).
    """
    diffs = np.asarray(diffs, dtype=float)
    if diffs.ndim != 3:
        raise ValueError(f"rejection_rates: diffs must be (draw, seed, image), got shape {diffs.shape}")
    seed = seed_level_test(diffs.mean(axis=2), alpha)["p_seed"]
    image = sps.ttest_1samp(diffs.mean(axis=1), 0.0, axis=-1).pvalue
    pooled = sps.ttest_1samp(diffs.reshape(len(diffs), -1), 0.0, axis=-1).pvalue
    return {name: float(np.mean(p < alpha)) for name, p in (("seed", seed), ("image", image), ("pooled", pooled))}
