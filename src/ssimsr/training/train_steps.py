"""The one backend-specific piece of training: a train step and an eval step per backend
(each ``backends.BACKENDS`` entry names its class, ``Backend.make_steps``).

Everything else (models, losses, metrics, the epoch loop) is Keras 3 / ``keras.ops`` and
runs unchanged on TensorFlow, JAX and PyTorch. Each backend gets the step in its own
idiom, as in the keras.io guides "Writing a training loop from scratch" for that backend:

* TensorFlow: ``tf.GradientTape`` inside ``tf.function`` (one trace for any image size,
  ``input_signature`` with ``None`` sides), op determinism on.
* JAX: a pure function of the variable values under ``keras.StatelessScope``,
  ``jax.value_and_grad`` and ``optimizer.stateless_apply``, compiled by ``jax.jit``
  (once per input shape; compile counts and times are recorded). The Keras variables
  are written back (``sync``) before a checkpoint or export.
* PyTorch: eager autograd on the variables' ``torch.nn.Parameter`` values.

Why not ``model.fit``: a run is two networks and a frozen VGG19 trained on one composite
loss, with per-epoch validation of every term, per-epoch checkpoints that include the
optimiser state, and resume that must equal an uninterrupted run bit for bit. ``fit``
would need a wrapper model, custom ``train_step`` overrides per backend anyway, and its
own checkpoint callbacks that do not save the optimiser state atomically.

A step object has ``train(hr, valid=None) -> terms``, ``evaluate(hr, valid=None) -> terms``
(``valid``: the image's size inside a zero-padded shape bucket, see buckets.py; dicts of scalar
backend tensors), ``fetch(list_of_terms) -> list of dicts of floats`` (one device-to-host
transfer for many steps), ``sync()`` and ``reload()`` (after weights were assigned from a
checkpoint), and ``compile_stats`` (shape -> seconds of the first call, JAX only).
"""

from __future__ import annotations

import functools
import time


def _floats(terms_list):
    """Scalar backend tensors as Python floats (convert_to_numpy also moves torch CUDA tensors)."""
    import keras

    return [{k: float(keras.ops.convert_to_numpy(v)) for k, v in terms.items()} for terms in terms_list]


class TensorFlowSteps:
    def __init__(self, trainer):
        import tensorflow as tf

        self.compile_stats: dict = {}  # one traced graph serves every shape
        self.trainer = trainer
        self.variables = trainer.variables
        image = tf.TensorSpec([None, None, None, 3], tf.float32)
        valid = tf.TensorSpec([2], tf.int32)
        # autograph off: the terms have no Python control flow on tensor values (a trace
        # would fail loudly if they had), and converting Keras's code cost about 1 s of
        # each run's start-up (0.8 s of the eval trace, 0.3 s of the train step's).
        graph = functools.partial(tf.function, jit_compile=trainer.params.jit_compile, autograph=False)
        self._train_whole = graph(self._train, input_signature=[image])
        self._train_bucketed = graph(self._train, input_signature=[image, valid])
        self._eval_whole = graph(lambda hr: trainer.terms(hr, training=False), input_signature=[image])
        self._eval_bucketed = graph(lambda hr, v: trainer.terms(hr, training=False, valid=v),
                                    input_signature=[image, valid])

    def train(self, hr, valid=None):
        return self._train_whole(hr) if valid is None else self._train_bucketed(hr, valid)

    def evaluate(self, hr, valid=None):
        return self._eval_whole(hr) if valid is None else self._eval_bucketed(hr, valid)

    def _train(self, hr, valid=None):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            terms = self.trainer.terms(hr, training=True, valid=valid)
        grads = tape.gradient(terms["total"], self.variables)
        self.trainer.optimizer.apply_gradients(zip(grads, self.variables))
        return terms

    fetch = staticmethod(_floats)

    def sync(self):
        pass

    def reload(self):
        pass


