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
import pytest  # noqa: E402

#: The Keras backend of this test session (KERAS_BACKEND; .ci/run runs the model, loss,
#: training, evaluation and upscale tests once under tensorflow and once under jax).
BACKEND = keras.backend.backend()


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

    from ssimsr.losses import VGG19_NOTOP_FILENAME

    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path_factory.mktemp("vgg") / VGG19_NOTOP_FILENAME
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path, [w.copy() for w in model.get_weights()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A prepared dataset: 4 train / 2 val real photo crops of 48x64 (scikit-image's photos)."""
    from PIL import Image
    from skimage import data as skdata

    root = tmp_path_factory.mktemp("prepared")
    photos = [skdata.astronaut(), skdata.coffee(), skdata.rocket(), skdata.chelsea(),
              skdata.immunohistochemistry(), skdata.hubble_deep_field()]
    for i, img in enumerate(photos):
        split = "val" if i >= 4 else "train"
        (root / split).mkdir(exist_ok=True)
        Image.fromarray(img[100:148, 100:164]).save(root / split / f"img{i}.png")
    return root


#: ../shared beside the repository: the real BSDS300 / Set5 / Set14 copies and the paper's text.
SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_sessionstart(session):
    """CI sets SSIMSR_REQUIRE_SHARED=1: there the tests that would skip without ../shared must run."""
    if os.environ.get("SSIMSR_REQUIRE_SHARED") == "1":
        missing = [p for p in (SHARED / "data" / "BSDS300-images.tgz", SHARED / "paper" / "paper.txt") if not p.exists()]
        if missing:
            pytest.exit(f"SSIMSR_REQUIRE_SHARED=1 but {', '.join(map(str, missing))} missing", returncode=1)
