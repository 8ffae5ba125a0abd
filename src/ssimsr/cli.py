"""Command line: ``ssimsr <stage> ...`` for the stages users also run by hand.

``train``, ``evaluate``, ``lpips``, ``upscale``, ``export``, and the dataset and weights fetchers.
The workflow's rules run the same stages as ``script:`` jobs (``ssimsr.pipeline.jobs``); both ways
in share their bodies and their error handling (``ssimsr.pipeline.runner``).

Heavy libraries (TensorFlow, torch) are imported inside the subcommand that needs them,
so ``ssimsr fetch`` and ``ssimsr --help`` start quickly.

``python -m ssimsr`` is the same command; ``ssimsr --version`` prints the version, and
``ssimsr COMMAND --help`` each option with its default and an example.

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
from pathlib import Path

from .training.backends import BACKENDS
from .pipeline.runner import (
    evaluate,
    fetch_lpips,
    fetch_sources,
    fetch_weights,
    guarded,
    lpips,
    prepare_dataset,
    receipt_path,
    run_backend,
    use_backend,
)

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "argument glue of the shell: rules' ssimsr commands"


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}: {text[:80]!r}") from exc


def _json_or_file(text: str):
    """JSON text, or a file of it; an error names the file (or says that there is none)."""
    if text.lstrip().startswith("{"):
        return _json_arg(text)
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file (and not JSON text)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{path}: not valid JSON: {exc}") from exc


def _sha256(text: str) -> str:
    from .evaluation.export import check_sha256

    try:
        return check_sha256(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    """An integer of at least 1 (a count of jobs): 0 or -1 is a usage error naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be a positive integer (at least 1)")
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default (or says it is required); descriptions and
    examples keep their line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required and action.option_strings:
            return f"{text} (required)"
        if "default" in text or "required" in text:  # said in words ("default: from the config")
            return text
        return super()._get_help_string(action)


def _downloads(args) -> dict:
    """The download policy of the --retries / --timeout / --backoff options."""
    return {"retries": args.retries, "timeout": args.timeout, "backoff": args.backoff}


# Where the workflow keeps a dataset's receipts and its prepared splits (workflow/rules/common.smk).
DOWNLOAD_DIR = "resources/datasets/{dataset}"
DATA_DIR = "results/data/{dataset}"
DEFAULT_CONFIG = "config.yaml"


def load_config(paths: list[str | os.PathLike] | None = None, profile: str | None = None) -> dict:
    """The config files a ``snakemake`` call with these ``--configfile`` / ``--profile``
    reads, merged in order (``config.workflow_config_files``), validated against the schema,
    with its defaults filled in."""
    from .config import load_config_files, workflow_config_files

    return load_config_files(workflow_config_files(paths, profile))


def dataset_config(config: dict, name: str) -> dict:
    """The config of dataset ``name``; an unknown name is one line naming the configured ones."""
    datasets = config["datasets"]
    if name not in datasets:
        raise ValueError(f"unknown dataset {name!r}; the config has: {', '.join(sorted(datasets))}")
    return datasets[name]


def _schema_default(path: str):
    """The config schema's default at ``section.key...`` (the one place defaults are written)."""
    from .config import defaults

    value = defaults()
    for key in path.split("."):
        value = value[key]
    return value


def _schema_enum(*path: str) -> list:
    """The allowed values of a config key, from the schema (``training``, ``backend``)."""
    from .config import SCHEMA_PATH, _schema

    node = _schema(str(SCHEMA_PATH))
    for key in path:
        node = node["properties"][key]
    return node.get("enum") or node["items"]["enum"]


def _cmd_fetch(args) -> None:
    config = load_config(args.config, args.profile)
    dataset = dataset_config(config, args.dataset)
    download_dir = args.download_dir or DOWNLOAD_DIR.format(dataset=args.dataset)
    given = {k: getattr(args, k) for k in ("retries", "timeout", "backoff") if getattr(args, k) is not None}
    fetched = fetch_sources(dict(enumerate(dataset["sources"])), download_dir, {**config["downloads"], **given})
    for source, (receipt, record) in zip(dataset["sources"], fetched):
        checksum = f", sha256 {record['sha256']}" if record.get("sha256") else ""
        print(f"{receipt}: {source['uri']} -> {record['kind']} {record['path']}{checksum}")


