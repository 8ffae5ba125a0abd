"""Difference maps (one shared histogram equalisation), the SR comparison, the forest plot,
the loss terms and the figures job's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skimage import data, filters, transform

from ssimsr.report import figures, report
from ssimsr.report.figures import difference_maps, panel_label, plot_difference_figure, plot_training_curves


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


# --------------------------------------------------------------------------- a small synthetic study

SHOWCASE = {"model": "sr", "dataset": "photos", "crop": 48,
            "images": [{"name": "astro"}, {"name": "coins"}]}
VGG = "b4c4-b5c4"
LAMBDAS = (0.0, 1.0, 2.0)
# set == "showcase" rows of the λ_s = 1 run's metrics.csv: the figure must show these, not recompute
RECORDED = {"astro": (31.234, 0.9123), "coins": (29.5, 0.8765)}


def _u8(img):
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def _history(study="demo", presets=("corrected",), models=("sr",), seeds=(0, 1), epochs=3):
    from ssimsr.registry import loss_terms

    rng = np.random.default_rng(2)
    rows = []
    for preset in presets:
        for model in models:
            for lam in LAMBDAS:
                for seed in seeds:
                    for e in range(0, epochs + 1):
                        for split in ("train", "val"):
                            if e == 0 and split == "train":
                                continue
                            row = dict(study=study, preset=preset, model=model, dataset="photos", lambda_s=lam,
                                       seed=seed, vgg=VGG, epoch=e, split=split, total=0.1 / (e + 1),
                                       psnr=25 + e + rng.normal(), ssim=0.8 + 0.02 * e, seconds=1.0)
                            for term in loss_terms():
                                row[term] = 0.01 / (e + 1) * (1 + 0.1 * rng.random())
                            row["perceptual"] = 0.0                     # weight 0, no extractor: never computed
                            if split == "train":
                                row["fw_mse"] = 0.0                     # skipped in training, logged in validation
                            rows.append(row)
    return pd.DataFrame(rows)


def _comparisons(study="demo"):
    rows = []
    for preset, n_seeds in (("corrected", 5), ("as_run", 1)):
        for comp, base in (("ls1_vs_ls0", 0.3), ("ls1_vs_ls2", -0.2)):
            for metric, f in (("psnr", 1.0), ("ssim", 0.01)):
                mean = base * f
                ci = (mean - 0.4 * f, mean + 0.4 * f) if n_seeds > 1 else (np.nan, np.nan)
                rows.append(dict(study=study, preset=preset, model="sr", dataset="photos", vgg=VGG,
                                 comparison=comp, metric=metric, variant_col="lambda_s", a=1.0,
                                 b=float(comp[-1]), status="ok", n_seeds=n_seeds, mean_diff=mean,
                                 ci_low_seed=ci[0], ci_high_seed=ci[1],
                                 mde_seed=0.9 * f if n_seeds >= 4 else np.nan))
            rows.append(dict(rows[-1], metric="lpips_alex", mean_diff=9.0))  # not plotted
    rows.append(dict(rows[0], study="other", mean_diff=99.0))               # another study: not plotted
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Showcase crops, the showcase runs' reconstructions and metrics.csv, history, comparisons."""
    root = tmp_path_factory.mktemp("study")
    showcase_dir, eval_root = root / "showcase", root / "eval"
    showcase_dir.mkdir()
    crops = {"astro": data.astronaut()[100:196:2, 150:246:2],
             "coins": np.repeat(data.coins()[40:88, 100:148, None], 3, axis=2)}
    from PIL import Image

    from ssimsr.pipeline.runs import Run

    for name, crop in crops.items():
        assert crop.shape == (48, 48, 3)
        Image.fromarray(crop).save(showcase_dir / f"{name}.png")
        for k, lam in enumerate(LAMBDAS):
            run_dir = root / "eval" / Run("demo", "corrected", "sr", "photos", lam, 0, VGG).path
            rec = filters.gaussian(crop.astype(float) / 255, sigma=0.5 + 0.5 * k, channel_axis=-1)
            (run_dir / "recon" / "showcase").mkdir(parents=True, exist_ok=True)
            Image.fromarray(_u8(rec)).save(run_dir / "recon" / "showcase" / f"{name}.png")
    ls1 = root / "eval" / Run("demo", "corrected", "sr", "photos", 1.0, 0, VGG).path
    pd.DataFrame([dict(set="showcase", image=n, psnr=p, ssim=s) for n, (p, s) in RECORDED.items()]
                 + [dict(set="val", image="astro", psnr=1.0, ssim=0.1)]).to_csv(ls1 / "metrics.csv", index=False)
    return dict(root=root, showcase_dir=showcase_dir, eval_root=eval_root, crops=crops)


