"""The install extras (pyproject.toml's ``optional-dependencies``), as the code meets them.

The core install (``pip install ssimsr``) upscales with trained runs and exported models on
JAX's CPU build, exports runs and rebuilds the tables and figures from existing results;
TensorFlow, torch, lpips and snakemake come with extras (``train``, ``torch``, ``lpips``,
``workflow``; ``all`` is the full system, ``test`` the full system and pytest). Which extra
brings a package is read from the installed package's metadata, so pyproject.toml stays its
one home:

* :func:`missing_extra`: a missing optional package (a ``ModuleNotFoundError``) as one line
  naming the extra to install, ``pip install "ssimsr[lpips]"``; ``runner.one_line_errors``
  prints it for every stage, the ``ssimsr`` commands' and the workflow's jobs alike;
* :func:`usable_backend`: the Keras backend to load a model on, the one it was trained on
  where it is installed, else an installed one (``ssimsr upscale`` in a core install, where
  a run trained on TensorFlow runs on JAX); :func:`require_backend` for a backend asked for
  by name (``--backend``, ``KERAS_BACKEND``, a run evaluated on its own).

Nothing here imports a backend: ``importlib.util.find_spec`` only looks.
"""

from __future__ import annotations

import importlib.util
import logging
import re

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "install hints: which extra brings a package; changes no result"

log = logging.getLogger(__name__)

DISTRIBUTION = "ssimsr"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


class MissingExtra(RuntimeError):
    """An optional package is not installed; the message names the extra that brings it."""


def extras_of_package() -> dict[str, list[tuple[str, int]]]:
    """package (lower case, ``-`` for ``_``) -> [(extra, how many packages it brings)] from the
    installed metadata; extras that gather others (``ssimsr[...]``) are left out. Empty where
    ssimsr is not installed (a source tree on ``sys.path``)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires(DISTRIBUTION) or []
    except PackageNotFoundError:
        return {}
    direct: dict[str, list[str]] = {}
    for requirement in requirements:
        extra = _EXTRA.search(requirement)
        name = _NAME.match(requirement)
        if extra is None or name is None:
            continue  # a core dependency
        package = name.group(1).lower().replace("_", "-")
        if package == DISTRIBUTION:
            continue  # a self-reference: all, test, cuda
        direct.setdefault(extra.group(1), []).append(package)
    found: dict[str, list[tuple[str, int]]] = {}
    for extra, packages in direct.items():
        for package in packages:
            found.setdefault(package, []).append((extra, len(packages)))
    return found


def core_packages() -> set[str]:
    """The core install's packages (pyproject's ``dependencies``), from the installed metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires(DISTRIBUTION) or []
    except PackageNotFoundError:
        return set()
    return {name.group(1).lower().replace("_", "-") for requirement in requirements
            if _EXTRA.search(requirement) is None and (name := _NAME.match(requirement))}


def extra_for(package: str, stage: str | None = None) -> str | None:
    """The extra that installs ``package`` (a module's top-level name): the one named after
    ``stage`` where it brings the package (``lpips`` for torch in the LPIPS stage), else the
    smallest one that brings it (``torch`` for torch, ``train`` for TensorFlow); None where
    no extra does."""
    candidates = extras_of_package().get(package.lower().replace("_", "-"), [])
    if not candidates:
        return None
    if stage is not None and any(extra == stage for extra, _ in candidates):
        return stage
    return min(candidates, key=lambda c: (c[1], c[0]))[0]


def install_hint(extra: str) -> str:
    return f'pip install "ssimsr[{extra}]"'


def missing_extra(exc: BaseException, stage: str | None = None) -> str | None:
    """One line for a ``ModuleNotFoundError`` of an optional package: which package is
    missing and the command that installs its extra; None for any other error (a bug)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    package = exc.name.split(".")[0]
    extra = extra_for(package, stage)
    if extra is None:
        return None
    return (f"{package} is not installed; it comes with the {extra} extra: {install_hint(extra)} "
            f"(or \"ssimsr[all]\" for the full system)")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _backend_hint(name: str) -> str:
    extra = extra_for(name)
    return f"{install_hint(extra)}" if extra else f"install {name}"


def require_backend(name: str) -> None:
    """MissingExtra (one line naming the extra) where Keras backend ``name`` is not installed."""
    if not installed(name):
        raise MissingExtra(f"the Keras backend {name} is not installed: {_backend_hint(name)}, or pick an "
                           "installed one with --backend (KERAS_BACKEND)")


def usable_backend(preferred: str) -> str:
    """``preferred`` (the backend a run was trained on) where it is installed, else the first
    installed backend of ``backends.BACKENDS`` (a note in the log says so: the pixels agree
    to float32 rounding, not bit for bit); MissingExtra where none is."""
    from ..training.backends import BACKENDS

    if preferred not in BACKENDS or installed(preferred):
        return preferred  # an unknown name is named by backends.get, where it is used
    for name in BACKENDS.names():
        if installed(name):
            log.warning("trained on %s, which is not installed here (%s); running on %s",
                        preferred, _backend_hint(preferred), name)
            return name
    # the core install's backend (pyproject's core dependencies), and the extra that brings it alone
    core = [name for name in BACKENDS.names() if name in core_packages()]
    extra = extra_for(core[0]) if core else None
    raise MissingExtra(f"no Keras backend is installed ({', '.join(BACKENDS.names())}): "
                       + (f"{install_hint(extra)} (the core install's {core[0]})" if extra else "pip install ssimsr"))
