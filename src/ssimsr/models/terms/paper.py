"""The four terms of the paper's loss (Eq. 11), in its order; the maths is in ``losses``."""

from ...registry import register_loss_term


@register_loss_term("bw_mse", weight="lambda_b", logged=True, label="bwMSE")
def backward_mse(batch):
    from ..losses import bw_mse

    return bw_mse(batch.hr, batch.rec, batch.region)


@register_loss_term("fw_mse", weight="lambda_f", label="fwMSE")
def forward_mse(batch):
    from ..losses import fw_mse

    return fw_mse(batch.hr, batch.rec, batch.downscaler, lr=batch.lr, region=batch.region)


@register_loss_term("perceptual", weight="lambda_p", needs_extractor=True, label="L_perc")
def perceptual_distance(batch):
    from ..losses import perceptual

    return perceptual(batch.hr, batch.rec, batch.extractor, resize_to=batch.resize_to,
                      norm=batch.perceptual_norm, region=batch.region)


# logged: training's SSIM metric is read off it (ssim = 1 - 2 ssim_n)
@register_loss_term("ssim_n", weight="lambda_s", logged=True, label="L_SSIM_N")
def normalised_ssim(batch):
    from ..losses import ssim_n

    return ssim_n(batch.hr, batch.rec, batch.region)
