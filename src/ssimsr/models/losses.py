"""Composite loss of the paper (Eq. 11), as plain functions of tensors.

``hr`` and ``rec`` are float32 [B, H, W, 3] tensors in [0, 1] (``rec`` may
leave that range: the SR upscaler is not clipped).

    total = lambda_b * bw_mse + lambda_f * fw_mse + lambda_p * perceptual
            + lambda_s * ssim_n,        ssim_n = (1 - SSIM) / 2

``lambda_s = 2`` is exactly the non-normalised ``1 - SSIM`` loss. The four terms are
registered in ``ssimsr/models/terms/paper.py`` (``ssimsr.registry``); :func:`loss_terms` sums
every registered term with its lambda, so a new term is one file there.

Corrections to the reference code (see reference-code-facts.md):

* ``fw_mse`` compares D(hr) with D(rec), not D(hr) with itself, so it is not
  identically zero.
* The VGG19 feature extractor is loaded from a real weights file and frozen;
  callers must pass only the SR/IRN variables to the optimiser. Missing
  weights raise ``FileNotFoundError``: random weights are never used silently.
* Perceptual inputs go through ``keras.applications.vgg19.preprocess_input``
  (x255, RGB->BGR, ImageNet mean subtraction) and are not resized unless
  ``resize_to`` is given (the reference squashed to 224x224).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
from keras import ops

from .. import registry
from ..training.run_params import PERCEPTUAL_NORMS, check_perceptual_norm
from ..data.weights import VGG19_NOTOP_FILENAME, VGG19_NOTOP_MD5

__all__ = [
    "DEFAULT_VGG_LAYERS",
    "LossBatch",
    "PERCEPTUAL_NORMS",
    "VGG19_NOTOP_FILENAME",
    "VGG19_NOTOP_MD5",
    "build_feature_extractor",
    "bw_mse",
    "check_perceptual_norm",
    "fw_mse",
    "load_vgg19",
    "loss_terms",
    "loss_weights",
    "perceptual",
    "ssim",
    "ssim_n",
]

DEFAULT_VGG_LAYERS = ("block4_conv4", "block5_conv4")
#: Floor of a layer's mean |feature| in the relative normalisation (features of 0-255
#: caffe-preprocessed inputs; only an all-zero target layer comes near it).
RELATIVE_EPS = 1e-6


def _as_float(images):
    return ops.convert_to_tensor(images, dtype="float32")


def _mean(values, region=None):
    """Mean over all elements, or over the image inside a padded batch (buckets.Region)."""
    return ops.mean(values) if region is None else region.mean(values)


def _call(model, images, region=None):
    if region is None:
        return model(images, training=False)
    from ..training.buckets import masked_call

    return masked_call(model, images, region)


def bw_mse(hr, rec, region=None):
    """Backward MSE (Eq. 7, as a mean): pixel error of the reconstruction.

    ``region`` (every term): the image inside a zero-padded batch (``buckets``)."""
    return _mean(ops.square(_as_float(hr) - _as_float(rec)), region)


def fw_mse(hr, rec, downscaler, lr=None, region=None):
    """Forward MSE (Eq. 8): ``MSE(D(hr), D(rec))`` with the pair's downscaler D.

    ``lr`` may pass an already computed ``D(hr)`` to save a forward pass.
    For the IRN (learned D) it is non-zero whenever the reconstruction
    differs in a way D sees; gradients flow into D through both terms. For
    SR, D is decimation ``x[::s, ::s]``, so this term only sees the pixels
    on the decimated grid: it is zero when ``rec`` equals ``hr`` there, even
    if the other pixels differ.
    """
    if lr is None:
        lr = _call(downscaler, _as_float(hr), region)
    return _mean(ops.square(_as_float(lr) - _call(downscaler, _as_float(rec), region)), region)


def ssim(hr, rec, region=None):
    """Mean over the batch of ``keras.ops.image.ssim(max_val=1.0)`` with its defaults.

    11x11 Gaussian window (sigma 1.5), k1 0.01, k2 0.03, valid region only,
    averaged over RGB channels: the definition of ``tf.image.ssim``, on any
    Keras backend. Sides must be at least 11 pixels. With ``region``, the same
    formula averaged over the windows that lie inside the image.
    """
    if region is None:
        return ops.mean(ops.image.ssim(_as_float(hr), _as_float(rec), max_val=1.0))
    return _ssim_inside(_as_float(hr), _as_float(rec), region)


def _gaussian_window(size=11, sigma=1.5):
    """keras.ops.image.ssim's window, computed the same way (same float32 rounding)."""
    x = ops.arange(size, dtype="float32") - (size - 1) / 2.0
    g = ops.exp(-(x ** 2) / (2.0 * sigma ** 2))
    g = g / ops.sum(g)
    return ops.reshape(ops.outer(g, g), (size, size, 1, 1))


