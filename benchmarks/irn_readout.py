#!/usr/bin/env python
"""How much of a BSDS300 image the frozen random IRN downscaler (as_run preset) keeps, per seed.

    python benchmarks/irn_readout.py                                   # seeds 0..7
    python benchmarks/irn_readout.py --seeds 0 1 2 --data-dir /tmp/bsds300   # reuse a prepared copy

For each seed the IRN downscaler is built exactly as training builds it for that seed
(``ssimsr.training.train.initial_downscaler``: the weights ``Trainer`` starts from, with the paper's
widths from config.yaml and the as_run preset, which freezes it), and the linear read-out
of its 4-channel LR tensor (``ssimsr.training.readout``: each 2x2x3 HR block from the 3x3x4 LR
neighbourhood, least squares with bias) is fitted on the first 8 training images and
scored on the first 8 validation images, with the limits training uses
(``train.READOUT_LIMITS``). Reference lines: the same read-out of fixed downscalers
(decimation, box mean, and the first 4 principal components of each 2x2x3 block, the best
per-block linear 4-channel code). The PSNR bounds what an upscaler can recover from that LR
tensor only from below (a linear decoder with a 3x3 receptive field), but its spread over
seeds shows how much the seed decides.

Data: BSDS300 prepared with the project's own code (``sources.fetch_source`` on a local
archive, ``data.prepare_dataset`` with config.yaml's bsds300 options: longer side 500,
sides rounded to multiples of 16, the random 250 / 50 split of seed 0) into a temporary
folder, or ``--data-dir`` (a prepared copy; written there first if it does not exist).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO / "src"))

from ssimsr.pipeline.runs import PAPER_PRESET  # noqa: E402  (Keras-free)

ARCHIVE = "/work/shared/data/BSDS300-images.tgz"


def prepare_bsds300(config: dict, archive: str, out: Path) -> None:
    from ssimsr.data.data import prepare_dataset
    from ssimsr.data.sources import fetch_source

    dataset = config["datasets"]["bsds300"]
    source = {**dataset["sources"][0], "uri": archive, "sha256": None}  # the local copy (its own hash)
    receipt = out.parent / f".{out.name}-source0.json"
    fetch_source(source, receipt, out.parent)
    options = {k: v for k, v in dataset.items() if k != "sources"}
    prepare_dataset([receipt], {**options, "scale": config["scale"]}, out, sources=[source])


def reference_downscalers(train_images, scale: int, channels: int):
    """(name, downscale) of fixed downscalers: decimation (the SR model's), the s x s box mean,
    and the projection of each s x s x 3 block on its first ``channels`` principal components
    (of the training blocks): the best per-block linear code with ``channels`` values."""
    import numpy as np

    from ssimsr.training.readout import hr_blocks

    def decimate(batch):
        return batch[:, ::scale, ::scale]

    def box(batch):
        _, h, w, c = batch.shape
        return batch.reshape(1, h // scale, scale, w // scale, scale, c).mean(axis=(2, 4))

    blocks = np.concatenate([hr_blocks(img.astype(np.float64) / 255, scale) for img in train_images])
    mean = blocks.mean(axis=0)
    _, _, vt = np.linalg.svd(blocks - mean, full_matrices=False)
    basis = vt[:channels].T

    def pca(batch):
        _, h, w, _ = batch.shape
        code = (hr_blocks(batch[0].astype(np.float64), scale) - mean) @ basis
        return code.reshape(1, h // scale, w // scale, channels).astype(np.float32)

    return [("decimation x[::s, ::s] (SR downscaler, 3 ch)", decimate),
            (f"box mean {scale}x{scale} (3 ch)", box),
            (f"PCA top-{channels} of the {scale}x{scale}x3 blocks ({channels} ch)", pca)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--config", default=str(REPO / "config.yaml"))
    parser.add_argument("--archive", default=ARCHIVE, help="BSDS300-images.tgz (local copy)")
    parser.add_argument("--data-dir", default=None, help="a prepared bsds300 folder (prepared here if missing)")
    parser.add_argument("--preset", default=PAPER_PRESET)
    args = parser.parse_args(argv)

    import yaml

    from ssimsr.config import with_defaults
    from ssimsr.pipeline.experiments import resolve_params
    from ssimsr.training.train import RunParams

    config = with_defaults(yaml.safe_load(Path(args.config).read_text()))
    base = resolve_params(config, args.preset, "irn", "bsds300", 0.0, 0, config["losses"]["vgg_layers"], 1)
    os.environ.setdefault("KERAS_BACKEND", base["backend"])
    from ssimsr.training.readout import describe, keras_downscale, readout_psnr
    from ssimsr.training.backends import check_active
    from ssimsr.training.train import READOUT_LIMITS, initial_downscaler, load_split

    check_active(base["backend"])
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data_dir) if args.data_dir else Path(tmp) / "bsds300"
        if not (data / "train").is_dir():
            t0 = time.perf_counter()
            data.parent.mkdir(parents=True, exist_ok=True)
            prepare_bsds300(config, args.archive, data)
            print(f"prepared {data} from {args.archive} in {time.perf_counter() - t0:.0f}s", flush=True)
        train_names, train_images = load_split(data, "train", READOUT_LIMITS["max_images"])
        val_names, val_images = load_split(data, "val", READOUT_LIMITS["max_images"])
        print(f"train images: {' '.join(train_names)} ({train_images[0].shape[1]}x{train_images[0].shape[0]} ...)")
        print(f"val images:   {' '.join(val_names)}")
        print(f"preset {args.preset}: train_downscaler={base['train_downscaler']}, widths={base['widths']}, "
              f"backend {base['backend']}, limits {READOUT_LIMITS}")
        values = []
        for seed in args.seeds:
            params = RunParams.from_dict({**base, "seed": seed})
            t0 = time.perf_counter()
            result = readout_psnr(keras_downscale(initial_downscaler(params)), train_images, val_images,
                                  scale=params.scale, **READOUT_LIMITS)
            values.append(result["psnr"])
            per_image = " ".join(f"{v:.2f}" for v in result["psnr_per_image"])
            print(f"seed {seed}: {describe(result)}; fit rows {result['fit_rows']} of {result['train_blocks']}; "
                  f"per image {per_image}; {time.perf_counter() - t0:.1f}s", flush=True)
        # references: the same read-out of fixed downscalers on the same images
        for name, down in reference_downscalers(train_images, params.scale, base["widths"]["lr_channels"]):
            result = readout_psnr(down, train_images, val_images, scale=params.scale, **READOUT_LIMITS)
            print(f"reference {name}: {describe(result)}", flush=True)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    print(f"over {len(values)} seeds: mean {statistics.mean(values):.2f} dB, SD {sd:.2f}, "
          f"min {min(values):.2f} (seed {args.seeds[values.index(min(values))]}), "
          f"max {max(values):.2f} (seed {args.seeds[values.index(max(values))]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
