"""How much the unknown offline resize moves the bicubic baseline (issue 23, deliverable 3).

The authors resized BSDS300 (481x321 -> 500 px on the longer side) outside their code, with
a filter nobody knows. A verdict on an absolute cell (ours vs the paper's PSNR) cannot see
that: the filter alone moves what a model-free baseline scores by more than the verdict's
noise. This module measures it. For a dataset with a ``resize`` (config
``datasets.<name>.resize``) it prepares the source images again under each candidate
filter (:data:`FILTERS`) exactly as ``prepare_dataset`` does (``data._prepare_filled``:
decode, ``apply_resize``, ``round_to_multiple``), with only the resize's Pillow filter
changed, and scores the bicubic baseline of each (``baseline.bicubic_baseline`` of the
decimated image, ``metrics.psnr`` and ``metrics.ssim_numpy``: the RGB metrics of the
``baseline`` stage, its SSIM in numpy rather than Keras, equal to 1e-7) on

* ``val``: the validation split's images (the prepared dataset's ``splits.csv``; with
  ``split.per_seed`` that is the shared split, seed 0's), and
* ``all``: every image of the sources,

so the table also gives our split's offset from the full set (``val`` - ``all``).

``none`` is the image without any resampling: no offline resize, each side centre-cropped
down to the multiple (``round_to_multiple(..., "crop")``; BSDS300: 481x321 -> 480x320).
The filters' rows round the resized image as the dataset does (``multiple_mode``).

:func:`preprocessing_table` (the ``preprocessing`` rule, via :func:`write_preprocessing`)
gives one tidy row per dataset x filter x image set (:data:`COLUMNS`): ``n_images`` and the
mean ``psnr`` / ``ssim``, ``configured`` marking the config's own filter.
:func:`preprocessing_note` turns a dataset's rows into one caption sentence.

The images are scored in a pool of processes forked from the job's (``workers``: the rule's
threads), one image (all its filters) per task: BSDS300's 300 images x 4 filters take about
56 s of CPU time, 43 s on 2 busy cores (~46 ms per image and filter).
"""

from __future__ import annotations

import collections
import concurrent.futures
import ctypes
import multiprocessing
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .baseline import bicubic_baseline
from ..config import fill_defaults
from ..data.data import BadImageError, _prepare_filled, resize_filter
from ..data.download import DataError
from .metrics import psnr, ssim_numpy
from ..data.sources import iter_members, load_receipt

#: The candidate offline resizes: Pillow's filters (``data.RESIZE_FILTERS``) and no resize.
FILTERS = ("bilinear", "bicubic", "lanczos", "none")
#: No offline resize and no resampling: each side centre-cropped down to the multiple.
NO_RESIZE = "none"
#: The image sets: the validation split's images, and every image of the sources.
IMAGE_SETS = ("val", "all")
#: The columns of :func:`preprocessing_table` (``results/eval/preprocessing.csv``).
COLUMNS = ["dataset", "resize_filter", "configured", "image_set", "n_images", "psnr", "ssim"]


def filter_options(options: dict, filter: str) -> dict:
    """``options`` (a dataset's config, schema defaults filled, with a ``resize``) with the
    offline resize's filter set to ``filter``; :data:`NO_RESIZE`: without the resize, sides
    centre-cropped to the multiple."""
    if filter == NO_RESIZE:
        return {**options, "resize": None, "multiple_mode": "crop"}
    return {**options, "resize": {**options["resize"], "filter": filter}}


