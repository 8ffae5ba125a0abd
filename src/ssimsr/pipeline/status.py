"""``ssimsr status``: where every configured training run stands, and when the study ends.

Reads the config (``--config`` files merged in order, as ``snakemake --configfile``
merges them; default ``config.yaml``) and each run's folder ``results/train/<run>/``, nothing else: no
Snakemake metadata, no Keras, no pandas, so the 132 runs of the paper's study take a
fraction of a second.

**States** (of the configured runs, decided from the run folder only):

* ``done``: the train rule's four outputs exist (``upscaler.keras``, ``downscaler.keras``,
  ``history.csv``, ``params.json``) and ``params.json`` equals the configured parameters.
  Outputs of other parameters (the config changed since) count as ``pending`` with the
  note ``outdated``: Snakemake will train the run again. (Code changes, which also rerun
  a training, are not visible here; ``snakemake -n`` shows them.)
* ``corrupt``: an output is unreadable, the note names it. Either the four exist but one
  fails a cheap check (a ``.keras`` file's zip directory lists the members Keras writes,
  ``params.json`` parses, ``history.csv`` has its header, rows of one length and a last
  line end): Snakemake sees a file and would not retrain it, so the note says to remove
  it (the evaluate job moves it aside itself, and fails); or an evaluation has moved one
  aside (``<name>.corrupt``, ``ssimsr.training.checkpoints``) and no training has started since:
  the next ``snakemake`` trains it again (from the run's final checkpoint: seconds).
* ``running``: no complete outputs, and the run is alive. On the host of its latest
  attempt (``checkpoint/attempts.csv``: host, pid, start) that is its process being
  alive; elsewhere (a cluster node) it is a file of the run (``progress.csv``,
  ``history.csv``, ``train.log``, the checkpoint, ``params.json``) changed within the
  last ``--stale`` minutes (default 30) or two mean epoch times, whichever is longer.
* ``failed``: a started run (any of those files) that is not running: its latest attempt
  logged an error (``ssimsr train: error: ...``, a traceback), its process is gone, or
  nothing changed for longer than the ``--stale`` limit. The rerun resumes it from its
  checkpoint.
* ``pending``: nothing of the run exists yet.

**Numbers.** Epoch ``k/n``: the last epoch with a validation row in ``progress.csv`` (the
per-epoch history that survives a failed job; else ``history.csv``, else the checkpoint's
history) of the configured ``n``; the validation PSNR / SSIM of that epoch; the mean epoch
time (training + validation seconds of the history). ETA of a running run: its remaining
epochs at its mean epoch time, less the time since its last epoch. A pending or failed
run is estimated (``~``) from comparable runs (same preset, model and dataset; else same
model and dataset): their epoch-0 validation, their mean epoch time per remaining epoch
and the job's start-up (``benchmark.tsv`` of done runs less their history's seconds).
The study's remaining time is the sum over unfinished runs divided by the jobs that run
at once (``--jobs``; default: the number running now, at least 1). Training only:
evaluation, LPIPS and the tables come on top.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


from .progress import format_duration
from .runs import Run

STATES = ("done", "running", "failed", "corrupt", "pending")
OUTPUTS = ("upscaler.keras", "downscaler.keras", "history.csv", "params.json")
#: files a started run has (progress.csv: the per-epoch history that is not a workflow output)
ACTIVITY = ("progress.csv", "history.csv", "train.log", "params.json")
CHECKPOINT_ACTIVITY = ("state.npz", "attempts.csv", "train.log")
ERROR_LINE = re.compile(r"^(ssimsr \S+: (internal )?error: |Traceback \(most recent call last\))")
ATTEMPT_LINE = "=== attempt "
LOG_TAIL_BYTES = 65536


# --------------------------------------------------------------------------- config

def load_config(files: list[str | os.PathLike] | None = None, profile: str | None = None) -> dict:
    """The config a ``snakemake`` call with these ``--configfile`` ``files`` and ``--profile``
    reads: ``config.yaml``, the profile's config files, then ``files``, merged in order
    (``config.workflow_config_files``). Defaults are filled by the run table."""
    from ..config import load_config_files, workflow_config_files

    return load_config_files(workflow_config_files(files, profile), fill=False)


def configured_runs(config: dict) -> dict[Run, dict]:
    """The run table of the config, defaults filled and validated as the Snakefile does."""
    from .experiments import experiment_table

    return experiment_table(config)


# --------------------------------------------------------------------------- one run folder

@dataclass
class RunStatus:
    run: Run
    state: str
    epochs: int
    epoch: int | None = None  # the last epoch with a validation row
    psnr: float | None = None
    ssim: float | None = None
    epoch_seconds: float | None = None  # mean training + validation seconds of an epoch
    eta: float | None = None  # seconds left (None: no estimate)
    estimated: bool = False  # eta from comparable runs, not from this run's own epochs
    attempts: int = 0
    note: str = ""
    # used for the estimates of other runs
    epoch0_seconds: float | None = None
    startup_seconds: float | None = None
    last_change: float | None = None
    started: float | None = None


def _entries(folder: Path) -> dict[str, os.stat_result]:
    try:
        with os.scandir(folder) as it:
            return {e.name: e.stat() for e in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _history_rows(text: str) -> list[dict]:
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.append({"epoch": int(float(row["epoch"])), "split": row["split"],
                         "psnr": _float(row.get("psnr")), "ssim": _float(row.get("ssim")),
                         "seconds": _float(row.get("seconds"))})
        except (KeyError, TypeError, ValueError):
            continue
    return rows


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value else None  # NaN: none


def _history_problem(text: str | None) -> str | None:
    """Why a ``history.csv`` (its text) is unreadable, or None. pandas writes a header with
    ``epoch`` and ``split``, rows of its length, a line end last: a file cut short lacks one."""
    if text is None:
        return "cannot be read"
    if not text.endswith("\n"):
        return "cut short: no line end at its end"
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not {"epoch", "split"} <= set(rows[0]):
        return "no header with epoch and split"
    if any(len(row) != len(rows[0]) for row in rows):
        return "a row whose length is not the header's"
    return None


def _unreadable_output(folder: Path, params_problem: str | None) -> tuple[str, str] | None:
    """(name, reason) of the first train output that fails its cheap check, or None: for
    hundreds of runs, a few hundred bytes per ``.keras`` file (its zip directory), not the file."""
    from ..training.checkpoints import keras_file_problem

    if params_problem:
        return "params.json", params_problem
    for name in ("upscaler.keras", "downscaler.keras"):
        try:
            problem = keras_file_problem(folder / name)
        except FileNotFoundError:  # moved aside since the folder was listed: the next look tells
            problem = "gone while being read"
        if problem:
            return name, problem
    problem = _history_problem(_read(folder / "history.csv"))
    return ("history.csv", problem) if problem else None


def _moved_aside(files: dict[str, os.stat_result], since: float | None) -> str | None:
    """The first train output missing from ``files`` and moved aside as unreadable after
    ``since`` (the run's last activity; None: none): no training has started since."""
    from ..training.checkpoints import CORRUPT_SUFFIX

    for name in OUTPUTS:
        if name in files:
            continue
        moved = [f for f, st in files.items() if f.startswith(name + CORRUPT_SUFFIX)
                 and (since is None or st.st_mtime >= since)]
        if moved:
            return f"{name} was unreadable, moved aside to {max(moved, key=lambda f: files[f].st_mtime)}"
    return None


def _checkpoint_history(path: Path) -> list[dict]:
    try:
        import numpy as np

        with np.load(path) as state:
            rows = json.loads(str(state["history"]))
    except Exception:  # noqa: BLE001 - being written or unreadable: no rows
        return []
    return [{"epoch": int(r["epoch"]), "split": r["split"], "psnr": _float(r.get("psnr")),
             "ssim": _float(r.get("ssim")), "seconds": _float(r.get("seconds"))} for r in rows]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _log_error(path: Path) -> str | None:
    """The error line of the latest attempt in a train log (after its last header), if any."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = tail.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(ATTEMPT_LINE)]
    error = None
    for line in lines[starts[-1] if starts else 0:]:
        if ERROR_LINE.match(line):
            error = line.strip() if error is None or line.startswith("ssimsr ") else error
    return error


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _alive(pid: int, started: float | None) -> bool:
    """Whether process ``pid`` of this host exists and is the one that started at ``started``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return False
    if started is None:
        return True
    try:  # a pid used again by a later process is not the run's
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = _boot_time()
        if boot is not None:
            return boot + int(fields_[19]) / os.sysconf("SC_CLK_TCK") <= started + 5
    except (OSError, IndexError, ValueError):
        pass
    return True


def _attempt_start(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").timestamp()
    except (TypeError, ValueError):
        return None


def read_run(run: Run, configured: dict, root: Path, now: float, stale: float,
             host: str | None = None) -> RunStatus:
    """The status of one run from its folder ``root/<run>`` (see the module's docstring)."""
    folder = root / run.path
    status = RunStatus(run, "pending", int(configured["epochs"]))
    files = _entries(folder)
    checkpoint = _entries(folder / "checkpoint") if "checkpoint" in files else {}
    if not files:
        return status
    per_epoch = _read_progress(status, folder, files, checkpoint)
    attempts = []
    if "attempts.csv" in checkpoint:
        attempts = list(csv.DictReader(io.StringIO(_read(folder / "checkpoint" / "attempts.csv") or "")))
    status.attempts = len(attempts)
    latest = attempts[-1] if attempts else None
    status.started = _attempt_start(latest["started"]) if latest else None
    outdated, params_problem = _params_outdated(folder, files, configured)
    if all(name in files for name in OUTPUTS):
        if outdated:  # pending: Snakemake trains it again; its numbers are of the other parameters
            return RunStatus(run, "pending", status.epochs, attempts=status.attempts, note=outdated)
        return _finished(status, folder, files, params_problem, per_epoch)
    return _unfinished(status, folder, files, checkpoint, latest, now, stale, host, outdated)


def _read_progress(status: RunStatus, folder: Path, files: dict, checkpoint: dict) -> dict[int, float]:
    """Sets ``status``'s last validation epoch, PSNR, SSIM and seconds per epoch from the
    history: progress.csv (survives a failed job), else history.csv, else the checkpoint's.
    Returns the seconds of each trained epoch."""
    rows: list[dict] = []
    for name in ("progress.csv", "history.csv"):
        if name in files:
            rows = _history_rows(_read(folder / name) or "")
            if rows:
                break
    if not rows and "state.npz" in checkpoint:
        rows = _checkpoint_history(folder / "checkpoint" / "state.npz")
    val = [r for r in rows if r["split"] == "val"]
    if val:
        last = max(val, key=lambda r: r["epoch"])
        status.epoch, status.psnr, status.ssim = last["epoch"], last["psnr"], last["ssim"]
        status.epoch0_seconds = next((r["seconds"] for r in val if r["epoch"] == 0), None)
    per_epoch: dict[int, float] = {}
    for r in rows:
        if r["epoch"] >= 1 and r["seconds"] is not None:
            per_epoch[r["epoch"]] = per_epoch.get(r["epoch"], 0.0) + r["seconds"]
    if per_epoch:
        status.epoch_seconds = sum(per_epoch.values()) / len(per_epoch)
    return per_epoch


def _params_outdated(folder: Path, files: dict, configured: dict) -> tuple[str, str | None]:
    """("outdated: trained with other <keys>" or "", why params.json is unreadable or None)."""
    from ..training.run_params import upgrade_params

    outdated = ""
    params_problem = None
    if "params.json" in files:
        try:
            trained = upgrade_params(json.loads(_read(folder / "params.json") or ""))
        except ValueError as exc:
            trained, params_problem = None, f"not valid JSON: {exc}"
        expected = json.loads(json.dumps(configured))
        if trained is not None and trained != expected:
            keys = sorted(k for k in set(trained) | set(expected) if trained.get(k) != expected.get(k))
            outdated = f"outdated: trained with other {', '.join(keys)}"
    return outdated, params_problem


def _finished(status: RunStatus, folder: Path, files: dict, params_problem: str | None,
              per_epoch: dict[int, float]) -> RunStatus:
    """A run with every output: done (with its start-up seconds from benchmark.tsv), or corrupt
    where an output is unreadable."""
    unreadable = _unreadable_output(folder, params_problem)
    if unreadable:  # Snakemake sees a file: nothing retrains it until it is gone
        status.state = "corrupt"
        status.note = f"{unreadable[0]}: unreadable ({unreadable[1]}); remove it and rerun snakemake"
        return status
    status.state = "done"
    status.eta = 0.0
    bench = _read(folder / "benchmark.tsv") if "benchmark.tsv" in files else None
    if bench and per_epoch:
        try:
            wall = float(next(csv.DictReader(io.StringIO(bench), delimiter="\t"))["s"])
            spent = sum(per_epoch.values()) + (status.epoch0_seconds or 0.0)
            status.startup_seconds = max(0.0, wall - spent)
        except (StopIteration, KeyError, ValueError):
            pass
    return status


def _unfinished(status: RunStatus, folder: Path, files: dict, checkpoint: dict, latest: dict | None, now: float,
                stale: float, host: str | None, outdated: str) -> RunStatus:
    """A run without all its outputs: pending (not started), corrupt (an output moved aside),
    running, or failed (why, in the note)."""
    changes = [files[n].st_mtime for n in ACTIVITY if n in files]
    changes += [checkpoint[n].st_mtime for n in CHECKPOINT_ACTIVITY if n in checkpoint]
    moved = _moved_aside(files, max(changes, default=None))
    if moved:  # an evaluation found it unreadable; no training has started since
        status.state = "corrupt"
        status.note = f"{moved}; the next snakemake trains it again"
        return status
    if not changes:
        return status  # an empty folder (or unrelated files): not started
    status.last_change = max(changes)
    limit = max(stale, 2 * (status.epoch_seconds or 0.0))
    alive = None
    if latest and latest.get("host") == (host or socket.gethostname()):
        try:
            alive = _alive(int(latest["pid"]), status.started)
        except (TypeError, ValueError):
            alive = None
    error = _log_error(folder / "train.log") if "train.log" in files else None
    idle = now - status.last_change
    if alive or (alive is None and not error and idle < limit):
        status.state = "running"
        status.note = f"attempt {status.attempts}" if status.attempts > 1 else ""
    else:
        status.state = "failed"
        if error:
            status.note = error
        elif alive is False:
            status.note = f"process {latest['pid']} on {latest['host']} is gone (killed?)"
        else:
            status.note = f"no change for {format_duration(idle)}"
    if outdated:
        status.note = "; ".join(filter(None, [status.note, outdated]))
    return status


# --------------------------------------------------------------------------- the study

@dataclass
class Study:
    runs: list[RunStatus]
    jobs: int  # trainings at once, for the remaining time
    remaining: float  # seconds of training left, summed over runs
    unknown: int  # unfinished runs without an estimate

    def counts(self) -> dict[str, int]:
        return {s: sum(r.state == s for r in self.runs) for s in STATES}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def estimate(statuses: list[RunStatus], now: float) -> None:
    """Fill ``eta`` of the unfinished runs (see the module's docstring)."""
    groups: dict[tuple, list[RunStatus]] = {}
    for s in statuses:
        if s.epoch_seconds is not None:
            groups.setdefault((s.run.preset, s.run.model, s.run.dataset), []).append(s)
            groups.setdefault((s.run.model, s.run.dataset), []).append(s)

    def comparable(s: RunStatus) -> list[RunStatus]:
        return (groups.get((s.run.preset, s.run.model, s.run.dataset))
                or groups.get((s.run.model, s.run.dataset)) or [])

    for s in statuses:
        if s.state == "done":
            continue
        peers = comparable(s)
        epoch = s.epoch_seconds if s.epoch_seconds is not None else _mean(p.epoch_seconds for p in peers)
        if epoch is None:
            s.eta = None
            continue
        startup = _mean(p.startup_seconds for p in peers) or 0.0
        epoch0 = _mean(p.epoch0_seconds for p in peers) or 0.0
        finished = s.epoch or 0
        left = max(s.epochs - finished, 0) * epoch
        s.estimated = s.epoch_seconds is None or s.state != "running"
        if s.state == "running":
            if s.epoch is None:  # started, epoch 0 not validated yet
                left += epoch0 + startup - (now - (s.started or s.last_change or now))
            else:
                left -= now - (s.last_change or now)
            s.eta = max(left, 0.0)
        else:
            s.eta = left + startup + (epoch0 if s.epoch is None else 0.0)


def study_status(config: dict, results: str | os.PathLike = "results", stale: float = 1800.0,
                 jobs: int | None = None, now: float | None = None, host: str | None = None) -> Study:
    """The status of every configured run (``results/train/<run>``) and the remaining time."""
    now = time.time() if now is None else now
    root = Path(results) / "train"
    table = configured_runs(config)
    statuses = [read_run(run, params, root, now, stale, host) for run, params in table.items()]
    estimate(statuses, now)
    running = sum(s.state == "running" for s in statuses)
    jobs = jobs or max(running, 1)
    unfinished = [s for s in statuses if s.state != "done"]
    remaining = sum(s.eta for s in unfinished if s.eta is not None) / jobs
    return Study(statuses, jobs, remaining, sum(s.eta is None for s in unfinished))


# --------------------------------------------------------------------------- output

def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(study: Study, states: list[str] | None = None) -> str:
    """The table (runs of ``states``, all by default) and the summary lines."""
    header = ("run", "state", "epoch", "val PSNR", "val SSIM", "s/epoch", "eta", "note")
    rows = []
    for s in study.runs:
        if states and s.state not in states:
            continue
        eta = "-" if s.eta is None else ("~" if s.estimated else "") + format_duration(s.eta)
        if s.state == "done":
            eta = ""
        rows.append((s.run.path, s.state, f"{_fmt(s.epoch, 'd')}/{s.epochs}", _fmt(s.psnr, ".3f"),
                     _fmt(s.ssim, ".4f"), _fmt(s.epoch_seconds, ".1f"), eta, s.note))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    right = {2, 3, 4, 5, 6}

    def line(cells) -> str:
        parts = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts + [str(cells[-1])]).rstrip()

    out = [line(header), *map(line, rows)]
    counts = study.counts()
    out.append("")
    # corrupt only when there is one: a rare state, an alarm rather than a column
    shown = [s for s in STATES if s != "corrupt" or counts[s]]
    out.append(f"{len(study.runs)} runs: " + ", ".join(f"{counts[s]} {s}" for s in shown))
    left = len(study.runs) - counts["done"]
    if not left:
        out.append("remaining: nothing to train")
    elif study.unknown == left:
        out.append(f"remaining: {left} runs to train; no estimate before a run of the same model and dataset "
                   "has finished an epoch")
    else:
        text = (f"remaining: about {format_duration(study.remaining)} of training for {left} runs, "
                f"{study.jobs} at a time")
        if study.unknown:
            text += f", plus {study.unknown} runs without an estimate (no comparable run has finished an epoch)"
        out.append(text + " (evaluation, LPIPS and tables not included)")
    return "\n".join(out)


def main(config_files: list[str] | None, results: str = "results", watch: float | None = None,
         stale_minutes: float = 30.0, jobs: int | None = None, states: list[str] | None = None,
         stream=None, profile: str | None = None) -> None:
    """``ssimsr status``: print the table once, or every ``watch`` seconds until Ctrl-C."""
    stream = stream or sys.stdout
    config = load_config(config_files, profile)
    if not Path(results).is_dir():  # a mistyped --results is not "every run pending"
        what = "not a folder" if Path(results).exists() else "no such folder"
        raise FileNotFoundError(f"results folder {results}: {what} (nothing has run here yet, or give the "
                                "workflow's results folder with --results DIR)")
    try:
        while True:
            text = render(study_status(config, results, stale_minutes * 60, jobs), states)
            if watch and stream.isatty():
                stream.write("\033[H\033[2J")  # clear the screen: a table that refreshes in place
            stamp = f"\n{time.strftime('%Y-%m-%d %H:%M:%S')}, every {watch:g} s (Ctrl-C ends)" if watch else ""
            stream.write(text + stamp + "\n")
            stream.flush()
            if not watch:
                return
            time.sleep(watch)
    except KeyboardInterrupt:
        if not watch:
            raise