def _cmd_prepare(args) -> None:
    from .data.download import DataError

    config = load_config(args.config, args.profile)
    dataset = dataset_config(config, args.dataset)
    download_dir = args.download_dir or DOWNLOAD_DIR.format(dataset=args.dataset)
    receipts = [receipt_path(download_dir, i) for i in range(len(dataset["sources"]))]
    missing = [str(r) for r in receipts if not r.is_file()]
    if missing:
        options = ([f"--profile {args.profile}"] if args.profile else []) + [f"--config {c}" for c in args.config or []]
        configs = " ".join(options) or f"--config {DEFAULT_CONFIG}"
        raise DataError(f"no receipt {', '.join(missing)}: fetch the dataset first: "
                        f"ssimsr fetch {configs} --dataset {args.dataset}"
                        + (f" --download-dir {args.download_dir}" if args.download_dir else ""))
    # the same values the workflow's prepare job gets (workflow/rules/data.smk)
    prepare_dataset(receipts, {k: v for k, v in dataset.items() if k != "sources"}, dataset["sources"],
                    config["scale"], args.out or DATA_DIR.format(dataset=args.dataset))


def _cmd_fetch_weights(args) -> None:
    fetch_weights(args.uri, args.out, _downloads(args), md5=args.md5, sha256_prefix=args.sha256_prefix)


def _cmd_train(args) -> None:
    from .pipeline.runner import train_run

    train_run(args.params, args.data, args.out, jobs_per_gpu=args.jobs_per_gpu, gpu_lock_dir=args.gpu_lock_dir,
              stop_after_epoch=args.stop_after_epoch)


def _cmd_upscale(args) -> None:
    from .data.download import DownloadPolicy
    from .evaluation.export import local_run, trained_backend

    # a URL is fetched (into the cache) first: the export's params.json names the backend
    policy = DownloadPolicy(**_downloads(args))
    run = local_run(args.run, args.sha256, policy)
    use_backend(args.backend or trained_backend(run))
    from .evaluation.upscale import upscale_paths

    for path in upscale_paths(run, args.input, args.output, tile=args.tile, overwrite=args.overwrite,
                              sha256=args.sha256, policy=policy):
        print(path)


def _cmd_export(args) -> None:
    from .evaluation.export import export_run

    path, sha256 = export_run(args.run, args.output)
    print(f"{path}  sha256 {sha256}")


def _cmd_evaluate(args) -> None:
    from .data.data import image_sets

    evaluate(args.run, image_sets(args.data, args.showcase, args.benchmarks), args.out, backend=args.backend)


def _cmd_lpips(args) -> None:
    from .data.data import image_sets

    lpips(image_sets(args.data, args.showcase, args.benchmarks), args.eval_dir, args.nets, args.weights_dir)


def _cmd_status(args) -> None:
    from .pipeline.status import main

    main(args.config, profile=args.profile, results=args.results, watch=args.watch, stale_minutes=args.stale, jobs=args.jobs,
         states=args.state)


def _cmd_fetch_lpips(args) -> None:
    fetch_lpips(args.weights_dir, args.nets, args.status, args.base_url, args.local_dir, _downloads(args))


RUN_EXAMPLE = "table1/corrected/sr/bsds300/ls1/b4c4-b5c4/seed0"  # a run of config.yaml (runs.Run.PATTERN)


def _command(sub, name: str, helptext: str, *examples: str, func=None, description: str | None = None):
    """A subcommand with its one-line help, a description and its example(s) under the options."""
    import textwrap

    text = description or (helptext[0].upper() + helptext[1:] + ".")
    epilog = ("examples:\n" if len(examples) > 1 else "example:\n") + "\n".join(f"  {e}" for e in examples)
    p = sub.add_parser(name, help=helptext, description=textwrap.fill(text, 88), epilog=epilog,
                       formatter_class=HelpFormatter)
    if func is not None:
        p.set_defaults(func=func)
    return p


def _config_option(p: argparse.ArgumentParser) -> None:
    """--config, given several times (snakemake's --configfile), and --profile."""
    p.add_argument("--config", action="append", metavar="FILE", default=None,
                   help=f"config file merged over {DEFAULT_CONFIG}, as snakemake's --configfile; given several "
                        "times, they merge in order (later ones win)")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="a snakemake profile folder (e.g. profiles/demo): its config files, as `snakemake "
                        "--profile DIR` reads them, before any --config")