def image_baseline(hr8: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) of the bicubic baseline of one prepared 8-bit RGB image, read as the
    ``baseline`` stage reads it (``/ 255`` in float32): ``metrics.psnr`` and
    ``metrics.ssim_numpy`` of ``baseline.bicubic_baseline``."""
    hr = np.asarray(hr8).astype(np.float32) / np.float32(255.0)
    # channel by channel (HxW, contiguous): the same values as bicubic_baseline(hr, scale),
    # in about 60 % of its time (its gathers run along contiguous rows)
    rec = np.stack([bicubic_baseline(np.ascontiguousarray(hr[..., c]), scale) for c in range(hr.shape[-1])],
                   axis=-1)
    return psnr(hr, rec), ssim_numpy(hr, rec)


def _score(payload: bytes, name: str, variants: dict[str, dict], scale: int, skip_bad: bool) -> list[tuple]:
    """(filter, psnr, ssim) of one source image under each variant's options; a bad image
    is left out of a variant when ``skip_bad`` (``on_bad_image: skip``), else raises."""
    rows = []
    for filter, options in variants.items():
        try:
            prepared = _prepare_filled(payload, name, options)
        except BadImageError:
            if skip_bad:
                continue
            raise
        rows.append((filter, *image_baseline(prepared.pixels, scale)))
    return rows


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def per_image_baseline(receipts: Sequence[str | os.PathLike], options: dict, scale: int,
                       sources: Sequence[dict] | None = None, filters: Iterable[str] = FILTERS,
                       workers: int | None = None) -> pd.DataFrame:
    """Per source image and filter: ``image`` (stem), ``resize_filter``, ``psnr``, ``ssim``
    of the bicubic baseline of the image prepared with that offline resize filter.

    ``receipts``/``sources`` as ``data.prepare_dataset`` takes them (the configured sources,
    for ``include`` and ``split``, in the order of the receipts); ``options`` the dataset's
    config, which must have a ``resize``. A DataError names what is wrong.
    """
    options = fill_defaults({**options, "scale": scale}, "dataset")
    if not options.get("resize"):
        raise DataError("resize: the dataset has no offline resize (datasets.<name>.resize), "
                        "so no filter to vary")
    filters = list(dict.fromkeys(filters))
    unknown = [f for f in filters if f != NO_RESIZE and f not in _pillow_filters()]
    if unknown:
        raise DataError(f"preprocessing filters: unknown {unknown} (Pillow's {', '.join(_pillow_filters())} "
                        f"or {NO_RESIZE!r})")
    sources = [fill_defaults(s, "source") for s in (sources or [{} for _ in receipts])]
    if len(sources) != len(receipts):
        raise DataError(f"{len(receipts)} receipts for {len(sources)} configured sources")
    variants = {f: filter_options(options, f) for f in filters}
    skip_bad = options["on_bad_image"] == "skip"
    workers = workers or default_workers()
    seen: dict[str, str] = {}
    rows: list[tuple] = []
    with _pool(workers) as pool:
        pending: collections.deque = collections.deque()
        for receipt, source in zip(receipts, sources):
            record = load_receipt(receipt)
            for member in iter_members(record, source["include"], source.get("split")):
                where = f"{member.source}:{member.name}"
                if member.stem in seen:
                    raise DataError(f"two images named {member.stem!r}: {seen[member.stem]} and {where}")
                seen[member.stem] = where
                # the payload is read here (a tar member only while its archive is open), at
                # most 2 per worker ahead of the scoring
                pending.append((member.stem, pool.submit(_score, member.read(), where, variants, scale, skip_bad)))
                while len(pending) > 2 * workers:
                    stem, future = pending.popleft()
                    rows += [(stem, *row) for row in future.result()]
        while pending:
            stem, future = pending.popleft()
            rows += [(stem, *row) for row in future.result()]
    if not seen:
        raise DataError(f"no image in the sources {[str(r) for r in receipts]}")
    return pd.DataFrame(rows, columns=["image", "resize_filter", "psnr", "ssim"])


class _Inline(concurrent.futures.Executor):
    """An executor that runs each call at once, in this process (one worker)."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised by result(), as a pool's would be
            future.set_exception(exc)
        return future


def _pool(workers: int) -> concurrent.futures.Executor:
    """``workers`` processes forked from this one (numpy's and Pillow's work holds the GIL
    too often for threads to scale); inline for one worker. Fork, not spawn: a spawned
    child would run the Snakemake script (``__main__``) again."""
    if workers <= 1:
        return _Inline()
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                                  initializer=_keep_freed_memory)


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _keep_freed_memory() -> None:
    """In a worker: glibc keeps freed blocks of up to 32 MiB in the heap instead of handing
    them back to the kernel (mmap / trim) after every array. The metrics allocate and free
    temporaries of ~10 MB per call, each one zero-filled by the kernel again: this halves
    the time per image (BSDS300: 79 -> 48 ms per image and filter). No-op without glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def _pillow_filters() -> tuple[str, ...]:
    from ..data.data import RESIZE_FILTERS

    return tuple(RESIZE_FILTERS)


def read_val_stems(splits: str | os.PathLike) -> list[str]:
    """The ``val`` stems of a prepared dataset's ``splits.csv`` (``stem, split``)."""
    path = Path(splits)
    if not path.is_file():
        raise DataError(f"{path}: splits file not found (run the prepare_dataset rule)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("stem", "split") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: lacks the columns {missing} (a prepared dataset's splits.csv has stem, split)")
    stems = sorted(frame.loc[frame["split"] == "val", "stem"])
    if not stems:
        raise DataError(f"{path}: no image in the val split")
    return stems


def summarise(per_image: pd.DataFrame, val_stems: Iterable[str], dataset: str, configured: str,
              where: str = "splits") -> pd.DataFrame:
    """:data:`COLUMNS` rows of one dataset from :func:`per_image_baseline`'s: per filter, the
    means over the ``val`` images and over ``all``. A val image that has no row (not among
    the sources) is a DataError naming ``where`` (the splits file)."""
    val = set(val_stems)
    unknown = sorted(val - set(per_image["image"]))
    if unknown:
        raise DataError(f"{where}: val images not among the sources of {dataset}: {unknown[:5]}")
    rows = []
    for filter, group in per_image.groupby("resize_filter", sort=False):
        for image_set in IMAGE_SETS:
            chosen = group[group["image"].isin(val)] if image_set == "val" else group
            rows.append({"dataset": dataset, "resize_filter": filter, "configured": filter == configured,
                         "image_set": image_set, "n_images": len(chosen),
                         "psnr": float(chosen["psnr"].mean()), "ssim": float(chosen["ssim"].mean())})
    return pd.DataFrame(rows, columns=COLUMNS)


