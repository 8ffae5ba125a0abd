"""Command line: ``ssimsr <stage> ...`` for the stages users also run by hand.

``train``, ``evaluate``, ``lpips``, ``upscale``, and the dataset and weights fetchers.
The workflow's other stages are ``script:`` jobs (``ssimsr.jobs``); its train job calls
:func:`train_run` like ``ssimsr train`` does.

Heavy libraries (TensorFlow, torch) are imported inside the subcommand that needs them,
so ``ssimsr fetch`` and ``ssimsr --help`` start quickly.

Expected failures (bad input, a missing file, a bad config value, the network) end in one
line ``ssimsr <stage>: error: ...`` on stderr and exit status 1; ``-v`` adds the traceback.
Anything else is a bug: its traceback is always printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}: {text[:80]!r}") from exc


def _json_or_file(text: str):
    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        return _json_arg(path.read_text())
    return _json_arg(text)


def _policy(args):
    from .download import DownloadPolicy

    return DownloadPolicy(retries=args.retries, timeout=args.timeout, backoff=args.backoff)


def _cmd_fetch(args) -> None:
    from .sources import fetch_source

    record = fetch_source(args.source, args.receipt, args.download_dir, policy=_policy(args))
    print(json.dumps(record, indent=2))


def _cmd_prepare(args) -> None:
    from .data import prepare_dataset

    options = dict(args.options, scale=args.scale)
    manifest = prepare_dataset(args.receipts, options, args.out, sources=args.sources)
    counts = manifest.groupby(["status", "split"]).size().to_dict()
    print(f"prepared {args.out}: {counts}")


def _cmd_fetch_weights(args) -> None:
    from .weights import fetch_weight_file

    if args.md5:
        digest = fetch_weight_file(args.uri, args.out, args.md5, "md5", policy=_policy(args))
    else:
        digest = fetch_weight_file(args.uri, args.out, args.sha256_prefix, "sha256", prefix=True,
                                   policy=_policy(args))
    print(f"{args.out}: verified ({digest})")


def _use_backend(backend: str) -> None:
    """Select the Keras backend (and its GPU settings) before Keras is imported."""
    from .gpus import backend_environment

    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise RuntimeError(f"Keras already runs {keras.backend.backend()!r} in this process; "
                               f"cannot switch to {backend!r}")
        return
    os.environ.update(backend_environment(backend))


def _run_backend(run_dir) -> str:
    """The backend a run was trained with (params.json), unless KERAS_BACKEND overrides it."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    params = Path(run_dir) / "params.json"
    return json.loads(params.read_text()).get("backend", "tensorflow") if params.is_file() else "tensorflow"


def train_run(params: dict, data: str, out: str, *, jobs_per_gpu: int = 1,
              gpu_lock_dir: str = ".snakemake/gpu-locks", stop_after_epoch: int | None = None) -> None:
    """Train one run (``ssimsr train`` and the workflow's train job)."""
    from .gpus import claim_gpu, describe_devices, held_stderr

    backend = params.get("backend", "tensorflow")
    # before the backend is imported: a distinct GPU (or GPU slot) per concurrent job
    gpu = claim_gpu(gpu_lock_dir, jobs_per_gpu=jobs_per_gpu)
    _use_backend(backend)
    with held_stderr() as held:
        line, _ = describe_devices(backend)
    # The first line of every train log: where it trains (a CPU fallback is never silent).
    print(line + (f" (GPU slot of GPU {gpu})" if gpu is not None else ""), file=sys.stderr, flush=True)
    sys.stderr.write(held.text)
    from .train import RunParams, train

    history = train(RunParams.from_dict(params), data, out, stop_after_epoch=stop_after_epoch)
    last = history[history.split == "val"].tail(1)
    print(last.to_string(index=False))


def _cmd_train(args) -> None:
    train_run(args.params, args.data, args.out, jobs_per_gpu=args.jobs_per_gpu, gpu_lock_dir=args.gpu_lock_dir,
              stop_after_epoch=args.stop_after_epoch)


def _cmd_upscale(args) -> None:
    _use_backend(args.backend or _run_backend(args.run))
    from .upscale import upscale_paths

    for path in upscale_paths(args.run, args.input, args.output, tile=args.tile):
        print(path)


def _image_sets(args) -> dict:
    from .data import list_split

    sets = {"val": list_split(args.data, "val")}
    if args.showcase:
        sets["showcase"] = list_split(Path(args.showcase).parent, Path(args.showcase).name)
    # a benchmark (evaluation.benchmarks): its prepared val split, as a set named after it
    for folder in getattr(args, "benchmarks", None) or []:
        name = Path(folder).name
        if name in sets:
            raise ValueError(f"--benchmarks {folder}: a benchmark cannot be named {name!r} (a set of its own)")
        sets[name] = list_split(folder, "val")
        if not sets[name]:
            raise ValueError(f"--benchmarks {folder}: its val split has no image")
    return sets


def _cmd_evaluate(args) -> None:
    _use_backend(args.backend or _run_backend(args.run))
    from .evaluate import evaluate_run

    frame = evaluate_run(args.run, _image_sets(args), args.out)
    print(frame.groupby("set")[["psnr", "ssim", "psnr_y", "ssim_y"]].mean().to_string())


def _cmd_lpips(args) -> None:
    from .lpips_eval import lpips_for_run

    table = lpips_for_run(_image_sets(args), Path(args.eval_dir) / "recon", args.nets, args.weights_dir,
                          Path(args.eval_dir) / "lpips.csv")
    print(table.drop(columns=["set", "image"]).describe(include="all").to_string())


