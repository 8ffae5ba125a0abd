"""The LPIPS backbones the evaluation reports, and the names of their result columns.

One home for the names: the statistics and the tables import them from here, without
``lpips_eval`` (which computes the distances) or torch. The config schema's
``evaluation.lpips_nets`` (its choices and its default) lists the same nets, as does
``lpips_eval.NETS``; tests/test_registry.py checks both.
"""

from __future__ import annotations

#: LPIPS backbones evaluated (the paper's "pretrained on AlexNet, SqueezeNet and VGG").
NETS = ("alex", "squeeze", "vgg")


def lpips_column(net: str) -> str:
    """The column of ``net``'s distance in lpips.csv, per_image.csv and the tables."""
    return f"lpips_{net}"


#: The distance columns of every net, in :data:`NETS` order (the paper's column order).
LPIPS_COLUMNS = tuple(lpips_column(net) for net in NETS)
