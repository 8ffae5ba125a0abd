"""Models that travel (issue 27, item 3): ``ssimsr export`` writes a run as one file, and
``ssimsr upscale`` takes that file, or its URL with its sha256, and gives the same pixels."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from conftest import tiny_params
from ssimsr import cli
from ssimsr.evaluation.export import FORMAT, FORMAT_VERSION, MANIFEST, MODEL_CARD, final_validation
from ssimsr.training.train import train

MEMBERS = [MANIFEST, MODEL_CARD, "params.json", "upscaler.keras", "downscaler.keras", "provenance.json", "history.csv"]


@pytest.fixture(scope="module")
def trained_run(dataset, tmp_path_factory):
    """A tiny SR run trained for one epoch, laid out as the workflow lays it out."""
    run = tmp_path_factory.mktemp("results") / "train" / "tiny" / "sr" / "seed0"
    train(tiny_params("sr", epochs=1, crop=None, batch_size=1), dataset, run)
    return run


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """(export file, the sha256 `ssimsr export` printed)."""
    out = tmp_path_factory.mktemp("export") / "tiny.ssimsr.zip"
    assert cli.main(["export", str(trained_run), "-o", str(out)]) == 0
    return out, hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def server(exported):
    """The export's folder served over loopback HTTP: (base URL, list of requested paths)."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    handler = functools.partial(Handler, directory=str(exported[0].parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(skdata.astronaut()[100:124, 180:212]).save(path)  # 32x24
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ssimsr" / "models"


def _one_error_line(capsys, command: str = "upscale") -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ssimsr {command}: error: "), err
    return err[0]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_export_holds_the_run_a_manifest_and_a_model_card(trained_run, exported, tmp_path, capsys):
    path, sha256 = exported
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == MEMBERS
        manifest = json.loads(archive.read(MANIFEST))
        card = archive.read(MODEL_CARD).decode()
        assert archive.read("upscaler.keras") == (trained_run / "upscaler.keras").read_bytes()
        for name, entry in manifest["files"].items():
            data = archive.read(name)
            assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert (manifest["format"], manifest["format_version"]) == (FORMAT, FORMAT_VERSION)
    assert sorted(manifest["files"]) == sorted(MEMBERS[1:]) and (manifest["model"], manifest["scale"]) == ("sr", 2)
    scores = final_validation(trained_run / "history.csv")
    provenance = json.loads((trained_run / "provenance.json").read_text())
    for text in ("| Dataset | tiny |", "| Scale | x2 |", "| Epochs | 1 |", "| Seed | 0 |", "lambda_s=1.0",
                 "lambda_p=0.0", "weight-free decimation", f"PSNR {scores['psnr']:.2f} dB",
                 f"SSIM {scores['ssim']:.4f} (epoch 1", provenance["code_digest"], "ssimsr upscale tiny.ssimsr.zip"):
        assert text in card, text
    # the same run exports to the same bytes (the name is in the card); the default name is
    # the run's path under train/; no temporary file is left
    capsys.readouterr()
    assert cli.main(["export", str(trained_run), "-o", str(tmp_path / path.name)]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / path.name}  sha256 {sha256}"
    again = tmp_path / "again"
    again.mkdir()
    assert cli.main(["export", str(trained_run), "-o", str(again)]) == 0
    written = again / "tiny-sr-seed0.ssimsr.zip"
    assert capsys.readouterr().out.strip() == f"{written}  sha256 {hashlib.sha256(written.read_bytes()).hexdigest()}"
    assert sorted(p.name for p in again.iterdir()) == [written.name]


def test_upscale_from_a_url_equals_upscale_from_the_run_folder(trained_run, exported, server, photo, tmp_path,
                                                              cache):
    path, sha256 = exported
    url, requests = server
    assert cli.main(["upscale", str(trained_run), str(photo), str(tmp_path / "folder.png")]) == 0
    assert cli.main(["upscale", f"{url}/{path.name}", "--sha256", sha256, str(photo), str(tmp_path / "url.png")]) == 0
    assert cli.main(["upscale", str(path), str(photo), str(tmp_path / "file.png")]) == 0
    want = pixels(tmp_path / "folder.png")
    assert want.shape == (48, 64, 3)
    np.testing.assert_array_equal(pixels(tmp_path / "url.png"), want)
    np.testing.assert_array_equal(pixels(tmp_path / "file.png"), want)
    assert sorted(p.name for p in cache.iterdir()) == [f"{sha256}.ssimsr.zip"]
    fetched = len(requests)
    # the cached copy is used again (checked), without a request
    assert cli.main(["upscale", f"{url}/{path.name}", "--sha256", sha256.upper(), str(photo),
                     str(tmp_path / "again.png")]) == 0
    assert len(requests) == fetched
    np.testing.assert_array_equal(pixels(tmp_path / "again.png"), want)