def _cmd_fetch_lpips(args) -> None:
    from .weights import fetch_lpips_backbones

    status = fetch_lpips_backbones(args.weights_dir, args.nets, args.status, args.base_url, args.local_dir,
                                   policy=_policy(args))
    print(json.dumps(status, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssimsr", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="fetch and verify one dataset source, write its receipt")
    p.add_argument("--source", type=_json_arg, required=True, help="source config as JSON")
    p.add_argument("--receipt", required=True, help="receipt JSON to write")
    p.add_argument("--download-dir", required=True, help="where downloaded archives go")
    _download_options(p)
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("prepare", help="prepare a dataset's PNG splits from its receipts")
    p.add_argument("--receipts", nargs="+", required=True)
    p.add_argument("--sources", type=_json_arg, required=True, help="configured sources (JSON list)")
    p.add_argument("--options", type=_json_arg, required=True, help="dataset config (JSON)")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--out", required=True, help="output folder results/data/<dataset>")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("fetch-weights", help="download or copy a weights file, hash-checked")
    p.add_argument("--uri", required=True, help="official URL or local file")
    p.add_argument("--out", required=True)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--md5", help="expected md5 (Keras files)")
    group.add_argument("--sha256-prefix", help="expected start of the sha256 (torchvision files)")
    _download_options(p)
    p.set_defaults(func=_cmd_fetch_weights)

    p = sub.add_parser("train", help="train one run (model, dataset, lambda_s, seed)")
    p.add_argument("--params", type=_json_or_file, required=True,
                   help="resolved run parameters: a params.json file (e.g. of a trained run) or JSON text")
    p.add_argument("--data", required=True, help="prepared dataset folder results/data/<dataset>")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--gpu-lock-dir", default=".snakemake/gpu-locks",
                   help="where concurrent jobs claim distinct GPUs (multi-GPU machines)")
    p.add_argument("--jobs-per-gpu", type=int, default=1,
                   help="train jobs sharing one GPU (run snakemake with --resources gpu=<GPUs x this>)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("upscale", help="apply a trained run to an image file or folder")
    p.add_argument("run", help="trained run folder (holds params.json, *.keras)")
    p.add_argument("input", help="image file or folder")
    p.add_argument("output", help="output PNG file or folder")
    p.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None,
                   help="Keras backend (default: KERAS_BACKEND, else the run's training backend)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile side in input pixels (default: from the memory available)")
    p.set_defaults(func=_cmd_upscale)

    for name, func, helptext in (("evaluate", _cmd_evaluate, "per-image PSNR/SSIM of a run (Keras side)"),
                                 ("lpips", _cmd_lpips, "per-image LPIPS of a run's reconstructions (torch side)")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--data", required=True, help="prepared dataset folder (its val split is evaluated)")
        p.add_argument("--showcase", default=None, help="folder of showcase crops to evaluate too")
        p.add_argument("--benchmarks", nargs="*", default=[], metavar="DIR",
                       help="prepared benchmark datasets (results/data/<name>): their val splits are evaluated "
                            "too, each as the image set <name>")
        if name == "evaluate":
            p.add_argument("--run", required=True, help="trained run folder")
            p.add_argument("--out", required=True, help="evaluation folder of the run")
            p.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None,
                           help="Keras backend (default: KERAS_BACKEND, else the run's training backend)")
        else:
            p.add_argument("--eval-dir", required=True, help="evaluation folder of the run (holds recon/)")
            p.add_argument("--nets", nargs="+", default=["alex", "squeeze", "vgg"])
            p.add_argument("--weights-dir", required=True)
        p.set_defaults(func=func)

    p = sub.add_parser("fetch-lpips", help="fetch torchvision backbones for LPIPS; record availability")
    p.add_argument("--weights-dir", required=True)
    p.add_argument("--nets", nargs="+", default=["alex", "squeeze", "vgg"])
    p.add_argument("--status", required=True, help="status JSON to write")
    p.add_argument("--base-url", default=None, help="torchvision model URL base; omitted: no download")
    p.add_argument("--local-dir", default=None, help="folder holding the .pth files to copy instead")
    _download_options(p)
    p.set_defaults(func=_cmd_fetch_lpips)

    for p in sub.choices.values():  # `ssimsr fetch -v ...` as well as `ssimsr -v fetch ...`
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging; traceback on errors")
    return parser


def _download_options(parser: argparse.ArgumentParser) -> None:
    # defaults = the config schema's `downloads` defaults (ssimsr.download.DownloadPolicy)
    group = parser.add_argument_group("downloads (config `downloads`)")
    group.add_argument("--retries", type=int, default=4, help="retries of a failed transfer (default 4)")
    group.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up (60)")
    group.add_argument("--backoff", type=float, default=2.0, help="seconds before the first retry, doubling (2)")


def expected_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can act on: bad input, missing file, bad config value, network."""
    import tarfile
    import zipfile

    from .download import DataError

    return (DataError, OSError, ValueError, RuntimeError, EOFError, MemoryError,
            tarfile.TarError, zipfile.BadZipFile)


def one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__  # e.g. a bare MemoryError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.captureWarnings(True)  # a warning is one log line, not two lines of source
    expected = expected_errors()
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"ssimsr {args.command}: interrupted", file=sys.stderr)
        return 130
    except expected as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"ssimsr {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: keep the traceback for the report
        traceback.print_exc()
        print(f"ssimsr {args.command}: internal error: {one_line(exc)} (please report this with the "
              "traceback above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
