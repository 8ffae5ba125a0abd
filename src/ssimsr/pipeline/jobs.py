"""What the workflow's ``script:`` rules run: one function per rule, Python values in.

Every such rule has ``script: "../scripts/job.py"``, which calls :func:`run` with
Snakemake's ``snakemake`` object. ``run`` picks the stage named after the rule, sends
everything the job prints (the C++ libraries' noise included) to the rule's log, and
turns an expected failure into one line ``ssimsr <rule>: error: ...`` and exit status 1,
as the ``ssimsr`` commands do. Config sections reach these functions as the dicts and
lists Snakemake passes in ``params:``, not as JSON strings.

A stage is declared once, here, with :func:`stage` on its job function: its rule (the
function's name), the modules its code digest starts from (``code_digest``), whether its
log is kept across attempts, whether it may start warm (``warm``) and on which backend,
and the ``ssimsr`` command that runs the same library function by hand (``cli``). The
job dispatch, the kept logs, the digests and the stage commands are read from
:data:`STAGES`. From the rule to the library: ``job.py`` -> :func:`run` -> the stage's
job function -> the library function.

The train job's log is kept across attempts: Snakemake deletes a job's log (and its
outputs) before it runs the job again, after a failure, a kill or a SLURM time limit.
So the log has a second name in the run folder, a hard link ``checkpoint/train.log``
that Snakemake does not know; the next attempt links the log back to it and appends,
after a header line ``=== attempt N, <date> on <host> (pid P): resuming from epoch k of
n`` (or ``fresh start``). Where the filesystem has no hard links, the log holds only
the current attempt and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable

from ..registry import Registry

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "glue of the script: rules"

@dataclass(frozen=True)
class Stage:
    """One workflow stage: the rule of the same name runs ``job(smk)`` (``smk``: Snakemake's
    object of the job)."""

    name: str
    job: Callable
    #: the modules its code digest starts from (``code_digest``), dotted below ``ssimsr``
    #: (``training.train``); () for a stage in no digest: its outputs are checksum-verified files
    code: tuple[str, ...] = ()
    #: the log kept across attempts (a hard link Snakemake does not know; :func:`keep_log`),
    #: from the job's params
    kept_log: Callable | None = None
    #: the Keras backend the job runs, from the job's params, for a stage that may start warm
    warm: Callable | None = None
    #: the ``ssimsr`` command that runs the same library function by hand (``cli``)
    command: str | None = None


STAGES: Registry[Stage] = Registry("stage")


def stage(*, code: tuple[str, ...] = (), kept_log: Callable | None = None, warm: Callable | None = None,
          command: str | None = None) -> Callable:
    """Declare ``job`` (a function of ``smk``) as the stage of the rule of the same name."""
    def declare(job: Callable) -> Callable:
        STAGES.add(job.__name__, Stage(job.__name__, job, tuple(code), kept_log, warm, command))
        return job
    return declare


def keep_log(path: str | os.PathLike, kept: str | os.PathLike) -> str | None:
    """Make ``path`` and ``kept`` one file (a hard link), so that ``path`` can be deleted
    and restored from ``kept``: restore ``path`` when Snakemake deleted it, otherwise link
    ``kept`` to it. Returns a line to log when the filesystem cannot link, else None."""
    path, kept = os.fspath(path), os.fspath(kept)
    os.makedirs(os.path.dirname(kept) or ".", exist_ok=True)
    try:
        if os.path.exists(path) and os.path.exists(kept) and os.path.samefile(path, kept):
            return None
        if os.path.exists(kept) and not os.path.exists(path):
            os.link(kept, path)  # the earlier attempts' log, appended to below
            return None
        open(path, "a").close()
        tmp = f"{kept}.tmp{os.getpid()}"
        os.link(path, tmp)
        os.replace(tmp, kept)
    except OSError as exc:
        return f"note: this log is not kept across attempts (no hard link {kept}: {exc})"
    return None


@contextlib.contextmanager
def logged(path: str | None, append: bool = False):
    """Send Python's output and the C++ libraries' (file descriptors 1 and 2) to ``path``."""
    if path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a" if append else "w", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _train_backend(smk) -> str:
    from ..training.run_params import RunParams

    return RunParams.from_dict(smk.params.run).backend


def _evaluate_backend(smk) -> str:
    from .runner import run_backend

    return run_backend(smk.params.run)


def _train_log(smk) -> str:
    return os.path.join(smk.params.out, "checkpoint", "train.log")


def run(smk) -> None:
    """Run the stage of ``smk.rule``; exits with status 1 after a one-line error.

    A stage that may start warm, with the resource ``warm_start=1``, runs in a fork of a
    process that has imported Keras already (``ssimsr.pipeline.warm``), where available; otherwise here."""
    declared = STAGES.get(smk.rule, "rule")
    if declared.warm and getattr(smk.resources, "warm_start", 0):
        from .warm import run_warm

        try:
            backend = declared.warm(smk)
        except Exception:  # bad parameters: the cold run says so, in its log
            backend = None
        status = backend and run_warm("ssimsr.pipeline.jobs:run_here", (smk,), backend, smk.log[0] if smk.log else None)
        if status:
            sys.exit(status)
        if status == 0:
            return
    run_here(smk)


def run_here(smk) -> None:
    """Run the stage of ``smk.rule`` in this process (``run``)."""
    from .runner import one_line_errors

    declared = STAGES.get(smk.rule, "rule")
    path = smk.log[0] if smk.log else None
    kept = declared.kept_log is not None and path is not None
    note = keep_log(path, declared.kept_log(smk)) if kept else None
    with logged(path, append=kept):
        if note:
            print(note, file=sys.stderr, flush=True)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.captureWarnings(True)
        with one_line_errors(smk.rule) as outcome:
            declared.job(smk)
    if outcome.status:
        sys.exit(outcome.status)


@stage(command="fetch")
def download(smk) -> None:
    from .runner import fetch_sources

    fetch_sources({int(smk.wildcards.index): smk.params.source}, smk.params.download_dir, smk.params.downloads)


@stage(code=("data.data",), command="prepare")
def prepare_dataset(smk) -> None:
    from .runner import prepare_dataset

    prepare_dataset(list(smk.input.receipts), smk.params.options, smk.params.sources, smk.params.scale,
                    smk.params.out)


@stage(code=("data.seed_split", "io.atomic"))  # atomic: loaded with its DataError
def seed_split(smk) -> None:
    from ..data.seed_split import write_seed_split

    manifest = write_seed_split(smk.params.data, smk.params.out, smk.params.split, smk.params.seed)
    print(f"seed {smk.params.seed} split of {smk.params.data}: {manifest['split'].value_counts().to_dict()}")


@stage(code=("training.train",), kept_log=_train_log, warm=_train_backend, command="train")
def train(smk) -> None:
    from .runner import train_run

    train_run(smk.params.run, smk.params.data, smk.params.out, jobs_per_gpu=smk.resources.jobs_per_gpu)


@stage()
def fetch_vgg19(smk) -> None:
    from .runner import fetch_weights

    fetch_weights(smk.params.uri, smk.output[0], smk.params.downloads, md5=smk.params.md5)


@stage(command="fetch-lpips")
def fetch_lpips_backbones(smk) -> None:
    from .runner import fetch_lpips

    fetch_lpips(smk.params.weights_dir, smk.params.nets, smk.output[0], smk.params.base_url,
                smk.params.local_dir, smk.params.downloads)


@stage(code=("evaluation.evaluate", "data.data"), warm=_evaluate_backend, command="evaluate")
def evaluate(smk) -> None:
    from ..data.data import image_sets
    from .runner import evaluate

    evaluate(smk.params.run, image_sets(smk.params.data, smk.params.showcase, smk.params.benchmarks),
             smk.params.out)


@stage(code=("evaluation.lpips_eval", "data.data"), command="lpips")
def lpips(smk) -> None:
    from ..data.data import image_sets
    from .runner import lpips

    lpips(image_sets(smk.params.data, smk.params.showcase, smk.params.benchmarks), smk.params.eval_dir,
          smk.params.nets, smk.params.weights_dir)


@stage(code=("evaluation.evaluate",))
def showcase(smk) -> None:
    from ..evaluation.evaluate import prepare_showcase

    for path in prepare_showcase(smk.params.entries, smk.params.data_root, smk.params.crop, smk.params.scale,
                                 smk.output[0]):
        print(path)


@stage(code=("evaluation.evaluate", "io.atomic"))
def collect(smk) -> None:
    from ..io.atomic import write_csv
    from ..evaluation.evaluate import collect

    per_image, history = collect(smk.params.train_dirs, smk.params.eval_dirs, smk.params.data_root)
    write_csv(per_image, smk.output.per_image)
    write_csv(history, smk.output.history)
    print(f"{len(per_image)} per-image rows, {len(history)} history rows")


@stage(code=("evaluation.baseline", "io.atomic"))
def baseline(smk) -> None:
    from ..io.atomic import write_csv
    from ..evaluation.baseline import baseline_for_dataset

    frame = baseline_for_dataset(smk.params.data, smk.params.scale, smk.params.image_set)
    write_csv(frame, smk.output[0])
    means = frame.drop(columns=["set", "image", "origin"]).mean(numeric_only=True)
    print(f"bicubic baseline of {smk.params.data} ({len(frame)} images): {means.round(4).to_dict()}")


@stage(code=("evaluation.baseline", "io.atomic"))
def baseline_seed(smk) -> None:
    from ..io.atomic import write_csv
    from ..evaluation.baseline import baseline_for_dataset

    frame = baseline_for_dataset(smk.params.data, smk.params.scale, "val")
    frame.insert(0, "seed", smk.params.seed)  # split.per_seed: the images of this seed's val split
    write_csv(frame, smk.output[0])
    print(f"bicubic baseline of {smk.params.data} ({len(frame)} images, seed {smk.params.seed})")


@stage(code=("evaluation.baseline", "io.atomic"))
def collect_baseline(smk) -> None:
    from ..io.atomic import write_csv
    from ..evaluation.baseline import concat_baselines

    frame = concat_baselines(list(smk.input), smk.params.datasets)
    write_csv(frame, smk.output[0])
    print(f"{len(frame)} baseline rows of {len(smk.params.datasets)} datasets")


@stage(code=("evaluation.preprocessing",))
def preprocessing(smk) -> None:
    from ..evaluation.preprocessing import write_preprocessing

    # per dataset d: input receipts_<d> (its source receipts), splits_<d> (its splits.csv)
    entries = [dict(entry, receipts=list(getattr(smk.input, f"receipts_{entry['dataset']}")),
                    splits=getattr(smk.input, f"splits_{entry['dataset']}")) for entry in smk.params.datasets]
    frame = write_preprocessing(entries, smk.params.scale, smk.output[0], workers=smk.threads)
    print(frame.to_string(index=False))


@stage(code=("analysis.stats", "io.atomic"))
def stats(smk) -> None:
    import pandas as pd

    from ..io.atomic import write_csv
    from ..analysis.stats import compare_studies

    table = compare_studies(pd.read_csv(smk.input[0]), pairs=smk.params.pairs)
    write_csv(table, smk.output[0])
    print(f"{len(table)} comparisons")


@stage(code=("tables",))
def tables(smk) -> None:
    import pandas as pd

    from .provenance import describe
    from ..tables import build_tables

    showcase = smk.params.showcase
    report = dict(smk.params.report, showcase_model=showcase["model"], showcase_dataset=showcase["dataset"],
                  benchmarks=list(smk.params.benchmarks))
    baseline = pd.read_csv(smk.input.baseline, dtype={"image": str})
    preprocessing = pd.read_csv(smk.input.preprocessing, dtype={"dataset": str})  # rule preprocessing
    written = build_tables(pd.read_csv(smk.input.history), pd.read_csv(smk.input.per_image),
                           pd.read_csv(smk.input.comparisons), report, smk.params.out, splits=smk.params.splits,
                           baseline=baseline, preprocessing=preprocessing,
                           # which code and config made them, in their captions: informative, read
                           # here (the run's config, a commit), in no param, so it reruns nothing
                           provenance=describe(getattr(smk, "config", None)))
    print(f"{len(written)} table files in {smk.params.out}")


@stage(code=("report.report",))
def figures(smk) -> None:
    import pandas as pd

    from ..report.report import build_figures

    written = build_figures(pd.read_csv(smk.input.history), smk.params.showcase, smk.params.showcase_dir,
                            smk.params.eval_root, smk.params.study, smk.params.out, preset=smk.params.preset,
                            comparisons=pd.read_csv(smk.input.comparisons), scale=smk.params.scale,
                            contrasts=pd.read_csv(smk.input.contrasts))
    print(f"{len(written)} figure files in {smk.params.out}")


@stage()  # in no digest: export packs the run files unchanged, every member sha256-checked
def export_models(smk) -> None:
    from ..evaluation.export import export_models

    rows = export_models(smk.params.runs, smk.output.index)
    print(f"{len(rows)} exported models in {smk.params.out}, {sum(r['size'] for r in rows)} bytes")
