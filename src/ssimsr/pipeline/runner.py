"""What the two ways in share: the ``ssimsr`` commands (``cli``) and the workflow's
``script:`` jobs (``jobs``) both run a stage through here.

* :func:`guarded`: runs a stage; an expected failure (bad input, a missing file, a bad
  config value, the network) becomes one line ``ssimsr <stage>: error: ...`` and exit
  status 1, anything else (a bug) keeps its traceback;
* :func:`train_run`: one training run, as ``ssimsr train`` and the train job start it
  (GPU claim, backend selection, the device line first in the log);
* :func:`fetch_sources` and :func:`prepare_dataset`: a dataset's sources and its
  prepared splits, from one dataset's config; :func:`fetch_weights` and
  :func:`fetch_lpips`: the pretrained weight files;
* :func:`use_backend` and :func:`run_backend`: the Keras backend of a process, chosen
  before Keras is imported (a run is evaluated on the backend it was trained on).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterator

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "glue both cli and jobs run stages through (errors, backend choice, GPU claim)"


def expected_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can act on: bad input, missing file, bad config value, network."""
    import tarfile
    import zipfile

    from ..data.download import DataError

    return (DataError, OSError, ValueError, RuntimeError, EOFError, MemoryError,
            tarfile.TarError, zipfile.BadZipFile)


def one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__  # e.g. a bare MemoryError


class Outcome:
    """The exit status of a stage run under :func:`one_line_errors` (0 until it fails)."""

    status = 0


@contextlib.contextmanager
def one_line_errors(stage: str, verbose: bool = False, bug_hint: str = "") -> Iterator[Outcome]:
    """Run the ``with`` body as stage ``stage``: an expected failure becomes one line on
    stderr naming the stage and the failure and status 1 (``verbose``: with the traceback;
    always for an unexpected error, a bug); Ctrl-C status 130. A context manager, not a
    wrapper call, so that a traceback shows no frame of it between a job and its stage."""
    outcome = Outcome()
    try:
        yield outcome
    except KeyboardInterrupt:
        print(f"ssimsr {stage}: interrupted", file=sys.stderr, flush=True)
        outcome.status = 130
    except expected_errors() as exc:
        if verbose:
            traceback.print_exc()
        print(f"ssimsr {stage}: error: {one_line(exc)}", file=sys.stderr, flush=True)
        outcome.status = 1
    except Exception as exc:
        from .extras import missing_extra

        hint = missing_extra(exc, stage)  # an optional package not installed: its extra, in one line
        if hint is not None:
            if verbose:
                traceback.print_exc()
            print(f"ssimsr {stage}: error: {hint}", file=sys.stderr, flush=True)
        else:  # a bug: keep the traceback for the report
            traceback.print_exc()
            print(f"ssimsr {stage}: internal error: {one_line(exc)}{bug_hint}", file=sys.stderr, flush=True)
        outcome.status = 1


def guarded(stage: str, call: Callable[[], object], verbose: bool = False, bug_hint: str = "") -> int:
    """Run ``call()`` under :func:`one_line_errors`; its exit status."""
    with one_line_errors(stage, verbose, bug_hint) as outcome:
        call()
    return outcome.status


def use_backend(name: str) -> None:
    """Select the Keras backend (and its GPU settings) before Keras is imported."""
    from ..training import backends
    from .extras import require_backend

    backend = backends.get(name)
    require_backend(name)  # not installed: one line naming the extra (ssimsr.pipeline.extras)
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != name:
            raise RuntimeError(f"Keras already runs {keras.backend.backend()!r} in this process; "
                               f"cannot switch to {name!r}")
        return
    os.environ.update(backend.environment())


