"""Per-image evaluation of trained runs (Keras side, any backend; LPIPS is in lpips_eval).

For every HR image of a run's validation split (and of the showcase set, for the runs
the paper shows in Figs. 4-9) the run reconstructs the image exactly as in training
(downscale with the run's downscaler, upscale) and records

* ``psnr``, ``ssim``: RGB in [0, 1], output clipped, keras.ops.image.ssim = tf.image.ssim defaults (as training);
* ``psnr_y``, ``ssim_y``: BT.601 luma with ``scale`` border pixels cropped (SR convention; a grey
  HR image scored on its grey values, ``metrics.psnr_y``);
* ``psnr_authors``, ``ssim_authors``: the authors' inference convention (unclipped output,
  scikit-image's default 7x7 uniform SSIM), which their per-image tables used;
* a column per registered loss term (``registry.loss_terms``: ``bw_mse``, ``fw_mse``,
  ``perceptual``, ``ssim_n``, then any term added under ``ssimsr/models/terms``), named as the
  registry names it and computed by the term itself on this one image (:func:`loss_values`):
  a new term's per-image values need no edit here. A term that needs the VGG19 features is
  empty (NaN) where they are unavailable (:func:`term_extractor`), never from random weights.

Metrics are computed on the float output; the reconstructions are also written as 8-bit
PNGs (``recon/<set>/<image>.png``) for LPIPS (torch side) and the figures.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..io.atomic import atomic_path, write_csv
from ..config import fill_defaults
from ..data.data import list_split
from ..pipeline.progress import Progress
from ..pipeline.runs import Run
from ..training.run_params import upgrade_params

def showcase_crop(rgb: np.ndarray, size: int, scale: int) -> np.ndarray:
    """Centre crop of ``size`` x ``size`` (or the largest square that fits), sides a multiple of ``scale``."""
    h, w = rgb.shape[:2]
    side = min(size, h, w)
    side -= side % scale
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top:top + side, left:left + side]


def prepare_showcase(entries: list[dict], data_root: str | os.PathLike, crop: int, scale: int,
                     out_dir: str | os.PathLike) -> list[Path]:
    """Write the showcase crops: each entry names a prepared image (dataset, split, index) or a file."""
    # the schema's defaults (split: val) for entries that leave them out
    entries = fill_defaults({"showcase": {"images": entries}}, "evaluation")["showcase"]["images"]
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in entries:
        if "path" in entry:
            src = Path(entry["path"])
        else:
            files = list_split(Path(data_root) / entry["dataset"], entry["split"])
            if entry["index"] >= len(files):
                raise ValueError(f"evaluation.showcase: index {entry['index']} but {entry['dataset']}/"
                                 f"{entry['split']} has {len(files)} images")
            src = files[entry["index"]]
        if not src.is_file():
            raise FileNotFoundError(f"evaluation.showcase: {src} does not exist")
        with Image.open(src) as img:
            rgb = np.asarray(img.convert("RGB"))
        Image.fromarray(showcase_crop(rgb, crop, scale)).save(tmp / f"{entry['name']}.png")
        written.append(out_dir / f"{entry['name']}.png")
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return written


def term_extractor(params: dict):
    """The frozen VGG19 features for the loss terms that need them (``needs_extractor``), built
    as the run's training built them (its ``vgg_weights`` file and ``vgg_layers``), or None.

    Only for a run that trained with them (such a term has a weight > 0: its training
    loaded the weights, which the workflow's evaluate rule then also takes as input). For
    the others (weight 0: training's validation never computed them either) and where the
    weights file is missing (a warning names it), those terms are unavailable: empty (NaN)
    in metrics.csv, never computed from random weights."""
    from .. import registry
    from ..training.run_params import RunParams

    names = [t.name for t in registry.loss_terms().values() if t.needs_extractor]
    if not names:
        return None
    try:
        uses_extractor = RunParams.from_dict(params).uses_extractor()
    except (ValueError, TypeError) as error:  # a params.json of a run saved by hand, not by training
        warnings.warn(f"{', '.join(names)}: unavailable, the run's params.json is not a training run's "
                      f"({error}); empty in metrics.csv", stacklevel=2)
        return None
    if not uses_extractor:
        print(f"{', '.join(names)}: not computed (weight 0: the run trained without the VGG19 features); "
              "empty in metrics.csv")
        return None
    path = params.get("vgg_weights")
    if not path or not Path(path).is_file():
        warnings.warn(f"{', '.join(names)}: unavailable, the run's VGG19 weights file {path!r} is missing "
                      "(never computed from random weights); empty in metrics.csv", stacklevel=2)
        return None
    from ..models.losses import build_feature_extractor, load_vgg19

    return build_feature_extractor(load_vgg19(path), params["vgg_layers"])


def loss_values(downscaler, hr: np.ndarray, rec: np.ndarray, extractor=None, *,
                perceptual_norm: str | None = None, resize_to: int | None = None) -> dict[str, float]:
    """One image's value of every registered loss term (``registry.loss_terms``, in their
    order), each computed by the term's own registered function on the backend (keras.ops)
    with a ``losses.LossBatch`` of this one image: the unclipped output, as training's
    validation computes them. So ``fw_mse`` compares D(HR) with D(reconstruction) also
    when λ_f = 0 (the authors' validation added it to its total), ``ssim_n`` = (1 − SSIM) / 2,
    and a term added under ``ssimsr/models/terms`` gets its column without an edit here. Their
    spread over the images gives the split-sampling noise of Table 1's loss columns
    (``ssimsr.analysis.noise``).

    A term that needs the VGG19 features is NaN without ``extractor`` (unavailable, never
    from random weights); with it, ``perceptual_norm`` and ``resize_to`` are the run's
    (``losses.perceptual``). The values are float32 sums (before this went through the
    terms, ``bw_mse`` / ``fw_mse`` were float64 NumPy means: the same within float32
    rounding, about 1e-6 relative)."""
    from keras import ops

    from .. import registry
    from ..models.losses import LossBatch, check_perceptual_norm

    if extractor is not None:
        check_perceptual_norm(perceptual_norm)
    hr_t, rec_t = (ops.convert_to_tensor(np.asarray(x, dtype=np.float32)[None]) for x in (hr, rec))
    batch = LossBatch(hr_t, rec_t, downscaler, perceptual_norm, extractor=extractor, resize_to=resize_to)
    return {term.name: (math.nan if term.needs_extractor and extractor is None
                        else float(ops.convert_to_numpy(term.compute(batch))))
            for term in registry.loss_terms().values()}


def evaluate_run(run: str | os.PathLike, image_sets: dict[str, list[Path]], out_dir: str | os.PathLike) -> pd.DataFrame:
    """Metrics of one run on named sets of HR images; writes metrics.csv and recon PNGs.
    Images from a grey source (``metrics.grey_images``) get ``psnr_y`` / ``ssim_y`` on their grey values.
    Columns: ``set, image``, ``metrics.METRIC_KEYS``, then every registered loss term (:func:`loss_values`)."""
    from .metrics import grey_images, image_metrics
    from .upscale import load_run, reconstruct_tiled

    params, downscaler, upscaler = load_run(run)
    scale = int(params["scale"])
    extractor = term_extractor(params)
    term_options = {"perceptual_norm": params.get("perceptual_norm"), "resize_to": params.get("vgg_resize")}
    out_dir = Path(out_dir)
    recon_root = out_dir / "recon"
    rows = []
    progress = Progress(f"evaluate {run}", sum(len(paths) for paths in image_sets.values()))
    for set_name, paths in image_sets.items():
        (recon_root / set_name).mkdir(parents=True, exist_ok=True)
        grey = dict(zip(map(Path, paths), grey_images(paths)))
        for path in progress.wrap(paths):
            with Image.open(path) as img:
                hr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
            h, w = hr.shape[:2]
            if h % scale or w % scale:
                raise ValueError(f"{path}: size {w}x{h} is not a multiple of scale {scale}")
            # tiles whose overlap covers the receptive field: equal to the whole-image
            # round trip (within 1e-5) with bounded memory, for any image size
            rec = reconstruct_tiled(params, downscaler, upscaler, hr, label=str(path))
            rows.append({"set": set_name, "image": path.stem, **image_metrics(hr, rec, scale, grey=grey[Path(path)]),
                         **loss_values(downscaler, hr, rec, extractor, **term_options)})
            png = np.round(np.clip(rec, 0, 1) * 255).astype(np.uint8)
            with atomic_path(recon_root / set_name / f"{path.stem}.png") as tmp:
                Image.fromarray(png).save(tmp)
    frame = pd.DataFrame(rows)
    from ..pipeline.provenance import write_provenance

    write_provenance(out_dir, "evaluate")  # informative: in no fingerprint, no rule's output
    write_csv(frame, out_dir / "metrics.csv")
    return frame


def with_origin(metrics: pd.DataFrame, dataset: str, data_root: str | os.PathLike,
                cache: dict | None = None) -> pd.DataFrame:
    """``metrics`` with an ``origin`` column after ``image``: the folder of the source member
    each image came from (``data.image_origins`` of its dataset's manifest), so results can
    be split by origin (BSDS300's byte-identical test images vs its re-encoded train images).

    Set ``val`` comes from the run's ``dataset``, a benchmark set (``set5``) from the
    dataset of that name; showcase crops have none (empty). A dataset without a manifest
    under ``data_root`` gives empty origins with a warning; an image its manifest lacks is
    an error naming the manifest.
    """
    from ..data.data import image_origins

    cache = {} if cache is None else cache
    values = pd.Series("", index=metrics.index, dtype=object)
    for set_name in metrics["set"].unique():
        if set_name == "showcase":
            continue
        source = dataset if set_name == "val" else str(set_name)
        if source not in cache:
            manifest = Path(data_root) / source / "manifest.csv"
            if manifest.is_file():
                cache[source] = image_origins(manifest.parent)
            else:
                warnings.warn(f"{manifest}: not found; set {set_name!r} gets no image origin", stacklevel=2)
                cache[source] = None
        if cache[source] is None:
            continue
        rows = metrics["set"] == set_name
        stems = metrics.loc[rows, "image"].astype(str)
        missing = sorted(set(stems) - set(cache[source]))
        if missing:
            raise ValueError(f"{Path(data_root) / source / 'manifest.csv'}: no row for the images {missing[:5]} "
                             f"of set {set_name!r}")
        values[rows] = stems.map(cache[source])
    out = metrics.drop(columns=["origin"], errors="ignore")
    out.insert(list(out.columns).index("image") + 1, "origin", values)
    return out


def collect(train_dirs: list[str | os.PathLike], eval_dirs: list[str | os.PathLike],
            data_root: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per_image, history): every run's metrics (+ LPIPS) and training history, long format.

    ``train_dirs[i]`` and ``eval_dirs[i]`` are the same run's folders; its keys are read
    from the params.json that training wrote (``runs.Run``).
    """
    if len(train_dirs) != len(eval_dirs):
        raise ValueError(f"collect: {len(train_dirs)} training folders but {len(eval_dirs)} evaluation folders")
    per_image, history = [], []
    origins: dict[str, dict[str, str] | None] = {}  # dataset -> its images' origins, read once
    for train_dir, ev in zip(map(Path, train_dirs), map(Path, eval_dirs)):
        params = upgrade_params(json.loads((train_dir / "params.json").read_text()))
        # a run trained before params.json recorded its keys: its folder names them
        run = (Run.from_mapping(params["run"]) if params.get("run") else Run.parse(train_dir)).as_dict()
        # image names as text: DIV2K's 0001 must stay 0001 to be found in the manifest
        metrics = pd.read_csv(ev / "metrics.csv", dtype={"image": str})
        lpips_file = ev / "lpips.csv"
        if lpips_file.exists():
            lp = pd.read_csv(lpips_file, dtype={"image": str})
            metrics = metrics.merge(lp, on=["set", "image"], how="left", validate="one_to_one")
        metrics = with_origin(metrics, run["dataset"], data_root, origins)
        per_image.append(metrics.assign(**run))
        hist = pd.read_csv(train_dir / "history.csv")
        n_train = len(list((Path(data_root) / run["dataset"] / "train").glob("*.png")))
        if params["max_train_images"]:
            n_train = min(n_train, params["max_train_images"])
        # a learned downscaler's read-out PSNR at init (train.write_readout); NaN for the others
        readout = train_dir / "readout.json"
        readout_psnr = float(json.loads(readout.read_text())["psnr"]) if readout.exists() else float("nan")
        # the lambdas and the perceptual scale: the loss-share table weights the terms with them
        history.append(hist.assign(**run, epochs=params["epochs"], dataset_size=n_train,
                                   vgg_layers="+".join(params["vgg_layers"]),  # λ_s: a run key already
                                   **{k: v for k, v in params["loss_weights"].items() if k not in run},
                                   perceptual_norm=params["perceptual_norm"], readout_psnr=readout_psnr))
    first = list(Run.keys())
    per_image_df = pd.concat(per_image, ignore_index=True)
    per_image_df = per_image_df[first + [c for c in per_image_df.columns if c not in first]]
    history_df = pd.concat(history, ignore_index=True)
    history_df = history_df[first + [c for c in history_df.columns if c not in first]]
    return per_image_df, history_df
