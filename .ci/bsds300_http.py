"""CI integration check: the real BSDS300 archive served over loopback HTTP.

Serves ../shared/data on 127.0.0.1 only, points `bsds300.source` at that URL with the
sha256 from ../shared/data/SHA256SUMS, and runs the workflow's download + prepare:
expects 250 / 50 PNGs with longer side 496 (500 rounded down to a multiple of 16), then
200 / 100 with the official iids split; a wrong checksum must fail naming both values
and leave no output. Skips with a message when ../shared/data is absent.
"""

import functools
import http.server
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def serve(root: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def run(workdir: Path, overlay: dict) -> subprocess.CompletedProcess:
    cfg = workdir / "overlay.yaml"
    cfg.write_text(yaml.safe_dump(overlay))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
         "--configfile", str(REPO / "config.yaml"), str(cfg), "--cores", "2",
         "results/data/bsds300/manifest.csv"],
        capture_output=True, text=True,
    )


def check(workdir: Path, n_train: int, n_val: int) -> None:
    for split, n in (("train", n_train), ("val", n_val)):
        files = sorted((workdir / "results/data/bsds300" / split).glob("*.png"))
        assert len(files) == n, f"{split}: {len(files)} PNGs, expected {n}"
        for f in files:
            with Image.open(f) as img:
                assert max(img.size) == 496 and min(img.size) == 320, (f, img.size)
    print(f"ok: {n_train} train / {n_val} val PNGs, 496x320 or 320x496")


def main() -> int:
    if not (SHARED / "BSDS300-images.tgz").exists():
        print(f"SKIP BSDS300 HTTP integration: {SHARED} is absent")
        return 0
    sums = dict(reversed(line.split()) for line in (SHARED / "SHA256SUMS").read_text().splitlines() if line.strip())
    sha = sums["BSDS300-images.tgz"]
    server, base = serve(SHARED)
    try:
        source = {"uri": f"{base}/BSDS300-images.tgz", "sha256": sha, "include": "BSDS300/images/*/*.jpg"}
        overlay = {"datasets": {"bsds300": {"sources": [source]}}}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            result = run(work, overlay)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            check(work, 250, 50)
            overlay["datasets"]["bsds300"]["split"] = {"method": "iids"}
            result = run(work, overlay)  # a changed split param reruns prepare only
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            check(work, 200, 100)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            overlay["datasets"]["bsds300"]["sources"][0]["sha256"] = "0" * 64
            result = run(work, overlay)
            log = result.stdout + result.stderr + "".join(
                p.read_text() for p in (work / "logs").rglob("*.log"))
            assert result.returncode != 0, "a wrong checksum must fail"
            assert "expected sha256 " + "0" * 64 in log and f"actual sha256 {sha}" in log, log[-2000:]
            leftovers = [p for p in (work / "resources").rglob("*") if p.is_file()]
            assert not leftovers and not (work / "results").exists(), leftovers
            print("ok: wrong checksum fails naming both values and leaves no output")
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
