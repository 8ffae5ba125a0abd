#!/usr/bin/env python
"""Training-step speed of the project's real step under each Keras backend, side by side.

    python benchmarks/train_step.py                                # tensorflow and jax, all cases
    python benchmarks/train_step.py --backend tensorflow jax torch
    python benchmarks/train_step.py --quick                        # smoke run (CI), ~2 min on 2 cores
    python benchmarks/train_step.py --precision mixed_bfloat16 --json out.json

What is timed: ``ssimsr.training.train.Trainer(run_params(...))`` and its backend step
(``ssimsr.training.train_steps``), called as ``ssimsr.training.train.train`` calls it:
``trainer.steps.fetch([trainer.steps.train(batch)])`` (forward, the loss terms, gradient,
Adam update, then the terms to the host, which also waits for an asynchronous backend), on
a random numpy batch; data loading is left out. The first call (tracing / compilation) is
timed on its own, then ``--warmup`` untimed calls, then the median of ``--repeats`` steps.
Validation (``trainer.steps.evaluate`` + ``fetch``) is timed the same way.

A Keras backend is fixed per process, so this script starts itself once per backend
(``--child``, with ``KERAS_BACKEND`` set) and prints one table from their JSON results; the
ratio column is each backend's ms/step divided by the first backend's (< 1: faster).

Cases: SR and IRN on one 496x320 image, batch 1 (BSDS300, the paper's regime) and on 96x96
crops, batch 16; each with lambda_p = 0 (bwMSE + fwMSE + SSIM_N) and with the VGG19
perceptual term ("+VGG"). VGG19's weights are a file this script writes with RANDOM values
in Keras' legacy h5 layout (as the ImageNet file): the time does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO / "src"))

from ssimsr.training.backends import BACKENDS  # noqa: E402  (imports no backend)
from ssimsr.training.run_params import PRECISIONS  # noqa: E402

SHORT = {name: "tf" if name == "tensorflow" else name for name in BACKENDS}
FULL_SIZES = [(320, 496, 1), (96, 96, 16)]  # (height, width, batch)
QUICK_SIZES = [(64, 96, 1)]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", nargs="+", choices=list(BACKENDS), default=["tensorflow", "jax"],
                    help="Keras backends to compare, the first is the ratios' reference "
                         "(default: tensorflow jax)")
    ap.add_argument("--quick", action="store_true",
                    help="small images (64x96), fewer steps: a smoke run")
    ap.add_argument("--models", nargs="+", choices=("sr", "irn"), default=["sr", "irn"])
    ap.add_argument("--no-vgg", action="store_true", help="leave out the +VGG cases")
    ap.add_argument("--repeats", type=int, help="timed steps per case (default 5, --quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps after the first call")
    ap.add_argument("--precision", choices=PRECISIONS, default="float32",
                    help="RunParams.precision (default float32, the paper's numerics)")
    ap.add_argument("--json", metavar="PATH", help="also write every result as JSON")
    ap.add_argument("--child", nargs=2, metavar=("OUT_JSON", "VGG_H5"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    return args


def cases(args) -> list[dict]:
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    return [{"model": m, "height": h, "width": w, "batch": b, "vgg": vgg}
            for h, w, b in sizes for m in args.models for vgg in ((False,) if args.no_vgg else (False, True))]


def label(case: dict) -> str:
    return (f"{case['model'].upper():3s} {case['width']}x{case['height']} b{case['batch']}"
            + (" +VGG" if case["vgg"] else ""))


# --------------------------------------------------------------------------- child (one backend)

def write_random_vgg19(path: Path) -> None:
    """VGG19 without top, random weights, in the legacy h5 layout ``losses.load_vgg19`` reads."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    tmp.replace(path)


