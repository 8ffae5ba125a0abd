"""Warm start: local CPU jobs fork from one process that has imported Keras already.

On a CPU, importing TensorFlow and Keras costs 4-6 CPU-s per process (2-core AMD EPYC,
benchmarks/demo-2026-12-02.txt), more than a demo run trains for: the demo's 48 Keras jobs
spent most of their time importing. With ``execution.warm_start`` (off by default, on in
the demo profile) the train and evaluate jobs that run on this machine's CPU start warm: a
*zygote* process imports the third-party libraries once (``PRELOAD``) and forks a child
per job; the child runs the job exactly as the job's own process would
(``jobs.run_here``), with the job's environment, working directory, standard streams,
``sys.path``, umask, CPU affinity and signal dispositions; the job's process waits for it
and exits with its status. (Android's zygote, or Python's ``forkserver`` with preloading,
shared by every job of a workflow run.)

What keeps results, caching and the machine's limits as they are in a cold start:

* the zygote holds no ``ssimsr`` module (it drops them before it serves), so every job
  imports the library from disk as it is now: an edit takes effect in the next job;
* one zygote per key (``zygote_key``), which holds what its imports read: the Python
  executable, ``PRELOAD``, the environment variables the libraries read when imported
  (``KEY_ENV_PREFIXES``), the bytes of the keras.json Keras reads (``keras_config_path``)
  and the installed distributions (``installed_distributions``); a change starts another
  zygote. A home without keras.json gets one from Keras's first import, so its next job
  starts a second zygote, once;
* the key holds what a fork inherits from the zygote instead of from the job's process
  (``process_context``: nice level, scheduler and I/O priority, every resource limit,
  cgroup, namespaces, credentials). The job's process starts its zygote, which therefore
  has its values; ``nice snakemake``, ``ulimit -v`` or a memory-limited cgroup start their
  own zygote, under those limits. The zygote checks that it has the values of its key
  (else it refuses: ``<key>.refused``) and forks only for a job whose values are its own
  (else the job starts cold);
* it forks only while no thread runs but the BLAS pool numpy starts on import (OpenBLAS
  stops it at fork): a backend that starts threads on import (JAX does) is refused once,
  recorded (``<key>.refused``; delete it to try again), and its jobs start cold; the
  thread count is checked again before each fork;
* a job it cannot take (no zygote, a request it cannot read, an argument that cannot be
  pickled) runs cold, in the job's own process; so does every job when the folder of the
  sockets cannot be used (``warm_dir``: one line on the job's standard error says why);
* tests train the same run cold and warm and compare every file byte by byte.

Not used (the job starts cold, as before): unless ``execution.warm_start`` is on, under
SLURM (``SLURM_JOB_ID``: each job is its own allocation), in an Apptainer container, where
the workflow sees a GPU (it passes the resource ``warm_start=0``), off Linux, and for the
``ssimsr`` commands. The first job starts the zygote (under a lock, so concurrent jobs
share one); it ends ``IDLE_SECONDS`` after its last job (its log, ``<key>.log`` in
``warm_dir()``, lists each job's process and status). Signals sent to the job's process
(Snakemake cancelling, Ctrl-C) are forwarded to the child, and a child whose job process
died stops. Snakemake's ``benchmark:`` files measure the job's process, which now waits;
the child's CPU time and peak memory are the last line of the job's log.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import pickle
import resource
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "how a job's process starts (a fork of a process that imported Keras), not what it computes"

#: what the zygote imports once (third-party only: the library is read afresh per job)
PRELOAD = ("numpy", "pandas", "PIL.Image", "keras")
#: environment variables read when these libraries are imported: part of the zygote's key
KEY_ENV_PREFIXES = ("KERAS_", "TF_", "XLA_", "JAX_", "CUDA_", "OMP_", "MKL_", "OPENBLAS_", "PYTHON", "LD_",
                    "NVIDIA_", "TORCH_", "SSIMSR_", "LC_")
KEY_ENV_NAMES = ("HOME", "LANG", "TZ")  # ~/.keras/keras.json (floatx); text encoding; time zone
IDLE_SECONDS = 20.0
START_TIMEOUT = 180.0  # the zygote's imports, on a loaded machine
RETRY_AFTER = 600.0  # after a zygote failed to start, jobs start cold this long
#: what pip leaves in a site folder for each distribution it installs
DIST_SUFFIXES = (".dist-info", ".egg-info", ".egg-link", ".pth")
#: the lines of /proc/self/status a fork inherits: credentials and confinement
STATUS_FIELDS = ("Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:",
                 "NoNewPrivs:", "Seccomp:", "Seccomp_filters:")
_IOPRIO_GET = {"x86_64": 252, "aarch64": 31}  # the syscall's number; Python has no wrapper
_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes, its terminating NUL included
_PID_MAX = 4194304  # Linux's largest (/proc/sys/kernel/pid_max)
_STALE = 75  # the zygote's exit status when keras.json changed while it started (EX_TEMPFAIL)

_HEADER = struct.Struct("!QQ")  # lengths of the request's JSON part and its pickled part
_STARTED = struct.Struct("!q")  # the child's pid
_ENDED = struct.Struct("!qddq")  # wait status, user CPU s, system CPU s, peak RSS (KiB)


def warm_dir() -> Path | None:
    """The zygotes' sockets, locks and logs, or None where no private folder can be had."""
    return _private_dir()[0]


