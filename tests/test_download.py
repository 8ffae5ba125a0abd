"""Fault injection for downloads, on 127.0.0.1 only.

A small HTTP server plays a script of behaviours, one per request (truncated body,
connection reset, 404, 503, a stalled answer, Range-capable, a body held half-sent), and
records every request it got: its headers and what it answered. Every failure must end in
one line naming the URL and the reason, with nothing left in the download folder; every
success must hash to the payload's sha256. Nothing here waits on a clock: a server that
must be slow blocks on an event instead, and the only deadlines are hang guards.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

import ssimsr
from ssimsr.data import sources
from ssimsr.data.download import CHUNK, ChecksumMismatch, DataError, DownloadError, DownloadPolicy, download_file

#: The source tree this process imported ssimsr from; child processes import the same one.
SRC = Path(ssimsr.__file__).resolve().parents[1]
PAYLOAD = os.urandom(256 * 1024)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
NEW_PAYLOAD = os.urandom(len(PAYLOAD))  # the same file after it changed on the server
NEW_SHA = hashlib.sha256(NEW_PAYLOAD).hexdigest()
FAST = DownloadPolicy(retries=2, timeout=2.0, backoff=0.01, progress_every=0.0)
#: Bytes a ``hold`` answer sends before it waits. The client reads the body in blocks of
#: CHUNK bytes and a read returns only a whole block (or the end), so the part file reaches
#: exactly HOLD bytes only when HOLD is a multiple of CHUNK.
HOLD = 2 * CHUNK
HANG_GUARD = 60.0  # seconds; only ever a bound on a wait for something that must happen


class ScriptedServer:
    """Serves one file (``payload``, ETag ``etag``) at any path; request i behaves as
    ``script[i]`` (the last repeats). ``publish`` replaces the file (it changed on the server).

    Behaviours: ``ok`` (200; a Range request gets 206 and its Content-Range unless its
    If-Range names another ETag than the current one, which gets the whole current file
    with 200, as RFC 9110 says), ``norange`` (200, Range ignored), ``truncate:N`` (full
    Content-Length, then close after N bytes), ``reset:N`` (N bytes, then a TCP reset),
    ``status:CODE``, ``stall`` (answers nothing until ``release`` is set), ``hold:N``
    (as ``ok``, but sends N bytes of the body, then waits for ``release`` and closes; for
    the kill test). Only ``ok`` and ``hold`` answer Range requests, so a truncating or
    resetting server makes no progress and the retries run out.

    ``requests`` lists, per request: ``path``, ``headers`` (names lower-cased), and what
    was answered: ``status``, ``etag``, ``content_range``.
    """

    KINDS = {"ok", "norange", "truncate", "reset", "status", "stall", "hold"}

    def __init__(self, payload: bytes, script: list[str], etag: str = '"v1"'):
        unknown = [step for step in script if step.split(":")[0] not in self.KINDS]
        assert not unknown, f"unknown behaviours {unknown}"
        self.payload, self.etag, self.script = payload, etag, script
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/archive.bin"

    def publish(self, payload: bytes, etag: str) -> None:
        with self.lock:
            self.payload, self.etag = payload, etag

    def close(self):
        self.release.set()  # no handler thread stays blocked
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def _range_start(headers, size: int, etag: str) -> int:
        """The first byte a ``Range: bytes=N-`` request may get (0: send the whole file)."""
        rng = headers.get("Range")
        if not rng or not rng.startswith("bytes=") or not rng.endswith("-"):
            return 0
        if_range = headers.get("If-Range")
        if if_range is not None and if_range != etag:
            return 0  # the file changed since the client's copy began
        start = int(rng[len("bytes="):-1])
        return start if 0 < start < size else 0

    def handle(self, req):
        with self.lock:
            record = {"path": req.path, "headers": {k.lower(): v for k, v in req.headers.items()},
                      "status": None, "etag": None, "content_range": None}
            index = len(self.requests)
            self.requests.append(record)
            body, etag = self.payload, self.etag
        kind, *args = self.script[min(index, len(self.script) - 1)].split(":")
        if kind == "status":
            record["status"] = int(args[0])
            req.send_response(int(args[0]))
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        if kind == "stall":
            self.release.wait(HANG_GUARD)
            req.close_connection = True
            return
        start = self._range_start(req.headers, len(body), etag) if kind in ("ok", "hold") else 0
        record["status"], record["etag"] = (206 if start else 200), etag
        req.send_response(record["status"])
        if start:
            record["content_range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            req.send_header("Content-Range", record["content_range"])
        req.send_header("Content-Length", str(len(body) - start))
        req.send_header("ETag", etag)
        req.end_headers()
        rest = body[start:]
        try:
            if kind in ("ok", "norange"):
                req.wfile.write(rest)
            elif kind == "truncate":
                req.wfile.write(rest[: int(args[0])])
                req.wfile.flush()
                req.close_connection = True
            elif kind == "reset":
                req.wfile.write(rest[: int(args[0])])
                req.wfile.flush()
                # SO_LINGER 0: close() sends RST instead of FIN
                req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                req.connection.close()
                req.close_connection = True
            elif kind == "hold":
                req.wfile.write(rest[: int(args[0])])
                req.wfile.flush()
                self.release.wait(HANG_GUARD)  # the test kills the client meanwhile
                req.close_connection = True
        except OSError:  # the client went away (kill -9 test)
            req.close_connection = True


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Every URL here is loopback or must fail to resolve: never through a configured proxy
    (read per request by urllib, and inherited by child processes)."""
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture()
def serve():
    servers = []

    def start(script, payload=PAYLOAD):
        servers.append(ScriptedServer(payload, script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def child_env() -> dict:
    return dict(os.environ, PYTHONPATH=str(SRC))


def kill_9_mid_download(server: ScriptedServer, dest: Path, hold: int) -> int:
    """Run ``download_file(server.url, dest)`` in a child process whose first answer is
    ``hold:{hold}``; once the child's part file holds those ``hold`` bytes (the server is
    then blocked, sending nothing more), kill -9 it, let the server go on, and return the
    size of the part file it left."""
    part = dest.with_name(f".{dest.name}.part")
    code = ("import sys; from ssimsr.data.download import download_file, DownloadPolicy; "
            "download_file(sys.argv[1], sys.argv[2], None, policy=DownloadPolicy(retries=0, timeout=300, backoff=0))")
    proc = subprocess.Popen([sys.executable, "-c", code, server.url, str(dest)], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + HANG_GUARD  # a hang guard, not a measurement
        while not (part.exists() and part.stat().st_size >= hold):
            assert proc.poll() is None, f"the download ended before the kill: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"hang guard: {part} never reached {hold} bytes"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=HANG_GUARD)
        server.release.set()
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists()
    return part.stat().st_size


def fetch_unpinned(url: str, dest: Path) -> bytes:
    """Download without a configured checksum (so a wrong body is seen, not refused)."""
    with pytest.warns(UserWarning, match="no sha256 configured"):
        download_file(url, dest, None, policy=FAST)
    return dest.read_bytes()


# ----------------------------------------------------------------- failures leave nothing

def test_truncated_body_is_retried_then_fails_leaving_nothing(tmp_path, serve):
    server = serve(["truncate:100000"])  # announces 256 kB, sends 100 kB; no Range support
    with pytest.raises(DownloadError) as info:
        download_file(server.url, tmp_path / "x.bin", None, policy=FAST)
    message = one_line(info.value)
    assert server.url in message
    assert "ended after" in message and "shorter than its Content-Length" in message
    assert "(3 attempts)" in message and "rerun" in message
    assert leftovers(tmp_path) == []


def test_truncated_archive_never_becomes_a_receipt(tmp_path, serve):
    """The issue's case: no checksum configured, the server closes early; no receipt."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i in range(3):
            blob = os.urandom(50_000)
            info = tarfile.TarInfo(f"set/img{i}.bin")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    archive = buf.getvalue()
    server = serve([f"truncate:{len(archive) // 2}"], payload=archive)
    receipt = tmp_path / "source0.json"
    with pytest.raises(DownloadError, match="shorter than its Content-Length"):
        sources.fetch_source({"uri": server.url, "sha256": None}, receipt, tmp_path / "dl", policy=FAST)
    assert not receipt.exists() and leftovers(tmp_path / "dl") == []

    # A server that itself serves the truncated file (a matching Content-Length): the
    # read-through catches it, naming the member, and the download is removed.
    server = serve(["ok"], payload=archive[: len(archive) // 2])
    with pytest.warns(UserWarning, match="no sha256 configured"), pytest.raises(DataError) as info:
        sources.fetch_source({"uri": server.url, "sha256": None}, receipt, tmp_path / "dl", policy=FAST)
    message = one_line(info.value)
    assert "corrupt archive archive.bin: member set/img" in message and server.url in message
    assert not receipt.exists() and leftovers(tmp_path / "dl") == []


def test_reset_mid_transfer_fails_after_retries(tmp_path, serve):
    server = serve(["reset:50000"])
    with pytest.raises(DownloadError) as info:
        download_file(server.url, tmp_path / "a.bin", None, policy=DownloadPolicy(retries=1, timeout=2, backoff=0.01))
    message = one_line(info.value)
    assert "connection reset" in message and server.url in message and "(2 attempts)" in message
    assert leftovers(tmp_path) == []


def test_404_is_not_retried(tmp_path, serve):
    server = serve(["status:404"])
    with pytest.raises(DownloadError) as info:
        download_file(server.url, tmp_path / "a.bin", None, policy=FAST)
    message = one_line(info.value)
    assert message.startswith(f"{server.url}: HTTP 404 Not Found;") and "`uri`" in message
    assert len(server.requests) == 1
    assert leftovers(tmp_path) == []


def test_503_then_200_is_retried(tmp_path, serve, caplog):
    server = serve(["status:503", "ok"])
    with caplog.at_level(logging.INFO, logger="ssimsr.data.download"):
        digest, verified = download_file(server.url, tmp_path / "a.bin", PAYLOAD_SHA, policy=FAST)
    assert (digest, verified) == (PAYLOAD_SHA, True)
    assert hashlib.sha256((tmp_path / "a.bin").read_bytes()).hexdigest() == PAYLOAD_SHA
    assert len(server.requests) == 2
    assert any("HTTP 503" in r.message and "retrying in" in r.message for r in caplog.records)
    assert any("ETA" in r.message and "(100%)" in r.message for r in caplog.records)  # progress line
    assert leftovers(tmp_path) == ["a.bin"]


def test_too_slow_server_times_out(tmp_path, serve):
    server = serve(["stall"])  # answers nothing until the test ends
    with pytest.raises(DownloadError) as info:
        download_file(server.url, tmp_path / "a.bin", None,
                      policy=DownloadPolicy(retries=1, timeout=0.3, backoff=0.01))
    # (the server never answers: "timed out" can only come from the client's timeout)
    message = one_line(info.value)
    assert "timed out" in message and server.url in message and "(2 attempts)" in message
    assert leftovers(tmp_path) == []


def test_wrong_checksum_names_both_and_leaves_nothing(tmp_path, serve):
    server = serve(["ok"])
    with pytest.raises(ChecksumMismatch) as info:
        download_file(server.url, tmp_path / "a.bin", "0" * 64, policy=FAST)
    message = one_line(info.value)
    assert "expected sha256 " + "0" * 64 in message and f"actual sha256 {PAYLOAD_SHA}" in message
    assert leftovers(tmp_path) == []


def test_connection_refused_cli_gives_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "config.yaml"  # JSON is YAML
    config.write_text(json.dumps({"datasets": {"bsds300": {
        "sources": [{"uri": f"http://127.0.0.1:{port}/BSDS300-images.tgz"}], "split": {"method": "iids"}}}}))
    cmd = [sys.executable, "-m", "ssimsr.cli", "fetch", "--config", str(config), "--dataset", "bsds300",
           "--download-dir", str(tmp_path / "dl"), "--retries", "1", "--backoff", "0.01", "--timeout", "2"]
    env = child_env()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert errors[0].startswith(f"ssimsr fetch: error: http://127.0.0.1:{port}/BSDS300-images.tgz: "
                                "connection refused (2 attempts)")
    assert not (tmp_path / "dl" / "source0.json").exists() and leftovers(tmp_path / "dl") == []

    verbose = subprocess.run([sys.executable, "-m", "ssimsr.cli", "-v", *cmd[3:]], capture_output=True,
                             text=True, env=env, timeout=60)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


# ----------------------------------------------------------------- resume

def test_range_resume_hashes_like_an_uninterrupted_download(tmp_path, serve, caplog):
    server = serve(["truncate:100000", "ok"])
    with caplog.at_level(logging.INFO, logger="ssimsr.data.download"):
        digest, _ = download_file(server.url, tmp_path / "a.bin", PAYLOAD_SHA, policy=FAST)
    assert digest == PAYLOAD_SHA
    assert len(server.requests) == 2, server.requests
    first, second = server.requests
    assert second["headers"].get("range") == "bytes=100000-"
    assert second["headers"].get("if-range") == first["etag"] == '"v1"'
    assert second["status"] == 206 and second["content_range"] == f"bytes 100000-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
    assert any("resuming at 100.0 kB" in r.message for r in caplog.records)
    assert leftovers(tmp_path) == ["a.bin"]


def test_server_ignoring_range_restarts_from_zero(tmp_path, serve):
    server = serve(["truncate:100000", "norange"])
    digest, _ = download_file(server.url, tmp_path / "a.bin", PAYLOAD_SHA, policy=FAST)
    assert digest == PAYLOAD_SHA
    assert len(server.requests) == 2, server.requests  # the 200 answer is taken as the whole file at once
    _, second = server.requests
    assert second["headers"].get("range") == "bytes=100000-" and second["status"] == 200


def test_kill_9_mid_download_then_rerun_resumes_with_range_and_if_range(tmp_path, serve):
    """A process killed mid-download leaves its part file; the next run asks only for the
    rest, naming the validator of the first answer, and ends with the right file."""
    server = serve([f"hold:{HOLD}", "ok"])
    dest = tmp_path / "dl" / "a.bin"
    kept = kill_9_mid_download(server, dest, HOLD)
    assert kept == HOLD

    digest, verified = download_file(server.url, dest, PAYLOAD_SHA, policy=FAST)
    assert (digest, verified) == (PAYLOAD_SHA, True)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == PAYLOAD_SHA
    assert len(server.requests) == 2, server.requests
    first, second = server.requests
    assert "range" not in first["headers"] and first["status"] == 200 and first["etag"] == '"v1"'
    assert second["headers"].get("range") == f"bytes={kept}-"
    assert second["headers"].get("if-range") == first["etag"]
    assert second["status"] == 206
    assert second["content_range"] == f"bytes {kept}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
    assert leftovers(dest.parent) == ["a.bin"]


def test_changed_etag_restarts_from_zero_instead_of_splicing(tmp_path, serve):
    """The file changed on the server between the killed run and the rerun: the rerun
    fetches the new file whole, never the old part followed by the new file's tail."""
    server = serve([f"hold:{HOLD}", "ok"])
    dest = tmp_path / "dl" / "a.bin"
    kept = kill_9_mid_download(server, dest, HOLD)
    server.publish(NEW_PAYLOAD, '"v2"')

    data = fetch_unpinned(server.url, dest)
    assert data[:kept] != PAYLOAD[:kept], "the old part was kept and spliced with the new file"
    assert hashlib.sha256(data).hexdigest() == NEW_SHA
    final = server.requests[-1]
    assert final["status"] == 200 and final["etag"] == '"v2"'  # the whole new file
    # either no Range at all, or one the server had to ignore: If-Range named the old file
    assert "range" not in final["headers"] or final["headers"].get("if-range") == '"v1"'
    assert leftovers(dest.parent) == ["a.bin"]


def test_part_left_by_another_url_is_not_resumed(tmp_path, serve):
    """A part file under the same name that another URL left is started over, even when
    the new server would accept the Range (here its ETag happens to be the same)."""
    old = serve([f"hold:{HOLD}"])
    new = serve(["ok"], payload=NEW_PAYLOAD)  # another URL; same file name, same ETag "v1"
    assert old.url != new.url and old.etag == new.etag
    dest = tmp_path / "dl" / "archive.bin"
    assert kill_9_mid_download(old, dest, HOLD) == HOLD

    data = fetch_unpinned(new.url, dest)
    assert len(new.requests) == 1, new.requests
    [request] = new.requests
    assert "range" not in request["headers"] and "if-range" not in request["headers"]
    assert request["status"] == 200
    assert hashlib.sha256(data).hexdigest() == NEW_SHA
    assert leftovers(dest.parent) == ["archive.bin"]


def test_unknown_host_fails_at_once_with_one_line(tmp_path, monkeypatch):
    # The resolver is faked for *.invalid (as glibc answers it): a real lookup can wait on an
    # unreachable name server for many seconds, beyond any timeout of the client's.
    real_getaddrinfo, lookups = socket.getaddrinfo, []

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".invalid"):
            lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    url = "http://nosuch.invalid/BSDS300-images.tgz"
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "a.bin", None, policy=DownloadPolicy(retries=3, timeout=1, backoff=0.01))
    message = one_line(info.value)
    assert message.startswith(f"{url}: cannot resolve the host name (Name or service not known); "), message
    assert "check the URL" in message and "set `uri` to the local path" in message
    assert lookups == ["nosuch.invalid"]  # a permanent failure: not retried
    assert leftovers(tmp_path) == []


def test_policy_rejects_bad_values():
    with pytest.raises(DataError, match="downloads.retries must be >= 0, got -1"):
        DownloadPolicy.from_config({"retries": -1})
    with pytest.raises(DataError, match="downloads.timeout must be > 0 seconds, got 0"):
        DownloadPolicy.from_config({"timeout": 0})


def test_policy_defaults_are_the_schema_s():
    """The config schema's `downloads` defaults are the only ones: the policy has none of its own."""
    from ssimsr.config import defaults

    with pytest.raises(TypeError):
        DownloadPolicy()  # retries, timeout and backoff are required
    policy = DownloadPolicy.from_config()
    assert (policy.retries, policy.timeout, policy.backoff) == tuple(defaults("downloads")[k]
                                                                     for k in ("retries", "timeout", "backoff"))
    assert DownloadPolicy.from_config({"retries": 0}).timeout == defaults("downloads")["timeout"]