class _Captured:
    """Keeps the figures that ``figures._atomic_savefig`` writes, to read their artists back."""

    def __init__(self, monkeypatch):
        self.figs = {}
        original = figures._atomic_savefig

        def save(fig, stem, *args, **kwargs):
            self.figs[Path(stem).name] = fig
            return original(fig, stem, *args, **kwargs)

        monkeypatch.setattr(figures, "_atomic_savefig", save)


def _gid_artists(fig, prefix):
    return {a.get_gid(): a for ax in fig.axes for a in (*ax.lines, *ax.patches, *ax.texts, ax.xaxis.label)
            if a.get_gid() and a.get_gid().startswith(prefix)}


def _showcase_runs():
    from ssimsr.pipeline.runs import Run

    return [Run("demo", "corrected", "sr", "photos", lam, 0, VGG) for lam in (1.0, 0.0, 2.0)]


def test_sr_comparison_panels_and_their_metrics(study, tmp_path, monkeypatch):
    from skimage.metrics import peak_signal_noise_ratio

    from ssimsr.evaluation import metrics

    rows = report.sr_comparison_rows(SHOWCASE, study["showcase_dir"], study["eval_root"], _showcase_runs(), scale=2)
    assert [r["image"] for r in rows] == ["astro", "coins"]
    for row in rows:
        labels = [p["label"] for p in row["panels"]]
        assert labels == ["HR", "bicubic x2", "λ_s = 1", "λ_s = 0", "λ_s = 2"]
        hr = study["crops"][row["image"]].astype(np.float64) / 255
        np.testing.assert_array_equal(row["panels"][0]["image"], hr)
        # bicubic: Keys a = -0.5 from the decimated crop, PSNR computed here independently
        lr = hr[::2, ::2]
        bic = np.clip(transform.resize(lr, hr.shape, order=3, mode="edge"), 0, 1)  # a different bicubic
        ours = row["panels"][1]
        expected = 10 * np.log10(1 / np.mean((hr - np.clip(ours["image"], 0, 1)) ** 2))
        assert ours["psnr"] == pytest.approx(expected, abs=1e-9)
        assert ours["psnr"] == pytest.approx(peak_signal_noise_ratio(hr, ours["image"], data_range=1), abs=1e-9)
        np.testing.assert_array_equal(ours["image"][::2, ::2], np.clip(lr, 0, 1))   # interpolates the LR grid
        assert abs(ours["psnr"] - peak_signal_noise_ratio(hr, bic, data_range=1)) < 3  # same kind of filter
        assert ours["ssim"] == pytest.approx(metrics.ssim(hr, ours["image"]), abs=1e-4)  # float64 vs Keras float32
        # λ_s = 1: the recorded metrics.csv row; λ_s = 0, 2: computed from the PNG
        assert (row["panels"][2]["psnr"], row["panels"][2]["ssim"]) == RECORDED[row["image"]]
        assert not row["panels"][2]["note"]
        for panel in row["panels"][3:]:
            assert panel["psnr"] == pytest.approx(metrics.psnr(hr, panel["image"]), abs=1e-12)
            assert "PNG" in panel["note"]
        assert row["panels"][3]["psnr"] > row["panels"][4]["psnr"]  # sigma 0.5 vs 1.5
    # the numbers under the panels are these values
    cap = _Captured(monkeypatch)
    figures.plot_sr_comparison(rows, tmp_path / "sr_comparison", title="t")
    texts = {g: a.get_text() for g, a in _gid_artists(cap.figs["sr_comparison"], "metrics:").items()}
    assert texts["metrics:astro:HR"] == "reference"
    bic = rows[0]["panels"][1]
    assert texts["metrics:astro:bicubic x2"] == f"PSNR {bic['psnr']:.2f} dB / SSIM {bic['ssim']:.4f}"
    assert texts["metrics:coins:λ_s = 1"] == "PSNR 29.50 dB / SSIM 0.8765"
    assert len(texts) == 10