def test_a_wrong_or_missing_sha256_is_refused_in_one_line(exported, server, photo, tmp_path, cache, capsys):
    path, sha256 = exported
    url = f"{server[0]}/{path.name}"
    wrong = ("0" if sha256[0] != "0" else "1") + sha256[1:]
    assert cli.main(["upscale", url, "--sha256", wrong, str(photo), str(tmp_path / "x2.png")]) == 1
    assert _one_error_line(capsys) == (f"ssimsr upscale: error: {url}: sha256 {sha256}, not the {wrong} given with "
                                       "--sha256; the download was removed (check the sha256 `ssimsr export` printed)")
    assert cli.main(["upscale", url, str(photo), str(tmp_path / "x2.png")]) == 1
    assert f"{url}: a URL needs --sha256" in _one_error_line(capsys)
    assert cli.main(["upscale", str(path), "--sha256", wrong, str(photo), str(tmp_path / "x2.png")]) == 1
    assert _one_error_line(capsys).startswith(f"ssimsr upscale: error: {path}: sha256 {sha256}, not the {wrong}")
    assert not (tmp_path / "x2.png").exists()
    assert not cache.exists() or not any(cache.iterdir())  # nothing cached, no part file left


def _rewritten(src: Path, dest: Path, change) -> Path:
    """A copy of export ``src`` whose members ``change(name, data)`` returns."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            data = change(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    return dest


def test_a_corrupted_or_foreign_file_is_refused_naming_it(exported, photo, tmp_path, capsys):
    path, _ = exported
    flipped = tmp_path / "flipped.ssimsr.zip"
    shutil.copyfile(path, flipped)
    with zipfile.ZipFile(flipped) as archive:
        info = archive.getinfo("upscaler.keras")
    data = bytearray(flipped.read_bytes())
    name_len, extra_len = (int.from_bytes(data[info.header_offset + i:info.header_offset + i + 2], "little")
                           for i in (26, 28))
    data[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0x01
    flipped.write_bytes(bytes(data))

    def manifest_with(**changes):
        return lambda name, data: (json.dumps({**json.loads(data), **changes}).encode() if name == MANIFEST
                                   else data)

    cases = {
        flipped: "member upscaler.keras",
        _rewritten(path, tmp_path / "edited.ssimsr.zip",
                   lambda name, data: data + b"\0" if name == "downscaler.keras" else data):
            "member downscaler.keras has sha256",
        _rewritten(path, tmp_path / "nomanifest.ssimsr.zip", lambda name, data: None if name == MANIFEST else data):
            f"not an ssimsr export (no {MANIFEST})",
        _rewritten(path, tmp_path / "future.ssimsr.zip", manifest_with(format_version=99)):
            "export format version 99 is not one this ssimsr reads",
        photo: "not an ssimsr export (not a zip file",
    }
    for bad, reason in cases.items():
        assert cli.main(["upscale", str(bad), str(photo), str(tmp_path / "x2.png")]) == 1
        line = _one_error_line(capsys)
        assert line.startswith(f"ssimsr upscale: error: {bad}: ") and reason in line, line
    assert not (tmp_path / "x2.png").exists()


def test_the_export_models_job_writes_each_run_and_an_index_of_their_sha256(trained_run, tmp_path):
    """The workflow's export_models rule (the report's list of a study's models): one export
    per run under its default name, and index.csv with each file's size and sha256 (checked
    here with hashlib), the exporting version and the training provenance; the same runs
    give the same files and index again."""
    import csv

    from ssimsr import __version__
    from ssimsr.pipeline import jobs
    from ssimsr.pipeline.provenance import git_state
    from test_jobs import Named, snakemake_object

    other = tmp_path / "results" / "train" / "tiny" / "irn-like" / "seed1"
    shutil.copytree(trained_run, other)
    runs = [str(trained_run), str(other)]
    index = tmp_path / "results" / "models" / "index.csv"
    log = tmp_path / "export_models.log"
    smk = snakemake_object("export_models", log=[str(log)], runs=runs, out=str(index.parent))
    smk.output = Named(index=str(index))
    jobs.run(smk)
    with open(index, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == runs
    assert [r["file"] for r in rows] == ["tiny-sr-seed0.ssimsr.zip", "tiny-irn-like-seed1.ssimsr.zip"]
    provenance = json.loads((trained_run / "provenance.json").read_text())
    for row in rows:
        data = (index.parent / row["file"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest() and int(row["size"]) == len(data)
        assert (row["model"], row["scale"]) == ("sr", "2")
        assert row["exported_by"] == f"ssimsr {__version__}"
        assert row["trained_by"].startswith(f"ssimsr {provenance['ssimsr']}")
        if git_state():
            assert provenance["git_commit"][:12] in row["trained_by"]
    assert sorted(p.name for p in index.parent.iterdir()) == sorted([r["file"] for r in rows] + ["index.csv"])
    assert "2 exported models" in log.read_text()
    before = index.read_bytes()
    jobs.run(smk)
    assert index.read_bytes() == before
