"""Figures: contrast-enhanced difference maps (paper Figs. 4-9), training curves, the SR comparison
(HR, bicubic and each λ_s side by side), the verdict's forest plot and the loss terms per epoch.

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

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ..io.atomic import atomic_path
from ..pipeline.runs import same_weight, weight_key

if TYPE_CHECKING:  # the Snakefile imports this package for the figure names: a dry run imports no pandas
    import pandas as pd

__all__ = ["difference_maps", "plot_difference_figure", "plot_training_curves", "panel_label", "plot_sr_comparison",
           "plot_forest", "plot_loss_terms", "metrics_text"]


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


def _finish(fig, stem, dpi: int, rect=None, layout: bool = True) -> dict[str, Path]:
    """Lay out (``rect``: the area left for the axes), save png + pdf atomically, close."""
    if layout:
        fig.tight_layout(**({"rect": rect} if rect is not None else {}))
    try:
        return _atomic_savefig(fig, Path(stem), dpi=dpi)
    finally:
        _pyplot().close(fig)


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
    return _finish(fig, stem, dpi)


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
    fig, axes = plt.subplots(len(metrics), len(panels), figsize=(3.6 * len(panels), 2.8 * len(metrics)),
                             squeeze=False, sharex="col")
    labels = {"psnr": "PSNR [dB]", "ssim": "SSIM"}
    for j, (model, dataset) in enumerate(panels):
        sub = h[(h["model"] == model) & (h["dataset"] == dataset)]
        for i, metric in enumerate(metrics):
            ax = axes[i][j]
            _plot_curves(ax, sub, metric, h, style_keys, plt)
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
    return _finish(fig, stem, dpi, rect=(0, 0.05, 1, 1))


def _plot_curves(ax, sub: pd.DataFrame, metric: str, h: pd.DataFrame, style_keys: list[str], plt) -> None:
    """One panel's lines: per λ_s of ``h`` (a colour) and value of ``style_keys`` (a line style),
    the mean of ``metric`` over ``sub``'s seeds per epoch, with a ± sd band for several."""
    lambdas = sorted(weight_key(h["lambda_s"]).unique())
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    style_vals = sorted(h.groupby(style_keys).groups) if style_keys else [()]
    for li, lam in enumerate(lambdas):
        for si, sv in enumerate(style_vals):
            part = sub[same_weight(sub["lambda_s"], lam)]
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


# --------------------------------------------------------------------------- SR comparison

def plot_sr_comparison(rows: Sequence[Mapping], stem, title: str = "", dpi: int = 150) -> dict[str, Path]:
    """The SR comparison figure: one row per showcase crop, its panels side by side.

    ``rows`` is a list of ``{"image": name, "panels": [panel, ...]}``, each panel a dict
    with ``label`` (title; "λ_s" is typeset), ``image`` (HxWx3 in [0, 1]) and ``psnr`` /
    ``ssim`` (floats; NaN or None for the reference) and optional ``note`` (e.g. where the
    values came from). The values are written under each panel (its x label, with
    ``gid="metrics:<image>:<label>"``). Writes ``<stem>.png`` and ``<stem>.pdf`` atomically.
    """
    if not rows:
        raise ValueError("plot_sr_comparison: no images")
    plt = _pyplot()
    ncols = max(len(r["panels"]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.8 * ncols, 3.4 * len(rows) + 0.4), squeeze=False,
                             layout="constrained")
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(row["panels"]):
                ax.set_axis_off()
                continue
            p = row["panels"][j]
            img = np.clip(_as_float(p["image"]), 0.0, 1.0)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(_mpl(p["label"]) if j else f"{row['image']}: {p['label']}", fontsize=10)
            # the values as the x label (an axis kept for it, without ticks or frame): the layout makes room
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_xlabel(metrics_text(p.get("psnr"), p.get("ssim")) + (f"\n{p['note']}" if p.get("note") else ""),
                          fontsize=9)
            ax.xaxis.label.set_gid(f"metrics:{row['image']}:{p['label']}")
    if title:
        fig.suptitle(title, fontsize=11)
    return _finish(fig, stem, dpi, layout=False)


def _missing(value) -> bool:
    """``pandas.isna`` of one value (None, NaN, NA or NaT)."""
    import pandas as pd

    return bool(pd.isna(value))


def metrics_text(psnr, ssim) -> str:
    """``"PSNR 28.31 dB / SSIM 0.8123"``; the reference (no values) reads "reference"."""
    if psnr is None or ssim is None or (_missing(psnr) and _missing(ssim)):
        return "reference"
    return f"PSNR {float(psnr):.2f} dB / SSIM {float(ssim):.4f}"