def test_sr_comparison_missing_reconstruction_names_the_file(study, tmp_path):
    from ssimsr.pipeline.runs import Run

    runs = _showcase_runs() + [Run("demo", "corrected", "sr", "photos", 0.5, 0, VGG)]
    missing = Path(runs[-1].under(study["eval_root"])) / "recon" / "showcase" / "astro.png"
    with pytest.raises(FileNotFoundError, match=f"reconstruction .*{missing}"):
        report.sr_comparison_rows(SHOWCASE, study["showcase_dir"], study["eval_root"], runs, scale=2)
    with pytest.raises(FileNotFoundError, match="showcase crop .*nowhere/astro.png"):
        report.sr_comparison_rows(SHOWCASE, tmp_path / "nowhere", study["eval_root"], runs, scale=2)
    with pytest.raises(ValueError, match="not a multiple of scale 5"):
        report.sr_comparison_rows(SHOWCASE, study["showcase_dir"], study["eval_root"], runs, scale=5)


def test_forest_plot_shows_the_comparisons_values(tmp_path, monkeypatch):
    comps = _comparisons()
    cap = _Captured(monkeypatch)
    stem = tmp_path / "forest_verdict"
    _check_outputs(figures.plot_forest(comps, stem, study="demo"), stem)
    fig = cap.figs["forest_verdict"]
    assert [ax.get_title() for ax in fig.axes] == ["PSNR", "SSIM"]
    shown = comps[(comps.study == "demo") & comps.metric.isin(["psnr", "ssim"])]
    ci, mean, mde = (_gid_artists(fig, p) for p in ("ci:", "mean:", "mde:"))
    assert len(mean) == len(shown) == 8
    assert len(ci) == 4 and len(mde) == 4                      # 5 seeds: CI and band; 1 seed: the point only
    for _, r in shown.iterrows():
        label = f"{r.preset} · SR · λ_s 1 vs {r.comparison[-1]}"
        assert mean[f"mean:{r.metric}:{label}"].get_xdata()[0] == pytest.approx(r.mean_diff)
        if r.n_seeds > 1:
            np.testing.assert_allclose(ci[f"ci:{r.metric}:{label}"].get_xdata(), [r.ci_low_seed, r.ci_high_seed])
            band = mde[f"mde:{r.metric}:{label}"]
            assert (band.get_x(), band.get_x() + band.get_width()) == pytest.approx((-r.mde_seed, r.mde_seed))
        else:
            assert f"ci:{r.metric}:{label}" not in ci and f"mde:{r.metric}:{label}" not in mde
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sum("no CI (one seed), detectable Δ n/a" in t for t in notes) == 4
    assert "one seed" in fig._suptitle.get_text() and "fewer than 4 seeds" in fig._suptitle.get_text()
    # no comparisons at all: the figure says so
    empty = tmp_path / "empty"
    _check_outputs(figures.plot_forest(comps.iloc[:0], empty), empty)
    assert any("no comparisons" in t.get_text() for t in cap.figs["empty"].axes[0].texts)
    with pytest.raises(ValueError, match="lack columns.*mde_seed"):
        figures.plot_forest(comps.drop(columns="mde_seed"), tmp_path / "bad")


def test_loss_terms_one_panel_per_registered_term(tmp_path, monkeypatch):
    from ssimsr.registry import loss_terms

    terms = list(loss_terms())
    hist = _history(presets=("corrected", "as_run"))
    cap = _Captured(monkeypatch)
    stem = tmp_path / "loss_terms"
    _check_outputs(figures.plot_loss_terms(hist, stem, terms, study="demo"), stem)
    fig = cap.figs["loss_terms"]
    axes = np.array(fig.axes).reshape(2, len(terms))           # a row per preset, a column per term
    assert [ax.get_title() for ax in axes[0]] == terms
    runs = len(LAMBDAS) * 2                                    # per preset: 3 λ_s x 2 seeds
    for row in axes:
        for term, ax in zip(terms, row):
            n = {"perceptual": 0, "fw_mse": runs}.get(term, 2 * runs)   # lines: runs x (train, val)
            assert len(ax.lines) == n, term
            assert ax.get_yscale() == ("linear" if term == "perceptual" else "log")
            if term == "ssim_n":
                assert sum(ln.get_linestyle() == "--" for ln in ax.lines) == runs
                colours = {ln.get_color() for ln in ax.lines}
                assert len(colours) == len(LAMBDAS)
    texts = [t.get_text() for t in axes[0][terms.index("perceptual")].texts]
    assert any("not computed" in t for t in texts)
    # the values plotted are the history's, epoch 0 left out
    one = hist[(hist.preset == "corrected") & (hist.lambda_s == 1.0) & (hist.seed == 1) & (hist.split == "val")]
    line = _gid_artists(fig, "ssim_n:demo/corrected/sr/photos/b4c4-b5c4/1.0/1:val")
    (ln,) = line.values()
    np.testing.assert_allclose(ln.get_ydata(), one[one.epoch >= 1].sort_values("epoch").ssim_n)
    with pytest.raises(ValueError, match="no history rows"):
        figures.plot_loss_terms(hist, tmp_path / "x", terms, study="nope")
    with pytest.raises(ValueError, match="lacks columns"):
        figures.plot_loss_terms(hist.drop(columns="ssim_n"), tmp_path / "x", terms)


