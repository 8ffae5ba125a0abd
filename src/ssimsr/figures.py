"""Figures: contrast-enhanced difference maps (paper Figs. 4-9) and training curves.

Difference maps (Section 4.1 of the paper): for each reconstruction (λ_s = 1, 0, 2) the
pixel difference to the original is taken, the three difference images are put side by
side into ONE composite, the composite is histogram-equalised per colour channel, and the
result is cut back into the three maps. Equalising the composite (not each map) gives the
three maps one shared, monotone intensity mapping, so brightness stays comparable across
them: a pixel with a larger error is never darker than one with a smaller error, in any map.

Choice made here: the difference is the **absolute** difference ``|original −
reconstruction|`` per channel (the paper writes "original minus reconstruction" and
"brighter areas indicate a larger difference"; with a signed difference, mid-grey would be
"no error" and both dark and bright would be errors, which contradicts that description).
Equalisation uses ``skimage.exposure.equalize_hist`` with ``nbins`` bins (default 4096,
finer than the 256 of 8-bit data so that float differences give a near-flat histogram).
As with any histogram equalisation, tied values stay tied: all pixels with zero error get
the composite's darkest level, which equals the share of such pixels (not exactly 0).

Everything is written with matplotlib's Agg backend, PNG and PDF, each atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .atomic import atomic_path

__all__ = ["difference_maps", "plot_difference_figure", "plot_training_curves", "panel_label"]


def _as_float(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    if a.dtype == bool:
        return a.astype(np.float64)
    return a.astype(np.float64)


def difference_maps(original, reconstructions: Mapping[object, np.ndarray], nbins: int = 4096,
                    ) -> dict[object, np.ndarray]:
    """Contrast-enhanced difference maps sharing one histogram equalisation.

    ``original`` and every reconstruction are arrays of the same shape, ``H x W`` or
    ``H x W x C`` (uint8 / uint16 are scaled to [0, 1]; floats are used as they are).
    Returns, in the order of ``reconstructions``, float maps in [0, 1] of the input shape:
    ``|original − reconstruction|`` per channel, concatenated side by side (along the
    width), histogram-equalised per channel on that composite, and split back.
    """
    if not reconstructions:
        raise ValueError("difference_maps: no reconstructions given")
    from skimage import exposure

    ref = _as_float(original)
    if ref.ndim not in (2, 3):
        raise ValueError(f"difference_maps: original must be HxW or HxWxC, got shape {ref.shape}")
    diffs = []
    for label, rec in reconstructions.items():
        r = _as_float(rec)
        if r.shape != ref.shape:
            raise ValueError(f"difference_maps: reconstruction {label!r} has shape {r.shape}, "
                             f"original {ref.shape}")
        d = np.abs(ref - r)
        if not np.all(np.isfinite(d)):
            raise ValueError(f"difference_maps: reconstruction {label!r} has non-finite values")
        diffs.append(d)
    composite = np.concatenate(diffs, axis=1)
    if composite.ndim == 2:
        eq = _equalise(composite, nbins, exposure)
    else:
        eq = np.stack([_equalise(composite[..., c], nbins, exposure) for c in range(composite.shape[2])],
                      axis=-1)
    width = ref.shape[1]
    return {label: eq[:, i * width:(i + 1) * width].copy() for i, label in enumerate(reconstructions)}


def _equalise(channel: np.ndarray, nbins: int, exposure) -> np.ndarray:
    if np.ptp(channel) == 0:  # no error at all (or a constant one): equalisation is undefined
        return np.zeros_like(channel)
    return np.clip(exposure.equalize_hist(channel, nbins=nbins), 0.0, 1.0)


def panel_label(key) -> str:
    """Title text of a reconstruction panel: numbers are λ_s values, strings are used as given."""
    if isinstance(key, (int, float, np.integer, np.floating)) and not isinstance(key, bool):
        return f"λ_s = {float(key):g}"
    return str(key)


def _atomic_savefig(fig, stem: Path, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> dict[str, Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        paths[fmt] = path
    return paths


def _mpl(text: str) -> str:
    """λ_s as matplotlib mathtext."""
    return text.replace("λ_s", r"$\lambda_s$")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_difference_figure(original, maps: Mapping[object, np.ndarray], title: str, stem,
                           dpi: int = 150) -> dict[str, Path]:
    """One row: the original, then each map of ``maps`` (in order), titled like the paper.

    Panels read "(a) original", "(b) λ_s = 1", "(c) λ_s = 0", ... (numeric keys are λ_s
    values). Writes ``<stem>.png`` and ``<stem>.pdf`` atomically and returns their paths.
    """
    plt = _pyplot()
    panels = [("original", _as_float(original))] + [(panel_label(k), np.asarray(v)) for k, v in maps.items()]
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.6), squeeze=False)
    for i, (ax, (name, img)) in enumerate(zip(axes[0], panels)):
        img = np.clip(img, 0.0, 1.0)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(_mpl(f"({chr(ord('a') + i)}) {name}"), fontsize=10)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    try:
        return _atomic_savefig(fig, Path(stem), dpi=dpi)
    finally:
        plt.close(fig)


def plot_training_curves(history: pd.DataFrame, stem, split: str = "val",
                         metrics: Sequence[str] = ("psnr", "ssim"), study: str | None = None,
                         dpi: int = 120) -> dict[str, Path]:
    """Validation PSNR and SSIM per epoch: a panel per (metric, model, dataset), a line per λ_s.

    Expects ``history`` columns ``model, dataset, lambda_s, epoch, split`` and the
    ``metrics`` (+ ``seed``, ``study``, ``preset``, ``vgg``). Several seeds: the line is
    the mean over seeds with a shaded ± sd band. Several presets or VGG pairs: one line
    style each. Rows of the figure are the metrics, columns the (model, dataset) pairs.
    Writes ``<stem>.png`` and ``<stem>.pdf`` atomically.
    """
    plt = _pyplot()
    # epoch 0 (the initial weights) is left out: its random-init PSNR would squash the axes
    h = history[(history["split"] == split) & (history["epoch"] >= 1)]
    if study is not None and "study" in h.columns:
        h = h[h["study"] == study]
    if h.empty:
        raise ValueError(f"plot_training_curves: no history rows with split == {split!r}"
                         + (f" and study == {study!r}" if study else ""))
    missing = [c for c in ("model", "dataset", "lambda_s", "epoch", *metrics) if c not in h.columns]
    if missing:
        raise ValueError(f"plot_training_curves: history lacks columns {missing}")
    style_keys = [c for c in ("study", "preset", "vgg") if c in h.columns and h[c].nunique() > 1]
    panels = sorted(h.groupby(["model", "dataset"]).groups)
    lambdas = sorted(h["lambda_s"].astype(float).unique())
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    style_vals = sorted(h.groupby(style_keys).groups) if style_keys else [()]
    fig, axes = plt.subplots(len(metrics), len(panels), figsize=(3.6 * len(panels), 2.8 * len(metrics)),
                             squeeze=False, sharex="col")
    labels = {"psnr": "PSNR [dB]", "ssim": "SSIM"}
    for j, (model, dataset) in enumerate(panels):
        sub = h[(h["model"] == model) & (h["dataset"] == dataset)]
        for i, metric in enumerate(metrics):
            ax = axes[i][j]
            for li, lam in enumerate(lambdas):
                for si, sv in enumerate(style_vals):
                    part = sub[np.isclose(sub["lambda_s"].astype(float), lam)]
                    sv_t = sv if isinstance(sv, tuple) else (sv,)
                    for k, v in zip(style_keys, sv_t):
                        part = part[part[k] == v]
                    if part.empty:
                        continue
                    g = part.groupby("epoch")[metric]
                    mean, sd, n = g.mean(), g.std(ddof=1), g.count()
                    label = f"λ_s = {lam:g}" + (f" ({', '.join(map(str, sv_t))})" if style_keys else "")
                    colour = colours[li % len(colours)]
                    ax.plot(mean.index, mean.to_numpy(), styles[si % len(styles)], color=colour,
                            label=label, marker="o" if len(mean) < 3 else None, markersize=3)
                    if (n > 1).any():
                        band = sd.fillna(0.0).to_numpy()
                        ax.fill_between(mean.index, mean.to_numpy() - band, mean.to_numpy() + band,
                                        color=colour, alpha=0.2, linewidth=0)
            if i == 0:
                ax.set_title(f"{model.upper()} / {dataset}", fontsize=10)
            if i == len(metrics) - 1:
                ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel(f"{split} {labels.get(metric, metric)}")
            ax.grid(True, alpha=0.3)
    seen = {}
    for ax in axes.flat:
        for hd, nm in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(nm, hd)
    if seen:
        fig.legend(list(seen.values()), [_mpl(k) for k in seen], loc="lower center", ncol=min(len(seen), 6),
                   bbox_to_anchor=(0.5, -0.02), fontsize=9, frameon=False)
    nseeds = h["seed"].nunique() if "seed" in h.columns else 1
    fig.suptitle(f"{split} metrics per epoch" + (f" (mean ± sd over {nseeds} seeds)" if nseeds > 1 else ""),
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    try:
        return _atomic_savefig(fig, Path(stem), dpi=dpi)
    finally:
        plt.close(fig)
