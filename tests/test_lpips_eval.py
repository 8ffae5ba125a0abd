"""Tests for ssimsr.evaluation.lpips_eval with synthetic torchvision-format backbone files.

No real ImageNet weights are needed (nothing is downloaded): random torchvision
state_dicts are saved under the expected file names and loaded with
``verify_hash=False``; the tests prove that every backbone tensor inside the LPIPS
model comes from the file.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tvm = pytest.importorskip("torchvision.models")
pytest.importorskip("lpips")

from ssimsr.evaluation import lpips_eval as le  # noqa: E402

TV_BUILDERS = {"alex": tvm.alexnet, "squeeze": tvm.squeezenet1_1, "vgg": tvm.vgg16}


def _write_fake_backbone(weights_dir, net, features_only=False, seed=0):
    torch.manual_seed(seed)
    state = TV_BUILDERS[net](weights=None).state_dict()
    if features_only:  # vgg16's classifier is ~470 MB; lpips only uses features.*
        state = {k: v for k, v in state.items() if k.startswith("features.")}
    path = le.backbone_path(weights_dir, net)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def _images(seed=0, size=64):
    rng = np.random.default_rng(seed)
    hr = rng.random((size, size, 3)).astype(np.float32)
    rec = np.clip(hr + 0.2 * rng.standard_normal(hr.shape), 0, 1).astype(np.float32)
    return hr, rec


def _assert_backbone_equals_file(model, state):
    lp_state = model.net.state_dict()
    assert lp_state, "lpips backbone has no parameters"
    used = set()
    for key, tensor in lp_state.items():
        _, idx, rest = key.split(".", 2)
        src = f"features.{idx}.{rest}"
        assert torch.equal(tensor, state[src]), key
        used.add(src)
    # every parameterised feature layer the lpips slices contain came from the file
    assert len(used) == len(lp_state)


def test_backbone_files_and_paths(tmp_path):
    assert le.BACKBONE_FILES == {
        "alex": "alexnet-owt-7be5be79.pth",
        "squeeze": "squeezenet1_1-b8a52dc0.pth",
        "vgg": "vgg16-397923af.pth",
    }
    p = le.backbone_path(tmp_path, "alex")
    assert p == tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert le.expected_hash_prefix("squeeze") == "b8a52dc0"
    from ssimsr.config import defaults

    assert le.backbone_urls(defaults("weights")["lpips"]["base_url"])["vgg"] == \
        "https://download.pytorch.org/models/vgg16-397923af.pth"
    with pytest.raises(ValueError):
        le.backbone_path(tmp_path, "resnet")


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_load_lpips_uses_file_weights(tmp_path, net):
    state = _write_fake_backbone(tmp_path, net)
    model = le.load_lpips(net, tmp_path, verify_hash=False)
    _assert_backbone_equals_file(model, state)
    # the random init lpips started with is not what we got: a second file with
    # another seed gives different backbone tensors
    state2 = _write_fake_backbone(tmp_path, net, seed=1)
    model2 = le.load_lpips(net, tmp_path, verify_hash=False)
    _assert_backbone_equals_file(model2, state2)
    assert not torch.equal(model.net.slice1[0].weight, model2.net.slice1[0].weight)
    assert not model.training
    # shipped linear layers are loaded (not random): they equal the lpips package file
    import lpips, os

    lin_path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", f"{net}.pth")
    lin_state = torch.load(lin_path, map_location="cpu", weights_only=True)
    for k, v in lin_state.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_vgg_loading_and_distance(tmp_path):
    state = _write_fake_backbone(tmp_path, "vgg", features_only=True)
    model = le.load_lpips("vgg", tmp_path, verify_hash=False)
    _assert_backbone_equals_file(model, state)
    hr, rec = _images(size=32)
    d = le.lpips_distances(hr, rec, ["vgg"], tmp_path, verify_hash=False)
    assert d["lpips_vgg"] > 0


def test_distances_identical_zero_different_positive(tmp_path):
    _write_fake_backbone(tmp_path, "alex")
    _write_fake_backbone(tmp_path, "squeeze")
    hr, rec = _images()
    same = le.lpips_distances(hr, hr.copy(), ["alex", "squeeze"], tmp_path, verify_hash=False)
    diff = le.lpips_distances(hr, rec, ["alex", "squeeze"], tmp_path, verify_hash=False)
    assert set(same) == {"lpips_alex", "lpips_squeeze"}
    for k in same:
        assert same[k] == pytest.approx(0.0, abs=1e-7)
        assert diff[k] > 0 and math.isfinite(diff[k])


def test_inputs_mapped_to_minus_one_one(tmp_path):
    """lpips_distances equals model(2x-1, 2y-1) computed directly."""
    _write_fake_backbone(tmp_path, "alex")
    model = le.load_lpips("alex", tmp_path, verify_hash=False)
    hr, rec = _images(seed=3)
    t = lambda a: torch.from_numpy(a.transpose(2, 0, 1)[None].copy())  # noqa: E731
    with torch.no_grad():
        ref = model(t(hr) * 2 - 1, t(rec) * 2 - 1).item()
        ref_norm = model(t(hr), t(rec), normalize=True).item()
    d = le.lpips_distances(hr, rec, ["alex"], tmp_path, verify_hash=False)["lpips_alex"]
    assert d == pytest.approx(ref, rel=1e-5)
    assert d == pytest.approx(ref_norm, rel=1e-5)


def test_missing_file_unavailable(tmp_path):
    ok, reason = le.backbone_status(tmp_path, "alex")
    assert not ok
    path = le.backbone_path(tmp_path, "alex")
    assert reason == (
        f"{path} missing: run the fetch_lpips_backbones rule or copy torchvision's "
        "alexnet-owt-7be5be79.pth there"
    )
    with pytest.raises(le.LpipsUnavailable, match="missing"):
        le.load_lpips("alex", tmp_path)
    d = le.lpips_distances(*_images(), ["alex"], tmp_path)
    assert math.isnan(d["lpips_alex"])


def test_hash_mismatch_unavailable(tmp_path):
    _write_fake_backbone(tmp_path, "alex")
    path = le.backbone_path(tmp_path, "alex")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    ok, reason = le.backbone_status(tmp_path, "alex")
    assert not ok
    assert "7be5be79" in reason and actual in reason
    with pytest.raises(le.LpipsUnavailable, match="sha256"):
        le.load_lpips("alex", tmp_path)
    assert le.backbone_status(tmp_path, "alex", verify_hash=False) == (True, "ok")


def test_wrong_format_raises_not_random(tmp_path):
    # a squeezenet file under the alexnet name must not load (shape/key mismatch)
    torch.manual_seed(0)
    path = le.backbone_path(tmp_path, "alex")
    path.parent.mkdir(parents=True)
    torch.save(tvm.squeezenet1_1(weights=None).state_dict(), path)
    with pytest.raises(le.LpipsUnavailable):
        le.load_lpips("alex", tmp_path, verify_hash=False)
    path.write_bytes(b"not a torch file")
    with pytest.raises(le.LpipsUnavailable, match="torch.load"):
        le.load_lpips("alex", tmp_path, verify_hash=False)


def test_lpips_table(tmp_path):
    _write_fake_backbone(tmp_path, "alex")
    pairs = [_images(seed=s, size=48) for s in range(3)]
    pairs.append((pairs[0][0], pairs[0][0]))
    df = le.lpips_table(pairs, ["alex", "squeeze"], tmp_path, verify_hash=False,
                        index=["a", "b", "c", "d"])
    assert list(df.columns) == ["lpips_alex", "lpips_alex_status",
                                "lpips_squeeze", "lpips_squeeze_status"]
    assert list(df.index) == ["a", "b", "c", "d"]
    assert (df["lpips_alex"].iloc[:3] > 0).all()
    assert df["lpips_alex"].iloc[3] == pytest.approx(0.0, abs=1e-7)
    assert df["lpips_squeeze"].isna().all()
    assert (df["lpips_alex_status"] == "ok").all()
    st = df["lpips_squeeze_status"].iloc[0]
    assert st.startswith("unavailable: ") and "squeezenet1_1-b8a52dc0.pth" in st
    assert df.attrs["lpips_status"]["squeeze"] == st
    # per-pair values match single-pair computation
    single = le.lpips_distances(*pairs[1], ["alex"], tmp_path, verify_hash=False)
    assert df["lpips_alex"].iloc[1] == pytest.approx(single["lpips_alex"], rel=1e-6)


def test_lpips_table_logs_progress_with_a_label(tmp_path, capsys):
    _write_fake_backbone(tmp_path, "alex")
    pairs = [_images(seed=s, size=40) for s in range(3)]
    le.lpips_table(pairs, ["alex"], tmp_path, verify_hash=False, label="lpips run")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("lpips run: 1/3 images, ") and " eta " in lines[0]
    assert lines[-1].startswith("lpips run: 3/3 images, ") and " done in " in lines[-1]


def test_lpips_table_accepts_paths(tmp_path):
    from ssimsr.evaluation.metrics import save_image, load_image

    _write_fake_backbone(tmp_path, "alex")
    hr, rec = _images(size=40)
    save_image(tmp_path / "hr.png", hr)
    save_image(tmp_path / "rec.png", rec)
    df = le.lpips_table([(tmp_path / "hr.png", str(tmp_path / "rec.png"))], ["alex"],
                        tmp_path, verify_hash=False)
    ref = le.lpips_distances(load_image(tmp_path / "hr.png"), load_image(tmp_path / "rec.png"),
                             ["alex"], tmp_path, verify_hash=False)
    assert df["lpips_alex"].iloc[0] == pytest.approx(ref["lpips_alex"], rel=1e-6)


def test_import_does_not_import_torch():
    code = (
        "import sys, ssimsr.evaluation.lpips_eval as m; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'lpips' not in sys.modules, 'lpips imported'; "
        "print(m.BACKBONE_FILES['alex'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "alexnet-owt-7be5be79.pth" in out.stdout


def test_verified_hash_loads(tmp_path, monkeypatch):
    """With verify_hash=True a file whose sha256 matches its name's prefix loads."""
    state = _write_fake_backbone(tmp_path, "alex")
    src = le.backbone_path(tmp_path, "alex")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    fname = f"alexnet-owt-{digest[:8]}.pth"
    monkeypatch.setitem(le.BACKBONE_FILES, "alex", fname)
    src.rename(src.with_name(fname))
    assert le.expected_hash_prefix("alex") == digest[:8]
    assert le.backbone_status(tmp_path, "alex") == (True, "ok")
    model = le.load_lpips("alex", tmp_path)  # verify_hash=True by default
    _assert_backbone_equals_file(model, state)
