"""Training of one run: a (model, dataset, lambda_s, seed, VGG layers) combination.

The paper's regime is the default: Adam (lr 5e-4), batch 1, whole images, shuffled each
epoch, validation after every epoch. Random crops with a batch size are an option for
speed. A run directory holds:

``params.json``      the resolved parameters the run was trained with
``history.csv``      one row per epoch and split (train, val): every loss term, PSNR, SSIM;
                     first an epoch-0 val row, the initial weights before any step (the
                     terms' starting balance; the train log warns when one weighted term
                     exceeds the others' sum by more than 100x there or at the end).
                     Rewritten atomically after every epoch (and at a resumed start, from
                     the checkpoint), so it can be read while the run trains
``progress.csv``     the same rows, written at the same moments; not a workflow output:
                     Snakemake deletes a failed job's outputs (``history.csv`` among them)
                     and again before its rerun, so this is the history that survives a
                     killed job, to watch it (``ssimsr status``). A resumed run rewrites
                     it from its checkpoint, dropping epochs after the last checkpoint
``upscaler.keras``   final upscaler; ``downscaler.keras`` its downscaler
``readout.json``     a learned downscaler (IRN): the PSNR of a linear read-out of its
                     initial LR tensor (``readout``), computed on a fresh start
``checkpoint/``      ``state.npz`` every ``checkpoint_every`` epochs: weights, optimiser
                     state, history so far (written atomically). A rerun of a killed job
                     resumes from it; with a fixed seed on CPU the result equals an
                     uninterrupted run, because every epoch's shuffling and crops come
                     from ``default_rng([seed, epoch])`` rather than a running RNG.
                     The one before is kept as ``state.prev.npz``: a checkpoint found
                     unreadable (a machine crash can cut it short) is moved aside to
                     ``state.npz.corrupt`` (logged) and the run resumes from the one
                     before, else starts afresh (``ssimsr.training.checkpoints``).
``checkpoint/attempts.csv``  one row per start of ``train`` (attempt, time, host, pid, the
                     epoch it starts from); every start also prints a header line
                     ``=== attempt 2, 2026-12-02 10:31:07 on node17 (pid 4242): resuming
                     from epoch 3 of 20`` (or ``fresh start``). The workflow keeps the train
                     log across attempts (``ssimsr.pipeline.jobs``), so the lines separate them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backends
from .. import registry
from ..io.atomic import write_csv, write_text
from .checkpoints import find_checkpoint, load_checkpoint, save_checkpoint, save_model, write_timing
from .run_params import RunParams, history_columns, term_names  # noqa: F401  (the run's parameters)

log = logging.getLogger(__name__)

class NonFiniteLoss(RuntimeError):
    pass


# --------------------------------------------------------------------------- data

def load_split(data_dir: str | os.PathLike, split: str, limit: int | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Prepared PNGs of one split as uint8 arrays (uint8 keeps DIV2K at 2.4 GB)."""
    from PIL import Image

    from ..data.data import list_split

    paths = list_split(data_dir, split)[:limit]
    if not paths:
        raise FileNotFoundError(f"{Path(data_dir) / split}: no PNG images")
    images = []
    for p in paths:
        with Image.open(p) as img:
            images.append(np.asarray(img.convert("RGB")))
    return [p.stem for p in paths], images


