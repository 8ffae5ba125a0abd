"""The ``ssimsr`` command: ``python -m ssimsr``, --version, help text, config-driven
fetch / prepare, and the output formats of ``upscale``."""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import BACKEND, tiny_params, write_photo_dataset
from ssimsr import cli

REPO = Path(__file__).resolve().parents[1]
SRC = Path(cli.__file__).resolve().parents[1]  # the ssimsr this session imports, for subprocesses


def test_python_m_ssimsr_version_is_the_package_version():
    result = subprocess.run([sys.executable, "-m", "ssimsr", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ssimsr {importlib.metadata.version('ssimsr')}"


def test_python_m_ssimsr_is_the_console_script():
    script = shutil.which("ssimsr", path=str(Path(sys.executable).parent))
    module = subprocess.run([sys.executable, "-m", "ssimsr", "fetch", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert module.returncode == 0 and module.stdout.startswith("usage: ssimsr fetch ")
    if script is None:
        pytest.skip("no ssimsr console script beside this Python (not pip-installed)")
    console = subprocess.run([script, "fetch", "--help"], capture_output=True, text=True, timeout=60)
    assert console.returncode == 0 and console.stdout == module.stdout


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _option_help(text: str, option: str) -> str:
    """The help of one option in an argparse --help text (its lines, joined)."""
    lines = text.splitlines()
    first = lines.index("options:")  # below the usage lines
    start = next(i for i, line in enumerate(lines) if i > first
                 and re.match(rf"\s+(-\w, )?{re.escape(option)}\b", line))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.strip() or re.match(r"\s{2}-", line) or not line.startswith(" "):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_shows_its_default_and_every_command_an_example(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for action in _subcommands()[command]._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or action.dest == "help":
            continue
        option = action.option_strings[-1]
        helptext = _option_help(text, option)
        assert "(default: " in helptext or "(required)" in helptext or "is required)" in helptext, (
            f"ssimsr {command} {option}: {helptext}")
    assert re.search(r"^examples?:\n  ssimsr " + re.escape(command) + r"(\s|$)", text, flags=re.M), text


def test_defaults_come_from_the_config_schema(capsys):
    from ssimsr.config import defaults

    with pytest.raises(SystemExit):
        cli.main(["fetch-weights", "--help"])
    text = capsys.readouterr().out
    assert f"(default: {defaults('downloads')['retries']}," in _option_help(text, "--retries")
    assert defaults("weights")["vgg19"]["md5"] in text  # the example's checksum
    parsed = cli.build_parser().parse_args(["lpips", "--data", "d", "--eval-dir", "e", "--weights-dir", "w"])
    assert parsed.nets == defaults("evaluation")["lpips_nets"]


# ----------------------------------------------------------------- fetch and prepare

def _image_folder(folder: Path) -> Path:
    """A local folder source: 6 small photos of several sizes (one grayscale), and a note."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i, (w, h) in enumerate([(100, 80), (128, 96), (80, 112), (120, 80), (96, 96), (110, 88)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert("L") if i == 3 else Image.fromarray(pixels)
        image.save(folder / f"img{i}.{'jpg' if i == 4 else 'png'}")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def configs(tmp_path):
    """Two config files that merge: the base (a study and the dataset) and an override."""
    from test_workflow import TINY

    base = json.loads(json.dumps(TINY))
    base["datasets"] = {"tiny": {"sources": [{"uri": str(_image_folder(tmp_path / "photos"))}],
                                 "resize": {"mode": "longer_side", "size": 96},
                                 "split": {"method": "random", "n_val": 2}}}
    base["studies"]["smoke"]["datasets"] = ["tiny"]
    base["report"]["stats"]["dataset"] = "tiny"
    base["evaluation"]["showcase"].update(dataset="tiny", images=[])
    over = {"datasets": {"tiny": {"resize": {"size": 80, "filter": "bilinear"}, "split": {"seed": 3}}}}
    paths = [tmp_path / "base.yaml", tmp_path / "over.yaml"]
    for path, config in zip(paths, (base, over)):
        path.write_text(yaml.safe_dump(config))
    return paths


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but Snakemake's marker of a directory() output)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".snakemake_timestamp"}


def test_fetch_and_prepare_write_what_the_workflow_writes(tmp_path, configs, monkeypatch, capsys):
    workflow_dir, cli_dir = tmp_path / "workflow", tmp_path / "cli"
    workflow_dir.mkdir()
    cli_dir.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workflow_dir), "--cores", "1",
         "--configfile", *map(str, configs), "--", "results/data/tiny/manifest.csv"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    monkeypatch.chdir(cli_dir)  # the defaults: resources/datasets/<dataset>, results/data/<dataset>
    args = [arg for path in configs for arg in ("--config", str(path))] + ["--dataset", "tiny"]
    assert cli.main(["fetch", *args]) == 0
    assert cli.main(["prepare", *args]) == 0
    out = capsys.readouterr().out
    assert "resources/datasets/tiny/source0.json" in out and "prepared results/data/tiny" in out

    for folder in ("results/data/tiny", "resources/datasets/tiny"):
        expected, got = _files(workflow_dir / folder), _files(cli_dir / folder)
        assert got.keys() == expected.keys() and got == expected, folder
    manifest = (cli_dir / "results/data/tiny/manifest.csv").read_text()
    assert "(bilinear)" in manifest and "ignored" in manifest  # the override was merged; the note ignored
    assert len(list((cli_dir / "results/data/tiny/val").glob("*.png"))) == 2


def test_prepare_before_fetch_names_the_fetch_command(tmp_path, configs, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["prepare", "--config", str(configs[0]), "--dataset", "tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ssimsr prepare: error: no receipt resources/datasets/tiny/source0.json")
    assert err[0].endswith(f"ssimsr fetch --config {configs[0]} --dataset tiny")


@pytest.mark.parametrize("command", ["fetch", "prepare"])
def test_unknown_dataset_is_one_line_naming_the_configured_ones(tmp_path, configs, command, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no workflow config.yaml to merge under the given ones
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"datasets": {"other": {"sources": [{"uri": "skimage:coffee"}],
                                                            "split": {"method": "all_val"}}}}))
    code = cli.main([command, "--config", str(configs[0]), "--config", str(extra), "--dataset", "bsds300"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"ssimsr {command}: error: unknown dataset 'bsds300'; the config has: other, tiny"]
    assert not (tmp_path / "resources").exists()


def test_a_bad_config_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {tiny: {sources: [], split: {method: random}}}\n")
    assert cli.main(["fetch", "--config", str(bad), "--dataset", "tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "datasets.tiny.sources" in err[0]
    assert cli.main(["fetch", "--config", str(tmp_path / "missing.yaml"), "--dataset", "tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ssimsr fetch: error: config file {tmp_path / 'missing.yaml'}: not found"]


# ----------------------------------------------------------------- upscale: the format the suffix names

@pytest.fixture
def photo(tmp_path):
    from skimage import data as skdata

    path = tmp_path / "photo.png"
    Image.fromarray(skdata.astronaut()[100:124, 180:212]).save(path)  # 32x24
    return path


def test_upscale_writes_the_format_its_suffix_names(tiny_sr_run, photo, tmp_path):
    formats = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF"}
    pixels = {}
    for suffix, expected in formats.items():
        out = tmp_path / f"x2.{suffix}"
        assert cli.main(["upscale", str(tiny_sr_run), str(photo), str(out)]) == 0
        with Image.open(out) as image:
            assert image.format == expected and image.size == (64, 48) and image.mode == "RGB"
            pixels[suffix] = np.asarray(image).astype(int)
    for lossless in ("webp", "tif", "tiff"):
        np.testing.assert_array_equal(pixels[lossless], pixels["png"])
    reference = io.BytesIO()  # what Pillow writes at quality 95 from the same pixels
    Image.fromarray(pixels["png"].astype(np.uint8)).save(reference, format="JPEG", quality=95)
    np.testing.assert_array_equal(pixels["jpg"], np.asarray(Image.open(reference)).astype(int))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([photo.name, *(f"x2.{s}" for s in formats)])


def test_upscale_unsupported_suffix_is_one_line_before_loading(photo, tmp_path, capsys):
    from ssimsr.evaluation.upscale import OUTPUT_FORMATS

    # the run folder does not exist: the suffix is checked before the run is loaded
    assert cli.main(["upscale", str(tmp_path / "no_run"), str(photo), str(tmp_path / "x2.bmp")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ssimsr upscale: error: {tmp_path / 'x2.bmp'}: cannot write '.bmp'")
    assert all(suffix in err[0] for suffix in OUTPUT_FORMATS)
    assert not (tmp_path / "x2.bmp").exists()
    with pytest.raises(SystemExit):
        cli.main(["upscale", "--help"])
    text = capsys.readouterr().out
    assert all(suffix in text for suffix in OUTPUT_FORMATS)


def _one_error_line(capsys, command: str = "upscale") -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ssimsr {command}: error: "), err
    return err[0]


def test_upscale_refuses_to_overwrite_its_input_or_an_existing_file(photo, tmp_path, capsys):
    """The user's case, ``ssimsr upscale RUN x.png x.png``, and an output written before: one
    line naming the file, before the run is loaded (here it does not even exist)."""
    no_run = str(tmp_path / "no_run")
    before = photo.read_bytes()
    assert cli.main(["upscale", no_run, str(photo), str(photo)]) == 1
    line = _one_error_line(capsys)
    assert line == (f"ssimsr upscale: error: {photo}: is an input image; not overwritten "
                    "(give --overwrite to replace it)")
    (tmp_path / "x2.png").write_bytes(b"earlier result")
    assert cli.main(["upscale", no_run, str(photo), str(tmp_path / "x2.png")]) == 1
    assert f"{tmp_path / 'x2.png'}: exists; not overwritten (give --overwrite" in _one_error_line(capsys)
    assert photo.read_bytes() == before and (tmp_path / "x2.png").read_bytes() == b"earlier result"
    # a folder whose input is its output (same name, .png)
    assert cli.main(["upscale", no_run, str(tmp_path), str(tmp_path)]) == 1
    assert f"{photo}: is an input image (and 1 more outputs); not overwritten" in _one_error_line(capsys)


def test_upscale_checks_every_output_before_writing_any(tiny_sr_run, photo, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        shutil.copy(photo, tmp_path / "in" / f"{name}.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.png").write_bytes(b"earlier result")
    assert cli.main(["upscale", str(tiny_sr_run), str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    assert f"{tmp_path / 'out' / 'b.png'}: exists;" in _one_error_line(capsys)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.png"]  # a.png not written either
    assert (tmp_path / "out" / "b.png").read_bytes() == b"earlier result"
    # two inputs of one name (a.jpg, a.png) would write one output: refused, --overwrite or not
    shutil.copy(photo, tmp_path / "in" / "a.jpg")
    for extra in ([], ["--overwrite"]):
        assert cli.main(["upscale", str(tiny_sr_run), str(tmp_path / "in"), str(tmp_path / "new"), *extra]) == 1
        line = _one_error_line(capsys)
        assert all(str(p) in line for p in (tmp_path / "new" / "a.png", tmp_path / "in" / "a.jpg",
                                            tmp_path / "in" / "a.png")), line
        assert not (tmp_path / "new").exists()


def test_upscale_overwrite_replaces_the_input_and_existing_outputs(tiny_sr_run, photo, tmp_path):
    (tmp_path / "x2.png").write_bytes(b"earlier result")
    assert cli.main(["upscale", str(tiny_sr_run), str(photo), str(tmp_path / "x2.png"), "--overwrite"]) == 0
    assert cli.main(["upscale", str(tiny_sr_run), str(photo), str(photo), "--overwrite"]) == 0
    for path in (tmp_path / "x2.png", photo):
        with Image.open(path) as image:
            assert image.size == (64, 48)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "x2.png"]


# ----------------------------------------------------------------- status and the counts of jobs

def test_status_refuses_a_results_folder_that_does_not_exist(tmp_path, capsys):
    """Not "132 pending" with exit 0: a mistyped --results is one line naming it."""
    config = str(REPO / "config.yaml")
    assert cli.main(["status", "--config", config, "--results", str(tmp_path / "nonexistent")]) == 1
    assert _one_error_line(capsys, "status") == (
        f"ssimsr status: error: results folder {tmp_path / 'nonexistent'}: no such folder "
        "(nothing has run here yet, or give the workflow's results folder with --results DIR)")
    (tmp_path / "file").write_text("")
    assert cli.main(["status", "--config", config, "--results", str(tmp_path / "file")]) == 1
    assert f"results folder {tmp_path / 'file'}: not a folder" in _one_error_line(capsys, "status")
    assert cli.main(["status", "--config", config, "--results", str(tmp_path)]) == 0  # an empty one is fine
    assert "0 done" in capsys.readouterr().out
    assert cli.main(["status", "--config", config, "--results", str(tmp_path), "--state", "corrupt"]) == 0


TRAIN_ARGS = ["train", "--params", "{}", "--data", "d", "--out", "o"]


@pytest.mark.parametrize("args,option,value", [(["status", "--jobs", "-1"], "--jobs", "-1"),
                                               (["status", "--jobs=0"], "--jobs", "0"),
                                               ([*TRAIN_ARGS, "--jobs-per-gpu", "0"], "--jobs-per-gpu", "0")])
def test_a_count_of_jobs_below_one_is_a_usage_error_naming_it(args, option, value, capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(args)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"ssimsr {args[0]}: error: argument {option}: {value}: must be a positive integer (at least 1)")
    assert cli.build_parser().parse_args(["status", "--jobs", "3"]).jobs == 3
    assert cli.build_parser().parse_args([*TRAIN_ARGS, "--jobs-per-gpu", "2"]).jobs_per_gpu == 2


# ----------------------------------------------------------------- one-line errors of train, evaluate, lpips

def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m ssimsr ARGS`` in a fresh process, as a user runs it (no KERAS_BACKEND: the
    command picks the backend itself)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "ssimsr", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def assert_one_error_line(result: subprocess.CompletedProcess, command: str, *names: str) -> str:
    """Exit status 1 and stderr exactly one line ``ssimsr <command>: error: ...`` naming ``names``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"ssimsr {command}: error: "), lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """A prepared dataset, a run folder whose params.json is corrupt, and paths that do not exist."""
    root = tmp_path_factory.mktemp("bad_inputs")
    data = write_photo_dataset(root / "data", n_train=1, n_val=1, height=16, width=16)
    corrupt = root / "corrupt_run"
    corrupt.mkdir()
    (corrupt / "params.json").write_text('{"model": "sr", "scale": 2,')  # cut off
    for name in ("upscaler.keras", "downscaler.keras"):  # present: params.json is what is wrong
        (corrupt / name).write_bytes(b"")
    return {"root": root, "data": data, "corrupt": corrupt, "missing": root / "no_such_folder"}


def test_train_without_its_data_folder_is_one_line_before_it_starts(bad_inputs):
    """Valid parameters, no data: one error line, before a GPU is claimed, the backend starts (its
    device line and import noise) or an attempt is recorded in the run folder."""
    root = bad_inputs["root"]
    (root / "params.json").write_text(json.dumps(tiny_params(epochs=1).as_dict()))
    out = root / "train_out"
    result = run_cli("train", "--params", str(root / "params.json"), "--data", str(bad_inputs["missing"]),
                     "--out", str(out), cwd=root)
    assert_one_error_line(result, "train", str(bad_inputs["missing"] / "train"))
    assert not out.exists()


@pytest.mark.parametrize("case", ["corrupt", "missing"])
def test_train_with_a_bad_params_file_is_a_usage_error_naming_it(bad_inputs, case):
    params = bad_inputs["corrupt"] / "params.json" if case == "corrupt" else bad_inputs["missing"] / "params.json"
    result = run_cli("train", "--params", str(params), "--data", str(bad_inputs["data"]), "--out",
                     str(bad_inputs["root"] / f"out_{case}"), cwd=bad_inputs["root"])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    # argparse: its usage lines, then one error line naming the file
    assert lines[-1].startswith("ssimsr train: error: argument --params: ") and str(params) in lines[-1], lines
    assert all(line.startswith(("usage: ", " ")) for line in lines[:-1]), lines
    assert not (bad_inputs["root"] / f"out_{case}").exists()


@pytest.mark.parametrize("case", ["missing data", "missing run", "corrupt params.json",
                                  "corrupt params.json, --backend"])
def test_evaluate_bad_input_is_one_line_naming_it(bad_inputs, case):
    root, data, corrupt, missing = (bad_inputs[k] for k in ("root", "data", "corrupt", "missing"))
    args, names = {
        "missing data": (["--run", str(corrupt), "--data", str(missing)], [str(missing / "val")]),
        "missing run": (["--run", str(missing), "--data", str(data)], [str(missing)]),
        "corrupt params.json": (["--run", str(corrupt), "--data", str(data)], [str(corrupt / "params.json")]),
        "corrupt params.json, --backend": (["--run", str(corrupt), "--data", str(data), "--backend", BACKEND],
                                           [str(corrupt / "params.json")]),
    }[case]
    result = run_cli("evaluate", *args, "--out", str(root / "eval_out"), cwd=root)
    assert_one_error_line(result, "evaluate", *names)
    assert not (root / "eval_out").exists()


@pytest.mark.parametrize("case", ["missing data", "missing run"])
def test_lpips_bad_input_is_one_line_naming_it(bad_inputs, case):
    root, data, missing = (bad_inputs[k] for k in ("root", "data", "missing"))
    args, name = {"missing data": (["--eval-dir", str(root), "--data", str(missing)], str(missing / "val")),
                  "missing run": (["--eval-dir", str(missing), "--data", str(data)], str(missing / "recon"))}[case]
    result = run_cli("lpips", *args, "--weights-dir", str(root / "weights"), cwd=root)
    assert_one_error_line(result, "lpips", name)
    assert not (root / "lpips.csv").exists() and not (missing / "lpips.csv").exists()


# ----------------------------------------------------------------- the backend of evaluate and upscale

def test_evaluate_and_upscale_use_the_runs_backend_unless_told_otherwise(bad_inputs, tmp_path, monkeypatch):
    """A run trained under JAX (its params.json) is evaluated and upscaled under JAX by default, by
    the commands and the workflow's evaluate job; --backend, then KERAS_BACKEND, override it; a
    params.json without a backend (older runs) means TensorFlow."""
    from types import SimpleNamespace

    from ssimsr.pipeline import jobs, runner

    run = tmp_path / "run"
    run.mkdir()
    (run / "params.json").write_text(json.dumps({"model": "sr", "scale": 2, "backend": "jax"}))
    old = tmp_path / "old_run"
    old.mkdir()
    (old / "params.json").write_text(json.dumps({"model": "sr", "scale": 2}))
    photo = next((bad_inputs["data"] / "val").glob("*.png"))
    chosen = []

    def record(name):
        chosen.append(name)
        raise RuntimeError("backend chosen")  # stop before Keras starts

    monkeypatch.setattr(runner, "use_backend", record)
    monkeypatch.setattr(cli, "use_backend", record)

    def evaluate(*extra, run=run):
        return cli.main(["evaluate", "--run", str(run), "--data", str(bad_inputs["data"]), "--out", str(tmp_path / "e"),
                         *extra])

    def upscale(*extra, run=run):
        return cli.main(["upscale", str(run), str(photo), str(tmp_path / "x2.png"), *extra])

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert runner.run_backend(run) == "jax" and runner.run_backend(old) == "tensorflow"
    assert [evaluate(), upscale(), evaluate(run=old), upscale(run=old)] == [1, 1, 1, 1]
    assert chosen == ["jax", "jax", "tensorflow", "tensorflow"]
    chosen.clear()
    assert [evaluate("--backend", "torch"), upscale("--backend", "tensorflow")] == [1, 1]
    assert chosen == ["torch", "tensorflow"]
    chosen.clear()
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert runner.run_backend(run) == "torch"
    assert [evaluate(), upscale(), evaluate("--backend", "jax")] == [1, 1, 1]
    assert chosen == ["torch", "torch", "jax"]
    chosen.clear()
    monkeypatch.delenv("KERAS_BACKEND")
    smk = SimpleNamespace(rule="evaluate", log=[str(tmp_path / "evaluate.log")], resources=SimpleNamespace(),
                          params=SimpleNamespace(run=str(run), data=str(bad_inputs["data"]), showcase=None,
                                                 benchmarks=[], out=str(tmp_path / "e")))
    with pytest.raises(SystemExit):
        jobs.run(smk)
    assert chosen == ["jax"]
