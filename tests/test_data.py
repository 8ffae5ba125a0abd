"""Data stage: decoding, resizing, splitting, fetching and checksums."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import logging
import re
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from ssimsr.data import data
from ssimsr.data.data import BadImageError
from ssimsr.data.download import ChecksumMismatch, DataError, sha256_file
from ssimsr.data.sources import StaleCacheError, fetch_source, iter_members

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BSDS_SHA256 = "78e720c13d4a313e15ceb31d790f2606741e3065757d7794c18d20fb2b19cb8c"


def png_bytes(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **save)
    return buf.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()[:96, :128]  # 96x128 RGB crop, a real photograph


# ----------------------------------------------------------------- decoding

def test_rgb_passes_through_unchanged(astronaut):
    rgb, conv = data.decode_rgb8(png_bytes(Image.fromarray(astronaut)), "a.png")
    np.testing.assert_array_equal(rgb, astronaut)
    assert conv == []


def test_grayscale_is_replicated(astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    rgb, conv = data.decode_rgb8(png_bytes(Image.fromarray(gray)), "g.png")
    assert rgb.shape == gray.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)
    assert "gray->RGB" in conv


def test_rgba_alpha_is_dropped(astronaut):
    alpha = np.full(astronaut.shape[:2] + (1,), 7, np.uint8)  # nearly transparent
    rgba = np.concatenate([astronaut, alpha], axis=2)
    rgb, conv = data.decode_rgb8(png_bytes(Image.fromarray(rgba, "RGBA")), "a.png")
    np.testing.assert_array_equal(rgb, astronaut)  # colour kept, not composited
    assert "alpha dropped" in conv


def test_palette_is_expanded(astronaut):
    pal = Image.fromarray(astronaut).quantize(colors=16)
    expected = np.asarray(pal.convert("RGB"))
    rgb, conv = data.decode_rgb8(png_bytes(pal), "p.png")
    np.testing.assert_array_equal(rgb, expected)
    assert "palette->RGB" in conv


def test_16bit_grayscale_is_scaled_to_8bit():
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16).repeat(4, axis=0)
    img = Image.fromarray(values)  # mode I;16
    assert img.mode.startswith("I;16")
    rgb, conv = data.decode_rgb8(png_bytes(img), "deep.png")
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 255, 128])
    assert "16-bit->8-bit" in conv and "gray->RGB" in conv


def test_truncated_jpeg_names_the_file(astronaut):
    payload = jpeg_bytes(astronaut)
    with pytest.raises(BadImageError, match="broken.jpg"):
        data.decode_rgb8(payload[: len(payload) // 2], "broken.jpg")


def test_text_file_named_png_names_the_file():
    with pytest.raises(BadImageError, match="notes.png.*not a readable image"):
        data.decode_rgb8(b"this is not an image\n", "notes.png")


def test_tiny_image_is_rejected_with_its_name():
    payload = png_bytes(Image.new("RGB", (8, 8), (10, 20, 30)))
    with pytest.raises(BadImageError, match="small.png.*too small"):
        data.prepare_image(payload, "small.png", {"multiple": 16, "min_side": 32, "scale": 2})


# ----------------------------------------------------------------- resizing

def test_longer_side_resize_and_multiple(astronaut):
    payload = png_bytes(Image.fromarray(skdata.chelsea()))  # 451x300
    out = data.prepare_image(payload, "c.png", {"resize": {"mode": "longer_side", "size": 500},
                                                "multiple": 16, "scale": 2})
    assert out.original_size == (451, 300)
    assert out.pixels.shape == (320, 496, 3)  # 500x333 -> 496x320 as the reference code


def test_exact_resize_then_multiple():
    payload = png_bytes(Image.fromarray(skdata.coffee()))
    out = data.prepare_image(payload, "c.png", {"resize": {"mode": "exact", "width": 1000, "height": 1000},
                                                "multiple": 16, "scale": 2})
    assert out.pixels.shape == (992, 992, 3)  # DIV2K_1000 -> 992x992


def test_crop_mode_is_a_centre_crop(astronaut):
    rgb, conv = data.round_to_multiple(astronaut[:90, :100], 16, "crop")
    assert rgb.shape[:2] == (80, 96)
    np.testing.assert_array_equal(rgb, astronaut[5:85, 2:98])
    assert "crop" in conv[0]


# ----------------------------------------------------------------- splits

def test_random_split_is_deterministic_and_seeded():
    stems = [f"im_{i}" for i in range(100)]
    split = {"method": "random", "n_val": 8, "seed": 0}
    a = data.assign_splits(stems, split, {})
    b = data.assign_splits(list(reversed(stems)), split, {})
    assert a == b
    assert sum(v == "val" for v in a.values()) == 8
    c = data.assign_splits(stems, dict(split, seed=1), {})
    assert c != a


def test_fixed_split_rejects_unknown_names():
    with pytest.raises(DataError, match="unknown images.*'zebra'"):
        data.assign_splits(["a", "b"], {"method": "fixed", "val": ["zebra"]}, {})


def test_random_split_needs_training_images():
    with pytest.raises(DataError, match="n_val=5"):
        data.assign_splits(["a", "b"], {"method": "random", "n_val": 5}, {})


# ----------------------------------------------------------------- fetching and preparing

def make_zip(path: Path, images: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in images.items():
            zf.writestr(name, payload)
    return path


@pytest.fixture()
def photo_zip(tmp_path):
    photos = {"coffee": skdata.coffee(), "rocket": skdata.rocket(), "chelsea": skdata.chelsea(),
              "astronaut": skdata.astronaut()}
    images = {f"set/{k}.png": png_bytes(Image.fromarray(v)) for k, v in photos.items()}
    images["set/readme.txt"] = b"ignored"
    return make_zip(tmp_path / "photos.zip", images)


def test_local_archive_with_wrong_checksum_fails_and_writes_nothing(tmp_path, photo_zip):
    receipt = tmp_path / "out" / "source0.json"
    with pytest.raises(ChecksumMismatch) as info:
        fetch_source({"uri": str(photo_zip), "sha256": "0" * 64}, receipt, tmp_path / "dl")
    message = str(info.value)
    assert str(photo_zip) in message and "0" * 64 in message and sha256_file(photo_zip) in message
    assert not receipt.exists()


def test_missing_checksum_is_recorded_with_a_warning(tmp_path, photo_zip):
    receipt = tmp_path / "source0.json"
    with pytest.warns(UserWarning, match="no sha256 configured"):
        record = fetch_source({"uri": str(photo_zip), "sha256": None}, receipt, tmp_path)
    assert record["sha256"] == hashlib.sha256(photo_zip.read_bytes()).hexdigest()
    assert record["verified"] is False
    assert json.loads(receipt.read_text())["sha256"] == record["sha256"]


@pytest.fixture()
def http_root(tmp_path):
    """A loopback HTTP server (127.0.0.1 only) serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_and_renames(tmp_path, photo_zip, http_root):
    root, base = http_root
    (root / "photos.zip").write_bytes(photo_zip.read_bytes())
    good = sha256_file(photo_zip)
    dl = tmp_path / "dl"
    record = fetch_source({"uri": f"{base}/photos.zip", "sha256": good}, tmp_path / "r.json", dl)
    assert record["verified"] and Path(record["path"]) == dl / "photos.zip"
    assert sha256_file(dl / "photos.zip") == good


