"""The Keras backends a run can train on, each one entry of the registry ``BACKENDS``
(``ssimsr.registry.Registry``; ``get``). Their names are nowhere else: the config schema's
``training.backend`` enum (which JSON Schema needs) is checked against it, and the default
is the schema's alone (:func:`default`).

Keras 3 runs the models, losses and metrics unchanged on TensorFlow, JAX and PyTorch;
what differs per backend lives here, in one place:

* ``environment()``: variables to set before the backend is imported (GPU memory on
  demand instead of most of the GPU for the first process, so that several jobs can
  share one; XLA's deterministic GPU reductions for JAX), the user's own values kept;
* ``make_deterministic()``: same seed, same machine, same result, which exact resume
  needs;
* ``devices()``: its version and the devices it computes on (``describe_devices`` makes
  the first line of every train log from it);
* ``make_steps(trainer)``: the training and evaluation steps, its class of ``train_steps``;
* ``env_file``: the conda environment of the train rule under ``--sdm conda``;
* ``compiles_per_shape``: it compiles a program per input shape (JAX's ``jit``), so
  ``shape_bucket: auto`` pads whole images to a few shapes for it (``buckets``);
* ``jit_perceptual``: ``jit_compile`` can compile the perceptual loss's VGG19 gradient
  deterministically (not TensorFlow's XLA: no deterministic MaxPool gradient).

Importing this module imports no backend; each method imports its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..registry import Registry


@dataclass(frozen=True)
class Backend:
    name: str
    env_file: str  # envs/<env_file>
    compiles_per_shape: bool
    memory_env: tuple[tuple[str, str], ...] = ()  # GPU memory on demand
    jit_perceptual: bool = True

    def environment(self) -> dict[str, str]:
        """Variables to set before the backend is imported; ones the user set are kept."""
        env = {k: v for k, v in self.memory_env if k not in os.environ}
        env["KERAS_BACKEND"] = self.name
        return env

    def make_deterministic(self) -> None:
        pass

    def devices(self) -> tuple[str, list[str], list[str]]:
        """(version, GPUs, devices it computes on): imports the backend."""
        raise NotImplementedError

    def make_steps(self, trainer):
        """The training and evaluation steps (``train_steps``): imports the backend."""
        raise NotImplementedError


class _TensorFlow(Backend):
    def environment(self) -> dict[str, str]:
        env = super().environment()
        # No GPU on this machine: TensorFlow's CUDA probe logs "failed call to cuInit" as an
        # error in every job's log, which reads as a fault. Its C++ log is quieted there (the
        # device line still says where the run trains); a user's own setting is kept.
        from ..pipeline.gpus import count_gpus

        if "TF_CPP_MIN_LOG_LEVEL" not in os.environ and not count_gpus():
            env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        return env

    def make_steps(self, trainer):
        from .train_steps import TensorFlowSteps

        return TensorFlowSteps(trainer)

    def make_deterministic(self) -> None:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()

    def devices(self):
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
        return tf.__version__, gpus, gpus or [d.name for d in tf.config.list_physical_devices("CPU")]


class _Jax(Backend):
    def make_steps(self, trainer):
        from .train_steps import JaxSteps

        return JaxSteps(trainer)

    def environment(self) -> dict[str, str]:
        env = super().environment()
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:  # XLA on CPU is deterministic already
            env["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()  # added to the user's
        return env

    def devices(self):
        import jax

        everything = jax.devices()
        gpus = [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip()
                for d in everything if d.platform in ("gpu", "cuda", "rocm")]
        return jax.__version__, gpus, gpus or [f"{d.platform}:{d.id}" for d in everything]


class _Torch(Backend):
    def make_steps(self, trainer):
        from .train_steps import TorchSteps

        return TorchSteps(trainer)

    def make_deterministic(self) -> None:
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)

    def devices(self):
        import torch

        gpus = ([f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
                if torch.cuda.is_available() else [])
        return torch.__version__, gpus, gpus or ["cpu"]


#: The backends, by name: ``training.backend``, ``--backend``, ``KERAS_BACKEND``.
BACKENDS: Registry[Backend] = Registry("backend")


def _register(backend: Backend) -> None:
    BACKENDS.add(backend.name, backend)


_register(_TensorFlow("tensorflow", "tensorflow.yaml", compiles_per_shape=False, jit_perceptual=False,
                      memory_env=(("TF_FORCE_GPU_ALLOW_GROWTH", "true"),)))
_register(_Jax("jax", "jax.yaml", compiles_per_shape=True,
               memory_env=(("XLA_PYTHON_CLIENT_PREALLOCATE", "false"),)))
_register(_Torch("torch", "torch-train.yaml", compiles_per_shape=False))  # allocates on demand already


def get(name: str, key: str = "training.backend") -> Backend:
    """The backend ``name``; a ValueError naming ``key`` and the registered names otherwise."""
    return BACKENDS.get(name, key)


def default() -> str:
    """The config schema's ``training.backend`` default (its only home)."""
    from ..config import defaults

    return defaults("training")["backend"]


def describe_devices(name: str) -> tuple[str, bool]:
    """(one line naming the backend, its version and devices; whether it sees a GPU).

    Imports the backend. The line says ``no GPU visible`` when it trains on the CPU.
    """
    import keras

    version, gpus, devices = get(name).devices()
    where = "GPU" if gpus else "CPU (no GPU visible to this backend)"
    line = (f"training on {where}: keras {keras.__version__} on {name} {version}; "
            f"devices: {', '.join(devices)}")
    return line, bool(gpus)


def check_active(name: str) -> None:
    """Fail clearly when Keras runs another backend than the run asks for.

    The backend is fixed when Keras is first imported (``KERAS_BACKEND``); ``ssimsr
    train`` sets it from the run's parameters before that.
    """
    import keras

    if keras.backend.backend() != name:
        raise RuntimeError(
            f"training.backend is {name!r} but Keras runs {keras.backend.backend()!r} in this "
            f"process; set KERAS_BACKEND={name} before Python imports Keras (ssimsr train does)")
