"""Architectures, one module each; every module here registers itself (``ssimsr.registry``).

A module defines ``build(scale=2, <width>=<default>, ...)`` returning a ``models.ModelPair``
and decorates it with ``@register_architecture("<name>", learned_downscaler=...)``. Keras
is imported inside the builder, so the workflow can list architectures without it.
"""
