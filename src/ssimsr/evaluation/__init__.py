"""Evaluate: per-image metrics of trained runs, LPIPS, the bicubic baseline and the
preprocessing check (the ``evaluate``, ``lpips``, ``collect``, ``baseline`` and
``preprocessing`` rules); and the use of a trained run: ``upscale``, ``export``."""
