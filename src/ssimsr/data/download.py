"""Downloads that never leave a corrupt file under the final name.

``download_file`` streams a URL into ``.{name}.part`` beside the destination and renames
it only after the whole body arrived, its length matches the server's Content-Length, its
checksum matches (when one is configured) and an optional ``check`` (the archive
read-through of ``sources.fetch_source``) passed.

Transient failures (connection reset or refused, timeout, a body shorter than its
Content-Length, HTTP 5xx / 408 / 429) are retried with exponential backoff; the next
attempt asks for the rest with an HTTP ``Range`` request (``If-Range`` with the ETag or
Last-Modified of the first response, so a file that changed on the server is fetched
again from the start rather than spliced). A ``.part`` left by a killed process is resumed
the same way by the next run. Permanent failures (HTTP 4xx, an unknown host, a checksum
mismatch) and exhausted retries raise ``DownloadError``: one line naming the URL, the
reason and what to do, with the ``.part`` file removed.
"""

from __future__ import annotations

import email.utils
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..io.atomic import atomic_path

#: in no code digest, its imports not followed (ssimsr.pipeline.code_digest)
DIGEST_EXCLUDED = "its outputs are checksum-verified files"

log = logging.getLogger(__name__)

CHUNK = 1 << 16
MAX_BACKOFF = 60.0  # seconds; also caps a server's Retry-After
USER_AGENT = "ssimsr-download/1"


class DataError(RuntimeError):
    """A dataset or download problem; the message names the file, key or value at fault."""


class ChecksumMismatch(DataError):
    pass


class DownloadError(DataError):
    """A download that failed for good; the message names the URL, the reason and a remedy."""


class _Transient(Exception):
    """One attempt failed in a way another attempt may fix; ``retry_after`` from the server."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class DownloadPolicy:
    """How hard to try: ``retries`` after the first attempt, ``timeout`` seconds of silence
    per connect or read, ``backoff`` seconds before the first retry (doubling, capped at
    60 s), a progress line every ``progress_every`` seconds. The first three are the config's
    ``downloads`` section, whose defaults the schema holds: :meth:`from_config`."""

    retries: int
    timeout: float
    backoff: float
    progress_every: float = 10.0

    @classmethod
    def from_config(cls, downloads: dict | None = None) -> "DownloadPolicy":
        """The policy of a config's ``downloads`` section (None: the schema's defaults),
        the schema's defaults filling the keys it lacks."""
        from ..config import defaults

        return cls(**{**defaults("downloads"), **(downloads or {})})

    def __post_init__(self):
        if self.retries < 0:
            raise DataError(f"downloads.retries must be >= 0, got {self.retries}")
        if self.timeout <= 0:
            raise DataError(f"downloads.timeout must be > 0 seconds, got {self.timeout}")
        if self.backoff < 0:
            raise DataError(f"downloads.backoff must be >= 0 seconds, got {self.backoff}")


# --------------------------------------------------------------------------- checksums

def file_digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def verify_checksum(path: str | os.PathLike, expected: str | None, what: str,
                    algorithm: str = "sha256", prefix: bool = False) -> tuple[str, bool]:
    """Return (actual digest, verified). Raise ChecksumMismatch naming both values.

    ``prefix=True`` accepts an expected value that is the start of the digest (torchvision
    names its files after the first 8 hex digits of their sha256).
    """
    actual = file_digest(path, algorithm)
    if expected is None:
        warnings.warn(
            f"{what}: no {algorithm} configured; recorded the computed {algorithm} {actual}. "
            "Add it to the config to pin this file.",
            stacklevel=2,
        )
        return actual, False
    expected = expected.lower()
    if not (actual.startswith(expected) if prefix else actual == expected):
        raise ChecksumMismatch(
            f"checksum mismatch for {what} ({path}): expected {algorithm} "
            f"{expected}{'...' if prefix else ''}, actual {algorithm} {actual}"
        )
    return actual, True


def copy_verified(src: Path, dest: Path, expected: str | None, algorithm: str = "sha256",
                  prefix: bool = False) -> tuple[str, bool]:
    """Copy a local file to ``dest`` (temporary name, verify, rename)."""
    if not Path(src).is_file():
        raise DataError(f"{src}: no such file")
    actual, verified = verify_checksum(src, expected, str(src), algorithm, prefix)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return actual, verified


# --------------------------------------------------------------------------- downloading

def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} GB"


