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


def report_state(path):
    """What a fresh interpreter of the job would see: write it (and once more at exit)."""
    import atexit
    import json
    import tempfile

    import numpy as np

    mask = os.umask(0)
    os.umask(mask)
    state = {"tmp": tempfile.gettempdir(), "keras_backend": os.environ.get("KERAS_BACKEND"),
             "draw": int(np.random.randint(1 << 30)), "umask": mask, "stdin_is_socket": _is_socket(0)}
    Path(path).write_text(json.dumps(state))
    atexit.register(Path(f"{path}.atexit").write_text, "ran")


def _is_socket(fd):
    import stat

    return stat.S_ISSOCK(os.fstat(fd).st_mode)


def report_keras_config(path):
    """The keras.json values the preloaded Keras read (not a new import: it is the zygote's)."""
    import json

    import keras

    Path(path).write_text(json.dumps({"floatx": keras.config.floatx(), "epsilon": keras.config.epsilon()}))


def report_limits(path):
    """The nice level, open-file limit and SIGHUP disposition the job's code runs under."""
    import json
    import resource
    import signal

    Path(path).write_text(json.dumps({"nice": os.getpriority(os.PRIO_PROCESS, 0),
                                      "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
                                      "sighup_ignored": signal.getsignal(signal.SIGHUP) is signal.SIG_IGN}))
