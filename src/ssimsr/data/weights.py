"""Pretrained weight files: fetched by localrules, verified, loaded from a path.

Nothing in training or evaluation downloads weights. ``fetch_vgg19`` and
``fetch_lpips_backbones`` put the official files into ``resources/weights/`` (or copy a
local file the user names), checking the published hash, and jobs load them from there.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..io.atomic import write_text
from .download import DownloadPolicy, copy_verified, download_file
from .sources import is_url, local_path

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "its outputs are checksum-verified files"

#: The Keras VGG19 no-top ImageNet weights of the perceptual loss (``losses.load_vgg19``):
#: the file's name and md5 as Keras publishes them. The workflow fetches it to
#: ``resources/weights/<name>`` (workflow/rules/common.smk); the config schema's defaults
#: (``weights.vgg19.uri`` / ``md5``, ``losses.vgg_weights``) name the same file, which
#: tests/test_registry.py checks.
VGG19_NOTOP_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"


def fetch_weight_file(uri: str, dest: str | os.PathLike, expected: str | None,
                      algorithm: str = "sha256", prefix: bool = False,
                      policy: DownloadPolicy | None = None) -> str:
    """Download (URL; retried and resumed, see ssimsr.data.download) or copy (local path) one
    weights file to ``dest``, verified."""
    if is_url(uri):
        actual, _ = download_file(uri, Path(dest), expected, algorithm, prefix, policy=policy)
    else:
        actual, _ = copy_verified(local_path(uri), Path(dest), expected, algorithm, prefix)
    return actual


def fetch_lpips_backbones(weights_dir: str | os.PathLike, nets: list[str], status_file: str | os.PathLike,
                          base_url: str | None, local_dir: str | None = None,
                          policy: DownloadPolicy | None = None) -> dict[str, str]:
    """Put torchvision's backbone files where ``lpips_eval`` loads them; record each net's status.

    Each file's sha256 must start with the 8 hex digits in its name. A net whose file
    cannot be had (offline, bad hash, fetching disabled with ``base_url=None``) is
    recorded as ``unavailable: <reason>`` instead of failing the workflow: LPIPS columns
    are then reported as unavailable, never computed from random weights.
    """
    import json
    import warnings

    from ..evaluation.lpips_eval import BACKBONE_FILES, backbone_path, backbone_status, expected_hash_prefix

    status = {}
    for net in nets:
        dest = backbone_path(weights_dir, net)
        ok, reason = backbone_status(weights_dir, net)
        if not ok:
            file = BACKBONE_FILES[net]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if local_dir:
                        copy_verified(Path(local_dir) / file, dest, expected_hash_prefix(net), prefix=True)
                    elif base_url:
                        download_file(base_url.rstrip("/") + "/" + file, dest, expected_hash_prefix(net),
                                      prefix=True, policy=policy)
                    else:
                        raise RuntimeError("fetching is disabled (weights.lpips.fetch: false)")
                ok, reason = backbone_status(weights_dir, net)
            except Exception as exc:  # offline, bad hash, missing local file: all reported
                ok, reason = False, f"{file} could not be fetched: {exc}"
        status[net] = "ok" if ok else f"unavailable: {reason}"
    write_text(status_file, json.dumps(status, indent=2, sort_keys=True) + "\n")
    return status