def _dataset_options(p: argparse.ArgumentParser, receipts: str) -> None:
    """--config, --dataset and --download-dir (``receipts``: what the command does there)."""
    _config_option(p)
    p.add_argument("--dataset", required=True, metavar="NAME", help="a dataset named under `datasets:` in the config")
    p.add_argument("--download-dir", default=None, metavar="DIR",
                   help=f"{receipts} (default: {DOWNLOAD_DIR.format(dataset='<dataset>')}, as in the workflow)")


def _backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=list(BACKENDS), default=None,
                   help="Keras backend (default: KERAS_BACKEND, else the run's training backend)")


def _nets_option(p: argparse.ArgumentParser) -> None:
    """--nets: the LPIPS backbones, of the config schema's choices and default."""
    nets, default_nets = _schema_enum("evaluation", "lpips_nets"), _schema_default("evaluation.lpips_nets")
    p.add_argument("--nets", nargs="+", choices=nets, default=default_nets, metavar="NET",
                   help=f"LPIPS backbones, of {', '.join(nets)} (default: {' '.join(default_nets)})")


def _add_fetch(sub) -> None:
    p = _command(sub, "fetch", "fetch and verify a configured dataset's sources, write their receipts",
                 "ssimsr fetch --config config.yaml --dataset bsds300",
                 "ssimsr fetch --config config.yaml --config profiles/demo/demo-config.yaml --dataset photos",
                 func=_cmd_fetch,
                 description="Fetch every source of one dataset of the config (download it, or verify a local "
                             "archive or folder) and write the receipts source<i>.json that `ssimsr prepare` "
                             "reads, as the workflow's download rule does.")
    _dataset_options(p, "where archives are downloaded and the receipts written")
    _download_options(p, from_config=True)


def _add_prepare(sub) -> None:
    p = _command(sub, "prepare", "prepare a configured dataset's PNG splits from its receipts",
                 "ssimsr prepare --config config.yaml --dataset bsds300 --out results/data/bsds300",
                 func=_cmd_prepare,
                 description="Decode, resize and split one dataset of the config into PNGs, a manifest.csv "
                             "and a splits.csv, from the receipts `ssimsr fetch` wrote: the files the "
                             "workflow's prepare job writes.")
    _dataset_options(p, "where `ssimsr fetch` wrote the receipts")
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"output folder (default: {DATA_DIR.format(dataset='<dataset>')}, as in the workflow)")


def _add_fetch_weights(sub) -> None:
    vgg19 = _schema_default("weights.vgg19")
    p = _command(sub, "fetch-weights", "download or copy a weights file, hash-checked",
                 f"ssimsr fetch-weights --uri {vgg19['uri']} --md5 {vgg19['md5']} "
                 f"--out resources/weights/{vgg19['uri'].rsplit('/', 1)[-1]}",
                 func=_cmd_fetch_weights)
    p.add_argument("--uri", required=True, help="official URL or local file")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--md5", help="expected md5 (Keras files; this or --sha256-prefix is required)")
    group.add_argument("--sha256-prefix", metavar="HEX",
                       help="expected start of the sha256 (torchvision files; this or --md5 is required)")
    _download_options(p)


def _add_train(sub) -> None:
    p = _command(sub, "train", "train one run (model, dataset, lambda_s, seed)",
                 f"ssimsr train --params results/train/{RUN_EXAMPLE}/params.json --data results/data/bsds300 "
                 "--out /tmp/rerun",
                 func=_cmd_train)
    p.add_argument("--params", type=_json_or_file, required=True, metavar="FILE|JSON",
                   help="resolved run parameters: a params.json file (e.g. of a trained run) or JSON text")
    p.add_argument("--data", required=True, metavar="DIR", help="prepared dataset folder results/data/<dataset>")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--gpu-lock-dir", default=".snakemake/gpu-locks", metavar="DIR",
                   help="where concurrent jobs claim distinct GPUs (multi-GPU machines)")
    p.add_argument("--jobs-per-gpu", type=_positive_int, default=_schema_default("training.jobs_per_gpu"), metavar="K",
                   help="train jobs sharing one GPU (run snakemake with --resources gpu=<GPUs x this>)")