def preprocessing_table(entries: Sequence[dict], scale: int, filters: Iterable[str] = FILTERS,
                        workers: int | None = None) -> pd.DataFrame:
    """:data:`COLUMNS` rows of every dataset of ``entries``; each entry a dict with
    ``dataset`` (its name), ``receipts``, ``options`` (its config: ``resize``, ``multiple``,
    ... as the prepare job gets them), ``sources`` (the configured sources) and ``splits``
    (its prepared ``splits.csv``, whose val images make the ``val`` rows). The config's own
    filter is always among the filters (``configured`` marks its rows)."""
    frames = []
    for entry in entries:
        missing = [k for k in ("dataset", "receipts", "options", "splits") if k not in entry]
        if missing:
            raise DataError(f"preprocessing entry {entry.get('dataset', '?')!r}: lacks the keys {missing}")
        name = entry["dataset"]
        if not entry["options"].get("resize"):
            raise DataError(f"datasets.{name}.resize: none configured, so no offline resize filter to vary")
        configured = resize_filter(entry["options"]["resize"])
        val = read_val_stems(entry["splits"])
        try:
            per_image = per_image_baseline(entry["receipts"], entry["options"], scale, entry.get("sources"),
                                           [*filters, configured], workers)
        except DataError as exc:
            raise DataError(f"datasets.{name}: {exc}") from None
        frames.append(summarise(per_image, val, name, configured, where=str(entry["splits"])))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


def write_preprocessing(entries: Sequence[dict], scale: int, out: str | os.PathLike,
                        filters: Iterable[str] = FILTERS, workers: int | None = None) -> pd.DataFrame:
    """:func:`preprocessing_table`, written to ``out`` (CSV) atomically; returns it."""
    from ..io.atomic import write_csv

    frame = preprocessing_table(entries, scale, filters, workers)
    write_csv(frame, out)
    return frame


def read_preprocessing(path: str | os.PathLike) -> pd.DataFrame:
    """``results/eval/preprocessing.csv`` as a frame (:data:`COLUMNS`); a ValueError naming
    the file when it lacks a column."""
    frame = pd.read_csv(path, dtype={"dataset": str, "resize_filter": str, "image_set": str})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: lacks the columns {missing} (rule preprocessing)")
    frame["configured"] = frame["configured"].astype(str).str.lower().isin(["true", "1"])
    return frame


def _filter_phrase(filter: str) -> str:
    return "no resize" if filter == NO_RESIZE else filter


def preprocessing_note(frame: pd.DataFrame, dataset: str) -> str:
    """One caption sentence on ``dataset``'s preprocessing uncertainty from
    :func:`preprocessing_table`'s rows: the bicubic baseline's validation PSNR under each
    offline resize, their spread, and our split's offset from all images (under the
    configured filter). Empty when ``frame`` has no rows for ``dataset``."""
    if frame is None or frame.empty or "dataset" not in frame.columns:
        return ""
    rows = frame[frame["dataset"].astype(str) == dataset]
    if rows.empty:
        return ""
    flags = rows["configured"] if "configured" in rows.columns else pd.Series(False, index=rows.index)
    configured = rows.loc[flags.astype(str).str.lower().isin(["true", "1"]), "resize_filter"]
    ours = str(configured.iloc[0]) if len(configured) else ""
    val = rows[rows["image_set"] == "val"]
    order = [f for f in FILTERS if f in set(val["resize_filter"])]
    order += [f for f in val["resize_filter"] if f not in order]
    by_filter = val.set_index("resize_filter")["psnr"]
    values = [float(by_filter[f]) for f in order]
    resized = [f for f in order if f != NO_RESIZE]
    names = " / ".join(resized) + " offline resize" if resized else ""
    if NO_RESIZE in order:
        names = f"{names} / no resize (crop only)" if names else "no resize (crop only)"
    sentence = (f"Preprocessing uncertainty ({dataset}): the bicubic baseline's validation PSNR is "
                f"{' / '.join(f'{v:.2f}' for v in values)} dB with a {names}"
                f"{f' (ours: {_filter_phrase(ours)})' if ours else ''}")
    if len(values) > 1:
        sentence += f", a spread of {max(values) - min(values):.2f} dB"
    mine = rows[rows["resize_filter"] == ours].set_index("image_set") if ours else rows.iloc[:0]
    if {"val", "all"} <= set(mine.index):
        offset = float(mine.loc["val", "psnr"]) - float(mine.loc["all", "psnr"])
        sentence += (f"; our validation split ({int(mine.loc['val', 'n_images'])} images) is {offset:+.2f} dB "
                     f"from all {int(mine.loc['all', 'n_images'])} images")
    return sentence + "."