def run_backend(run_dir: str | os.PathLike) -> str:
    """The backend a run was trained with (its params.json), unless KERAS_BACKEND overrides it;
    the config schema's default (``backends.default``) where params.json does not say."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    from ..training.backends import default

    params = Path(run_dir) / "params.json"
    if not params.is_file():
        return default()  # the run's files are checked (and named) when it is loaded
    try:
        return json.loads(params.read_text()).get("backend") or default()
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        # unreadable: loading the run names it and moves it aside (upscale.load_run), before
        # any network is loaded on this backend
        return default()


def train_run(params: dict, data: str, out: str, *, jobs_per_gpu: int = 1,
              gpu_lock_dir: str = ".snakemake/gpu-locks", stop_after_epoch: int | None = None) -> None:
    """Train one run (``ssimsr train`` and the workflow's train job)."""
    from ..training.backends import describe_devices
    from ..data.data import DataError, list_split
    from .gpus import claim_gpu, held_stderr
    from ..training.run_params import RunParams

    # bad parameters or data fail here, in one line, before a GPU is claimed or the
    # backend starts (seconds, and its log noise)
    run = RunParams.from_dict(params)
    for split in ("train", "val"):
        if not list_split(data, split):
            raise DataError(f"{Path(data) / split}: no prepared image (run the prepare_dataset rule)")
    from ..training.train import begin_attempt, train

    # the attempt's header first: the log is appended to across attempts (jobs.STAGES' kept_log)
    begin_attempt(run, out)
    # before the backend is imported: a distinct GPU (or GPU slot) per concurrent job
    gpu = claim_gpu(gpu_lock_dir, jobs_per_gpu=jobs_per_gpu)
    use_backend(run.backend)
    with held_stderr() as held:
        line, _ = describe_devices(run.backend)
    # The first line of every train log: where it trains (a CPU fallback is never silent).
    print(line + (f" (GPU slot of GPU {gpu})" if gpu is not None else ""), file=sys.stderr, flush=True)
    sys.stderr.write(held.text)
    history = train(run, data, out, stop_after_epoch=stop_after_epoch, begun=True)
    last = history[history.split == "val"].tail(1)
    print(last.to_string(index=False))


def receipt_path(download_dir: str | os.PathLike, index: int) -> Path:
    """Where source ``index`` of a dataset leaves its receipt (the workflow's download rule too)."""
    return Path(download_dir) / f"source{index}.json"


def fetch_sources(sources: dict[int, dict], download_dir: str | os.PathLike,
                  downloads: dict) -> list[tuple[Path, dict]]:
    """Fetch (download, or verify a local archive or folder) a dataset's sources, by their
    index in its config, and write their receipts; (receipt, record) each."""
    from ..data.download import DownloadPolicy
    from ..data.sources import fetch_source

    policy = DownloadPolicy(**downloads)
    receipts = {index: receipt_path(download_dir, index) for index in sources}
    return [(receipts[i], fetch_source(source, receipts[i], download_dir, policy=policy))
            for i, source in sources.items()]


def fetch_weights(uri: str, out: str, downloads: dict, md5: str | None = None,
                  sha256_prefix: str | None = None) -> None:
    """Fetch one pretrained weight file and verify it (Keras files: md5; torchvision's:
    the sha256 prefix in their names)."""
    from ..data.download import DownloadPolicy
    from ..data.weights import fetch_weight_file

    policy = DownloadPolicy(**downloads)
    if md5:
        digest = fetch_weight_file(uri, out, md5, "md5", policy=policy)
    else:
        digest = fetch_weight_file(uri, out, sha256_prefix, "sha256", prefix=True, policy=policy)
    print(f"{out}: verified ({digest})")


def fetch_lpips(weights_dir: str, nets: list[str], status: str, base_url: str | None,
                local_dir: str | None, downloads: dict) -> None:
    """torchvision's LPIPS backbone files into ``weights_dir``; their status JSON (one
    that cannot be had is recorded with the reason, not fatal)."""
    from ..data.download import DownloadPolicy
    from ..data.weights import fetch_lpips_backbones

    result = fetch_lpips_backbones(weights_dir, nets, status, base_url, local_dir, policy=DownloadPolicy(**downloads))
    print(json.dumps(result, indent=2))


def prepare_dataset(receipts: list, options: dict, sources: list[dict], scale: int, out: str | os.PathLike):
    """Prepare one dataset from its sources' receipts into ``out`` (``options``: its config
    less ``sources``); prints and returns the manifest."""
    from ..data.data import prepare_dataset as prepare

    manifest = prepare(receipts, dict(options, scale=scale), out, sources=sources)
    print(f"prepared {out}: {manifest.groupby(['status', 'split']).size().to_dict()}")
    return manifest


def evaluate(run: str, sets: dict, out: str, backend: str | None = None) -> None:
    """Evaluate a run on ``sets`` into ``out``, on ``backend`` (default: the run's own)."""
    use_backend(backend or run_backend(run))
    from ..evaluation.evaluate import evaluate_run

    frame = evaluate_run(run, sets, out)
    print(frame.groupby("set")[["psnr", "ssim", "psnr_y", "ssim_y"]].mean().to_string())


def lpips(sets: dict, eval_dir: str, nets: list[str], weights_dir: str) -> None:
    """LPIPS of a run's reconstructions (``eval_dir``/recon) into ``eval_dir``/lpips.csv."""
    from ..evaluation.lpips_eval import lpips_for_run

    table = lpips_for_run(sets, Path(eval_dir) / "recon", nets, weights_dir, Path(eval_dir) / "lpips.csv")
    print(table.drop(columns=["set", "image"]).describe(include="all").to_string())