# --------------------------------------------------------------------------- forest plot

def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def plot_forest(comparisons: pd.DataFrame, stem, metrics: Sequence[str] = ("psnr", "ssim"),
                study: str | None = None, dpi: int = 120) -> dict[str, Path]:
    """The verdict as a forest plot: one panel per metric, one row per group and comparison.

    ``comparisons`` is ``results/stats/comparisons.csv`` (:func:`ssimsr.analysis.stats.compare_studies`).
    Rows are the (preset, model, dataset[, vgg, study]) groups and their comparisons, as in
    the verdict table; ``study`` selects one study when the table has it. Per row: the mean
    difference a − b over seeds (a marker, ``gid="mean:<metric>:<row>"``), its 95 % CI over
    seeds (``ci_low_seed`` .. ``ci_high_seed``, a line with ``gid="ci:<metric>:<row>"``; one
    seed has no CI: the point alone, annotated), and the detectable Δ ``mde_seed`` as a
    grey band ±mde around 0 (``gid="mde:<metric>:<row>"``; "n/a" with fewer than 4 seeds).
    With no comparison at all the figure says so. Writes ``<stem>.png`` / ``.pdf`` atomically.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    c, shown, rows = _forest_rows(comparisons, metrics, study)
    panel_metrics = [m for m in metrics if rows and (c["metric"] == m).any()] or list(metrics)
    fig, axes = plt.subplots(1, len(panel_metrics), figsize=(5.2 * len(panel_metrics), 1.2 + 0.45 * max(len(rows), 2)),
                             squeeze=False)
    labels = {"psnr": "ΔPSNR [dB]", "ssim": "ΔSSIM"}
    notes = set()
    for ax, metric in zip(axes[0], panel_metrics):
        ax.axvline(0.0, color="0.3", linewidth=0.8)
        for y, r in enumerate(rows):
            sel = c[(c["metric"] == metric) & (c["comparison"] == r["comparison"])]
            for k in shown:
                sel = sel[sel[k] == r[k]]
            if sel.empty:
                ax.text(0.0, y, "  not compared", va="center", fontsize=8, color="0.4")
                continue
            _forest_row(ax, y, sel.iloc[0], metric, _forest_label(r, shown), notes)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([_mpl(_forest_label(r, shown)) for r in rows] if ax is axes[0][0] else [""] * len(rows),
                           fontsize=8)
        ax.set_ylim(len(rows) - 0.5 if rows else 0.5, -0.5)
        ax.set_xlabel(f"{labels.get(metric, metric)} (a − b, mean over seeds, 95 % CI)", fontsize=9)
        ax.set_title(metric.upper(), fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(True, axis="x", alpha=0.3)
        if not rows:
            ax.text(0.5, 0.5, "no comparisons in results/stats/comparisons.csv", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9)
    from ..analysis.power import ALPHA, POWER

    title = (f"Verdict: Δ with {1 - ALPHA:.0%} CI over seeds; grey band = ± detectable Δ "
             f"({POWER:.0%} power)").replace("%", " %")
    if notes:
        title += "\n" + "; ".join(sorted(notes))
    fig.suptitle(_mpl(title), fontsize=10)
    return _finish(fig, stem, dpi)


def _forest_rows(comparisons: pd.DataFrame, metrics: Sequence[str],
                 study: str | None) -> tuple[pd.DataFrame, list[str], list[dict]]:
    """(the comparisons shown, the group keys that tell the rows apart, the rows: one per group
    and comparison, sorted)."""
    need = ("comparison", "metric", "mean_diff", "ci_low_seed", "ci_high_seed", "mde_seed", "n_seeds")
    missing = [c for c in need if c not in comparisons.columns]
    if missing and not comparisons.empty:
        raise ValueError(f"plot_forest: comparisons lack columns {missing}")
    c = comparisons
    if not c.empty and study is not None and "study" in c.columns and (c["study"] == study).any():
        c = c[c["study"] == study]
    c = c[c["metric"].isin(metrics)] if not c.empty else c
    keys = [k for k in ("study", "preset", "model", "dataset", "vgg") if k in c.columns]
    shown = [k for k in keys if k in ("preset", "model") or c[k].nunique() > 1]
    rows = (c[shown + ["comparison"]].drop_duplicates().sort_values(shown + ["comparison"]).to_dict("records")
            if not c.empty else [])
    return c, shown, rows


def _forest_label(r: Mapping, shown: list[str]) -> str:
    """A forest row's label: its group's ``shown`` keys and the comparison, ``λ_s 1 vs 0``."""
    parts = [str(r[k]).upper() if k == "model" else str(r[k]) for k in shown]
    m = re.fullmatch(r"ls([0-9.e+-]+)_vs_ls([0-9.e+-]+)", str(r["comparison"]))
    comp = f"λ_s {m[1]} vs {m[2]}" if m else str(r["comparison"])
    return " · ".join(parts + [comp])


def _forest_row(ax, y: int, s: pd.Series, metric: str, label: str, notes: set) -> None:
    """Row ``y`` of a forest panel from comparison row ``s``: the detectable-Δ band, the CI, the
    mean and the annotation; what is missing (CI, detectable Δ) goes to ``notes``."""
    from ..analysis.noise import MIN_SEEDS_FOR_POWER

    mean, lo, hi, mde = (float(s[k]) for k in ("mean_diff", "ci_low_seed", "ci_high_seed", "mde_seed"))
    n_seeds = 0 if _missing(s["n_seeds"]) else int(s["n_seeds"])
    if np.isfinite(mde):
        ax.barh(y, 2 * mde, left=-mde, height=0.5, color="0.85", edgecolor="none", zorder=0,
                gid=f"mde:{metric}:{label}")
        mde_text = f"detectable Δ {_fmt(mde)}"
    else:
        mde_text = "detectable Δ n/a"
        if n_seeds < MIN_SEEDS_FOR_POWER:
            notes.add(f"detectable Δ n/a: fewer than {MIN_SEEDS_FOR_POWER} seeds")
    if np.isfinite(lo) and np.isfinite(hi):
        ax.plot([lo, hi], [y, y], "-", color="C0", linewidth=1.8, gid=f"ci:{metric}:{label}")
        ci_text = ""
    else:
        ci_text = "no CI (one seed), "
        notes.add("no CI: one seed (point only)")
    ax.plot([mean], [y], "o", color="C0" if ci_text == "" else "C1", markersize=5, zorder=3,
            gid=f"mean:{metric}:{label}")
    ax.annotate(f"{ci_text}{mde_text}", xy=(1.02, y), xycoords=("axes fraction", "data"),
                va="center", fontsize=7, color="0.3", annotation_clip=False)


# --------------------------------------------------------------------------- the paper's contrasts

_VERDICT_COLOURS = {"within noise": "C0", "differs": "C3", "inconclusive": "0.55"}


def plot_contrast_forest(contrasts: pd.DataFrame, stem, dpi: int = 120) -> dict[str, Path]:
    """Does the paper's λ_s effect reproduce? One panel per quantity, one row per (preset,
    dataset, model, contrast) of ``results/tables/paper_vs_ours_contrasts.csv``
    (:func:`ssimsr.tables.contrasts.table1_contrasts`).

    Per row: our contrast (a dot, ``gid="ours:<quantity>:<row>"``) with the paper values
    compatible with ours (ours ± t_crit·s, the half-width of the calibrated 95 % interval of
    ours − paper; a bar, ``gid="interval:..."``),
    coloured by the verdict, and the paper's contrast (a cross, ``gid="paper:..."``):
    "differs" exactly when the cross lies outside the bar. A dotted line marks 0 (no
    effect). With no rows the figure says so. Writes ``<stem>.png`` / ``.pdf`` atomically.
    """
    plt = _pyplot()
    need = ("contrast", "quantity", "ours", "paper", "low", "high", "agreement")
    missing = [c for c in need if c not in contrasts.columns]
    if missing and not contrasts.empty:
        raise ValueError(f"plot_contrast_forest: the contrasts table lacks columns {missing}")
    keys = [k for k in ("preset", "dataset", "model", "vgg") if k in contrasts.columns
            and contrasts[k].notna().any()]
    quantities = list(dict.fromkeys(contrasts["quantity"])) if not contrasts.empty else ["psnr_end"]
    rows = (contrasts[keys + ["contrast"]].drop_duplicates().to_dict("records") if not contrasts.empty else [])
    fig, axes = plt.subplots(1, len(quantities), figsize=(5.0 * len(quantities), 1.3 + 0.42 * max(len(rows), 2)),
                             squeeze=False)
    for ax, quantity in zip(axes[0], quantities):
        ax.axvline(0.0, color="0.4", linewidth=0.8, linestyle=":")
        for y, r in enumerate(rows):
            sel = contrasts[contrasts["quantity"] == quantity]
            for k in keys + ["contrast"]:
                sel = sel[sel[k] == r[k]]
            label = " · ".join([str(r[k]).upper() if k == "model" else str(r[k]) for k in keys] + [r["contrast"]])
            if sel.empty:
                continue
            c = sel.iloc[0]
            colour = _VERDICT_COLOURS.get(str(c["agreement"]), "0.7")
            # the paper's values compatible with ours: ours ± the half-width t_crit·s of (ours − paper)'s interval
            half = (float(c["high"]) - float(c["low"])) / 2.0
            lo, hi = float(c["ours"]) - half, float(c["ours"]) + half
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [y, y], "-", color=colour, linewidth=2.0, gid=f"interval:{quantity}:{label}")
            ax.plot([c["ours"]], [y], "o", color=colour, markersize=5, zorder=3, gid=f"ours:{quantity}:{label}")
            ax.plot([c["paper"]], [y], "x", color="black", markersize=7, zorder=4, gid=f"paper:{quantity}:{label}")
        ax.set_yticks(range(len(rows)))
        labels = [" · ".join([str(r[k]).upper() if k == "model" else str(r[k]) for k in keys] + [r["contrast"]])
                  for r in rows]
        ax.set_yticklabels([_mpl(t) for t in labels] if ax is axes[0][0] else [""] * len(rows), fontsize=8)
        ax.set_ylim(len(rows) - 0.5 if rows else 0.5, -0.5)
        unit = " [dB]" if quantity.startswith("psnr") else ""
        ax.set_xlabel(_mpl(f"Δ {quantity.split('_')[0].upper()}{unit} (λ_s a − b)"), fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
        if not rows:
            ax.text(0.5, 0.5, "no contrast of ours matches the paper's", transform=ax.transAxes, ha="center",
                    va="center", fontsize=9)
    title = ("The paper's λ_s contrasts (×) beside ours (●, bar: the paper's values compatible with ours, "
             "calibrated 95 %)\nblue: within noise · red: differs · grey: inconclusive")
    fig.suptitle(_mpl(title), fontsize=9)
    return _finish(fig, stem, dpi)


# --------------------------------------------------------------------------- loss terms

def plot_loss_terms(history: pd.DataFrame, stem, terms: Sequence[str], study: str | None = None,
                    splits: Sequence[str] = ("train", "val"), dpi: int = 110) -> dict[str, Path]:
    """Each run's loss terms per epoch: a row per (preset, model, dataset[, vgg]) group, a
    column per term, one line per run and split (colour: λ_s; solid: train, dashed: val).

    ``terms`` are the history columns to plot (the registered loss terms,
    :func:`ssimsr.registry.loss_terms`). Epoch 0 (the initial weights) is left out. A run's
    split whose values are all 0 (or NaN) is a term training skipped (weight 0, not logged):
    no line, the panel says so. A panel whose plotted values are all positive has a log
    y-axis. Each line has ``gid="<term>:<run>:<split>"``.
    Writes ``<stem>.png`` and ``<stem>.pdf`` atomically.
    """
    plt = _pyplot()
    h = _loss_term_rows(history, terms, study, splits)
    run_keys = [k for k in ("study", "preset", "model", "dataset", "vgg", "lambda_s", "seed") if k in h.columns]
    group_keys = [k for k in ("study", "preset", "model", "dataset", "vgg")
                  if k in h.columns and (k in ("preset", "model", "dataset") or h[k].nunique() > 1)]
    groups = sorted(h.groupby(group_keys).groups) if group_keys else [()]
    lines = _TermLines(run_keys, sorted(weight_key(h["lambda_s"]).unique()),
                       plt.rcParams["axes.prop_cycle"].by_key()["color"], tuple(splits),
                       {s: st for s, st in zip(splits, ["-", "--", ":", "-."])})
    fig, axes = plt.subplots(len(groups), len(terms), figsize=(3.4 * len(terms), 2.5 * len(groups)),
                             squeeze=False, sharex="row")
    for i, g in enumerate(groups):
        g = g if isinstance(g, tuple) else (g,)
        sub = h
        for k, v in zip(group_keys, g):
            sub = sub[sub[k] == v]
        name = " / ".join(str(v).upper() if k == "model" else str(v) for k, v in zip(group_keys, g))
        epochs = sorted(int(e) for e in sub["epoch"].unique())
        for j, term in enumerate(terms):
            ax = axes[i][j]
            plotted, skipped = lines.draw(ax, sub, term)
            _finish_term_panel(ax, epochs, plotted, skipped)
            if i == 0:
                ax.set_title(term, fontsize=10)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
            if i == len(groups) - 1:
                ax.set_xlabel("epoch")
            ax.grid(True, alpha=0.3)
    handles = lines.legend_handles()
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), bbox_to_anchor=(0.5, -0.01),
               fontsize=9, frameon=False)
    nseeds = h["seed"].nunique() if "seed" in h.columns else 1
    fig.suptitle(f"Loss terms per epoch, one line per run and split ({nseeds} seed{'s' * (nseeds != 1)})",
                 fontsize=11)
    return _finish(fig, stem, dpi, rect=(0, 0.04, 1, 1))


def _loss_term_rows(history: pd.DataFrame, terms: Sequence[str], study: str | None,
                    splits: Sequence[str]) -> pd.DataFrame:
    """The history rows :func:`plot_loss_terms` draws (trained epochs of ``splits``, of
    ``study``); raises ``ValueError`` when there are none or a column is missing."""
    h = history[(history["epoch"] >= 1) & history["split"].isin(splits)]
    if study is not None and "study" in h.columns:
        h = h[h["study"] == study]
    if h.empty:
        raise ValueError(f"plot_loss_terms: no history rows with split in {list(splits)}"
                         + (f" and study == {study!r}" if study else ""))
    if not terms:
        raise ValueError("plot_loss_terms: no loss terms given")
    missing = [c for c in ("lambda_s", "epoch", "split", *terms) if c not in h.columns]
    if missing:
        raise ValueError(f"plot_loss_terms: history lacks columns {missing}")
    return h


@dataclass(frozen=True)
class _TermLines:
    """How :func:`plot_loss_terms` draws a run: the keys naming it, a colour per λ_s, a line
    style per split."""

    run_keys: list[str]
    lambdas: list[float]
    colours: list[str]
    splits: tuple[str, ...]
    styles: dict[str, str]

    def draw(self, ax, sub: pd.DataFrame, term: str) -> tuple[list[np.ndarray], set[str]]:
        """One line per run and split of ``term`` on ``ax``; (the plotted finite values, the
        splits skipped: all 0 or NaN, a term training did not compute)."""
        plotted, skipped = [], set()
        for run, part in sub.groupby(self.run_keys, sort=True):
            run_d = dict(zip(self.run_keys, run))
            colour = self.colours[self.lambdas.index(weight_key(run_d["lambda_s"])) % len(self.colours)]
            tag = "/".join(str(run_d[k]) for k in self.run_keys)
            for split in self.splits:
                line = part[part["split"] == split].sort_values("epoch")
                values = line[term].astype(float).to_numpy()
                finite = values[np.isfinite(values)]
                if line.empty:
                    continue
                if finite.size == 0 or np.all(finite == 0):  # a skipped term is logged as 0.0 (or NaN)
                    skipped.add(split)
                    continue
                plotted.append(finite)
                ax.plot(line["epoch"], values, self.styles[split], color=colour, linewidth=1,
                        alpha=0.8, marker="o" if len(line) < 3 else None, markersize=3,
                        gid=f"{term}:{tag}:{split}")
        return plotted, skipped

    def legend_handles(self) -> list:
        """A handle per λ_s (its colour) and per split (its line style)."""
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=self.colours[k % len(self.colours)], label=_mpl(f"λ_s = {lam:g}"))
                   for k, lam in enumerate(self.lambdas)]
        return handles + [Line2D([], [], color="0.3", linestyle=self.styles[s], label=s) for s in self.splits]


def _finish_term_panel(ax, epochs: list[int], plotted: list[np.ndarray], skipped: set[str]) -> None:
    """A loss-term panel's epoch ticks, its "not computed" notes and a log y-axis when every
    plotted value is positive."""
    from matplotlib.ticker import MaxNLocator

    if len(epochs) <= 10:
        ax.set_xticks(epochs)
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not plotted:
        ax.text(0.5, 0.5, "not computed\n(weight 0)", transform=ax.transAxes, ha="center", va="center",
                fontsize=9, color="0.4")
        ax.set_yticks([])
        return
    if skipped:
        ax.text(0.98, 0.98, f"{', '.join(sorted(skipped))}: not computed (0)", transform=ax.transAxes,
                ha="right", va="top", fontsize=7, color="0.4")
    if (np.concatenate(plotted) > 0).all():
        ax.set_yscale("log")
