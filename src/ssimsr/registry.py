"""Registries of architectures and loss terms: a new one is one file plus the config.

Like BasicSR's ``ARCH_REGISTRY`` / ``LOSS_REGISTRY``, every architecture and every loss
term registers itself where it is defined, and the rest of the code derives what it
needs from the registry:

* an architecture (``ssimsr/models/archs/<name>.py``, :func:`register_architecture`): its
  builder and whether its downscaler is learned. The workflow's ``model`` wildcard,
  the config check of study models and widths, the ``train_downscaler`` switch and
  the upscaling CLI's round trip all read it.
* a loss term (``ssimsr/models/terms/*.py``, :func:`register_loss_term`): its function and
  the name of its weight (lambda). The loss's weighted sum (``losses.loss_terms``),
  the history columns, the per-image values of the evaluation (``evaluate.loss_values``:
  metrics.csv, per_image.csv), the loss-share table, the loss-term figure and the config
  check of ``losses.lambda_*`` all read it. Its name is its column in history.csv,
  metrics.csv, per_image.csv, Tables 1 / A2 and the loss-share table (``share_<name>``),
  its ``label`` its header in every table (``tables.render.metric_label``).

Every module of ``ssimsr.models.archs`` and ``ssimsr.models.terms`` is imported on first use, so
dropping a file there registers it. Those modules import Keras inside their functions:
the Snakefile lists architectures and terms without starting Keras (about 7 s).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

#: The packages whose modules register architectures and loss terms.
PLUGIN_PACKAGES = ("ssimsr.models.archs", "ssimsr.models.terms")


class Registry(Generic[T]):
    """Named entries of one kind (architectures, loss terms, tables, stages, backends),
    each added once where it is defined; lookups name the kind and the registered names.

    ``discover``, when given, is called before the first lookup: it imports the modules
    whose definitions add the entries (the plugin packages), so that listing them costs
    nothing until someone asks.
    """

    def __init__(self, kind: str, *, discover: Callable[[], None] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._discover = discover

    def add(self, name: str, entry: T) -> T:
        """Add ``entry`` as ``name``; the same entry again is a no-op (a module re-imported),
        another entry under a taken name an error."""
        if not name.isidentifier() or name != name.lower():
            raise ValueError(f"{self.kind} name {name!r}: use lower-case letters, digits and _")
        old = self._entries.get(name)
        if old is not None and old != entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def _all(self) -> dict[str, T]:
        if self._discover is not None:
            self._discover()
        return self._entries

    def get(self, name: str, key: str | None = None) -> T:
        """The entry ``name``; a ValueError naming ``key`` (the config key or argument it
        came from) and every registered name otherwise."""
        entries = self._all()
        if name not in entries:
            where = f"{key}: " if key else ""
            raise ValueError(f"{where}unknown {self.kind} {name!r} (registered: {', '.join(entries)})")
        return entries[name]

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._all()))

    def __len__(self) -> int:
        return len(self._all())

    def names(self) -> list[str]:
        """The names in registration order."""
        return list(self._all())

    def items(self) -> list[tuple[str, T]]:
        return list(self._all().items())

    def values(self) -> list[T]:
        return list(self._all().values())


@dataclass(frozen=True)
class Architecture:
    """A downscaler/upscaler pair. ``build(scale, **widths)`` returns a ``models.ModelPair``."""

    name: str
    build: Callable
    learned_downscaler: bool  # trained end to end (IRN) or fixed (SR's decimation)

    @property
    def widths(self) -> dict:
        """The builder's keyword arguments besides ``scale``, with their defaults."""
        return {p.name: p.default for p in inspect.signature(self.build).parameters.values()
                if p.name != "scale" and p.default is not inspect.Parameter.empty}

    def check_widths(self, widths: dict, key: str = "models") -> None:
        unknown = sorted(set(widths) - set(self.widths))
        if unknown:
            raise ValueError(f"{key}.{self.name}: unknown width(s) {unknown}; {self.name} takes "
                             f"{sorted(self.widths)}")


@dataclass(frozen=True)
class LossTerm:
    """One term of the loss: ``weight * compute(batch)`` (``losses.LossBatch``).

    ``weight`` names its lambda: the config key ``losses.<weight>``, except ``lambda_s``
    (each study's grid). ``needs_extractor``: it uses the VGG19 features (evaluation
    computes it only for a run that trained with them, else leaves it empty). ``logged``:
    computed in training even when its weight is 0 (the train log shows it). ``compute``
    is also what evaluation calls, on a batch of one whole image (``evaluate.loss_values``).
    """

    name: str
    weight: str
    compute: Callable
    needs_extractor: bool = False
    logged: bool = False
    label: str = ""  # table header; the name if empty


def register_architecture(name: str, *, learned_downscaler: bool):
    """Decorator registering ``build(scale=2, **widths)`` as architecture ``name``."""
    def register(build: Callable) -> Callable:
        ARCHITECTURES.add(name, Architecture(name, build, learned_downscaler))
        return build
    return register


#: History columns a loss term cannot be named after.
RESERVED_TERM_NAMES = ("total", "psnr", "ssim", "epoch", "split", "seconds")


def register_loss_term(name: str, *, weight: str, needs_extractor: bool = False, logged: bool = False,
                       label: str = ""):
    """Decorator registering ``compute(batch) -> scalar tensor`` as loss term ``name``."""
    if name in RESERVED_TERM_NAMES:
        raise ValueError(f"loss term {name!r}: the name of a history column ({', '.join(RESERVED_TERM_NAMES)})")
    if not weight.startswith("lambda_"):
        raise ValueError(f"loss term {name!r}: its weight must be named lambda_<x>, got {weight!r}")

    def register(compute: Callable) -> Callable:
        LOSS_TERMS.add(name, LossTerm(name, weight, compute, needs_extractor, logged, label))
        return compute
    return register


@functools.cache
def discover() -> None:
    """Import every module of the plugin packages (once); each registers what it defines."""
    for package_name in PLUGIN_PACKAGES:
        package = importlib.import_module(package_name)
        # the built-in module first, so the paper's terms keep Eq. 11's order
        names = sorted(m.name for m in pkgutil.iter_modules(package.__path__))
        for name in sorted(names, key=lambda n: n != getattr(package, "FIRST", None)):
            importlib.import_module(f"{package_name}.{name}")


#: ``ssimsr/models/archs/<name>.py``: the workflow's ``model`` wildcard, the study models and widths check
ARCHITECTURES: Registry[Architecture] = Registry("architecture", discover=discover)
#: ``ssimsr/models/terms/*.py``, in registration order (the paper's four first)
LOSS_TERMS: Registry[LossTerm] = Registry("loss term", discover=discover)


def architectures() -> dict[str, Architecture]:
    return dict(ARCHITECTURES.items())


def architecture(name: str, key: str = "model") -> Architecture:
    return ARCHITECTURES.get(name, key)


def loss_terms() -> dict[str, LossTerm]:
    """The registered terms in registration order (the paper's four first)."""
    return dict(LOSS_TERMS.items())


def weight_names() -> list[str]:
    """The lambdas of the registered terms, in their order (``lambda_b, lambda_f, lambda_p, lambda_s``)."""
    return [term.weight for term in LOSS_TERMS.values()]
