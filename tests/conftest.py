"""Test-session setup.

torchvision imports torch._dynamo, which imports triton; triton segfaults when it is
loaded into a process that already holds TensorFlow (conflicting native libraries).
The workflow never mixes them (LPIPS runs in its own job, without TensorFlow), but one
pytest process runs both sides' tests, so torchvision is imported first here.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:  # the torch side is optional for the tests that do not need it
    import torchvision  # noqa: F401
except ImportError:  # pragma: no cover
    pass

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: The Keras backend of this test session (KERAS_BACKEND; .ci/run runs the model, loss,
#: training, evaluation and upscale tests once under tensorflow and once under jax).
BACKEND = keras.backend.backend()


_IMAGES_RNG = np.random.default_rng(0)


def random_images(batch=1, height=32, width=48, channels=3):
    """Uniform float32 images in [0, 1), NHWC, from one seeded stream (the tests of networks
    and losses: any values do, the references are computed from the same inputs)."""
    return _IMAGES_RNG.random((batch, height, width, channels), dtype=np.float32)


def to_numpy(tensor):
    """A backend tensor (TensorFlow, JAX or torch) as a NumPy array."""
    return keras.ops.convert_to_numpy(tensor)


@pytest.fixture(scope="session")
def vgg_weights(tmp_path_factory):
    """A VGG19 no-top weights file in the legacy Keras h5 layout, random values.

    Keras 3's ``save_weights`` only writes ``.weights.h5`` (a different
    layout); the legacy writer produces the ``layer_names`` / per-layer
    groups layout of ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``.
    """
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from ssimsr.models.losses import VGG19_NOTOP_FILENAME

    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path_factory.mktemp("vgg") / VGG19_NOTOP_FILENAME
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path, [w.copy() for w in model.get_weights()]


#: The narrowest widths that still exercise each architecture (every layer kind, both
#: networks): training tests run in seconds with them.
TINY_WIDTHS = {"sr": {"filters": 8, "res_blocks": 1}, "irn": {"down_filters": 8, "up_filters": 4}}


def tiny_params(model="sr", **overrides):
    """RunParams of a tiny run of this session's backend: 3 epochs of 32-px crops in batches
    of 2, no perceptual term, TINY_WIDTHS; ``overrides`` as ``experiments.run_params``."""
    from ssimsr.pipeline.experiments import run_params

    values = dict(dataset="tiny", epochs=3, crop=32, batch_size=2, lambda_p=0.0, log_every=100,
                  widths=TINY_WIDTHS[model], backend=BACKEND)
    values.update(overrides)
    return run_params(model, **values)


def write_photo_dataset(root: Path, n_train: int = 4, n_val: int = 2, top: int = 100, left: int = 100,
                        height: int = 48, width: int = 64) -> Path:
    """A prepared dataset folder ``root/{train,val}/img<i>.png``: crops of scikit-image's
    colour photographs (real image statistics, no download), the first ``n_train`` to train."""
    from PIL import Image
    from skimage import data as skdata

    photos = [skdata.astronaut, skdata.coffee, skdata.rocket, skdata.chelsea, skdata.immunohistochemistry,
              skdata.hubble_deep_field, skdata.retina]
    if n_train + n_val > len(photos):
        raise ValueError(f"write_photo_dataset: at most {len(photos)} photos")
    for i, photo in enumerate(photos[:n_train + n_val]):
        split = "train" if i < n_train else "val"
        (root / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo()[top:top + height, left:left + width]).save(root / split / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A prepared dataset: 4 train / 2 val real photo crops of 48x64 (scikit-image's photos)."""
    return write_photo_dataset(tmp_path_factory.mktemp("prepared"))


