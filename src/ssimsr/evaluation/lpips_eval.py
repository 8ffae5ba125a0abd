"""LPIPS evaluation (Zhang et al. 2018) with the ``lpips`` package, fully offline.

The ``lpips`` package ships only its calibrated linear layers
(``lpips/weights/v0.1/<net>.pth``); its backbones are torchvision's official
ImageNet files, which ``lpips`` would normally download through
``torchvision.models.<net>(pretrained=True)``.  Here they are never downloaded:
a workflow rule (``fetch_lpips_backbones``) or the user puts torchvision's files in

    <weights_dir>/torch/hub/checkpoints/<file>

(the same layout as torchvision's own cache under ``TORCH_HOME``), and
:func:`load_lpips` builds the model like this:

1. ``lpips.LPIPS(net=net, pretrained=True, pnet_rand=True)``: the backbone is
   built with random weights (no network access) and the shipped linear layers
   are loaded;
2. the torchvision state_dict is read with ``torch.load(weights_only=True)``;
3. every backbone parameter/buffer of the LPIPS model, named
   ``slice<k>.<i>.<rest>`` (lpips splits ``tv.<net>(...).features`` into slices and
   keeps the feature index ``i`` as the module name), is taken from
   ``features.<i>.<rest>`` of the file and loaded with ``strict=True``.  A missing
   key or a shape mismatch raises :class:`LpipsUnavailable`, so a wrong or
   truncated file can never leave random weights in place.

The file name's 8 hex digits are the start of the file's sha256 (torch.hub's
convention); :func:`backbone_status` and :func:`load_lpips` check it unless
``verify_hash=False`` (used by tests with synthetic weights).

Images (float ``HxWx3`` RGB in ``[0, 1]``) are mapped to ``[-1, 1]`` (``2x - 1``)
as LPIPS expects.  Lower LPIPS = perceptually closer; identical images give 0.

``torch`` and ``lpips`` are imported lazily inside functions, so
``import ssimsr.evaluation.lpips_eval`` does not import torch.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .lpips_nets import NETS, lpips_column  # the nets and their column names: one home

__all__ = [
    "NETS",
    "BACKBONE_FILES",
    "backbone_urls",
    "LpipsUnavailable",
    "backbone_path",
    "backbone_status",
    "load_lpips",
    "lpips_distances",
    "lpips_table",
    "sha256_file",
]


#: torchvision's official ImageNet files used by ``lpips`` for each backbone.
BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
    "vgg": "vgg16-397923af.pth",
}



def backbone_urls(base_url: str) -> dict[str, str]:
    """Where each file comes from (the schema's ``weights.lpips.base_url``, for messages)."""
    return {net: f"{base_url.rstrip('/')}/{f}" for net, f in BACKBONE_FILES.items()}

_HASH_RE = re.compile(r"-([0-9a-f]{8,})\.pth$")


class LpipsUnavailable(RuntimeError):
    """An LPIPS backbone cannot be used; ``str(exc)`` / ``exc.reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _check_net(net: str) -> str:
    if net not in BACKBONE_FILES:
        raise ValueError(f"unknown LPIPS net {net!r}; expected one of {sorted(BACKBONE_FILES)}")
    return net


def backbone_path(weights_dir, net: str) -> Path:
    """``<weights_dir>/torch/hub/checkpoints/<torchvision file for net>``."""
    _check_net(net)
    return Path(weights_dir) / "torch" / "hub" / "checkpoints" / BACKBONE_FILES[net]


def expected_hash_prefix(net: str) -> str:
    """The sha256 prefix embedded in the backbone's file name (e.g. ``7be5be79``)."""
    m = _HASH_RE.search(BACKBONE_FILES[_check_net(net)])
    assert m is not None
    return m.group(1)


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path) -> str:
    """Hex sha256 of a file (cached per path, size and mtime within the process)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def backbone_status(weights_dir, net: str, verify_hash: bool = True) -> tuple[bool, str]:
    """Whether the backbone file for ``net`` is usable: ``(available, reason)``.

    * missing file -> ``(False, "<path> missing: run the fetch_lpips_backbones rule
      or copy torchvision's <file> there")``;
    * present but its sha256 does not start with the file name's 8-hex prefix ->
      ``(False, "<path> sha256 mismatch: expected prefix <p>, got <sha256>")``
      (skipped with ``verify_hash=False``);
    * otherwise ``(True, "ok")``.

    Only the file is checked here; its content format is checked by :func:`load_lpips`.
    """
    path = backbone_path(weights_dir, net)
    fname = BACKBONE_FILES[net]
    if not path.is_file():
        return (
            False,
            f"{path} missing: run the fetch_lpips_backbones rule or copy torchvision's {fname} there",
        )
    if verify_hash:
        prefix = expected_hash_prefix(net)
        actual = sha256_file(path)
        if not actual.startswith(prefix):
            return (
                False,
                f"{path} sha256 mismatch: expected prefix {prefix}, got {actual}",
            )
    return True, "ok"


def _backbone_state_for_lpips(lp_net, tv_state: dict, path: Path) -> dict:
    """Map torchvision ``features.<i>.<rest>`` keys to lpips ``slice<k>.<i>.<rest>`` keys."""
    target = lp_net.state_dict()
    mapped = {}
    for key, tensor in target.items():
        parts = key.split(".", 2)
        if len(parts) != 3 or not parts[0].startswith("slice"):
            raise LpipsUnavailable(f"unexpected lpips backbone parameter {key!r}")
        src = f"features.{parts[1]}.{parts[2]}"
        if src not in tv_state:
            raise LpipsUnavailable(
                f"{path} is not a torchvision state_dict for this net: key {src!r} missing"
            )
        value = tv_state[src]
        if tuple(value.shape) != tuple(tensor.shape):
            raise LpipsUnavailable(
                f"{path}: {src!r} has shape {tuple(value.shape)}, expected {tuple(tensor.shape)}"
            )
        mapped[key] = value
    return mapped


def load_lpips(net: str, weights_dir, verify_hash: bool = True):
    """Build an ``lpips.LPIPS`` model for ``net`` with the backbone from ``weights_dir``.

    Never accesses the network and never falls back to random backbone weights:
    raises :class:`LpipsUnavailable` when the file is missing, fails the sha256
    check (``verify_hash=True``), cannot be read with ``torch.load(weights_only=True)``
    or does not contain every backbone tensor with the right shape.  Every
    backbone parameter of the returned model equals the file's
    ``features.*`` tensor.  The model is in eval mode with gradients disabled.
    """
    _check_net(net)
    ok, reason = backbone_status(weights_dir, net, verify_hash=verify_hash)
    if not ok:
        raise LpipsUnavailable(reason)
    path = backbone_path(weights_dir, net)

    import torch
    import lpips

    try:
        tv_state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is "unavailable"
        raise LpipsUnavailable(f"{path} could not be read by torch.load: {exc}") from exc
    if not isinstance(tv_state, dict):
        raise LpipsUnavailable(f"{path} does not hold a state_dict (got {type(tv_state).__name__})")

    with warnings.catch_warnings():
        # lpips passes the deprecated `pretrained=False` to torchvision for pnet_rand=True
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)

    mapped = _backbone_state_for_lpips(model.net, tv_state, path)
    model.net.load_state_dict(mapped, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _to_tensor(img: np.ndarray, name: str):
    import torch

    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be an HxWx3 RGB array, got shape {arr.shape}")
    arr = np.clip(arr.astype(np.float32), 0.0, 1.0) * 2.0 - 1.0  # [0,1] -> [-1,1]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def _load_if_path(img):
    if isinstance(img, (str, os.PathLike)):
        from .metrics import load_image

        return load_image(img)
    return img


def _distance(model, hr, rec) -> float:
    import torch

    hr = _load_if_path(hr)
    rec = _load_if_path(rec)
    if np.shape(hr) != np.shape(rec):
        raise ValueError(f"hr and rec shapes differ: {np.shape(hr)} vs {np.shape(rec)}")
    with torch.no_grad():
        d = model(_to_tensor(hr, "hr"), _to_tensor(rec, "rec"))
    return float(d.reshape(-1)[0].item())


def _resolve_nets(nets) -> list[str]:
    if isinstance(nets, str):
        nets = [nets]
    nets = list(nets)
    for n in nets:
        _check_net(n)
    return nets


def lpips_table(
    pairs: Iterable,
    nets: Sequence[str] = NETS,
    weights_dir=".",
    verify_hash: bool = True,
    index: Sequence | None = None,
    label: str | None = None,
):
    """LPIPS for many ``(hr, rec)`` pairs, loading each net once.

    ``pairs`` yields ``(hr, rec)`` with float ``HxWx3`` arrays in ``[0, 1]`` (both
    are clipped to ``[0, 1]`` before the ``2x - 1`` mapping) or image paths (read with
    :func:`ssimsr.evaluation.metrics.load_image`).  Returns a ``pandas.DataFrame`` with one row
    per pair (index ``index`` if given) and, for each net, the columns

    * ``lpips_<net>``: the distance, or NaN for every row when the net is unavailable;
    * ``lpips_<net>_status``: ``"ok"`` or ``"unavailable: <reason>"``.

    The same statuses are in ``df.attrs["lpips_status"]`` (``{net: status}``). With a
    ``label``, progress lines (``<label>: 12/50 images, 3.1 img/s, eta 0:00:12``) go to stderr.
    """
    import pandas as pd

    from ..pipeline.progress import Progress

    nets = _resolve_nets(nets)
    models: dict[str, object] = {}
    status: dict[str, str] = {}
    for net in nets:
        try:
            models[net] = load_lpips(net, weights_dir, verify_hash=verify_hash)
            status[net] = "ok"
        except LpipsUnavailable as exc:
            status[net] = f"unavailable: {exc.reason}"

    pairs = list(pairs)
    progress = Progress(label, len(pairs)) if label and models else None
    rows = []
    for pair in (progress.wrap(pairs) if progress else pairs):
        hr, rec = pair
        row = {}
        for net in nets:
            row[lpips_column(net)] = _distance(models[net], hr, rec) if net in models else math.nan
        rows.append(row)

    columns = [lpips_column(net) for net in nets]
    df = pd.DataFrame(rows, columns=columns, dtype=float)
    if index is not None:
        df.index = list(index)
    for net in nets:
        df[f"{lpips_column(net)}_status"] = status[net]
    df = df[[c for net in nets for c in (lpips_column(net), f"{lpips_column(net)}_status")]]
    df.attrs["lpips_status"] = dict(status)
    return df


def lpips_distances(
    hr, rec, nets: Sequence[str] = NETS, weights_dir=".", verify_hash: bool = True
) -> dict[str, float]:
    """LPIPS of one pair: ``{"lpips_<net>": float}``, NaN for unavailable nets.

    Loads each model; for many pairs use :func:`lpips_table` (loads once).
    """
    df = lpips_table([(hr, rec)], nets, weights_dir, verify_hash=verify_hash)
    return {lpips_column(net): float(df[lpips_column(net)].iloc[0]) for net in _resolve_nets(nets)}


def lpips_for_run(hr_sets: dict, recon_dir, nets: Sequence[str], weights_dir, out_csv):
    """LPIPS of one run's reconstructions (``recon_dir/<set>/<image>.png``) against the HR images.

    ``hr_sets`` maps set name to HR image paths. Writes ``out_csv`` (set, image,
    lpips_<net>, lpips_<net>_status) atomically.
    """

    keys, pairs = [], []
    for set_name, paths in hr_sets.items():
        for hr in map(Path, paths):
            rec = Path(recon_dir) / set_name / f"{hr.stem}.png"
            if not rec.is_file():
                raise FileNotFoundError(f"{rec}: reconstruction missing (run the evaluate rule)")
            keys.append((set_name, hr.stem))
            pairs.append((hr, rec))
    table = lpips_table(pairs, nets, weights_dir, label=f"lpips {Path(recon_dir).parent}")
    table.insert(0, "image", [k[1] for k in keys])
    table.insert(0, "set", [k[0] for k in keys])
    from ..io.atomic import write_csv

    write_csv(table, out_csv)
    return table