def test_build_figures_writes_every_declared_figure(study, tmp_path):
    names = report.figure_names(SHOWCASE)
    assert names == ["training_curves", "loss_terms", "forest_verdict", "forest_contrasts", "sr_comparison",
                     "diff_astro", "diff_coins"]
    assert report.figure_names({"images": []}) == ["training_curves", "loss_terms", "forest_verdict",
                                                   "forest_contrasts"]
    caption_dir = Path(__file__).parents[1] / "workflow" / "report"
    for name in names:
        assert (caption_dir / f"{report.figure_caption(name)}.rst").is_file(), name
    hist = _history()
    out = tmp_path / "figures"
    written = report.build_figures(hist, SHOWCASE, study["showcase_dir"], study["eval_root"], "demo", out,
                                   comparisons=_comparisons(), scale=2)
    assert sorted(written) == sorted(out / f"{n}.{e}" for n in names for e in report.FIGURE_EXTENSIONS)
    assert all(p.stat().st_size > 1000 for p in written)
    with pytest.raises(ValueError, match="no runs of sr on photos in study 'demo', preset 'as_run'"):
        report.build_figures(hist, SHOWCASE, study["showcase_dir"], study["eval_root"], "demo", out,
                             preset="as_run", comparisons=_comparisons())


def test_contrast_forest_shows_ours_the_paper_and_the_calibrated_bar(tmp_path, monkeypatch):
    """The bar is the paper values compatible with ours (ours +- t_crit s, the half-width of
    the interval of ours - paper):
    the cross lies outside it exactly where the verdict says "differs"."""
    from ssimsr.analysis.noise import contrast_agreement

    rows = []
    for contrast, ours, paper in (("λ_s 1 − 0", 0.30, 0.25), ("λ_s 1 − 2", -0.9, 2.78)):
        v = contrast_agreement(ours, paper, diff_sd=0.1, pooled_sd=0.2, n_seeds=5, split_diff_sd=0.05, split_sd=0.3,
                               split_df=49)
        rows.append(dict(preset="as_run", dataset="bsds300", model="sr", contrast=contrast, quantity="psnr_end",
                         ours=ours, paper=paper, low=v["low"], high=v["high"], agreement=v["agreement"]))
    table = pd.DataFrame(rows)
    assert list(table["agreement"]) == ["within noise", "differs"]
    cap = _Captured(monkeypatch)
    figures.plot_contrast_forest(table, tmp_path / "forest_contrasts")
    artists = _gid_artists(cap.figs["forest_contrasts"], "")
    for r in rows:
        label = f"as_run · bsds300 · SR · {r['contrast']}"
        bar = artists[f"interval:psnr_end:{label}"].get_xdata()
        half = (r["high"] - r["low"]) / 2
        assert bar[0] == pytest.approx(r["ours"] - half) and bar[1] == pytest.approx(r["ours"] + half)
        inside = bar[0] <= r["paper"] <= bar[1]
        assert inside == (r["agreement"] != "differs")
        assert artists[f"paper:psnr_end:{label}"].get_xdata()[0] == pytest.approx(r["paper"])
    # no rows: the figure says so instead of failing
    figures.plot_contrast_forest(pd.DataFrame(), tmp_path / "empty")
    assert "no contrast of ours" in " ".join(t.get_text() for ax in cap.figs["empty"].axes for t in ax.texts)