def timed(fn, warmup: int, repeats: int) -> tuple[float, list[float]]:
    """(seconds of the first call, seconds of each of ``repeats`` calls after ``warmup``)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, times


def run_case(case: dict, args, vgg_path: str, backend: str) -> dict:
    import numpy as np

    from ssimsr.pipeline.experiments import run_params
    from ssimsr.training.train import Trainer

    params = run_params(case["model"], dataset="benchmark", backend=backend, lambda_p=1.0 if case["vgg"] else 0.0,
                        vgg_weights=vgg_path, batch_size=case["batch"],
                        crop=case["height"] if case["batch"] > 1 else None, precision=args.precision)
    start = time.perf_counter()
    trainer = Trainer(params)
    build = time.perf_counter() - start
    rng = np.random.default_rng(0)
    batch = rng.random((case["batch"], case["height"], case["width"], 3), dtype=np.float32)
    steps = trainer.steps

    def train():
        terms = steps.fetch([steps.train(batch)])[0]
        if not np.isfinite(terms["total"]):
            raise FloatingPointError(f"non-finite loss {terms}")

    first, times = timed(train, args.warmup, args.repeats)
    eval_first, eval_times = timed(lambda: steps.fetch([steps.evaluate(batch)]), args.warmup, args.repeats)
    return {**case, "build_s": build, "first_s": first, "step_ms": 1e3 * statistics.median(times),
            "steps_ms": [1e3 * t for t in times], "eval_first_s": eval_first,
            "eval_ms": 1e3 * statistics.median(eval_times)}


def child(args) -> None:
    out_json, vgg_path = args.child
    import keras

    from ssimsr.training.backends import describe_devices

    backend = keras.backend.backend()
    if backend != os.environ.get("KERAS_BACKEND"):
        raise SystemExit(f"child: Keras runs {backend!r}, KERAS_BACKEND is {os.environ.get('KERAS_BACKEND')!r}")
    device, _ = describe_devices(backend)
    print(f"[{backend}] {device}", file=sys.stderr, flush=True)
    if not args.no_vgg and not Path(vgg_path).exists():
        write_random_vgg19(Path(vgg_path))
    rows = []
    for case in cases(args):
        try:
            row = run_case(case, args, vgg_path, backend)
            print(f"[{backend}] {label(case)}: first call {row['first_s']:.1f} s, "
                  f"{row['step_ms']:.0f} ms/step, eval {row['eval_ms']:.0f} ms", file=sys.stderr, flush=True)
        except Exception as exc:  # one failing case must not hide the others
            row = {**case, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
            print(f"[{backend}] {label(case)}: FAILED {row['error']}", file=sys.stderr, flush=True)
        rows.append(row)
    Path(out_json).write_text(json.dumps({"backend": backend, "device": device, "rows": rows}, indent=1))


# --------------------------------------------------------------------------- parent

def run_backend(backend: str, args, argv: list[str], tmp: Path) -> dict:
    from ssimsr.training import backends

    out = tmp / f"{backend}.json"
    # TensorFlow's C++ log at warnings and above, or quiet where the backend says so (no GPU:
    # its CUDA probe's "failed call to cuInit" is no fault, backends._TensorFlow.environment)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **backends.get(backend).environment(),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, __file__, *argv, "--child", str(out), str(tmp / "vgg19_random_notop.h5")]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env)
    if proc.returncode or not out.exists():
        return {"backend": backend, "device": f"child exited with {proc.returncode}", "rows": [],
                "seconds": time.perf_counter() - start}
    return {**json.loads(out.read_text()), "seconds": time.perf_counter() - start}


def child_argv(args) -> list[str]:
    argv = ["--models", *args.models, "--repeats", str(args.repeats), "--warmup", str(args.warmup),
            "--precision", args.precision]
    return argv + ["--quick"] * args.quick + ["--no-vgg"] * args.no_vgg


def print_table(results: list[dict], args, loads: tuple) -> None:
    ref = results[0]["backend"]
    by_backend = {r["backend"]: {label(row): row for row in r["rows"]} for r in results}
    width = 24
    head1 = f"{'case':{width}s}" + "".join(f" | {r['backend']:^{30 if i else 22}s}" for i, r in enumerate(results))
    head2 = f"{'':{width}s}" + "".join(
        " | ms/step  1st s eval ms" + (f" {'x ' + SHORT[ref]:>7s}" if i else "") for i in range(len(results)))
    print(f"\nms per training step (median of {args.repeats} after {1 + args.warmup} untimed), "
          f"first call (trace/compile) in s, eval = validation forward in ms; precision {args.precision}"
          + ("; +VGG = VGG19 perceptual term, random-weight VGG (same speed as ImageNet)" if not args.no_vgg else ""))
    print(f"x {SHORT[ref]} = ms/step / {ref}'s ms/step (< 1 faster). Load average (1 min) before / after: "
          f"{loads[0]:.2f} / {loads[1]:.2f} on {os.cpu_count()} CPUs")
    for r in results:
        print(f"  {r['backend']}: {r['device']} ({r['seconds']:.0f} s in all)")
    print(head1 + "\n" + head2 + "\n" + "-" * len(head2))
    for case in cases(args):
        line = f"{label(case):{width}s}"
        base = by_backend[ref].get(label(case), {})
        for i, r in enumerate(results):
            row = by_backend[r["backend"]].get(label(case), {"error": "no result"})
            if "error" in row:
                line += f" | {'FAILED':^{30 if i else 22}s}"
                continue
            line += f" | {row['step_ms']:7.0f} {row['first_s']:6.1f} {row['eval_ms']:7.0f}"
            if i:
                ratio = f"{row['step_ms'] / base['step_ms']:.2f}" if "step_ms" in base else "-"
                line += f" {ratio:>7s}"
        print(line)
    for r in results:
        for row in r["rows"]:
            if "error" in row:
                print(f"{r['backend']} {label(row)}: {row['error']}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="ssimsr-bench-") as tmp:
        results = [run_backend(b, args, child_argv(args), Path(tmp)) for b in args.backend]
    loads.append(os.getloadavg()[0])
    print_table(results, args, tuple(loads))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "load": loads, "results": results}, indent=1))
    failed = sum("error" in row for r in results for row in r["rows"]) + sum(not r["rows"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
