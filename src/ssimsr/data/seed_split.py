"""A split per training seed (``split: {method: random, n_val: 50, per_seed: true}``).

By default a dataset is split once, when it is prepared (``data.assign_splits``,
``numpy.random.default_rng(split.seed)``), and every seed's run trains and validates on
those images: the run-to-run SD across seeds then says nothing about what another
training / validation set does. With ``split.per_seed`` each training seed ``s`` draws
its own random split, a permutation of the sorted stems by
``numpy.random.default_rng([split.seed, s])`` whose first ``n_val`` images go to val
(:func:`per_seed_split`): deterministic, the same for every run of seed ``s`` (the λ_s runs
of one seed stay paired on the same images) and independent of which other seeds run.
Seed 0 draws the shared split (``default_rng(split.seed)``, as numpy seeds ``[a, 0]``), so a
study's seed-0 runs keep the images of ``per_seed: false``.

The prepared images are written once (``prepare_dataset``, its own ``split.seed`` split
still decides its ``train`` / ``val`` folders, which the showcase crops use);
:func:`write_seed_split` (the ``seed_split`` rule) makes ``<data>_seed<s>/`` from them:
``train/`` and ``val/`` of hard links (copies where the filesystem cannot link),
``manifest.csv`` (the dataset's, with this seed's ``split`` and ``output``) and
``splits.csv``, written to a temporary folder that is renamed when complete (a sibling
of the dataset's folder, which ``prepare_dataset`` replaces whole). A run of
seed ``s`` trains and is evaluated on that folder, and the bicubic baseline is computed on
each seed's val images (``results/eval/baseline/<dataset>/seed<s>.csv``, a ``seed``
column).

Tables learn which datasets are split per seed from their ``splits`` (dataset -> method):
:func:`split_label` gives ``"random_per_seed"`` for them (:data:`PER_SEED_LABEL`).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ConfigError, fill_defaults
from .download import DataError

if TYPE_CHECKING:
    import pandas as pd

# pandas and .data (numpy, PIL) are imported in the functions that write a split: the
# Snakefile imports this module for its config helpers, and a dry run should not pay for them

log = logging.getLogger(__name__)

#: A per-seed dataset's entry in the tables' ``splits`` (dataset -> split method).
#: (a literal, not ``ssimsr.analysis.noise.PER_SEED``: importing the statistics here would put them in
#: this stage's code digest, and an edit of them would rerun every training; a test ties the two)
PER_SEED_LABEL = "random_per_seed"


def is_per_seed(split: dict) -> bool:
    """Whether ``split`` (a dataset's ``split`` config) draws a split per training seed."""
    return bool(split.get("per_seed", False))


def check_split(split: dict, key: str = "split") -> None:
    """``split.per_seed`` needs method ``random``: a ConfigError (ValueError) naming
    ``key``.per_seed otherwise."""
    if is_per_seed(split) and split.get("method") != "random":
        raise ConfigError(f"{key}.per_seed: true needs split method 'random' (got {split.get('method')!r}); "
                        "only a random split can be drawn again per seed")


def per_seed_datasets(config: dict) -> list[str]:
    """The configured datasets with ``split.per_seed``, sorted; a ValueError naming
    ``datasets.<name>.split.per_seed`` where the method is not ``random``."""
    names = []
    for name, dataset in config["datasets"].items():
        split = dataset.get("split", {})
        check_split(split, f"datasets.{name}.split")
        if is_per_seed(split):
            names.append(name)
    return sorted(names)


def split_label(split: dict) -> str:
    """How the tables name a dataset's split (their ``splits``): its method, or
    :data:`PER_SEED_LABEL` for a random split drawn per seed."""
    return PER_SEED_LABEL if is_per_seed(split) else split["method"]


def per_seed_split(stems: list[str], split: dict, seed: int) -> dict[str, str]:
    """Map every stem to 'train' or 'val' for training seed ``seed``: a permutation of the
    sorted stems by ``numpy.random.default_rng([split.seed, seed])``, the first ``n_val``
    to val. Deterministic in (split.seed, seed, the stems). Seed 0's is the shared split of
    ``per_seed: false`` (``data.assign_splits``: ``default_rng(split.seed)``)."""
    split = fill_defaults(dict(split), "split")
    check_split(split)
    if split["method"] != "random":
        raise ConfigError(f"split.method: a split per seed is drawn at random, not by {split['method']!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise DataError(f"per_seed_split: seed must be a non-negative integer, got {seed!r}")
    # seed 0: default_rng(split.seed), the shared split (numpy seeds [a, 0] as a anyway)
    entropy = int(split["seed"]) if seed == 0 else [int(split["seed"]), int(seed)]
    from .data import assign_splits

    return assign_splits(stems, {**split, "seed": entropy}, {})


def _link(src: Path, dst: Path) -> None:
    """``dst`` as a hard link of ``src`` (no second copy of the image), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_seed_split(data_dir: str | os.PathLike, out_dir: str | os.PathLike, split: dict,
                     seed: int) -> pd.DataFrame:
    """Seed ``seed``'s split of the prepared dataset ``data_dir`` into ``out_dir``:
    ``{train,val}/<stem>.png`` (hard links of the prepared PNGs), ``manifest.csv`` (the
    dataset's rows, ``split`` and ``output`` this seed's) and ``splits.csv``; atomically
    (a temporary folder renamed onto ``out_dir``). Returns the manifest."""
    import pandas as pd

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    path = data_dir / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{path}: manifest not found (run the prepare_dataset rule)")
    manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("stem", "split", "status", "output", "source") if c not in manifest.columns]
    if missing:
        raise DataError(f"{path}: manifest lacks the columns {missing}")
    ok = manifest["status"] == "ok"
    splits = per_seed_split(list(manifest.loc[ok, "stem"]), split, seed)

    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name in ("train", "val"):
            (tmp / name).mkdir(parents=True)
        for index in manifest.index[ok]:
            stem, source = manifest.at[index, "stem"], data_dir / manifest.at[index, "output"]
            if not source.is_file():
                raise DataError(f"{source}: prepared image not found (run the prepare_dataset rule)")
            output = f"{splits[stem]}/{stem}.png"
            _link(source, tmp / output)
            manifest.loc[index, ["split", "output"]] = [splits[stem], output]
        manifest = manifest.sort_values(["split", "stem", "source"], kind="stable")
        manifest.to_csv(tmp / "manifest.csv", index=False)
        pd.DataFrame(sorted(splits.items()), columns=["stem", "split"]).to_csv(tmp / "splits.csv", index=False)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = pd.Series(splits).value_counts().to_dict()
    log.info("seed %d split of %s: %d train, %d val images -> %s", seed, data_dir, counts.get("train", 0),
             counts.get("val", 0), out_dir)
    return manifest