class _Progress:
    """Logs bytes, rate and ETA at most every ``every`` seconds (and once at the end)."""

    def __init__(self, url: str, total: int | None, start_at: int, every: float):
        self.url, self.total, self.every = url, total, every
        self.start_bytes = start_at
        self.t0 = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        rate = (done - self.start_bytes) / max(now - self.t0, 1e-6)
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else float("inf")
            eta_text = "?" if eta == float("inf") else f"{eta:.0f} s"
            log.info("%s: %s of %s (%.0f%%), %s/s, ETA %s", self.url, _human(done), _human(self.total),
                     100.0 * done / self.total, _human(rate), eta_text)
        else:
            log.info("%s: %s, %s/s", self.url, _human(done), _human(rate))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError):
        return None


def _reason(exc: BaseException) -> str:
    """A short human reason for a network exception (no nested reprs)."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
        if isinstance(exc, str):
            return exc
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _PartFile:
    """``.{name}.part`` and its sidecar ``.{name}.part.json`` (URL, validator, total size).

    An exclusive ``flock`` on the part file keeps two processes from writing it at once.
    """

    def __init__(self, dest: Path, url: str):
        self.path = dest.with_name(f".{dest.name}.part")
        self.meta_path = dest.with_name(f".{dest.name}.part.json")
        self.url = url
        self.resumed = False  # whether the current attempt continues the part (HTTP 206)
        self.handle = open(self.path, "ab")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self.handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise DownloadError(f"{url}: another process is downloading it into {self.path}; "
                                    "wait for it or stop it, then rerun") from None
            raise

    def resumable(self) -> tuple[int, str | None]:
        """(bytes already there, validator) for a Range request; (0, None) if none."""
        size = self.path.stat().st_size
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        if size == 0 or meta.get("url") != self.url or not meta.get("validator"):
            self.restart()
            return 0, None
        return size, meta["validator"]

    def restart(self) -> None:
        self.handle.truncate(0)
        self.handle.seek(0)
        self.meta_path.unlink(missing_ok=True)

    def remember(self, validator: str | None, total: int | None) -> None:
        if validator:
            tmp = self.meta_path.with_name(self.meta_path.name + f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"url": self.url, "validator": validator, "total": total}))
            os.replace(tmp, self.meta_path)

    def close(self, outcome: str) -> None:
        """``done``: the part was renamed; ``failed``: remove it; ``interrupted``: keep it to resume."""
        self.handle.close()
        if outcome == "failed":
            self.path.unlink(missing_ok=True)
        if outcome != "interrupted":
            self.meta_path.unlink(missing_ok=True)


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes FIRST-LAST/TOTAL`` header."""
    try:
        unit, rest = value.split(" ", 1)
        span, total = rest.split("/", 1)
        return int(span.split("-", 1)[0]), (None if total.strip() == "*" else int(total))
    except ValueError:
        return None, None


def _attempt(url: str, part: _PartFile, policy: DownloadPolicy) -> None:
    """One request: append the rest of the body to the part file or raise."""
    have, validator = part.resumable()
    part.resumed = False
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have and validator:
        request.add_header("Range", f"bytes={have}-")
        request.add_header("If-Range", validator)
    response = _open(url, request, part, have, policy)
    with response:
        headers = response.headers
        have, total = _resume_point(url, part, getattr(response, "status", 200), headers, have)
        part.remember(headers.get("ETag") or headers.get("Last-Modified"), total)
        _receive(url, part, response, have, total, policy)


