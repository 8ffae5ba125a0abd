"""Registries of architectures and loss terms: a new one is one file plus the config.

Like BasicSR's ``ARCH_REGISTRY`` / ``LOSS_REGISTRY``, every architecture and every loss
term registers itself where it is defined, and the rest of the code derives what it
needs from the registry:

* an architecture (``ssimsr/archs/<name>.py``, :func:`register_architecture`): its
  builder and whether its downscaler is learned. The workflow's ``model`` wildcard,
  the config check of study models and widths, the ``train_downscaler`` switch and
  the upscaling CLI's round trip all read it.
* a loss term (``ssimsr/terms/*.py``, :func:`register_loss_term`): its function and
  the name of its weight (lambda). The loss's weighted sum (``losses.loss_terms``),
  the history columns, the loss-share table and the config check of ``losses.lambda_*``
  all read it.

Every module of ``ssimsr.archs`` and ``ssimsr.terms`` is imported on first use, so
dropping a file there registers it. Those modules import Keras inside their functions:
the Snakefile lists architectures and terms without starting Keras (about 7 s).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Callable

#: The packages whose modules register architectures and loss terms.
PLUGIN_PACKAGES = ("ssimsr.archs", "ssimsr.terms")


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
    (each study's grid). ``needs_extractor``: it uses the VGG19 features. ``logged``:
    computed in training even when its weight is 0 (the train log shows it).
    """

    name: str
    weight: str
    compute: Callable
    needs_extractor: bool = False
    logged: bool = False
    label: str = ""  # table header; the name if empty


_ARCHITECTURES: dict[str, Architecture] = {}
_LOSS_TERMS: dict[str, LossTerm] = {}
_discovered = False


def register_architecture(name: str, *, learned_downscaler: bool):
    """Decorator registering ``build(scale=2, **widths)`` as architecture ``name``."""
    def register(build: Callable) -> Callable:
        _add(_ARCHITECTURES, name, Architecture(name, build, learned_downscaler), "architecture")
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
        _add(_LOSS_TERMS, name, LossTerm(name, weight, compute, needs_extractor, logged, label), "loss term")
        return compute
    return register


def _add(registry: dict, name: str, entry, what: str) -> None:
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"{what} name {name!r}: use lower-case letters, digits and _")
    old = registry.get(name)
    if old is not None and old != entry:
        raise ValueError(f"{what} {name!r} is registered twice")
    registry[name] = entry


def discover() -> None:
    """Import every module of the plugin packages (once); each registers what it defines."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for package_name in PLUGIN_PACKAGES:
        package = importlib.import_module(package_name)
        # the built-in module first, so the paper's terms keep Eq. 11's order
        names = sorted(m.name for m in pkgutil.iter_modules(package.__path__))
        for name in sorted(names, key=lambda n: n != getattr(package, "FIRST", None)):
            importlib.import_module(f"{package_name}.{name}")


def architectures() -> dict[str, Architecture]:
    discover()
    return dict(_ARCHITECTURES)


def architecture(name: str, key: str = "model") -> Architecture:
    found = architectures()
    if name not in found:
        raise ValueError(f"{key}: unknown architecture {name!r} (registered: {', '.join(found)})")
    return found[name]


def loss_terms() -> dict[str, LossTerm]:
    """The registered terms in registration order (the paper's four first)."""
    discover()
    return dict(_LOSS_TERMS)


def weight_names() -> list[str]:
    """The lambdas of the registered terms, in their order (``lambda_b, lambda_f, lambda_p, lambda_s``)."""
    return [term.weight for term in loss_terms().values()]
