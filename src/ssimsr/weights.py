"""Pretrained weight files: fetched by localrules, verified, loaded from a path.

Nothing in training or evaluation downloads weights. ``fetch_vgg19`` and
``fetch_lpips_backbones`` put the official files into ``resources/weights/`` (or copy a
local file the user names), checking the published hash, and jobs load them from there.
"""

from __future__ import annotations

import os
from pathlib import Path

from .data import copy_verified, download_file, is_url, local_path

TORCHVISION_URL = "https://download.pytorch.org/models/{file}"


def fetch_weight_file(uri: str, dest: str | os.PathLike, expected: str | None,
                      algorithm: str = "sha256", prefix: bool = False) -> str:
    """Download (URL) or copy (local path) one weights file to ``dest``, verified."""
    if is_url(uri):
        actual, _ = download_file(uri, Path(dest), expected, algorithm, prefix, timeout=120)
    else:
        actual, _ = copy_verified(local_path(uri), Path(dest), expected, algorithm, prefix)
    return actual