class TorchSteps:
    def __init__(self, trainer):
        self.compile_stats: dict = {}  # eager: nothing is compiled
        self.trainer = trainer
        self.variables = trainer.variables

    def train(self, hr, valid=None):
        import torch

        hr = self._tensor(hr)
        terms = self.trainer.terms(hr, training=True, valid=valid)
        for v in self.variables:
            v.value.grad = None
        terms["total"].backward()
        grads = [v.value.grad for v in self.variables]
        with torch.no_grad():
            self.trainer.optimizer.apply(grads, self.variables)
        return {k: t.detach() for k, t in terms.items()}

    def evaluate(self, hr, valid=None):
        import torch

        with torch.no_grad():
            return self.trainer.terms(self._tensor(hr), training=False, valid=valid)

    @staticmethod
    def _tensor(hr):
        import keras

        return keras.ops.convert_to_tensor(hr, dtype="float32")

    fetch = staticmethod(_floats)

    def sync(self):
        pass

    def reload(self):
        pass


class JaxSteps:
    """Pure functions of (trainable, non-trainable, optimiser) values, jitted."""

    def __init__(self, trainer):
        import jax
        import keras

        self.trainer = trainer
        self.trainable = list(trainer.variables)
        trainable_ids = {id(v) for v in self.trainable}
        # Frozen variables (VGG19, a frozen downscaler) are arguments too, not constants
        # baked into the compiled program (VGG19 alone is 80 MB).
        seen, self.frozen = set(), []
        for model in trainer.models():
            for v in model.variables:
                if id(v) not in trainable_ids and id(v) not in seen:
                    seen.add(id(v))
                    self.frozen.append(v)
        self.optimizer = trainer.optimizer
        self.compile_stats: dict = {}

        def terms_fn(trainable_values, frozen_values, hr, valid, training):
            mapping = list(zip(self.trainable, trainable_values)) + list(zip(self.frozen, frozen_values))
            with keras.StatelessScope(state_mapping=mapping):
                terms = trainer.terms(hr, training=training, valid=valid)
            return terms["total"], terms

        grad_fn = jax.value_and_grad(terms_fn, has_aux=True)

        # `valid` is None (whole images) or the image's [height, width] inside a padded
        # bucket: an argument, so one compiled program serves every image of a bucket.
        def train_fn(state, frozen_values, hr, valid):
            trainable_values, optimizer_values = state
            (_, terms), grads = grad_fn(trainable_values, frozen_values, hr, valid, True)
            trainable_values, optimizer_values = self.optimizer.stateless_apply(
                optimizer_values, grads, trainable_values)
            return (trainable_values, optimizer_values), terms

        def eval_fn(state, frozen_values, hr, valid):
            return terms_fn(state[0], frozen_values, hr, valid, False)[1]

        # The old state's buffers are reused for the new one: no second copy of the weights.
        self._train = jax.jit(train_fn, donate_argnums=0)
        self._eval = jax.jit(eval_fn)
        self.frozen_values = [v.value for v in self.frozen]
        self.reload()

    def reload(self):
        """Take the state from the Keras variables (after building or restoring them).

        Copies: the jitted step donates (frees) its input state, which must not be the
        buffers the Keras variables hold."""
        import jax.numpy as jnp

        self.state = ([jnp.array(v.value, copy=True) for v in self.trainable],
                      [jnp.array(v.value, copy=True) for v in self.optimizer.variables])

    def sync(self):
        """Write the state back into the Keras variables (before saving them)."""
        trainable_values, optimizer_values = self.state
        for variable, value in zip(self.trainable, trainable_values):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, optimizer_values):
            variable.assign(value)

    def _timed(self, kind, fn, hr, bucketed=False):
        key = (kind + (" bucketed" if bucketed else ""), tuple(hr.shape))
        if key in self.compile_stats:
            return fn(hr)
        # First call for this shape: tracing and XLA compilation happen here.
        start = time.perf_counter()
        out = fn(hr)
        import jax

        jax.block_until_ready(out)
        self.compile_stats[key] = time.perf_counter() - start
        return out

    def train(self, hr, valid=None):
        def step(x):
            self.state, terms = self._train(self.state, self.frozen_values, x, valid)
            return terms

        return self._timed("train", step, hr, valid is not None)

    def evaluate(self, hr, valid=None):
        return self._timed("eval", lambda x: self._eval(self.state, self.frozen_values, x, valid), hr,
                           valid is not None)

    @staticmethod
    def fetch(terms_list):
        import jax

        return _floats(jax.device_get(terms_list))