def _ssim_inside(hr, rec, region, k1=0.01, k2=0.03, size=11):
    """keras.ops.image.ssim's computation (max_val 1), its map averaged over the windows
    inside ``region`` only: a window at map row i covers image rows i .. i + size - 1."""
    kernel = _gaussian_window(size)
    batch, height, width, channels = ops.shape(hr)  # dynamic in a TensorFlow graph

    def filtered(x):  # channels as batch items, as keras.ops.image.ssim does
        x = ops.reshape(ops.transpose(x, (0, 3, 1, 2)), (batch * channels, height, width, 1))
        return ops.conv(x, kernel, strides=1, padding="valid")

    mu1, mu2 = filtered(hr), filtered(rec)
    sigma1 = filtered(hr * hr) - mu1 * mu1
    sigma2 = filtered(rec * rec) - mu2 * mu2
    sigma12 = filtered(hr * rec) - mu1 * mu2
    c1, c2 = k1 ** 2, k2 ** 2
    ssim_map = ((2.0 * mu1 * mu2 + c1) * (2.0 * sigma12 + c2)
                / ((mu1 * mu1 + mu2 * mu2 + c1) * (sigma1 + sigma2 + c2)))
    rows = ops.arange(height - size + 1) <= region.valid[0] - size
    cols = ops.arange(width - size + 1) <= region.valid[1] - size
    inside = ops.cast(ops.logical_and(ops.expand_dims(rows, 1), ops.expand_dims(cols, 0)), ssim_map.dtype)
    count = ops.sum(inside) * ops.cast(batch * channels, ssim_map.dtype)
    return ops.sum(ssim_map * inside[None, :, :, None]) / count


def ssim_n(hr, rec, region=None):
    """Normalised SSIM loss (Eq. 10): ``(1 - SSIM) / 2``, in [0, 1]."""
    return (1.0 - ssim(hr, rec, region)) / 2.0


# --------------------------------------------------------------------------
# Perceptual loss
# --------------------------------------------------------------------------


def load_vgg19(weights_path):
    """VGG19 without its classifier, with ImageNet weights from a local file.

    ``weights_path`` must be the Keras no-top h5 file
    (``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``). Nothing is
    downloaded here and random weights are never substituted. The returned
    model is frozen.
    """
    if weights_path is None or not os.path.isfile(os.fspath(weights_path)):
        raise FileNotFoundError(
            f"VGG19 weights not found (weights path: {weights_path!r}). The perceptual "
            f"loss needs ImageNet weights: run the `fetch_vgg19` workflow rule, or set "
            f"`losses.vgg_weights` in the config to a local copy of {VGG19_NOTOP_FILENAME} "
            f"(md5 {VGG19_NOTOP_MD5}). Set lambda_p to 0 to train without it."
        )
    vgg = keras.applications.VGG19(
        include_top=False, weights=os.fspath(weights_path), input_shape=(None, None, 3)
    )
    vgg.trainable = False
    return vgg


def build_feature_extractor(vgg, layers=DEFAULT_VGG_LAYERS):
    """Frozen model mapping a preprocessed image to the list of ``layers`` outputs."""
    outputs = [vgg.get_layer(name).output for name in layers]
    extractor = keras.Model(vgg.input, outputs, name="vgg19_features")
    extractor.trainable = False
    return extractor