def test_download_with_wrong_checksum_leaves_no_file(tmp_path, photo_zip, http_root):
    root, base = http_root
    (root / "photos.zip").write_bytes(photo_zip.read_bytes())
    dl = tmp_path / "dl"
    with pytest.raises(ChecksumMismatch, match="expected sha256 f{64}"):
        fetch_source({"uri": f"{base}/photos.zip", "sha256": "f" * 64}, tmp_path / "r.json", dl)
    assert list(dl.iterdir()) == []
    assert not (tmp_path / "r.json").exists()


def test_prepare_writes_splits_and_manifest(tmp_path, photo_zip, capsys):
    receipt = tmp_path / "source0.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fetch_source({"uri": str(photo_zip)}, receipt, tmp_path)
    options = {"resize": {"mode": "longer_side", "size": 200}, "multiple": 16, "multiple_mode": "resize",
               "min_side": 32, "on_bad_image": "error", "scale": 2,
               "split": {"method": "fixed", "val": ["chelsea"]}}
    out = tmp_path / "prepared"
    manifest = data.prepare_dataset([receipt], options, out)
    assert sorted(p.name for p in (out / "train").iterdir()) == ["astronaut.png", "coffee.png", "rocket.png"]
    assert [p.name for p in (out / "val").iterdir()] == ["chelsea.png"]
    assert set(manifest.columns) >= {"output", "source", "source_sha256", "original_width",
                                     "original_height", "width", "height", "conversions"}
    row = manifest.set_index("stem").loc["coffee"]
    assert (row.original_width, row.original_height) == (600, 400)
    assert (row.width, row.height) == (192, 128)
    with Image.open(out / row.output) as img:
        assert img.size == (192, 128) and img.mode == "RGB"
    splits = pd.read_csv(out / "splits.csv")
    assert dict(zip(splits.stem, splits.split))["chelsea"] == "val"
    assert not list(tmp_path.glob(".prepared.tmp*"))
    # progress on stderr, as training logs it: the first image, then every 10 s, and the last
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("prepare prepared: ")]
    assert re.fullmatch(r"prepare prepared: 1/4 images, [\d.]+ img/s, eta \d+:\d\d:\d\d", lines[0]), lines
    assert re.fullmatch(r"prepare prepared: 4/4 images, [\d.]+ img/s, done in \d+:\d\d:\d\d", lines[-1]), lines


