"""Test-session setup.

torchvision imports torch._dynamo, which imports triton; triton segfaults when it is
loaded into a process that already holds TensorFlow (conflicting native libraries).
The workflow never mixes them (LPIPS runs in its own job, without TensorFlow), but one
pytest process runs both sides' tests, so torchvision is imported first here.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:  # the torch side is optional for the tests that do not need it
    import torchvision  # noqa: F401
except ImportError:  # pragma: no cover
    pass

import keras  # noqa: E402

#: The Keras backend of this test session (KERAS_BACKEND; .ci/run runs the model, loss,
#: training, evaluation and upscale tests once under tensorflow and once under jax).
BACKEND = keras.backend.backend()


def to_numpy(tensor):
    """A backend tensor (TensorFlow, JAX or torch) as a NumPy array."""
    return keras.ops.convert_to_numpy(tensor)
