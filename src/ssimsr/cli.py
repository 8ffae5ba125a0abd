"""Command line: ``ssimsr <stage> ...``. Each workflow rule calls one subcommand.

Heavy libraries (TensorFlow, torch) are imported inside the subcommand that needs them,
so ``ssimsr fetch`` and ``ssimsr --help`` start quickly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}: {text[:80]!r}") from exc


def _cmd_fetch(args) -> None:
    from .data import fetch_source

    record = fetch_source(args.source, args.receipt, args.download_dir)
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
        digest = fetch_weight_file(args.uri, args.out, args.md5, "md5")
    else:
        digest = fetch_weight_file(args.uri, args.out, args.sha256_prefix, "sha256", prefix=True)
    print(f"{args.out}: verified ({digest})")


def _cmd_train(args) -> None:
    from .train import RunParams, train

    params = RunParams.from_dict(args.params)
    history = train(params, args.data, args.out, stop_after_epoch=args.stop_after_epoch)
    last = history[history.split == "val"].tail(1)
    print(last.to_string(index=False))


def _cmd_upscale(args) -> None:
    from .upscale import upscale_paths

    for path in upscale_paths(args.run, args.input, args.output):
        print(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssimsr", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="fetch and verify one dataset source, write its receipt")
    p.add_argument("--source", type=_json_arg, required=True, help="source config as JSON")
    p.add_argument("--receipt", required=True, help="receipt JSON to write")
    p.add_argument("--download-dir", required=True, help="where downloaded archives go")
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
    p.set_defaults(func=_cmd_fetch_weights)

    p = sub.add_parser("train", help="train one run (model, dataset, lambda_s, seed)")
    p.add_argument("--params", type=_json_arg, required=True, help="resolved run parameters (JSON)")
    p.add_argument("--data", required=True, help="prepared dataset folder results/data/<dataset>")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("upscale", help="apply a trained run to an image file or folder")
    p.add_argument("run", help="trained run folder (holds params.json, *.keras)")
    p.add_argument("input", help="image file or folder")
    p.add_argument("output", help="output PNG file or folder")
    p.set_defaults(func=_cmd_upscale)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .data import DataError

    try:
        args.func(args)
    except (DataError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"ssimsr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