def _folder_with_bad_image(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(skdata.coffee()[:64, :64]).save(folder / f"{name}.png")
    (folder / "bad.png").write_text("not an image")
    return folder


def test_bad_image_stops_prepare_and_leaves_nothing(tmp_path):
    folder = _folder_with_bad_image(tmp_path)
    receipt = tmp_path / "r.json"
    fetch_source({"uri": str(folder)}, receipt, tmp_path)
    out = tmp_path / "out"
    options = {"multiple": 16, "scale": 2, "split": {"method": "random", "n_val": 1}}
    with pytest.raises(BadImageError, match="bad.png"):
        data.prepare_dataset([receipt], options, out)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.tmp*"))


def test_bad_image_skip_is_recorded(tmp_path):
    folder = _folder_with_bad_image(tmp_path)
    receipt = tmp_path / "r.json"
    fetch_source({"uri": str(folder)}, receipt, tmp_path)
    options = {"multiple": 16, "scale": 2, "on_bad_image": "skip", "split": {"method": "random", "n_val": 1}}
    manifest = data.prepare_dataset([receipt], options, tmp_path / "out")
    bad = manifest.set_index("stem").loc["bad"]
    assert bad.status == "skipped" and "not a readable image" in bad.reason
    assert (manifest.status == "ok").sum() == 3


def test_by_source_split_and_duplicate_names(tmp_path):
    train = make_zip(tmp_path / "train.zip", {"HR/0001.png": png_bytes(Image.fromarray(skdata.coffee()))})
    val = make_zip(tmp_path / "val.zip", {"HR/0801.png": png_bytes(Image.fromarray(skdata.rocket()))})
    sources = [{"uri": str(train), "split": "train"}, {"uri": str(val), "split": "val"}]
    receipts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, s in enumerate(sources):
            receipts.append(tmp_path / f"s{i}.json")
            fetch_source(s, receipts[-1], tmp_path)
    options = {"multiple": 16, "scale": 2, "split": {"method": "by_source"}}
    manifest = data.prepare_dataset(receipts, options, tmp_path / "out", sources=sources)
    assert dict(zip(manifest.stem, manifest.split)) == {"0001": "train", "0801": "val"}
    with pytest.raises(DataError, match="two images named '0001'"):
        data.prepare_dataset([receipts[0], receipts[0]], options, tmp_path / "out2", sources=[sources[0]] * 2)


def test_skimage_source_materialises_photos(tmp_path):
    record = fetch_source({"uri": "skimage:chelsea,motorcycle_right"}, tmp_path / "r.json", tmp_path)
    names = sorted(m.name for m in iter_members(record))
    assert names == ["chelsea.png", "motorcycle_right.png"]
    with pytest.raises(DataError, match="unknown scikit-image photo"):
        fetch_source({"uri": "skimage:nosuchphoto"}, tmp_path / "r2.json", tmp_path)


# ----------------------------------------------------------------- the real BSDS300 archive

@pytest.mark.skipif(not (SHARED_DATA / "BSDS300-images.tgz").exists(), reason="../shared/data is absent")
def test_bsds300_official_split_from_iids(tmp_path):
    archive = SHARED_DATA / "BSDS300-images.tgz"
    receipt = tmp_path / "r.json"
    fetch_source({"uri": str(archive), "sha256": BSDS_SHA256}, receipt, tmp_path)
    record = json.loads(receipt.read_text())
    official = data._official_iids([record])
    assert sum(v == "train" for v in official.values()) == 200
    assert sum(v == "val" for v in official.values()) == 100
    stems = [m.stem for m in iter_members(record, "BSDS300/images/*/*.jpg")]
    splits = data.assign_splits(stems, {"method": "iids"}, {}, official)
    assert sorted(splits) == sorted(stems) and len(stems) == 300


# ----------------------------------------------------------------- ignored files, stale caches

def test_folder_lists_non_images_as_ignored(tmp_path, caplog):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, photo in (("coffee", skdata.coffee()), ("rocket", skdata.rocket()), ("chelsea", skdata.chelsea())):
        Image.fromarray(photo[:64, :96]).save(folder / f"{name}.png")
    (folder / "Thumbs.db").write_bytes(b"\x00" * 64)
    (folder / ".DS_Store").write_bytes(b"\x00Bud1")
    (folder / "README.txt").write_text("photos for a test\n")
    receipt = tmp_path / "r.json"
    fetch_source({"uri": str(folder)}, receipt, tmp_path)
    options = {"multiple": 16, "scale": 2, "split": {"method": "fixed", "val": ["rocket"]}}
    with caplog.at_level(logging.INFO, logger="ssimsr.data.data"):
        manifest = data.prepare_dataset([receipt], options, tmp_path / "out")
    ignored = manifest[manifest.status == "ignored"].set_index("source")
    assert dict(ignored.reason) == {
        f"{folder}:.DS_Store": "hidden file",
        f"{folder}:README.txt": "not an image (extension .txt)",
        f"{folder}:Thumbs.db": "not an image (extension .db)",
    }
    assert (ignored.output.fillna("") == "").all()
    assert sorted(manifest[manifest.status == "ok"].stem) == ["chelsea", "coffee", "rocket"]
    written = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert (written.status == "ignored").sum() == 3
    messages = [r.message for r in caplog.records]
    assert f"ignored {folder}:Thumbs.db: not an image (extension .db)" in messages
    assert "3 images prepared, 0 bad images skipped, 3 files ignored (not images or not included)" in messages


def test_local_corrupt_archive_names_the_member_and_writes_no_receipt(tmp_path, photo_zip):
    payload = bytearray(photo_zip.read_bytes())
    payload[200] ^= 0xFF  # one flipped byte inside the first member's data: its CRC fails
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(payload))
    with pytest.warns(UserWarning), pytest.raises(DataError) as info:
        fetch_source({"uri": str(bad)}, tmp_path / "r.json", tmp_path / "dl")
    assert "corrupt archive bad.zip: member set/" in str(info.value) and f"replace the local file {bad}" in str(info.value)
    assert not (tmp_path / "r.json").exists()


