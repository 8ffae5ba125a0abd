"""IRN: a learned downscaler to a 4-channel LR tensor and a small upscaler (invertible blocks)."""

from ..registry import register_architecture


@register_architecture("irn", learned_downscaler=True)
def build_irn(scale=2, down_filters=128, up_filters=32, lr_channels=4):
    """82,052 + 6,691 parameters at x2 with the defaults (the reference code's widths)."""
    from ..models import ModelPair, build_irn_downscaler, build_irn_upscaler

    return ModelPair(build_irn_downscaler(scale, down_filters, lr_channels),
                     build_irn_upscaler(scale, up_filters, lr_channels))
