"""Train: one run's training loop, its backend steps and shape buckets, its parameters and
checkpoints, the loss shares and the downscaler read-out (the ``train`` rule)."""
