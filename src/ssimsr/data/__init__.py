"""Download -> prepare: fetching the dataset sources and pretrained weights (checksum-verified),
reading them, and preparing the PNG splits (the ``download``, ``prepare_dataset`` and
``seed_split`` rules)."""
