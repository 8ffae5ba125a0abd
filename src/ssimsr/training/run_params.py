"""A run's parameters (``RunParams``, written to its params.json) and what follows from
them alone: the loss terms it reports, its history's columns, its fingerprint.

Keras-free, so that the stages that read a run (evaluation, collection, status) do not
import the training code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from . import backends
from .. import registry

PRECISIONS = ("float32", "mixed_bfloat16")
#: losses.perceptual's norms (see there); the config schema's ``$defs/perceptual_norm`` repeats
#: them for JSON Schema (tests/test_losses.py checks), its ``losses.perceptual_norm`` holds the default
PERCEPTUAL_NORMS = ("relative", "raw")
#: Parameters added after runs were trained: an older params.json reads as if it had these.
ADDED_PARAMS = {"crops_per_image": 1, "augment": False}


def check_perceptual_norm(norm):
    """``norm`` if it is one of :data:`PERCEPTUAL_NORMS`, else a ValueError naming the key
    (the one check: a run's parameters and ``losses.perceptual`` call it)."""
    if norm not in PERCEPTUAL_NORMS:
        raise ValueError(f"perceptual_norm: unknown value {norm!r} (one of {', '.join(PERCEPTUAL_NORMS)})")
    return norm


def term_names() -> tuple[str, ...]:
    """``total`` and the registered loss terms: what every step reports."""
    return ("total", *registry.loss_terms())


def history_columns() -> list[str]:
    return ["epoch", "split", *term_names(), "psnr", "ssim", "seconds"]


def upgrade_params(values: dict) -> dict:
    """An older params.json in today's layout: a lambda at the top level (lambda_b / lambda_f /
    lambda_p before ``loss_weights``; lambda_s until it became one of them) is a loss weight;
    a parameter added since (:data:`ADDED_PARAMS`) takes the value that reproduces the old run."""
    values = {**{k: v for k, v in ADDED_PARAMS.items() if k not in values}, **values}
    flat = [k for k in values if k.startswith("lambda_")]
    if not flat:
        return values
    values["loss_weights"] = {**values.get("loss_weights", {}), **{k: values.pop(k) for k in flat}}
    return values


@dataclass
class RunParams:
    """Everything a training run depends on (written to params.json).

    No defaults here: the config schema holds them (``experiments.run_params`` builds a
    run from them by hand). What each key means: ``ssimsr/config.schema.yaml``.
    """

    model: str  # a registered architecture (ssimsr/models/archs)
    dataset: str
    seed: int
    epochs: int
    scale: int
    # the lambda of every registered loss term (ssimsr/models/terms): lambda_b, lambda_f, lambda_p, lambda_s, ...
    loss_weights: dict
    vgg_layers: list
    vgg_resize: int | None
    vgg_weights: str | None
    perceptual_norm: str
    shape_bucket: int | str  # buckets.py: "auto" pads only under JAX, 0 never, N to multiples of N
    learning_rate: float
    batch_size: int
    crop: int | None
    crops_per_image: int  # random crops of each training image per epoch (with crop)
    augment: bool  # each crop in one of its 8 orientations (flips, 90-degree turns), at random
    max_train_images: int | None
    checkpoint_every: int
    log_every: int
    jit_compile: bool
    precision: str
    train_downscaler: bool
    widths: dict
    backend: str  # part of the fingerprint: another backend gives other initial weights
    # the run's keys (runs.Run) when the workflow trains it; None for a run trained by hand
    run: dict | None = None

    @classmethod
    def from_dict(cls, values: dict) -> "RunParams":
        values = upgrade_params(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training parameter(s) {unknown}; known: {sorted(known)}")
        missing = sorted(f.name for f in fields(cls) if f.name not in values and f.name != "run")
        if missing:
            raise ValueError(f"missing training parameter(s) {missing}")
        params = cls(**values)
        params.validate()
        return params

    def weights(self) -> dict[str, float]:
        """Every registered loss term's lambda (``loss_weights``)."""
        return dict(self.loss_weights)

    def uses_extractor(self) -> bool:
        """A term that needs the VGG19 features has a weight > 0."""
        weights = self.weights()
        return any(weights[t.weight] > 0 for t in registry.loss_terms().values() if t.needs_extractor)

    def validate(self) -> None:
        arch = registry.architecture(self.model, key="model")
        arch.check_widths(self.widths, key="widths")
        expected = registry.weight_names()
        if sorted(self.loss_weights) != sorted(expected):
            raise ValueError(f"loss_weights: expected the lambdas {expected}, got {sorted(self.loss_weights)}")
        for name, value in self.weights().items():
            if value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        for name in ("epochs", "batch_size", "crops_per_image", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.batch_size > 1 and not self.crop:
            raise ValueError("batch_size > 1 needs `crop` (whole images differ in size)")
        if self.crops_per_image > 1 and not self.crop:
            raise ValueError("crops_per_image > 1 needs `crop` (it draws random crops)")
        if self.augment and not self.crop:
            raise ValueError("augment needs `crop` (it turns square crops; a turned whole image changes shape)")
        if self.crop and self.crop % self.scale:
            raise ValueError(f"crop: {self.crop} is not a multiple of scale {self.scale}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: unknown value {self.precision!r} {PRECISIONS}")
        if not (self.shape_bucket == "auto" or (isinstance(self.shape_bucket, int) and self.shape_bucket >= 0)):
            raise ValueError(f"shape_bucket: expected 'auto' or an integer >= 0, got {self.shape_bucket!r}")
        check_perceptual_norm(self.perceptual_norm)
        backend = backends.get(self.backend, key="backend")
        if self.jit_compile and self.uses_extractor() and not backend.jit_perceptual:
            raise ValueError(
                "jit_compile: XLA cannot compile the perceptual loss's VGG19 gradient under op "
                "determinism (no deterministic MaxPool gradient); set jit_compile to false (on "
                "CPU it is also 2-2.5x slower than the default) or lambda_p to 0")

    def as_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """Identifies the run for resuming: everything except logging cadence and names, plus
        the training code (the train stage's code digest). A checkpoint of other code is not
        resumed: when an edit of losses.py makes Snakemake rerun a finished training, the run
        starts over instead of re-exporting the old weights from its last checkpoint."""
        from ..pipeline.code_digest import code_digest

        values = asdict(self)
        values["code"] = code_digest("train")
        for key in ("log_every", "run"):
            values.pop(key)
        if values["shape_bucket"] in (0, "auto"):
            values.pop("shape_bucket")  # pads only where it leaves the numbers unchanged
        if not self.uses_extractor():
            values.pop("perceptual_norm")  # no perceptual term: the option changes nothing
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