def _open(url: str, request: urllib.request.Request, part: _PartFile, have: int, policy: DownloadPolicy):
    """The response to ``request``; a failure that a retry may cure is :class:`_Transient`,
    any other a :class:`DownloadError` saying what to do."""
    try:
        return urllib.request.urlopen(request, timeout=policy.timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already complete (or the file shrank)
            part.restart()
            raise _Transient("HTTP 416 Range Not Satisfiable for the partial file; starting over") from None
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Transient(f"HTTP {exc.code} {exc.reason}", _retry_after(exc.headers.get("Retry-After"))) from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL (the source's `uri`) "
                            "or download the file yourself and set `uri` to the local path") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, socket.gaierror):
            raise DownloadError(f"{url}: {_reason(exc.reason)}; check the URL and the network, or on an "
                                "offline machine download the file elsewhere and set `uri` to the local path") from None
        raise _Transient(_reason(exc)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(_reason(exc)) from None


def _resume_point(url: str, part: _PartFile, status: int, headers, have: int) -> tuple[int, int | None]:
    """(byte the body starts at, total size or None): the part's end where the server resumed
    it (HTTP 206), else 0 with the part emptied."""
    length = headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if status == 206 and have:
        start, total = _content_range(headers.get("Content-Range", ""))
        if start != have:
            part.restart()
            raise _Transient(f"the server answered the Range request for byte {have} with "
                             f"Content-Range {headers.get('Content-Range')!r}; starting over")
        log.info("%s: resuming at %s (HTTP Range)", url, _human(have))
        part.resumed = True
    else:
        if have:
            log.info("%s: server sent the whole file instead of the rest; starting over", url)
        part.restart()
        have, total = 0, length
    return have, total


def _receive(url: str, part: _PartFile, response, have: int, total: int | None, policy: DownloadPolicy) -> None:
    """Appends the body of ``response`` to the part file, logging progress; a body cut short
    (or longer than announced) is :class:`_Transient`."""
    progress = _Progress(url, total, have, policy.progress_every)
    received = have
    try:
        while block := response.read(CHUNK):
            part.handle.write(block)
            received += len(block)
            progress.update(received)
    except http.client.IncompleteRead as exc:
        part.handle.write(exc.partial)
        received += len(exc.partial)
    except (OSError, http.client.HTTPException) as exc:
        part.handle.flush()
        raise _Transient(f"{_reason(exc)} after {_human(received)}"
                         + (f" of {_human(total)}" if total else "")) from None
    finally:
        part.handle.flush()
    if total is not None and received < total:
        raise _Transient(f"the body ended after {received} of {total} bytes (shorter than its Content-Length)")
    if total is not None and received > total:
        part.restart()
        raise _Transient(f"the server sent {received} bytes, more than its Content-Length {total}")
    progress.update(received, final=True)


def download_file(url: str, dest: str | os.PathLike, expected: str | None, algorithm: str = "sha256",
                  prefix: bool = False, policy: DownloadPolicy | None = None,
                  check: Callable[[Path], None] | None = None) -> tuple[str, bool]:
    """Download ``url`` to ``dest`` with retries and resume; verify; rename. (digest, verified).

    ``check(path)`` runs on the complete temporary file before the rename (the archive
    read-through); any error it raises removes the file. ``policy`` None: the config
    schema's ``downloads`` defaults.
    """
    policy = policy or DownloadPolicy.from_config()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _PartFile(dest, url)
    outcome = "interrupted"
    try:
        failures, attempts = 0, 0
        # A resumed attempt that got further does not count against `retries` (a flaky
        # link on a 4 GB archive keeps going), but no download tries forever.
        max_attempts = 10 * (policy.retries + 1)
        while True:
            attempts += 1
            before = part.path.stat().st_size
            try:
                _attempt(url, part, policy)
                break
            except _Transient as exc:
                # progress = a resumed transfer got further (a restart from zero is none)
                grew = part.resumed and part.path.stat().st_size > before
                failures = 0 if grew else failures + 1
                if failures > policy.retries or attempts >= max_attempts:
                    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                    raise DownloadError(
                        f"{url}: {exc} ({tries}); check the network and the server, then rerun, or "
                        "download the file yourself and set the source's `uri` to the local path") from None
                delay = min(MAX_BACKOFF, policy.backoff * 2 ** max(failures - 1, 0))
                if exc.retry_after is not None:
                    delay = min(MAX_BACKOFF, max(delay, exc.retry_after))
                log.warning("%s: %s; retrying in %.1f s (attempt %d, %d retr%s left)", url, exc, delay,
                            attempts + 1, policy.retries - failures, "y" if policy.retries - failures == 1 else "ies")
                time.sleep(delay)
        try:
            actual, verified = verify_checksum(part.path, expected, url, algorithm, prefix)
        except ChecksumMismatch as exc:
            raise ChecksumMismatch(f"{exc}; the download was removed: check the configured checksum "
                                   "(or the server now sends another file)") from None
        if check is not None:
            check(part.path)
        os.replace(part.path, dest)
        outcome = "done"
        return actual, verified
    except Exception:
        outcome = "failed"
        raise
    finally:
        # Failed for good: nothing stays behind. Interrupted (Ctrl-C) or killed (this
        # never runs): the part file stays and the next run resumes it.
        part.close(outcome)