def epoch_batches(images: list[np.ndarray], params: RunParams, epoch: int):
    """Batches of one epoch as float32 [B,H,W,3] in [0,1]; a pure function of (seed, epoch).

    With ``crop``, each image gives ``crops_per_image`` random crops, shuffled together; with
    ``augment``, each crop is shown in one of its 8 orientations (a horizontal flip or not, then
    0-3 quarter turns), drawn from a stream of its own: the same crops as without ``augment``."""
    rng = np.random.default_rng([params.seed, epoch])
    orientations = np.random.default_rng([params.seed, epoch, 1]) if params.augment else None
    order = rng.permutation(len(images) * params.crops_per_image) % len(images)
    if not params.crop:
        for i in order:
            yield images[i][None].astype(np.float32) / 255.0
        return
    size = params.crop
    for start in range(0, len(order), params.batch_size):
        crops = []
        for i in order[start:start + params.batch_size]:
            img = images[i]
            h, w = img.shape[:2]
            if h < size or w < size:
                raise ValueError(f"crop {size} is larger than training image {i} ({w}x{h})")
            # crops start on the scale grid, so decimation sees the same pixel phase
            top = int(rng.integers(0, (h - size) // params.scale + 1)) * params.scale
            left = int(rng.integers(0, (w - size) // params.scale + 1)) * params.scale
            crop = img[top:top + size, left:left + size]
            if orientations is not None:
                flip, turns = orientations.integers(2), orientations.integers(4)
                # decimated from another corner: another pixel phase of the image, an equally valid pair
                crop = np.rot90(crop[:, ::-1] if flip else crop, turns)
            crops.append(crop)
        yield np.stack(crops).astype(np.float32) / 255.0


def steps_per_epoch(params: RunParams, n_images: int) -> int:
    """Training steps in one epoch of ``n_images`` training images (:func:`epoch_batches`)."""
    if not params.crop:
        return n_images
    return math.ceil(n_images * params.crops_per_image / params.batch_size)


def _batch(batch: np.ndarray, bucket: int) -> tuple:
    """Step arguments: (batch,) or, with a bucket size, (padded batch, valid size)."""
    from .buckets import pad_batch

    return pad_batch(batch, bucket) if bucket else (batch,)


# --------------------------------------------------------------------------- training

def _format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Trainer:
    """Builds the networks, the loss and the backend's compiled steps of one run."""

    def __init__(self, params: RunParams):
        import keras

        from ..models import losses, models

        backend = backends.get(params.backend)
        backends.check_active(params.backend)
        self.params = params
        keras.utils.set_random_seed(params.seed)
        backend.make_deterministic()
        keras.mixed_precision.set_global_policy(params.precision)
        try:
            self.pair = models.build_pair(params.model, scale=params.scale,
                                          freeze_downscaler=not params.train_downscaler, **params.widths)
            self.extractor = None
            if params.uses_extractor():
                vgg = losses.load_vgg19(params.vgg_weights)
                self.extractor = losses.build_feature_extractor(vgg, params.vgg_layers)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        if params.precision != "float32":
            # Same layers and variables; outputs cast back to float32 for the loss and metrics.
            self.pair = models.ModelPair(_float32_outputs(self.pair.downscaler),
                                         _float32_outputs(self.pair.upscaler))
            if self.extractor is not None:
                self.extractor = _float32_outputs(self.extractor)
        self.weights = params.weights()
        self.optimizer = keras.optimizers.Adam(learning_rate=params.learning_rate)
        self.variables = self.pair.trainable_variables
        self.optimizer.build(self.variables)
        self.steps = backend.make_steps(self)

    def models(self):
        return [m for m in (*self.pair, self.extractor) if m is not None]

    def terms(self, hr, training, valid=None):
        """Loss terms, PSNR and SSIM of one batch: the computation every backend's step runs.

        Training: the terms the loss needs (zero-weight fwMSE / perceptual skipped), SSIM
        of the raw output. Validation: every term (computed even when its weight is 0),
        PSNR and SSIM on the output clipped to [0, 1]. ``valid`` = [height, width] of the
        image inside a zero-padded bucket (``buckets``): the same numbers, few shapes.
        """
        from keras import ops

        from ..models import losses
        from .buckets import Region, masked_call

        hr = ops.convert_to_tensor(hr, dtype="float32")
        region = None if valid is None else Region(valid, (ops.shape(hr)[1], ops.shape(hr)[2]))
        if region is None:
            lr = self.pair.downscaler(hr, training=training)
            rec = self.pair.upscaler(lr, training=training)
        else:
            lr = masked_call(self.pair.downscaler, hr, region)
            rec = masked_call(self.pair.upscaler, lr, region)
        terms = losses.loss_terms(hr, rec, self.pair.downscaler, self.weights, self.extractor, lr=lr,
                                  resize_to=self.params.vgg_resize, every_term=not training,
                                  perceptual_norm=self.params.perceptual_norm, region=region)
        clipped = ops.clip(rec, 0.0, 1.0)
        terms["psnr"] = -10.0 * ops.log(losses.bw_mse(hr, clipped, region)) / math.log(10.0)
        terms["ssim"] = 1.0 - 2.0 * terms["ssim_n"] if training else losses.ssim(hr, clipped, region)
        return terms

    def export_pair(self):
        """The pair to save: float32 networks with the trained weights, whatever the precision."""
        self.steps.sync()
        if self.params.precision == "float32":
            return self.pair
        from ..models import models

        pair = models.build_pair(self.params.model, scale=self.params.scale,
                                 freeze_downscaler=not self.params.train_downscaler, **self.params.widths)
        pair.upscaler.set_weights(self.pair.upscaler.get_weights())
        pair.downscaler.set_weights(self.pair.downscaler.get_weights())
        return pair

    def bucket_for(self, images: list[np.ndarray]) -> int:
        """Bucket size for whole images of a split (0: no padding), see ``RunParams.shape_bucket``."""
        from .buckets import check_divisible, choose_bucket

        shapes = {img.shape[:2] for img in images}
        if self.params.crop or self.params.shape_bucket == 0:
            return 0
        if self.params.shape_bucket == "auto":
            size = choose_bucket(shapes) if backends.get(self.params.backend).compiles_per_shape else 0
        else:
            size = int(self.params.shape_bucket)
        if size:
            # a padded batch runs VGG19 to its fourth pooling (1/16) when the perceptual term is on
            check_divisible(shapes, 16 if self.extractor is not None else self.params.scale, "a split")
        return size

    def validate(self, images: list[np.ndarray], bucket: int = 0) -> dict:
        pending = [self.steps.evaluate(*_batch(img[None].astype(np.float32) / 255.0, bucket)) for img in images]
        rows = self.steps.fetch(pending)
        return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def _float32_outputs(model):
    """``model`` (shared layers and variables) with its outputs cast to float32."""
    import keras

    cast = [keras.layers.Activation("linear", dtype="float32", name=f"{model.name}_float32_{i}")(out)
            for i, out in enumerate(model.outputs)]
    return keras.Model(model.inputs, cast if len(cast) > 1 else cast[0], name=model.name)


def initial_downscaler(params: RunParams):
    """A fresh downscaler with the initial weights ``Trainer(params)`` starts from (same seed,
    same construction order, same precision policy): the read-out of a resumed run."""
    import keras

    from ..models import models

    keras.utils.set_random_seed(params.seed)
    keras.mixed_precision.set_global_policy(params.precision)
    try:
        pair = models.build_pair(params.model, scale=params.scale,
                                 freeze_downscaler=not params.train_downscaler, **params.widths)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return pair.downscaler if params.precision == "float32" else _float32_outputs(pair.downscaler)


#: the read-out's limits: 8 images per split, 50,000 fitted blocks (BSDS300's 8 training images
#: have 317,440; the PSNR moves by <= 0.04 dB). About 0.5 s for a demo run (full widths, 256 px
#: photos, 2 loaded cores), most of it the downscaler's forward passes.
READOUT_LIMITS = {"max_images": 8, "max_rows": 50_000}


def write_readout(path: Path, params: RunParams, downscaler, train_images: list[np.ndarray],
                  val_images: list[np.ndarray], source: str) -> dict:
    """The linear read-out PSNR of ``downscaler`` (``readout``) into ``path``, logged."""
    from . import readout

    t0 = time.perf_counter()
    result = readout.readout_psnr(readout.keras_downscale(downscaler), train_images, val_images,
                                  scale=params.scale, **READOUT_LIMITS)
    result.update(fingerprint=params.fingerprint(), seed=params.seed, weights=source,
                  seconds=round(time.perf_counter() - t0, 3))
    write_text(path, json.dumps(result, indent=2) + "\n")
    print(f"downscaler read-out at init: {readout.describe(result)}"
          + ("" if source == "init" else f" [{source}]"), file=sys.stderr, flush=True)
    return result


def _readout_on_resume(path: Path, params: RunParams, train_images, val_images) -> None:
    """Keep the read-out written at the fresh start; recompute it (same seed) if it is missing."""
    if path.exists():
        try:
            kept = json.loads(path.read_text())
        except ValueError:
            kept = {}
        if kept.get("fingerprint") == params.fingerprint():
            log.info("downscaler read-out at init: %.2f dB (kept from %s)", kept.get("psnr", math.nan), path)
            return
    # Trainer's initial weights are a function of the seed (keras.utils.set_random_seed):
    # a downscaler built the same way has them. Nothing random follows in training.
    write_readout(path, params, initial_downscaler(params), train_images, val_images,
                  f"recomputed on resume from a fresh downscaler of seed {params.seed}")


def _check_balance(history: list[dict], params: RunParams, epoch: int) -> None:
    """Log the weighted terms' shares of the validation total at ``epoch``; warn on a >100x term."""
    from . import balance

    for row in history:
        if row["epoch"] == epoch and row["split"] == "val":
            balance.check(row, params.weights(), "before training (epoch 0)" if epoch == 0 else f"epoch {epoch}")


# --------------------------------------------------------------------------- attempts

#: Files of a run folder that record its attempts and its progress (read by ``ssimsr status``).
PROGRESS_FILE = "progress.csv"
ATTEMPTS_FILE = "checkpoint/attempts.csv"
ATTEMPT_COLUMNS = ["attempt", "started", "host", "pid", "start_epoch", "epochs"]



def checkpoint_epoch(path: Path, fingerprint: str) -> int | None:
    """The epoch a checkpoint of this run resumes from (``path``, else the one kept before
    it, if readable); None without one (or only of another run)."""
    return find_checkpoint(path, fingerprint).epoch


def read_attempts(out_dir: str | os.PathLike) -> list[dict]:
    """The rows of ``checkpoint/attempts.csv`` (empty when the run never started)."""
    path = Path(out_dir) / ATTEMPTS_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def begin_attempt(params: RunParams, out_dir: str | os.PathLike) -> str:
    """Record a new attempt of the run in ``out_dir`` and print its header line to stderr.

    ``=== attempt N, <date> on <host> (pid P): resuming from epoch k of n`` or ``fresh
    start`` (``..., the checkpoint belongs to other parameters`` when one is ignored,
    ``..., the checkpoint is unreadable`` when none can be read; ``train`` moves such a
    file aside).
    ``runner.train_run`` calls it before the device line, so that the header is the first
    line of the attempt in the log, and tells ``train`` (``begun``).
    """
    out = Path(out_dir)
    ckpt = out / "checkpoint" / "state.npz"
    found = find_checkpoint(ckpt, params.fingerprint())  # only looks: train moves an unreadable one aside
    start = found.epoch
    attempts = read_attempts(out)
    number = len(attempts) + 1
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    host, pid = socket.gethostname(), os.getpid()
    if start is not None:
        where = f"resuming from epoch {start} of {params.epochs}"
        if found.unreadable:
            where += f" ({found.path.name}: {', '.join(e.path.name for e in found.unreadable)} unreadable)"
    elif found.unreadable:
        where = "fresh start, the checkpoint is unreadable"
    else:
        where = "fresh start" + (", the checkpoint belongs to other parameters" if found.other_run else "")
    row = {"attempt": number, "started": started, "host": host, "pid": pid, "start_epoch": start or 0,
           "epochs": params.epochs}
    path = out / ATTEMPTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.is_file() else ",".join(ATTEMPT_COLUMNS) + "\n"
    write_text(path, text + ",".join(str(row[c]) for c in ATTEMPT_COLUMNS) + "\n")
    line = f"=== attempt {number}, {started} on {host} (pid {pid}): {where}"
    print(line, file=sys.stderr, flush=True)
    return line


def write_history(history: list[dict], out: Path) -> None:
    """The history so far into ``history.csv`` and ``progress.csv``, each atomically."""
    import pandas as pd

    frame = pd.DataFrame(history, columns=history_columns())
    for name in ("history.csv", PROGRESS_FILE):
        write_csv(frame, out / name)


@dataclass
class _Attempt:
    """What one attempt of :func:`train` carries from its setup through its epochs to its end."""

    params: RunParams
    out: Path
    trainer: Trainer
    train_images: list[np.ndarray]
    val_images: list[np.ndarray]
    train_bucket: int
    val_bucket: int
    start_epoch: int
    history: list[dict]
    fingerprint: str  # params.fingerprint(), computed once (it hashes the training code)
    done_steps: int = 0  # training steps of this attempt so far
    t_run: float = 0.0  # when its first epoch began (perf_counter)

    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint" / "state.npz"

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.params, len(self.train_images))


def train(params: RunParams, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
          stop_after_epoch: int | None = None, begun: bool = False):
    """Train one run into ``out_dir``; resume from its checkpoint if one exists. Returns
    the history (a pandas DataFrame, ``history_columns()``).

    ``stop_after_epoch`` ends the process early (after that epoch's checkpoint) as if it
    had been killed: used by tests of resuming. ``history.csv`` / ``progress.csv`` then
    hold the epochs 0 to ``stop_after_epoch``. ``begun``: the caller has begun the attempt
    (:func:`begin_attempt`), else this does.
    """
    import pandas as pd

    attempt = _setup(params, data_dir, Path(out_dir), begun)
    attempt.t_run = time.perf_counter()
    for epoch in range(attempt.start_epoch + 1, params.epochs + 1):
        _train_epoch(attempt, epoch)
        if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < params.epochs:
            return pd.DataFrame(attempt.history, columns=history_columns())
    return _finish_run(attempt)


def _setup(params: RunParams, data_dir: str | os.PathLike, out: Path, begun: bool) -> _Attempt:
    """Begins the attempt (unless the caller did), writes params.json, loads the splits, builds
    the trainer and restores its checkpoint, or starts afresh with the epoch-0 validation row;
    writes the history so far."""
    out.mkdir(parents=True, exist_ok=True)
    if not begun:
        begin_attempt(params, out)
    write_text(out / "params.json", json.dumps(params.as_dict(), indent=2, sort_keys=True) + "\n")
    from ..pipeline.provenance import write_provenance

    write_provenance(out, "train")  # what runs this attempt (informative: in no fingerprint)
    _, train_images = load_split(data_dir, "train", params.max_train_images)
    val_names, val_images = load_split(data_dir, "val")
    if params.crop:
        small = min(min(i.shape[:2]) for i in train_images)
        if small < params.crop:
            raise ValueError(f"crop: {params.crop} exceeds the smallest training image side ({small} px)")

    trainer = Trainer(params)
    ckpt = out / "checkpoint" / "state.npz"
    fingerprint = params.fingerprint()
    restored = load_checkpoint(ckpt, trainer.pair, trainer.optimizer, trainer.variables, fingerprint)
    start_epoch, history = restored if restored else (0, [])
    train_bucket, val_bucket = trainer.bucket_for(train_images), trainer.bucket_for(val_images)
    if train_bucket or val_bucket:
        print(f"shape buckets: train {train_bucket or 'off'}, val {val_bucket or 'off'} px "
              f"({len({i.shape for i in train_images})} train / {len({i.shape for i in val_images})} val shapes)",
              file=sys.stderr, flush=True)
    attempt = _Attempt(params, out, trainer, train_images, val_images, train_bucket, val_bucket, start_epoch,
                       history, fingerprint)
    readout_file = out / "readout.json"
    learned = registry.architecture(params.model).learned_downscaler
    if restored:
        trainer.steps.reload()
        log.info("resuming %s from epoch %d", out, start_epoch)
        if learned:
            _readout_on_resume(readout_file, params, train_images, val_images)
    else:  # epoch 0: every term on the validation split before the first step
        if learned:  # the initial LR tensor: how much of the image a linear read-out recovers
            write_readout(readout_file, params, trainer.pair.downscaler, train_images, val_images, "init")
        t_val = time.perf_counter()
        history.append({"epoch": 0, "split": "val", **trainer.validate(val_images, val_bucket),
                        "seconds": time.perf_counter() - t_val})
    write_history(history, out)  # resumed: the checkpoint's rows (later ones of a killed attempt go)
    _check_balance(history, params, 0)
    return attempt


def _train_epoch(attempt: _Attempt, epoch: int) -> None:
    """One epoch: its training steps, then validation; its rows appended to the history, the
    checkpoint saved when due, the history written."""
    params, trainer, history = attempt.params, attempt.trainer, attempt.history
    t_epoch = time.perf_counter()
    sums = _train_steps(attempt, epoch)
    train_row = {k: v / attempt.steps_per_epoch for k, v in sums.items()}
    train_seconds = time.perf_counter() - t_epoch
    history.append({"epoch": epoch, "split": "train", **train_row, "seconds": train_seconds})
    t_val = time.perf_counter()
    val_row = trainer.validate(attempt.val_images, attempt.val_bucket)
    history.append({"epoch": epoch, "split": "val", **val_row, "seconds": time.perf_counter() - t_val})
    print(f"epoch {epoch}/{params.epochs} val psnr={val_row['psnr']:.3f} ssim={val_row['ssim']:.4f} "
          f"total={val_row['total']:.5f} ({train_seconds:.1f}s train)", file=sys.stderr, flush=True)
    if epoch % params.checkpoint_every == 0 or epoch == params.epochs:
        trainer.steps.sync()
        save_checkpoint(attempt.ckpt, epoch, trainer.pair, trainer.optimizer, history, attempt.fingerprint)
    write_history(history, attempt.out)


def _train_steps(attempt: _Attempt, epoch: int) -> dict[str, float]:
    """The training steps of one epoch, a progress line every ``log_every`` steps; the sums of
    the logged terms, PSNR and SSIM over its steps. A non-finite term is :class:`NonFiniteLoss`."""
    params, trainer = attempt.params, attempt.trainer
    steps_per_epoch = attempt.steps_per_epoch
    total_steps = steps_per_epoch * (params.epochs - attempt.start_epoch)
    terms_logged = term_names()
    sums = dict.fromkeys(terms_logged + ("psnr", "ssim"), 0.0)
    # Terms stay on the device until a log line needs them: one transfer per
    # log_every steps instead of a host round trip per step (JAX, GPUs).
    pending: list = []
    for step, batch in enumerate(epoch_batches(attempt.train_images, params, epoch), start=1):
        pending.append(trainer.steps.train(*_batch(batch, attempt.train_bucket)))
        attempt.done_steps += 1
        if step % params.log_every and step != steps_per_epoch:
            continue
        first = step - len(pending) + 1
        for offset, terms in enumerate(trainer.steps.fetch(pending)):
            if not all(math.isfinite(terms[k]) for k in terms_logged):
                raise NonFiniteLoss(
                    f"non-finite loss at epoch {epoch}, step {first + offset}: "
                    + ", ".join(f"{k}={terms[k]}" for k in terms_logged)
                    + f"; last good checkpoint: {attempt.ckpt if attempt.ckpt.exists() else 'none'}"
                )
            for k in sums:
                sums[k] += terms[k]
        pending = []
        rate = (time.perf_counter() - attempt.t_run) / attempt.done_steps
        print(f"epoch {epoch}/{params.epochs} step {step}/{steps_per_epoch} "
              + " ".join(f"{k}={terms[k]:.5f}" for k in terms_logged)
              + f" {rate:.3f}s/step eta {_format_eta(rate * (total_steps - attempt.done_steps))}",
              file=sys.stderr, flush=True)
    return sums


def _finish_run(attempt: _Attempt):
    """The end of training: the final balance check, timing.json and the saved networks;
    the history as a DataFrame."""
    import pandas as pd

    params, trainer = attempt.params, attempt.trainer
    _check_balance(attempt.history, params, params.epochs)
    write_timing(attempt.out / "timing.json", trainer.steps.compile_stats, time.perf_counter() - attempt.t_run,
                 attempt.done_steps, params.backend)
    frame = pd.DataFrame(attempt.history, columns=history_columns())
    export = trainer.export_pair()
    save_model(export.upscaler, attempt.out / "upscaler.keras")
    save_model(export.downscaler, attempt.out / "downscaler.keras")
    return frame