def save_run(pair, folder: Path, model: str = "sr", scale: int = 2) -> Path:
    """A run folder as ``ssimsr upscale`` / ``evaluate`` read it: params.json and both networks."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps({"model": model, "scale": scale}))
    pair.upscaler.save(folder / "upscaler.keras")
    pair.downscaler.save(folder / "downscaler.keras")
    return folder


@pytest.fixture(scope="module")
def tiny_sr_run(tmp_path_factory):
    """A run folder of a tiny SR pair (TINY_WIDTHS, random weights, seed 0): for tests of
    formats, errors and plumbing, not of quality."""
    from ssimsr.models import models

    keras.utils.set_random_seed(0)
    return save_run(models.build_pair("sr", 2, **TINY_WIDTHS["sr"]), tmp_path_factory.mktemp("tiny_sr_run"))


# ----------------------------------------------------------------- float32 SSIM error

#: float32's unit roundoff (half an ulp of 1).
FLOAT32_U = 2.0 ** -24


def ssim_float32_tolerance(hr, rec, data_range: float = 1.0, sds: float = 6.0) -> float:
    """How far a float32 SSIM (``keras.ops.image.ssim`` = ``tf.image.ssim``: 11x11 Gaussian,
    sigma 1.5, valid windows, mean over the map and the channels) may lie from the exact
    (float64) value of the same images, on any CPU. Computed from the images themselves:

    * random part: each window's five filtered maps (mu_x, mu_y, E[x^2], E[y^2], E[xy]) are
      121-term sums of non-negative terms; in float32, in whatever order a kernel adds them
      (AVX2, AVX-512, FMA or not, blocked), the rounding errors add up like a random walk,
      SD <= sqrt(121) u times the sum (Higham & Mary, SIAM J. Sci. Comput. 2019; the
      worst case, 121 u, needs every rounding to go the same way). SSIM cancels them in
      sigma^2 = E[x^2] - mu^2, so a window's relative error is that absolute error over
      sigma_x^2 + sigma_y^2 + C2 (and over |2 sigma_xy + C2| for the covariance): first-order
      propagation through the SSIM formula, per window, in float64. Each window is its own
      sum, so their errors are independent and the mean over N windows and channels has
      SD sqrt(sum of squares) / N; the mean's own float32 sum adds sqrt(N) u mean|s|.
    * systematic part, which does not average out: the backend computes the Gaussian
      weights in float32 (exp, sum, division, outer product), so they sum to 1 only within
      a few ulps and scale every filtered value alike; its effect for a scale of 1 +- 8 u,
      evaluated exactly.

    The tolerance is the systematic part plus ``sds`` SDs of the random part. On the test
    images of test_metrics it is 1e-5 to 4e-5: 25-100x below the 1e-3 used before (half the
    paper's SSIM difference between lambda_s 1 and 0), and 20x or more above how far
    TensorFlow (<= 3e-7), JAX and PyTorch (<= 1.1e-6) were off on the machine these tests
    were written on (AVX-512).
    """
    import numpy as np

    x_all = np.asarray(hr, np.float64) / data_range
    y_all = np.asarray(rec, np.float64) / data_range
    if x_all.ndim == 2:
        x_all, y_all = x_all[..., None], y_all[..., None]
    t = np.arange(11) - 5.0
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    g /= g.sum()
    win = np.outer(g, g)
    c1, c2, u = 0.01 ** 2, 0.03 ** 2, FLOAT32_U
    k = np.sqrt(win.size) * u  # relative SD of a 121-term float32 sum of non-negative terms

    def valid(a):  # valid 11x11 correlation with the Gaussian window
        v = np.lib.stride_tricks.sliding_window_view(a, (11, 11))
        return np.einsum("ijkl,kl->ij", v, win)

    def ssim_map(mx, my, exx, eyy, exy):
        return ((2 * mx * my + c1) * (2 * (exy - mx * my) + c2)
                / ((mx ** 2 + my ** 2 + c1) * (exx + eyy - mx ** 2 - my ** 2 + c2)))

    sq_sum, n, sys_hi, sys_lo, abs_sum = 0.0, 0, 0.0, 0.0, 0.0
    for c in range(x_all.shape[-1]):
        x, y = x_all[..., c], y_all[..., c]
        # |x| and |y|: a reconstruction may leave [0, 1] slightly (unclipped output)
        mx, my, exx, eyy, exy = (valid(a) for a in (x, y, x * x, y * y, x * y))
        ax, ay, axy = valid(np.abs(x)), valid(np.abs(y)), valid(np.abs(x * y))
        s_mx, s_my = k * ax, k * ay  # SDs of the filtered maps
        s_exx, s_eyy, s_exy = k * exx, k * eyy, k * axy
        a = 2 * mx * my + c1
        b = 2 * (exy - mx * my) + c2
        cc = mx ** 2 + my ** 2 + c1
        d = exx + eyy - mx ** 2 - my ** 2 + c2
        d_mm = np.abs(my) * s_mx + np.abs(mx) * s_my + u * np.abs(mx * my)  # mu_x mu_y
        d_a = 2 * d_mm + u * a
        d_b = 2 * (s_exy + d_mm) + u * np.abs(b)
        d_c = 2 * (np.abs(mx) * s_mx + np.abs(my) * s_my) + u * (cc + mx ** 2 + my ** 2)
        d_d = s_exx + s_eyy + 2 * (np.abs(mx) * s_mx + np.abs(my) * s_my) + u * (d + mx ** 2 + my ** 2)
        s = a * b / (cc * d)
        d_s = np.abs(s) * (d_a / a + d_c / cc + d_d / d + u) + np.abs(a / (cc * d)) * d_b
        sq_sum += float(np.sum(d_s ** 2))
        n += s.size
        abs_sum += float(np.sum(np.abs(s)))
        exact = s.mean()
        for scale, side in ((1 + 8 * u, "hi"), (1 - 8 * u, "lo")):
            shifted = ssim_map(mx * scale, my * scale, exx * scale, eyy * scale, exy * scale).mean() - exact
            if side == "hi":
                sys_hi += shifted
            else:
                sys_lo += shifted
    channels = x_all.shape[-1]
    systematic = max(abs(sys_hi), abs(sys_lo)) / channels
    random_sd = np.sqrt(sq_sum) / n + np.sqrt(n) * u * abs_sum / n
    return float(systematic + sds * random_sd)


#: ../shared beside the repository: the real BSDS300 / Set5 / Set14 copies and the paper's text.
SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_sessionstart(session):
    """CI sets SSIMSR_REQUIRE_SHARED=1: there the tests that would skip without ../shared must run."""
    if os.environ.get("SSIMSR_REQUIRE_SHARED") == "1":
        missing = [p for p in (SHARED / "data" / "BSDS300-images.tgz", SHARED / "paper" / "paper.txt") if not p.exists()]
        if missing:
            pytest.exit(f"SSIMSR_REQUIRE_SHARED=1 but {', '.join(map(str, missing))} missing", returncode=1)


@pytest.fixture(autouse=True)
def _no_stream_handler_outlives_its_test():
    """``ssimsr`` commands (``cli.main``) log to the ``sys.stderr`` of their call, which under
    capsys is a stream closed after the test; a handler left on the root logger would print
    "--- Logging error ---" into a later test's stderr. Remove the plain stream handlers a
    test added (pytest's own capture handlers are not plain StreamHandlers)."""
    import logging

    root = logging.getLogger()
    before = set(root.handlers)
    yield
    for handler in root.handlers[:]:
        if handler not in before and type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
