"""The networks and the loss: architectures (``archs/``, one file each), their layers, the
downscaler / upscaler pairs, and the loss with its registered terms (``terms/``)."""