def _receipt_for(tmp_path, archive):
    receipt = tmp_path / "resources" / "source0.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fetch_source({"uri": str(archive)}, receipt, tmp_path)
    return receipt


OPTIONS = {"multiple": 16, "scale": 2, "split": {"method": "fixed", "val": ["chelsea"]}}


def test_stale_receipt_gives_one_line_with_the_refetch_command(tmp_path, photo_zip):
    receipt = _receipt_for(tmp_path, photo_zip)
    photo_zip.write_bytes(photo_zip.read_bytes()[:-10])  # changed after the fetch
    with pytest.raises(StaleCacheError) as info:
        data.prepare_dataset([receipt], OPTIONS, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and "changed since it was fetched" in message
    assert message.endswith(f"refetch it with: snakemake --cores 1 --force {receipt}")
    photo_zip.unlink()
    with pytest.raises(StaleCacheError, match=f"the archive {photo_zip} is gone; replace the local archive"):
        data.prepare_dataset([receipt], OPTIONS, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_archive_failing_later_gives_the_refetch_command(tmp_path, photo_zip):
    """A receipt written before archives were read through, for a damaged archive."""
    payload = bytearray(photo_zip.read_bytes())
    payload[200] ^= 0xFF
    photo_zip.write_bytes(bytes(payload))
    receipt = tmp_path / "dl" / "source0.json"
    receipt.parent.mkdir()
    receipt.write_text(json.dumps({"uri": "https://example.org/photos.zip", "kind": "archive",
                                   "path": str(photo_zip), "sha256": sha256_file(photo_zip)}))
    with pytest.raises(StaleCacheError) as info:
        data.prepare_dataset([receipt], OPTIONS, tmp_path / "out")
    message = str(info.value)
    assert f"{photo_zip}: cannot read member set/" in message and "BadZipFile" in message
    assert message.endswith(f"the archive is damaged; refetch it with: snakemake --cores 1 --force {receipt}")


def test_prepare_cli_stale_receipt_is_one_line(tmp_path, photo_zip, capsys):
    from ssimsr import cli

    receipt = _receipt_for(tmp_path, photo_zip)
    config = tmp_path / "config.yaml"  # JSON is YAML
    config.write_text(json.dumps({"datasets": {"photos": {"sources": [{"uri": str(photo_zip)}],
                                                          "split": OPTIONS["split"]}}}))
    photo_zip.unlink()
    code = cli.main(["prepare", "--config", str(config), "--dataset", "photos", "--download-dir", str(receipt.parent),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("ssimsr prepare: error: ") and "--force" in err[0]


@pytest.mark.parametrize("argv, expected", [
    (["fetch-weights", "--uri", "{tmp}/missing.h5", "--out", "{tmp}/w.h5", "--md5", "0" * 32], "missing.h5: no such file"),
    (["fetch", "--config", "{tmp}/config.yaml", "--dataset", "nothing", "--download-dir", "{tmp}"],
     "no such file or folder"),
])
def test_stage_cli_failures_are_one_line(tmp_path, capsys, argv, expected):
    from ssimsr import cli

    (tmp_path / "config.yaml").write_text(json.dumps({"datasets": {"nothing": {
        "sources": [{"uri": f"{tmp_path}/nothing"}], "split": {"method": "all_val"}}}}))
    code = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"ssimsr {argv[0]}: error: ") and expected in err[0]


# ----------------------------------------------------------------- resize filter, benchmarks, origin (issue 15)

def test_bilinear_resize_equals_pillows_bilinear(astronaut):
    resize = {"mode": "longer_side", "size": 160, "filter": "bilinear"}
    rgb, conv = data.apply_resize(astronaut, resize)
    expected = np.asarray(Image.fromarray(astronaut).resize((160, 120), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(rgb, expected)
    assert conv == ["resize 128x96->160x120 (bilinear)"]
    bicubic = np.asarray(Image.fromarray(astronaut).resize((160, 120), Image.Resampling.BICUBIC))
    assert not np.array_equal(rgb, bicubic)
    # no filter given: the schema's default, bicubic
    rgb, conv = data.apply_resize(astronaut, {"mode": "longer_side", "size": 160})
    np.testing.assert_array_equal(rgb, bicubic)
    assert conv == ["resize 128x96->160x120 (bicubic)"]


def test_rounding_to_a_multiple_stays_bicubic(astronaut):
    payload = png_bytes(Image.fromarray(astronaut))
    out = data.prepare_image(payload, "a.png", {"resize": {"mode": "exact", "width": 150, "height": 100,
                                                           "filter": "lanczos"}, "multiple": 16, "scale": 2})
    step1 = Image.fromarray(astronaut).resize((150, 100), Image.Resampling.LANCZOS)
    step2 = np.asarray(step1.resize((144, 96), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(out.pixels, step2)
    assert out.conversions == ["resize 128x96->150x100 (lanczos)", "resize 150x100->144x96 (multiple 16)"]


def test_manifest_records_the_resize_filter(tmp_path, photo_zip):
    receipt = _receipt_for(tmp_path, photo_zip)
    options = {"resize": {"mode": "longer_side", "size": 200, "filter": "bilinear"}, "multiple": 16, "scale": 2,
               "split": {"method": "fixed", "val": ["chelsea"]}}
    manifest = data.prepare_dataset([receipt], options, tmp_path / "out")
    ok = manifest[manifest.status == "ok"].set_index("stem")
    assert set(ok.resize_filter) == {"bilinear"}
    assert ok.loc["coffee", "conversions"].startswith("resize 600x400->200x133 (bilinear)")
    written = pd.read_csv(tmp_path / "out" / "manifest.csv")
    assert set(written[written.status == "ok"].resize_filter) == {"bilinear"}
    no_resize = dict(options, resize=None)
    manifest = data.prepare_dataset([receipt], no_resize, tmp_path / "out2")
    assert set(manifest[manifest.status == "ok"].resize_filter) == {""}


def test_unknown_resize_filter_is_refused_naming_the_key():
    from ssimsr.config import ConfigError, check_config

    config = {"datasets": {"bsds300": {"sources": [{"uri": "x.tgz"}], "split": {"method": "random", "n_val": 1},
                                       "resize": {"mode": "longer_side", "size": 500, "filter": "cubic"}}}}
    with pytest.raises(ConfigError, match=r"datasets\.bsds300\.resize\.filter: 'cubic' is not one of"):
        check_config(config)
    with pytest.raises(DataError, match="resize.filter: unknown value 'cubic'"):
        data.apply_resize(np.zeros((8, 8, 3), np.uint8), {"mode": "exact", "width": 4, "height": 4,
                                                          "filter": "cubic"})


def test_all_val_split_puts_every_image_in_val(tmp_path, photo_zip):
    assert data.assign_splits(["b", "a"], {"method": "all_val"}, {}) == {"a": "val", "b": "val"}
    receipt = _receipt_for(tmp_path, photo_zip)
    options = {"resize": None, "multiple": 2, "multiple_mode": "crop", "scale": 2, "split": {"method": "all_val"}}
    out = tmp_path / "bench"
    data.prepare_dataset([receipt], options, out)
    assert data.list_split(out, "train") == []
    assert [p.stem for p in data.list_split(out, "val")] == ["astronaut", "chelsea", "coffee", "rocket"]
    with Image.open(out / "val" / "chelsea.png") as img:
        assert img.size == (450, 300)  # 451x300 cropped to a multiple of the scale (modcrop)


def test_origin_is_the_folder_of_the_source_member(tmp_path, photo_zip):
    assert data.origin_of("https://h/BSDS300-images.tgz:BSDS300/images/test/101085.jpg") == "BSDS300/images/test"
    assert data.origin_of("/data/BSDS300-images.tgz:BSDS300/images/train/2092.jpg") == "BSDS300/images/train"
    assert data.origin_of("../shared/data/Set5:img_001.png") == "."
    assert data.origin_of("skimage:astronaut.png") == "."
    receipt = _receipt_for(tmp_path, photo_zip)
    data.prepare_dataset([receipt], {"resize": None, "multiple": 2, "scale": 2, "split": {"method": "all_val"}},
                         tmp_path / "out")
    assert data.image_origins(tmp_path / "out") == {k: "set" for k in ("astronaut", "chelsea", "coffee", "rocket")}
    with pytest.raises(DataError, match="nothing/manifest.csv: manifest not found"):
        data.image_origins(tmp_path / "nothing")


def test_a_decompression_bomb_is_a_bad_image_named_in_one_line_or_skipped(tmp_path):
    """A 20000x10000 PNG (above Pillow's limit) compresses to a few kB; it is refused from its
    header, named with its size, and skipped with on_bad_image: skip."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(skdata.coffee()[:64, :64]).save(folder / f"{name}.png")
    Image.new("1", (20000, 10000)).save(folder / "bomb.png")
    assert (folder / "bomb.png").stat().st_size < 1_000_000
    receipt = tmp_path / "r.json"
    fetch_source({"uri": str(folder)}, receipt, tmp_path)
    options = {"multiple": 16, "scale": 2, "split": {"method": "random", "n_val": 1}}
    with pytest.raises(BadImageError) as err:
        data.prepare_dataset([receipt], options, tmp_path / "out")
    assert "bomb.png" in str(err.value) and "20000x10000" in str(err.value) and "\n" not in str(err.value)
    manifest = data.prepare_dataset([receipt], {**options, "on_bad_image": "skip"}, tmp_path / "out")
    bomb = manifest.set_index("stem").loc["bomb"]
    assert bomb.status == "skipped" and "exceeds the limit" in bomb.reason
    # a configured limit applies below Pillow's too
    with pytest.raises(BadImageError, match=r"a.png: 64x64 = 4,096 pixels exceeds the limit of 1,000"):
        data.decode_rgb8((folder / "a.png").read_bytes(), "a.png", max_pixels=1000)


# ----------------------------------------------------------------- a split per seed (split.per_seed)

PER_SEED = {"method": "random", "n_val": 50, "seed": 0, "per_seed": True}


def test_per_seed_splits_differ_between_seeds_and_partition_every_image():
    from ssimsr.data.seed_split import per_seed_split

    stems = [f"{100000 + 37 * i}" for i in range(300)]  # BSDS300's size, the paper's 250 / 50
    splits = {seed: per_seed_split(stems, PER_SEED, seed) for seed in range(4)}
    vals = {seed: {s for s, v in split.items() if v == "val"} for seed, split in splits.items()}
    for seed, split in splits.items():
        assert sorted(split) == sorted(stems)  # train + val: every image, each in one split
        trains = {s for s, v in split.items() if v == "train"}
        assert len(vals[seed]) == 50 and len(trains) == 250 and not trains & vals[seed]
        # deterministic in (split.seed, seed, the stems), whatever order the stems come in
        assert per_seed_split(list(reversed(stems)), PER_SEED, seed) == split
    assert len({frozenset(v) for v in vals.values()}) == 4  # every seed its own split
    assert per_seed_split(stems, dict(PER_SEED, seed=1), 0) != splits[0]  # split.seed matters too
    # per_seed false: the shared split of assign_splits, unchanged
    shared = data.assign_splits(stems, {k: v for k, v in PER_SEED.items() if k != "per_seed"}, {})
    assert data.assign_splits(stems, dict(PER_SEED, per_seed=False), {}) == shared
    assert splits[0] == shared and all(splits[seed] != shared for seed in (1, 2, 3))  # seed 0: the shared split


def test_per_seed_needs_a_random_split_and_names_the_key():
    from ssimsr.config import ConfigError
    from ssimsr.data.seed_split import per_seed_datasets, per_seed_split, split_label

    config = {"datasets": {"a": {"split": {"method": "random", "n_val": 2, "per_seed": True}},
                           "b": {"split": {"method": "random", "n_val": 2, "per_seed": False}},
                           "c": {"split": {"method": "by_source"}}}}
    assert per_seed_datasets(config) == ["a"]
    assert [split_label(d["split"]) for d in config["datasets"].values()] == ["random_per_seed", "random", "by_source"]
    from ssimsr.analysis import noise
    from ssimsr.data.seed_split import PER_SEED_LABEL

    assert PER_SEED_LABEL == noise.PER_SEED  # the label the statistics read (two literals, one value)
    config["datasets"]["c"]["split"]["per_seed"] = True
    with pytest.raises(ConfigError, match=r"datasets\.c\.split\.per_seed: true needs split method 'random' "
                                          r"\(got 'by_source'\)"):
        per_seed_datasets(config)
    with pytest.raises(ConfigError, match=r"split\.per_seed.*'fixed'"):
        per_seed_split(["a", "b"], {"method": "fixed", "val": ["a"], "per_seed": True}, 0)
    with pytest.raises(DataError, match="n_val=2 leaves no training image"):
        per_seed_split(["a", "b"], dict(PER_SEED, n_val=2), 0)


def test_seed_split_folders_link_the_prepared_images(tmp_path, photo_zip):
    import os

    from ssimsr.data.seed_split import write_seed_split

    receipt = tmp_path / "source0.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fetch_source({"uri": str(photo_zip)}, receipt, tmp_path)
    split = {"method": "random", "n_val": 2, "per_seed": True}
    options = {"resize": {"mode": "longer_side", "size": 64}, "scale": 2, "split": split}
    prepared = tmp_path / "prepared"
    data.prepare_dataset([receipt], options, prepared)
    before = (prepared / "manifest.csv").read_bytes()
    stems = ["astronaut", "chelsea", "coffee", "rocket"]
    vals = {}
    for seed in (0, 1):
        out = tmp_path / f"prepared_seed{seed}"
        manifest = write_seed_split(prepared, out, split, seed)
        val = sorted(p.stem for p in (out / "val").iterdir())
        train = sorted(p.stem for p in (out / "train").iterdir())
        assert len(val) == 2 and sorted(train + val) == stems
        vals[seed] = val
        ok = manifest[manifest.status == "ok"].set_index("stem")
        assert dict(ok.split) == {s: "val" if s in val else "train" for s in stems}
        listed = pd.read_csv(out / "splits.csv")
        assert list(zip(listed.stem, listed.split)) == sorted(dict(ok.split).items())
        for stem in stems:  # hard links of the prepared PNGs: no second copy
            source = next(p for p in (prepared / "train", prepared / "val") if (p / f"{stem}.png").exists())
            assert os.path.samefile(source / f"{stem}.png", out / ok.loc[stem, "output"])
        first = (out / "manifest.csv").read_bytes()
        write_seed_split(prepared, out, split, seed)  # again: the same files
        assert (out / "manifest.csv").read_bytes() == first
    assert vals[0] != vals[1]
    assert (prepared / "manifest.csv").read_bytes() == before  # the prepared dataset is untouched
    assert not list(tmp_path.glob(".prepared_seed*.tmp*"))