def perceptual(hr, rec, extractor, resize_to=None, *, norm, region=None):
    """Eq. 9, the VGG19 feature distance of ``rec`` from ``hr``, in one of two scales
    (``norm``, one of :data:`PERCEPTUAL_NORMS`; no default here: the config schema's
    ``losses.perceptual_norm`` holds it).

    Input, both norms: images scaled to [0, 255] and preprocessed the way *these*
    weights were trained (Keras' VGG19 file is the original Caffe model of Simonyan
    & Zisserman: BGR, ImageNet channel mean subtracted, no division by a standard
    deviation). BasicSR's ``use_input_norm`` (RGB in [0, 1], ImageNet mean / std) is
    the right input for torchvision's VGG19, which was trained that way; fed to the
    Caffe weights it would be about 58x too small and in the wrong channel order,
    so it is not used here. ``resize_to`` optionally resizes both images
    bilinearly to a square first (the reference used 224).

    ``norm="raw"`` (the reference code, the paper's Eq. 9): the sum over layers of
    the mean squared feature difference. Its scale is that of the features: with
    0-255 inputs, deep VGG19 activations are in the tens to hundreds, so the term
    can exceed bwMSE (about 1e-3) and SSIM_N (1e-2 to 1e-1) by orders of magnitude,
    and a layer pair mixing an early and a deep layer is dominated by one of them.

    ``norm="relative"`` (the workflow default, ``losses.perceptual_norm``): the mean
    over layers of the L1 feature difference relative to the target's mean
    activation,

        (1 / L) * sum_l  mean|phi_l(hr) - phi_l(rec)| / max(mean|phi_l(hr)|, eps)

    (means over the batch, positions and channels; the denominator depends only on
    the target and is held constant for the gradient). This is BasicSR's
    ``PerceptualLoss`` (``basicsr/losses/basic_loss.py``: L1 criterion by default,
    a weight per layer, the weighted layer distances summed) with each layer's
    weight set to 1 / (L * mean|phi_l(hr)|) instead of a hand-tuned constant. It is
    the per-layer counterpart of SRGAN's fixed rescaling of the VGG features by
    1/12.75 "to obtain VGG losses of a scale that is comparable to the MSE loss"
    (Ledig et al., CVPR 2017, Sec. 3.2), with the constant taken from the target
    image rather than tuned for one network: a fixed constant would have to be
    calibrated on the ImageNet weights (not available offline) and would be wrong
    for the other layer pairs of Appendix A, whose magnitudes differ by orders of
    magnitude. The value is dimensionless and invariant to any positive scaling of
    a layer's features: 0 for identical images, about 1 for an unrelated
    reconstruction. Gradients point where BasicSR's L1 perceptual loss points.
    """
    check_perceptual_norm(norm)
    if region is not None and resize_to:
        raise ValueError("losses.vgg_resize cannot be combined with shape buckets (training.shape_bucket)")
    hr, rec = _as_float(hr), _as_float(rec)
    # One forward pass for both images: half the overhead of two calls.
    both = ops.concatenate([hr, rec], axis=0)
    if resize_to:
        both = ops.image.resize(both, (int(resize_to), int(resize_to)), interpolation="bilinear")
    both = keras.applications.vgg19.preprocess_input(both * 255.0)
    features = _call(extractor, both, region)
    if not isinstance(features, (list, tuple)):
        features = [features]
    total = 0.0
    for feature in features:
        hr_feature, rec_feature = ops.split(feature, 2, axis=0)
        if norm == "raw":
            total += _mean(ops.square(hr_feature - rec_feature), region)
        else:
            scale = ops.maximum(ops.stop_gradient(_mean(ops.abs(hr_feature), region)), RELATIVE_EPS)
            total += _mean(ops.abs(hr_feature - rec_feature), region) / scale
    return total if norm == "raw" else total / len(features)


# --------------------------------------------------------------------------
# Composite loss
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LossBatch:
    """What a loss term (``ssimsr.models.terms``) may use: the images, the networks, the options."""

    hr: object
    rec: object
    downscaler: object
    perceptual_norm: str  # perceptual's ``norm``
    lr: object = None  # D(hr), when already computed
    extractor: object = None  # frozen VGG19 features (terms that need it)
    resize_to: int | None = None
    region: object = None  # the image inside a zero-padded batch (buckets.Region)


def loss_weights(**values) -> dict[str, float]:
    """Every registered term's lambda: 1.0 unless given (the paper: b = f = p = 1, s in {0, 1, 2})."""
    names = registry.weight_names()
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown loss weight(s) {unknown}; registered: {names}")
    return {name: float(values.get(name, 1.0)) for name in names}


def loss_terms(hr, rec, downscaler, weights, extractor=None, lr=None, resize_to=None,
               every_term=False, *, perceptual_norm, region=None):
    """Every registered loss term and their weighted sum ``total``, as scalar tensors.

    ``weights`` maps each term's lambda name to its value (:func:`loss_weights`). A term
    whose weight is 0 is 0.0 without being computed, unless it is ``logged`` or
    ``every_term`` (validation logs every term; a term that needs the VGG19 extractor
    stays 0.0 without one). ``extractor`` is required when such a term's weight is not 0.
    ``lr`` may pass ``D(hr)`` already computed by ``models.reconstruct``.
    ``perceptual_norm`` is :func:`perceptual`'s ``norm`` (required: the config schema's
    ``losses.perceptual_norm`` holds the default; :func:`perceptual` checks it). ``region``:
    the image inside a zero-padded batch (``buckets``); every term then averages over the
    image only, and the networks run through ``buckets.masked_call``.
    """
    batch = LossBatch(hr, rec, downscaler, perceptual_norm, lr=lr, extractor=extractor, resize_to=resize_to,
                      region=region)
    zero = ops.convert_to_tensor(0.0)
    terms, total = {}, None
    for term in registry.loss_terms().values():
        weight = weights[term.weight]
        if term.needs_extractor and extractor is None:
            if weight:
                raise ValueError(
                    f"{term.weight} is non-zero but no VGG19 feature extractor was given; build one "
                    f"with build_feature_extractor(load_vgg19(path)) or set {term.weight} to 0")
            terms[term.name] = zero
        elif weight or every_term or term.logged:
            terms[term.name] = term.compute(batch)
        else:
            terms[term.name] = zero
        weighted = weight * terms[term.name]  # Eq. 11, the terms in their order
        total = weighted if total is None else total + weighted
    return {"total": total, **terms}
