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
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"ssimsr {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