def _add_upscale(sub) -> None:
    p = _command(sub, "upscale", "apply a trained run to an image file or folder",
                 f"ssimsr upscale results/train/{RUN_EXAMPLE} photo.jpg photo_x2.webp",
                 f"ssimsr upscale results/train/{RUN_EXAMPLE} photos/ photos_x2/",
                 "ssimsr upscale sr-x2.ssimsr.zip photo.jpg photo_x2.png",
                 "ssimsr upscale https://example.org/sr-x2.ssimsr.zip --sha256 <HEX> photo.jpg photo_x2.png",
                 func=_cmd_upscale)
    p.add_argument("run", metavar="RUN",
                   help="trained run folder (holds params.json, *.keras), an export of one (`ssimsr export`: "
                        "<name>.ssimsr.zip) or the https:// URL of an export (with --sha256)")
    p.add_argument("input", help="image file or folder")
    p.add_argument("output", help="output file, whose suffix picks the format (.png, .jpg/.jpeg, .webp, "
                                  ".tif/.tiff), or folder (PNGs named after the inputs)")
    _backend_option(p)
    p.add_argument("--tile", type=int, default=None, metavar="PX",
                   help="tile side in input pixels (default: from the memory available)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that exist, the input included (default: refuse, naming the "
                        "file, before anything is written)")
    p.add_argument("--sha256", type=_sha256, default=None, metavar="HEX",
                   help="the export's sha256, as `ssimsr export` printed it: required for a URL (the file is "
                        "cached as ~/.cache/ssimsr/models/<sha256>.ssimsr.zip), checked for a file "
                        "(default: none)")
    _download_options(p)


def _add_export(sub) -> None:
    p = _command(sub, "export", "write a trained run as one file that `ssimsr upscale` takes",
                 f"ssimsr export results/train/{RUN_EXAMPLE}",
                 f"ssimsr export results/train/{RUN_EXAMPLE} -o sr-x2.ssimsr.zip",
                 func=_cmd_export,
                 description="Write a trained run folder as one zip file, <name>.ssimsr.zip: its networks "
                             "(the upscaler, and the downscaler, learned or fixed), params.json, provenance.json "
                             "and history.csv, a MODEL_CARD.md and a MANIFEST.json with every member's "
                             "sha256. Prints the file and its sha256, which `ssimsr upscale URL --sha256 HEX` "
                             "needs to use it from a web server.")
    p.add_argument("run", metavar="RUN", help="trained run folder (holds params.json, *.keras)")
    p.add_argument("-o", dest="output", default=None, metavar="FILE",
                   help="file to write, or a folder to write it in (default: <run path under train/, "
                        "dashed>.ssimsr.zip in the current folder)")


def _image_set_options(p: argparse.ArgumentParser) -> None:
    """--data, --showcase, --benchmarks: the image sets `evaluate` and `lpips` score."""
    p.add_argument("--data", required=True, metavar="DIR",
                   help="prepared dataset folder (its val split is evaluated)")
    p.add_argument("--showcase", default=None, metavar="DIR",
                   help="folder of showcase crops to evaluate too (default: none)")
    p.add_argument("--benchmarks", nargs="*", default=[], metavar="DIR",
                   help="prepared benchmark datasets (results/data/<name>): their val splits are evaluated "
                        "too, each as the image set <name> (default: none)")


def _add_evaluate(sub) -> None:
    p = _command(sub, "evaluate", "per-image PSNR/SSIM of a run (Keras side)",
                 f"ssimsr evaluate --run results/train/{RUN_EXAMPLE} --data results/data/bsds300 "
                 f"--out results/eval/{RUN_EXAMPLE}",
                 func=_cmd_evaluate)
    _image_set_options(p)
    p.add_argument("--run", required=True, metavar="DIR", help="trained run folder")
    p.add_argument("--out", required=True, metavar="DIR", help="evaluation folder of the run")
    _backend_option(p)


def _add_lpips(sub) -> None:
    p = _command(sub, "lpips", "per-image LPIPS of a run's reconstructions (torch side)",
                 f"ssimsr lpips --eval-dir results/eval/{RUN_EXAMPLE} --data results/data/bsds300 "
                 "--weights-dir resources/weights",
                 func=_cmd_lpips)
    _image_set_options(p)
    p.add_argument("--eval-dir", required=True, metavar="DIR",
                   help="evaluation folder of the run (holds recon/)")
    _nets_option(p)
    p.add_argument("--weights-dir", required=True, metavar="DIR",
                   help="folder of torchvision's backbone files (as `ssimsr fetch-lpips` leaves it)")