def _private_dir() -> tuple[Path | None, str | None]:
    """``SSIMSR_WARM_DIR``, else ``ssimsr-warm-<uid>`` in the temp dir, else (when another
    user holds that one) ``ssimsr-warm`` in ``$XDG_RUNTIME_DIR``: a folder only this user
    can enter, as anyone who can write there could answer as a zygote. Also a line that
    says why the first choice was not used (None when it was)."""
    configured = os.environ.get("SSIMSR_WARM_DIR")
    if configured:
        return _checked(Path(os.path.abspath(configured)), parents=True)
    default = Path(tempfile.gettempdir()) / f"ssimsr-warm-{os.getuid()}"
    where, problem = _checked(default, parents=False)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if where is None and runtime and os.path.isabs(runtime) and _is_own_folder(runtime):
        fallback, _ = _checked(Path(runtime) / "ssimsr-warm", parents=False)
        if fallback is not None:
            return fallback, f"{problem}; using {fallback} instead"
    return where, problem


def _is_own_folder(path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _checked(path: Path, parents: bool) -> tuple[Path | None, str | None]:
    """``path``, created if missing, when it is a folder of this user's that no one else can
    enter; else None and why. Never follows a symbolic link: one in its place, whoever owns
    what it points to, is refused."""
    try:
        path.mkdir(mode=0o700, parents=parents)
    except FileExistsError:
        pass  # checked below, whatever it is
    except OSError as exc:
        return None, f"cannot create the folder {path}: {exc.strerror or exc}"
    try:
        info = os.lstat(path)
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    if stat.S_ISLNK(info.st_mode):
        return None, f"{path} is a symbolic link, not a folder"
    if not stat.S_ISDIR(info.st_mode):
        return None, f"{path} is not a folder"
    if info.st_uid != os.getuid():
        return None, f"{path} belongs to user {info.st_uid}, not to this user ({os.getuid()})"
    if info.st_mode & 0o077:
        return None, f"other users can enter {path} (mode {stat.S_IMODE(info.st_mode):o}; 700 is needed)"
    return path, None


def zygote_env(backend: str) -> dict[str, str]:
    """A job's environment on ``backend`` (its variables set, as ``runner.use_backend`` does
    cold): the zygote imports under it and the child runs under it."""
    from ..training.backends import get

    return {**os.environ, **get(backend).environment()}


def keras_config_path(env: dict[str, str]) -> str:
    """The keras.json that Keras reads when imported under ``env``: as in
    keras/src/backend/config.py, in ``$KERAS_HOME``, else in ``~/.keras``, else (a home
    this user cannot write) in ``/tmp/.keras``."""
    if "KERAS_HOME" in env:
        folder = env["KERAS_HOME"]
    else:
        base = env.get("HOME") or os.path.expanduser("~")
        folder = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.expanduser(os.path.join(folder, "keras.json"))


def keras_config_digest(env: dict[str, str]) -> str:
    try:
        with open(keras_config_path(env), "rb") as config:
            return hashlib.sha256(config.read()).hexdigest()[:20]
    except FileNotFoundError:
        return "absent"
    except OSError as exc:
        return f"unreadable: {exc.errno}"


def installed_distributions(env: dict[str, str]) -> list[list]:
    """What pip left in the site folders and ``PYTHONPATH`` (folder, name, mtime): installing,
    upgrading or removing a distribution changes it. One listing per folder, no metadata
    read; the folders are the zygote's (its interpreter's and ``env``'s), not this
    process's ``sys.path``."""
    import site

    folders = [*env.get("PYTHONPATH", "").split(os.pathsep), *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    found = []
    for folder in dict.fromkeys(f for f in folders if f):
        try:
            with os.scandir(folder) as entries:
                found += [[folder, e.name, e.stat(follow_symlinks=False).st_mtime_ns]
                          for e in entries if e.name.endswith(DIST_SUFFIXES)]
        except OSError:
            continue  # a folder that is not there adds nothing to import
    return sorted(found)


def process_context() -> dict:
    """What a fork inherits from the zygote where a cold job has its own process's: its
    priorities (nice, scheduler, I/O), every resource limit, its cgroup (memory and CPU
    limits), namespaces, credentials and confinement. JSON values, compared after a trip
    through a request."""
    limits = {}
    for name in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
        with contextlib.suppress(ValueError, OSError):
            limits[name] = list(resource.getrlimit(getattr(resource, name)))
    namespaces = {}
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir("/proc/self/ns")):
            with contextlib.suppress(OSError):
                namespaces[name] = os.readlink(f"/proc/self/ns/{name}")
    return {"nice": os.getpriority(os.PRIO_PROCESS, 0),
            "scheduler": [os.sched_getscheduler(0), os.sched_getparam(0).sched_priority],
            "ioprio": _ioprio(), "rlimits": limits, "cgroup": _read("/proc/self/cgroup"),
            "oom_score_adj": _read("/proc/self/oom_score_adj"), "namespaces": namespaces,
            "status": [line for line in _read("/proc/self/status").splitlines() if line.startswith(STATUS_FIELDS)]}


def _ioprio() -> int | None:
    """``ionice``'s class and level of this thread (None where the syscall is not known)."""
    import ctypes
    import platform

    number = _IOPRIO_GET.get(platform.machine())
    if number is None:
        return None
    return ctypes.CDLL(None, use_errno=True).syscall(number, 1, 0)  # IOPRIO_WHO_PROCESS, this one


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError as exc:
        return f"unreadable: {exc.errno}"


def zygote_key(env: dict[str, str], context: dict | None = None) -> str:
    """The zygote that serves a job under ``env`` and ``context`` (``process_context()`` by
    default): what its imports read, and what its forks inherit from it."""
    keyed = sorted((k, v) for k, v in env.items()
                   if (k.startswith(KEY_ENV_PREFIXES) or k in KEY_ENV_NAMES)
                   and k != "SSIMSR_WARM_DIR")  # where, not what
    text = json.dumps([sys.executable, list(PRELOAD), keyed, keras_config_digest(env), installed_distributions(env),
                       process_context() if context is None else context])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def unavailable_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"not on Linux ({sys.platform})"
    if os.environ.get("SLURM_JOB_ID"):
        return "a SLURM job (its own allocation)"
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        return "in a container (a zygote would outlive its job's container)"
    return None


# ---------------------------------------------------------------------------- client


def run_warm(target: str, args: tuple, backend: str, log: str | None = None) -> int | None:
    """Run ``target(*args)`` in a child of the zygote for ``backend``; its exit status, or
    None when warm start is unavailable here (nothing ran: the caller runs it cold). Where
    the zygotes' folder cannot be used, one line on standard error says why."""
    if unavailable_reason():
        return None
    where, problem = _private_dir()
    if problem:
        _say(problem if where else f"{problem}; the job starts cold")
    if where is None:
        return None
    try:
        for fd in (0, 1, 2):  # the child gets these; a closed one would become the socket
            os.fstat(fd)
        pickled = pickle.dumps(args)  # the zygote passes it on; only the child unpickles it
    except Exception:  # a closed standard stream, an argument that cannot be pickled
        return None
    env = zygote_env(backend)
    found = _zygote_for(where, env)
    if found is None:
        return None
    conn, key, context = found
    ignored = [int(s) for s in signal.valid_signals() if _disposition(s) is signal.SIG_IGN]
    blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
    plain = json.dumps({"target": target, "cwd": os.getcwd(), "env": env,
                        "path": sys.path, "argv": sys.argv, "umask": _umask(),
                        "affinity": sorted(os.sched_getaffinity(0)), "context": context,
                        "ignored": ignored, "blocked": blocked}).encode()
    with conn, _forwarding_signals(ignored) as child:
        try:
            socket.send_fds(conn, [_HEADER.pack(len(plain), len(pickled))], [0, 1, 2])
            conn.sendall(plain + pickled)
            child.pid = _STARTED.unpack(_recv_exact(conn, _STARTED.size))[0]
        except (OSError, EOFError):
            return None  # the zygote ended, or would not fork for this job, before it started: run it cold
        try:
            status, user, system, rss = _ENDED.unpack(_recv_exact(conn, _ENDED.size))
        except (OSError, EOFError):
            print(f"ssimsr: error: warm start: the zygote ended while job process {child.pid} ran "
                  f"(its log: {where / f'{key}.log'}); run the job again", file=sys.stderr, flush=True)
            return 1
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
    if log:
        with open(log, "a") as out:
            print(f"warm start: ran as process {child.pid}, forked from a zygote that had imported "
                  f"{', '.join(PRELOAD)}; CPU {user + system:.1f} s, peak memory {rss / 2**20:.2f} GiB; "
                  f"exit status {code}", file=out)
    return code


def _zygote_for(where: Path, env: dict[str, str]) -> tuple[socket.socket, str, dict] | None:
    """A connection to the zygote of ``env`` and this process in ``where`` (started, under a
    lock, when none serves), its key and this process's context; None when the job starts
    cold (one line on standard error says why, unless no zygote could be started)."""
    try:
        context = process_context()
        key = zygote_key(env, context)
    except OSError as exc:  # a sandbox that hides /proc or the scheduler's calls
        _say(f"cannot read this process's limits and priorities: {exc}; the job starts cold")
        return None
    sock = where / f"{key}.sock"
    if len(os.fsencode(f"{sock}.{_PID_MAX}")) > _SOCKET_PATH_MAX:  # the name the zygote binds first
        _say(f"the socket path {sock} is too long (a Unix socket's path: at most {_SOCKET_PATH_MAX - 8} bytes "
             f"here); the job starts cold")
        return None
    try:
        conn = _connect(sock)
        if conn is None:
            with _locked(where / f"{key}.lock"):
                conn = _connect(sock)
                if conn is None and not _gave_up(where, key):
                    conn = _start_zygote(where, key, env, context)
    except OSError as exc:  # the folder went away, a full disk: nothing ran yet
        _say(f"cannot start a zygote in {where}: {exc}; the job starts cold")
        return None
    return None if conn is None else (conn, key, context)


def _say(problem: str) -> None:
    print(f"ssimsr: warm start: {problem}", file=sys.stderr, flush=True)


def _disposition(signum: int):
    with contextlib.suppress(ValueError, OSError):
        return signal.getsignal(signum)
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _gave_up(where: Path, key: str) -> bool:
    """A zygote of ``key`` refused (its backend starts threads), or failed to start lately."""
    if (where / f"{key}.refused").exists():
        return True
    failed = where / f"{key}.failed"
    return failed.exists() and time.time() - failed.stat().st_mtime < RETRY_AFTER


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        return conn
    except OSError:
        conn.close()
        return None


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_zygote(where: Path, key: str, env: dict, context: dict) -> socket.socket | None:
    """Start the zygote of ``key`` (the caller holds its lock); a connection, or None. It is
    this process's child, so it has this process's ``context``; it checks that it does."""
    sock = where / f"{key}.sock"
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()  # a dead zygote's
    log_path = where / f"{key}.log"
    if log_path.exists() and log_path.stat().st_size > 2**20:
        os.replace(log_path, log_path.with_suffix(".log.1"))  # a zygote still draining keeps its file
    expected = json.dumps({"preload": list(PRELOAD), "keras_config": keras_config_digest(env), "context": context})
    with open(log_path, "a") as log:
        zygote = subprocess.Popen(
            [sys.executable, "-c", "import sys; from ssimsr.pipeline.warm import serve; serve(*sys.argv[1:])",
             str(sock), str(where / f"{key}.refused"), str(IDLE_SECONDS), expected],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and zygote.poll() is None:
        conn = _connect(sock)
        if conn is not None:
            return conn
        time.sleep(0.05)
    if zygote.poll() is None:
        zygote.kill()
    # neither the refusal it records itself nor keras.json changing while it started (the
    # next job has another key) keeps the next jobs cold
    if not (where / f"{key}.refused").exists() and zygote.wait() != _STALE:
        (where / f"{key}.failed").write_text(f"the zygote did not start (status {zygote.wait()}; its log: "
                                             f"{log_path}); jobs start cold for {RETRY_AFTER:.0f} s\n")
    return None


class _Forwarder:
    """A signal handler: signals for the job (Snakemake cancelling it, Ctrl-C) go to the
    child that runs it; one that comes before the child's pid is known, once it is."""

    def __init__(self):
        self._pid, self._pending = None, []

    def __call__(self, signum, frame):
        if self._pid is None:
            self._pending.append(signum)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signum)

    @property
    def pid(self):
        return self._pid

    @pid.setter
    def pid(self, pid):
        self._pid = pid
        while self._pending:
            self(self._pending.pop(0), None)


@contextlib.contextmanager
def _forwarding_signals(ignored: list[int]):
    """Forward the signals this process does not ignore (under ``nohup`` the child ignores
    SIGHUP as this process does, and nothing is forwarded)."""
    child = _Forwarder()
    if threading.current_thread() is not threading.main_thread():  # only it may set handlers
        yield child
        return
    forwarded = [s for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
                 if s not in ignored]
    previous = {s: signal.signal(s, child) for s in forwarded}
    try:
        yield child
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


# ---------------------------------------------------------------------------- zygote


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def serve(sock_path: str, refused_path: str, idle_seconds: str | float = IDLE_SECONDS,
          expected: str | None = None) -> None:
    """The zygote: import what ``expected`` (JSON from the job's process that starts it)
    names, then fork a child per request until idle. It does not serve where keras.json
    is no longer what its key says (exit status ``_STALE``) or its own process differs from
    the job's (``process_context``: a refusal, recorded)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s zygote %(process)d: %(message)s")
    log = logging.getLogger("ssimsr.pipeline.warm")
    idle_seconds = float(idle_seconds)
    expected = json.loads(expected) if expected else {}
    preload = expected.get("preload", list(PRELOAD))
    blas_threads = _preload(preload, expected, refused_path, log)
    if blas_threads is None:
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{sock_path}.{os.getpid()}"
    listener.bind(tmp)
    listener.listen(64)
    inode = os.stat(tmp).st_ino
    os.replace(tmp, sock_path)  # connectable only once listening
    log.info("serving %s (imported %s)", sock_path, ", ".join(preload))
    try:
        _serve_jobs(listener, sock_path, inode, idle_seconds, blas_threads, log)
    finally:
        _unlink_if_ours(sock_path, inode)
        listener.close()
    log.info("exiting")


def _preload(preload: list[str], expected: dict, refused_path: str, log: logging.Logger) -> int | None:
    """Ready the zygote: check keras.json and this process against ``expected`` (what the
    job's process that started it saw), import ``preload``, drop every ``ssimsr`` module. The
    number of threads that run after numpy's import (its BLAS pool: a fork may find them),
    None when it refused (recorded in ``refused_path``); exits ``_STALE`` when keras.json changed."""
    keras_config = keras_config_digest(dict(os.environ))  # read just before Keras reads it
    if keras_config != expected.get("keras_config", keras_config):
        log.info("not serving: %s changed since the job that started this zygote read it; the next job "
                 "starts another", keras_config_path(dict(os.environ)))
        sys.exit(_STALE)
    differing = sorted(k for k, v in process_context().items() if v != expected.get("context", {}).get(k, v))
    if differing:
        _refuse(refused_path, log, f"this zygote's {', '.join(differing)} differ from those of the job's process that "
                                   f"started it (its forks would not run as that job), so jobs start cold")
        return None
    importlib.import_module("numpy")
    blas_threads = _threads()  # the BLAS pool numpy starts; OpenBLAS stops it at fork
    for name in preload:
        importlib.import_module(name)
    if _threads() > blas_threads:
        _refuse(refused_path, log, f"importing {', '.join(preload)} (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}) "
                                   f"started {_threads() - blas_threads} thread(s); forking would copy them "
                                   f"half-stopped, so jobs start cold")
        return None
    # each job imports the library from disk as it is now
    for name in [m for m in sys.modules if m == "ssimsr" or m.startswith("ssimsr.")]:
        del sys.modules[name]
    return blas_threads


def _serve_jobs(listener: socket.socket, sock_path: str, inode: int, idle_seconds: float, blas_threads: int,
                log: logging.Logger) -> None:
    """Fork a child per job (:func:`_accept`) and send each job's process its child's status,
    CPU time and peak memory when it ends; after ``idle_seconds`` without a job, stop
    listening and return once the jobs connected before have run."""
    children: dict[int, socket.socket] = {}
    last = time.monotonic()
    serving = True
    while serving or children:
        if serving and not children and time.monotonic() - last >= idle_seconds:
            _unlink_if_ours(sock_path, inode)  # new jobs start a new zygote from here on
            serving = False  # a job that connected before is still served (select below)
            log.info("idle for %.0f s: exiting once the connected jobs have run", idle_seconds)
        ready, _, _ = select.select([listener], [], [], 0.05 if serving or children else 0)
        if ready:
            _accept(listener, children, log, blas_threads)
        for pid, status, usage in _reap():
            conn = children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(_ENDED.pack(status, usage.ru_utime, usage.ru_stime, usage.ru_maxrss))
                conn.close()
            log.info("process %d ended: status %d, CPU %.1f s", pid, os.waitstatus_to_exitcode(status),
                     usage.ru_utime + usage.ru_stime)
            last = time.monotonic()
        if not serving and not children and not ready:
            break


def _refuse(refused_path: str, log: logging.Logger, reason: str) -> None:
    Path(refused_path).write_text(reason + "\n")
    log.info("refused: %s", reason)


def _unlink_if_ours(sock_path: str, inode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.stat(sock_path).st_ino == inode:  # not a successor's
            os.unlink(sock_path)


def _reap():
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status, usage


def _accept(listener: socket.socket, children: dict, log: logging.Logger, blas_threads: int) -> None:
    """Take one job: its child's pid into ``children``. Whatever goes wrong (a bad request,
    no fork) ends this job's connection, so its process runs the job cold, never the zygote."""
    try:
        conn, _ = listener.accept()
    except OSError as exc:
        log.info("accept failed: %s", exc)
        return
    try:
        pid = _fork_job(listener, conn, children, log, blas_threads)
    except Exception as exc:
        log.info("job not started: %s", exc)
        pid = 0
    if pid:
        children[pid] = conn
    else:
        conn.close()


def _fork_job(listener: socket.socket, conn: socket.socket, children: dict, log: logging.Logger,
              blas_threads: int) -> int:
    """Read a request from ``conn`` and fork its child; the child's pid (0: not forked)."""
    if _threads() > blas_threads:
        log.info("not forking: %d threads run (%d at start-up)", _threads(), blas_threads)
        return 0
    conn.settimeout(5)  # its process sends at once; a stalled one must not hold up the others
    fds = []
    try:
        header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
        if len(header) != _HEADER.size or len(fds) != 3:
            raise EOFError("incomplete request")
        plain_size, pickled_size = _HEADER.unpack(header)
        request = json.loads(_recv_exact(conn, plain_size))
        pickled = _recv_exact(conn, pickled_size)
        _check_request(request)
    except Exception as exc:  # one bad client must not end the zygote
        log.info("bad request: %s", exc)
        for fd in fds:
            os.close(fd)
        return 0
    # the key makes them equal; this zygote may have been reniced or moved since
    context = process_context()
    differing = sorted(k for k in context.keys() | request["context"].keys()
                       if context.get(k) != request["context"].get(k))
    if differing:
        log.info("not forking: the job's process differs from this zygote in %s", ", ".join(differing))
        for fd in fds:
            os.close(fd)
        return 0
    conn.settimeout(None)
    sys.stdout.flush()
    sys.stderr.flush()
    zygote = os.getpid()
    pid = os.fork()
    if pid == 0:
        _run_child(zygote, listener, conn, list(children.values()), request, pickled, fds)  # never returns
    for fd in fds:
        os.close(fd)
    with contextlib.suppress(OSError):
        conn.sendall(_STARTED.pack(pid))
    log.info("process %d: %s in %s", pid, request["target"], request["cwd"])
    return pid


def _check_request(request) -> None:
    fields = {"target": str, "cwd": str, "env": dict, "path": list, "argv": list, "umask": int, "affinity": list,
              "context": dict, "ignored": list, "blocked": list}
    if not isinstance(request, dict) or any(not isinstance(request.get(k), t) for k, t in fields.items()):
        raise ValueError(f"not a job request: {str(request)[:200]}")
    if request["target"].count(":") != 1:
        raise ValueError(f"target {request['target']!r}: not module:function")


def _die_with(zygote: int) -> None:
    """The child ends when the zygote does (nobody would report its status)."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != zygote:  # it died before that
        os._exit(1)


def _run_child(zygote: int, listener: socket.socket, conn: socket.socket, others: list, request: dict,
               pickled: bytes, fds: list[int]) -> None:
    code = 1
    try:
        _die_with(zygote)
        listener.close()
        for other in others:  # the other jobs' connections: theirs to see closed
            other.close()
        _set_signals(request["ignored"], request["blocked"])
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
            os.close(fd)
        # the process state a fresh interpreter of the job would have
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = request["path"]
        sys.argv[:] = request["argv"]
        os.umask(request["umask"])
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, request["affinity"])
        time.tzset()
        tempfile.tempdir = None  # TMPDIR: Snakemake sets one per job
        if "numpy" in sys.modules:  # its global generator: not the zygote's state in every job
            sys.modules["numpy"].random.seed()
        logging.root.handlers.clear()  # the zygote's; the job configures its own
        threading.Thread(target=_exit_with_client, args=(conn,), daemon=True).start()
        module, function = request["target"].split(":")
        result = getattr(importlib.import_module(module), function)(*pickle.loads(pickled))
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        _exit(code)


def _set_signals(ignored: list[int], blocked: list[int]) -> None:
    """In the child: the signal dispositions and mask of the job's process. What it ignores
    is ignored (SIGHUP under ``nohup``, SIGINT in a shell's background job), the rest as a
    fresh interpreter has them; handlers installed outside Python's ``signal`` (none
    here, faulthandler's where ``PYTHONFAULTHANDLER`` is set, as in the job) stay."""
    ignored = set(ignored)
    reset = {signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD}
    for signum in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        current = _disposition(signum)
        if signum in ignored:
            wanted = signal.SIG_IGN
        elif signum == signal.SIGINT:
            wanted = signal.default_int_handler
        elif current is signal.SIG_IGN or signum in reset:
            wanted = signal.SIG_DFL
        else:
            continue
        if current is not wanted:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, wanted)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _exit(code: int) -> None:
    """End the child as an interpreter ends: join its threads, run the exit handlers, flush;
    then leave without unwinding into the zygote's loop."""
    with contextlib.suppress(BaseException):
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code & 0xFF)


def _exit_with_client(conn: socket.socket) -> None:
    """In the child: the job's process sends nothing more; end of file means it died."""
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    os._exit(143)
