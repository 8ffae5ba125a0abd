"""SR: a weight-free decimating downscaler and a residual pixel-shuffle upscaler."""

from ..registry import register_architecture


@register_architecture("sr", learned_downscaler=False)
def build_sr(scale=2, filters=64, res_blocks=8):
    """742,339 parameters at x2 with the defaults (the reference code's widths)."""
    from ..models import ModelPair, build_sr_downscaler, build_sr_upscaler

    return ModelPair(build_sr_downscaler(scale), build_sr_upscaler(scale, filters, res_blocks))
