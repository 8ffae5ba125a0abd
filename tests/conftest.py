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
