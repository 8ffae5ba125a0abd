"""Fault injection for downloads, on 127.0.0.1 only.

A small HTTP server plays a script of behaviours, one per request (truncated body,
connection reset, 404, 503, too slow, Range-capable), and records the requests it got.
Every failure must end in one line naming the URL and the reason, with nothing left in
the download folder; every success must hash to the payload's sha256.
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

from ssimsr import sources
from ssimsr.download import ChecksumMismatch, DataError, DownloadError, DownloadPolicy, download_file

SRC = Path(__file__).resolve().parents[1] / "src"
PAYLOAD = os.urandom(256 * 1024)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = DownloadPolicy(retries=2, timeout=2.0, backoff=0.01, progress_every=0.0)


class ScriptedServer:
    """Serves ``payload`` at any path; request i behaves as ``script[i]`` (the last repeats).

    Behaviours: ``ok`` (200, or 206 for a Range request whose If-Range matches the ETag),
    ``norange`` (200, Range ignored), ``truncate:N`` (full Content-Length, then close after
    N bytes), ``reset:N`` (N bytes, then a TCP reset), ``status:CODE``, ``slow:SECONDS``
    (sleep before answering), ``trickle:N:SECONDS`` (N-byte pieces with pauses; for the
    kill test). Only ``ok``, ``slow`` and ``trickle`` answer Range requests, so a
    truncating or resetting server makes no progress and the retries run out.
    """

    def __init__(self, payload: bytes, script: list[str]):
        self.payload, self.script, self.requests = payload, script, []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/archive.bin"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, req):
        index = len(self.requests)
        self.requests.append({"range": req.headers.get("Range"), "if_range": req.headers.get("If-Range")})
        kind, *args = self.script[min(index, len(self.script) - 1)].split(":")
        body, start = self.payload, 0
        if kind == "status":
            req.send_response(int(args[0]))
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        if kind == "slow":
            time.sleep(float(args[0]))  # bounded: the server thread ends by itself
            kind = "ok"
        rng = req.headers.get("Range")
        if rng and kind in ("ok", "trickle") and req.headers.get("If-Range") == '"v1"':
            start = int(rng.split("=")[1].split("-")[0])
            req.send_response(206)
            req.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            req.send_response(200)
        req.send_header("Content-Length", str(len(body) - start))
        req.send_header("ETag", '"v1"')
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
            elif kind == "trickle":
                piece, pause = int(args[0]), float(args[1])
                for i in range(0, len(rest), piece):
                    req.wfile.write(rest[i:i + piece])
                    req.wfile.flush()
                    time.sleep(pause)
        except OSError:  # the client went away (timeout test, kill -9 test)
            req.close_connection = True


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
    with caplog.at_level(logging.INFO, logger="ssimsr.download"):
        digest, verified = download_file(server.url, tmp_path / "a.bin", PAYLOAD_SHA, policy=FAST)
    assert (digest, verified) == (PAYLOAD_SHA, True)
    assert hashlib.sha256((tmp_path / "a.bin").read_bytes()).hexdigest() == PAYLOAD_SHA
    assert len(server.requests) == 2
    assert any("HTTP 503" in r.message and "retrying in" in r.message for r in caplog.records)
    assert any("ETA" in r.message and "(100%)" in r.message for r in caplog.records)  # progress line
    assert leftovers(tmp_path) == ["a.bin"]


def test_too_slow_server_times_out(tmp_path, serve):
    server = serve(["slow:1.5"])
    with pytest.raises(DownloadError) as info:
        download_file(server.url, tmp_path / "a.bin", None,
                      policy=DownloadPolicy(retries=1, timeout=0.3, backoff=0.01))
    # (the server answers after 1.5 s: "timed out" can only come from the 0.3 s client timeout)
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
    env = dict(os.environ, PYTHONPATH=str(SRC))
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
    with caplog.at_level(logging.INFO, logger="ssimsr.download"):
        digest, _ = download_file(server.url, tmp_path / "a.bin", PAYLOAD_SHA, policy=FAST)
    assert digest == PAYLOAD_SHA
    assert server.requests[1] == {"range": "bytes=100000-", "if_range": '"v1"'}
    assert any("resuming at 100.0 kB" in r.message for r in caplog.records)
    assert leftovers(tmp_path) == ["a.bin"]


def test_server_ignoring_range_restarts_from_zero(tmp_path, serve):
    server = serve(["truncate:100000", "norange"])
    digest, _ = download_file(server.url, tmp_path / "a.bin", PAYLOAD_SHA, policy=FAST)
    assert digest == PAYLOAD_SHA and server.requests[1]["range"] == "bytes=100000-"


def test_kill_9_mid_download_then_rerun_resumes_and_verifies(tmp_path, serve):
    server = serve(["trickle:16384:0.05", "ok"])
    dest = tmp_path / "dl" / "a.bin"
    part = dest.with_name(".a.bin.part")
    code = ("import sys; from ssimsr.download import download_file, DownloadPolicy; "
            "download_file(sys.argv[1], sys.argv[2], None, policy=DownloadPolicy(timeout=5))")
    proc = subprocess.Popen([sys.executable, "-c", code, server.url, str(dest)],
                            env=dict(os.environ, PYTHONPATH=str(SRC)), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 65536):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    kept = part.stat().st_size
    assert 65536 <= kept < len(PAYLOAD) and not dest.exists()

    digest, verified = download_file(server.url, dest, PAYLOAD_SHA, policy=FAST)
    assert (digest, verified) == (PAYLOAD_SHA, True)
    assert server.requests[1]["range"] == f"bytes={kept}-"
    assert leftovers(dest.parent) == ["a.bin"]


def test_policy_rejects_bad_values():
    with pytest.raises(DataError, match="downloads.retries must be >= 0, got -1"):
        DownloadPolicy(retries=-1)
    with pytest.raises(DataError, match="downloads.timeout must be > 0 seconds, got 0"):
        DownloadPolicy(timeout=0)
