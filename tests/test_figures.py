"""Difference maps (one shared histogram equalisation) and the plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage import data, filters, transform

from ssimsr.figures import difference_maps, panel_label, plot_difference_figure, plot_training_curves


@pytest.fixture(scope="module")
def natural():
    """A natural photograph and three reconstructions of increasing error."""
    img = data.astronaut()[::4, ::4].astype(np.float64) / 255.0          # 128 x 128 x 3
    small = transform.rescale(img, 0.5, channel_axis=-1, order=3, anti_aliasing=False)
    bicubic = np.clip(transform.resize(small, img.shape, order=3), 0, 1)
    recs = {1: filters.gaussian(img, sigma=0.6, channel_axis=-1),
            0: bicubic,
            2: filters.gaussian(img, sigma=2.5, channel_axis=-1)}
    return img, recs


def _cdf_deviation(values: np.ndarray) -> float:
    """max |F(y) - y| over the attained values y, F the (right-continuous) empirical CDF."""
    v = np.sort(values.ravel())
    F = np.searchsorted(v, v, side="right") / v.size
    return float(np.max(np.abs(F - v)))


def test_composite_histogram_is_flat_per_channel(natural):
    img, recs = natural
    maps = difference_maps(img, recs)
    assert list(maps) == [1, 0, 2]
    assert all(m.shape == img.shape for m in maps.values())
    composite = np.concatenate(list(maps.values()), axis=1)
    assert composite.min() >= 0.0 and composite.max() <= 1.0
    for c in range(3):
        assert _cdf_deviation(composite[..., c]) < 0.05
        # the single maps are NOT each flat: they share the composite's mapping
    assert abs(maps[2].mean() - maps[1].mean()) > 0.1


def test_shared_monotone_mapping_preserves_error_order(natural):
    img, recs = natural
    maps = difference_maps(img, recs)
    err = {k: np.abs(img - r) for k, r in recs.items()}
    assert err[2].mean() > err[1].mean()
    assert maps[2].mean() > maps[1].mean()                   # larger error -> brighter map
    # one mapping per channel for all three maps: order of differences is kept across maps
    for c in range(3):
        d = np.concatenate([err[k][..., c].ravel() for k in maps])
        e = np.concatenate([maps[k][..., c].ravel() for k in maps])
        order = np.argsort(d, kind="stable")
        assert np.all(np.diff(e[order]) >= -1e-12)
    # identical reconstructions give identical maps
    same = difference_maps(img, {"a": recs[0], "b": recs[0].copy()})
    np.testing.assert_array_equal(same["a"], same["b"])


def test_difference_maps_inputs():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    rec = np.clip(u8.astype(int) + rng.integers(-5, 6, u8.shape), 0, 255).astype(np.uint8)
    maps = difference_maps(u8, {0: rec, 1: u8})
    assert maps[0].shape == (16, 12, 3)
    for c in range(3):  # zero error everywhere -> one level per channel, the darkest one of the composite
        assert maps[1][..., c].max() == maps[1][..., c].min() <= maps[0][..., c].min()
    gray = difference_maps(u8[..., 0], {0: rec[..., 0]})
    assert gray[0].shape == (16, 12)
    with pytest.raises(ValueError, match="shape"):
        difference_maps(u8, {0: rec[:8]})
    with pytest.raises(ValueError, match="no reconstructions"):
        difference_maps(u8, {})


def _check_outputs(paths, stem):
    assert set(paths) == {"png", "pdf"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"].stat().st_size > 1000
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-" and paths["pdf"].stat().st_size > 1000
    assert not list(stem.parent.glob(".*tmp*"))


def test_plot_difference_figure_writes_png_and_pdf(tmp_path, natural):
    img, recs = natural
    maps = difference_maps(img, recs)
    stem = tmp_path / "fig" / "fig4_astronaut"
    _check_outputs(plot_difference_figure(img, maps, "astronaut (SR, BSDS300)", stem), stem)
    assert panel_label(1.0) == "λ_s = 1" and panel_label("bicubic") == "bicubic"


def test_plot_training_curves_writes_png_and_pdf(tmp_path):
    rows = []
    rng = np.random.default_rng(1)
    for model in ("sr", "irn"):
        for lam in (0.0, 1.0, 2.0):
            for seed in (0, 1):
                for e in range(1, 5):
                    for split in ("train", "val"):
                        rows.append(dict(study="table1", preset="corrected", model=model, dataset="bsds300",
                                         lambda_s=lam, seed=seed, vgg="b4c4-b5c4", epoch=e, split=split,
                                         psnr=25 + e + rng.normal(), ssim=0.8 + 0.02 * e + 0.01 * rng.normal()))
            rows.append(dict(study="table1", preset="corrected", model=model, dataset="bsds300", lambda_s=lam,
                             seed=0, vgg="b4c4-b5c4", epoch=0, split="val", psnr=3.0, ssim=0.01))
    stem = tmp_path / "curves"
    _check_outputs(plot_training_curves(pd.DataFrame(rows), stem), stem)
    # epoch 0 (the initial weights) is not plotted: a history of only epoch-0 rows has no curve
    with pytest.raises(ValueError, match="no history rows"):
        plot_training_curves(pd.DataFrame(rows).query("epoch == 0"), tmp_path / "y")
    with pytest.raises(ValueError, match="no history rows"):
        plot_training_curves(pd.DataFrame(rows), tmp_path / "x", split="test")
