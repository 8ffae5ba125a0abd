"""Functions the warm-start tests (test_warm.py) run in zygote children. This module imports
nothing heavy: the tests' conftest imports torchvision, which cannot load next to
TensorFlow (its note), so the children must not import it."""

import os
import time
from pathlib import Path


def exit_with(code):
    return code


def kill_self(signum):
    os.kill(os.getpid(), signum)


def sleep_then_write(path, seconds):
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