def _add_fetch_lpips(sub) -> None:
    lpips_source = _schema_default("weights.lpips")
    p = _command(sub, "fetch-lpips", "fetch torchvision backbones for LPIPS; record availability",
                 "ssimsr fetch-lpips --weights-dir resources/weights --status resources/weights/lpips_backbones.json "
                 f"--base-url {lpips_source['base_url']}",
                 func=_cmd_fetch_lpips)
    p.add_argument("--weights-dir", required=True, metavar="DIR", help="folder to put the backbone files in")
    _nets_option(p)
    p.add_argument("--status", required=True, metavar="FILE", help="status JSON to write")
    p.add_argument("--base-url", default=None, metavar="URL",
                   help=f"torchvision model URL base, e.g. {lpips_source['base_url']} "
                        "(default: none: nothing is downloaded)")
    p.add_argument("--local-dir", default=None, metavar="DIR",
                   help="folder holding the .pth files to copy instead (default: none)")
    _download_options(p)


def _add_status(sub) -> None:
    from .pipeline.status import STATES

    p = _command(sub, "status", "every configured run: done, running, failed or pending; the study's time left",
                 "ssimsr status",
                 "ssimsr status --profile profiles/demo --watch 30",
                 func=_cmd_status,
                 description="One table of every run of the config's active studies (state, epoch k of n, last "
                             "validation PSNR / SSIM, seconds per epoch, ETA) and the study's remaining training "
                             "time, read from the run folders results/train/<run> and the config only. The "
                             "rules deciding the states: docs/reliability.md.")
    _config_option(p)
    p.add_argument("--results", default="results", metavar="DIR", help="the workflow's results folder")
    p.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="refresh every SECONDS until Ctrl-C (default: print once)")
    p.add_argument("--stale", type=float, default=30.0, metavar="MINUTES",
                   help="a started run on another host with no file changed for this long (or two epochs) "
                        "counts as failed")
    p.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                   help="trainings at once, for the remaining time (default: the number running now, at least 1)")
    p.add_argument("--state", nargs="+", choices=STATES, default=None,
                   metavar="STATE", help="list only runs in these states (default: all; the summary counts all)")


# The subcommands, in the order `ssimsr --help` lists them: each adds its parser and options.
SUBCOMMANDS = (_add_fetch, _add_prepare, _add_fetch_weights, _add_train, _add_upscale, _add_export, _add_evaluate, _add_lpips,
               _add_fetch_lpips, _add_status)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="ssimsr", description=__doc__, formatter_class=HelpFormatter,
                                     epilog="run `ssimsr COMMAND --help` for a command's options and an example")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_subcommand in SUBCOMMANDS:
        add_subcommand(sub)

    for p in sub.choices.values():  # `ssimsr fetch -v ...` as well as `ssimsr -v fetch ...`
        p.formatter_class = HelpFormatter  # every command's help shows its defaults
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="debug logging; traceback on errors (default: off)")
    return parser


def _download_options(parser: argparse.ArgumentParser, from_config: bool = False) -> None:
    """--retries, --timeout, --backoff: the config schema's `downloads` defaults
    (ssimsr.data.download.DownloadPolicy), or, with a config, the config's values."""
    schema = _schema_default("downloads")

    def default(key: str) -> str:
        return (f" (default: the config's downloads.{key}, else {schema[key]})" if from_config
                else f" (default: {schema[key]}, the config schema's downloads.{key})")

    group = parser.add_argument_group("downloads (config `downloads`)")
    group.add_argument("--retries", type=int, default=None if from_config else schema["retries"],
                       help="retries of a failed transfer" + default("retries"))
    group.add_argument("--timeout", type=float, default=None if from_config else schema["timeout"],
                       help="seconds without data before giving up" + default("timeout"))
    group.add_argument("--backoff", type=float, default=None if from_config else schema["backoff"],
                       help="seconds before the first retry, doubling" + default("backoff"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.captureWarnings(True)  # a warning is one log line, not two lines of source
    return guarded(args.command, lambda: args.func(args), verbose=args.verbose,
                   bug_hint=" (please report this with the traceback above)")


if __name__ == "__main__":
    sys.exit(main())
