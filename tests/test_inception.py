"""Both FID libraries' real code paths, offline, on stand-in weights in a temporary cache."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_lib.config import make_config
from ssd_lib.data.cache import ImageSplit, load_prepared, write_prepared
from ssd_lib.metrics import export, inception
from ssd_lib.metrics.evaluate import evaluate_run
from ssd_lib.metrics.export import export_generated, export_split, is_complete, write_image_folder
from ssd_lib.metrics.inception import FeatureCache, cached_features, extract_features, list_images
from ssd_lib.metrics.standin import write_standin_weights
from ssd_lib.metrics.weights import (
    CLEAN_FID,
    PYTORCH_FID,
    MissingWeightsError,
    weights_path,
    weights_status,
)
from ssd_lib.training.trainer import train
from ssd_lib.utils.atomic import sha256_file

# `make test-fast` leaves this module out: it Inception features end to end on the CPU.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standin_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        mp.delenv("SSD_CLEANFID_DIR", raising=False)
        write_standin_weights(seed=0)
    return home


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def with_standins(standin_home, monkeypatch, offline):
    monkeypatch.setenv("TORCH_HOME", str(standin_home))
    monkeypatch.delenv("SSD_CLEANFID_DIR", raising=False)


@pytest.fixture
def images_dir(tmp_path):
    rng = np.random.default_rng(0)
    imgs = torch.from_numpy(rng.integers(0, 256, (12, 3, 64, 64), dtype=np.uint8))
    return write_image_folder(imgs, tmp_path / "imgs", show_progress=False)


def test_missing_weights_fail_at_once_naming_path_and_url(
    tmp_path, monkeypatch, offline, images_dir
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    for library in (PYTORCH_FID, CLEAN_FID):
        assert not weights_status(library).present
        with pytest.raises(MissingWeightsError) as err:
            extract_features(list_images(images_dir), library)
        msg = str(err.value)
        assert str(weights_path(library)) in msg and "https://" in msg and "curl" in msg
        assert "\n" not in msg  # one line, no wall of text


def test_cleanfid_folder_can_be_moved_on_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("SSD_CLEANFID_DIR", str(tmp_path / "cf"))
    assert weights_path(CLEAN_FID) == tmp_path / "cf" / "inception-2015-12-05.pt"


def test_standins_are_detected_as_not_the_reference_weights(with_standins):
    for library in (PYTORCH_FID, CLEAN_FID):
        status = weights_status(library)
        assert status.present and not status.verified
        assert "UNVERIFIED" in status.describe()


@pytest.mark.parametrize("library", [PYTORCH_FID, CLEAN_FID])
def test_both_libraries_extract_2048_d_features_offline(with_standins, images_dir, library):
    feats, status = extract_features(list_images(images_dir), library, show_progress=False)
    assert feats.shape == (12, 2048) and np.isfinite(feats).all() and feats.std() > 1e-3
    again, _ = extract_features(list_images(images_dir), library, show_progress=False)
    np.testing.assert_allclose(feats, again, rtol=1e-5)


def test_export_writes_the_declared_range_not_the_classic_mistake(tmp_path):
    class Half(torch.nn.Module):  # outputs -0.5 everywhere: dark grey in [-1, 1]
        z_dim, num_ws = 4, 0

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z):
            return torch.full((z.shape[0], 3, 8, 8), -0.5) + 0 * self.p

    signed = export_generated(Half(), "[-1, 1]", 3, tmp_path / "s", show_progress=False)
    value = np.asarray(Image.open(signed / "000000.png"))[0, 0, 0]
    assert value == 64  # (-0.5 + 1) / 2 * 255; writing it as [0, 1] would give 0
    assert sorted(p.name for p in signed.glob("*.png")) == [
        "000000.png",
        "000001.png",
        "000002.png",
    ]


@pytest.fixture
def trained(tmp_path):
    """A 12-image dataset with 128px 'originals' for the paper protocol, and a smoke run."""
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    splits = {
        s: ImageSplit(torch.from_numpy(rng.integers(0, 256, (n, 3, 64, 64), dtype=np.uint8)))
        for s, n in (("train", 12), ("val", 10))
    }
    source_dirs = {}
    for s, n in (("train", 12), ("val", 10)):
        big = torch.from_numpy(rng.integers(0, 256, (n, 3, 128, 128), dtype=np.uint8))
        source_dirs[s] = str(write_image_folder(big, tmp_path / "src" / s, show_progress=False))
    write_prepared(
        "toyset", splits, {"kind": "test"}, root=root, extra={"source_dirs": source_dirs}
    )
    ds = load_prepared("toyset", root)
    run = train(
        make_config("paper", "smoke", dataset="toyset"), ds, device="cpu", show_progress=False
    )
    return run, ds


def test_evaluate_both_protocols_end_to_end_offline(with_standins, trained, monkeypatch):
    run, ds = trained
    paper = evaluate_run(run, ds, "paper", n=10, min_samples=5, show_progress=False)
    names = [r.name for r in paper]
    assert names == [  # stand-in weights: never named FID or KID
        "FD[unverified-inception]",
        "clean-FD[unverified-inception]",
        "clean-KD[unverified-inception]",
    ]
    fid, cfid, ckid = paper
    assert fid.details["reference_split"] == "val" and fid.n_real == 10 and fid.n_fake == 10
    assert cfid.details["reference_split"] == "train" and cfid.n_real == 12
    assert fid.details["reference_resolution"] == [128, 128]  # the source originals
    assert all(
        r.details["protocol"] == "paper" and r.details["weights_verified"] is False for r in paper
    )
    assert fid.value > 0 and np.isfinite(ckid.value)

    matched = evaluate_run(run, ds, "matched", n=10, min_samples=5, show_progress=False)
    assert all(r.details["reference_resolution"] == [64, 64] for r in matched)
    assert all(r.n_real == r.n_fake == 10 for r in matched)  # same count
    assert matched[0].details["reference_from_cache"] is False
    import ssd_lib.metrics.weights as weights_module

    hashed = []
    real_sha256 = weights_module.sha256_file
    monkeypatch.setattr(
        weights_module, "sha256_file", lambda path: hashed.append(path) or real_sha256(path)
    )
    again = evaluate_run(
        run, ds, "matched", libraries=(PYTORCH_FID,), n=10, min_samples=5, show_progress=False
    )
    assert hashed == [weights_path(PYTORCH_FID)]  # the ~95 MB file is hashed once per call
    assert again[0].details["reference_from_cache"] is True  # only the fakes recomputed
    assert again[0].value == pytest.approx(matched[0].value, rel=1e-6)
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 7 and {r["protocol"] for r in rows} == {"paper", "matched"}
    assert all(r["run"] == run.path.name and "step" in r for r in rows)


def test_unknown_protocol_and_library_are_refused(trained):
    run, ds = trained
    with pytest.raises(ValueError, match=r"known protocols: \['paper', 'matched'\]"):
        evaluate_run(run, ds, "fancy")
    with pytest.raises(ValueError, match="libraries="):
        evaluate_run(run, ds, "paper", libraries=("tf-fid",))


def test_reference_pngs_follow_the_dataset_when_it_is_rebuilt_under_the_same_name(tmp_path):
    from ssd_lib.metrics.evaluate import reference_folder

    root = tmp_path / "data"
    for value in (0, 200):
        images = torch.full((10, 3, 8, 8), value, dtype=torch.uint8)
        write_prepared("same", {"train": ImageSplit(images)}, {"kind": "test"}, root=root)
        ds = load_prepared("same", root)
        folder = reference_folder(ds, "train", source_resolution=False)
        pixel = np.asarray(Image.open(folder / "000000.png"))[0, 0, 0]
        assert pixel == value  # never the PNGs of the previous build


def test_matched_protocol_refuses_more_fakes_than_reals(with_standins, trained):
    run, ds = trained
    with pytest.raises(ValueError, match=r"n=20 generated images exceed the 12 real train"):
        evaluate_run(run, ds, "matched", n=20, min_samples=5, show_progress=False)


def test_inception_audit_flags_copied_training_images(with_standins, tmp_path):
    from ssd_lib.analysis.memorization import inception_audit
    from ssd_lib.data.cache import ImageSplit, PreparedDataset

    g = torch.Generator().manual_seed(1)
    rand = lambda n: torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)  # noqa: E731
    ds = SimpleNamespace(train=ImageSplit(rand(20)), val=ImageSplit(rand(100)))
    assert not isinstance(ds, PreparedDataset)  # the audit needs only the two splits
    generated = torch.cat([ds.train.images[[3, 7, 11]], rand(3)])
    result = inception_audit(generated, ds, tmp_path / "audit")
    assert result.generated_index[:3].tolist() == [3, 7, 11]
    assert np.allclose(result.generated_to_train[:3], 0.0, atol=1e-3)
    assert result.suspicious_fraction == pytest.approx(0.5)
    assert "UNVERIFIED" in result.feature_network


def test_a_prepared_datasets_audit_reads_cached_real_features_and_is_stored_once(
    with_standins, tmp_path, monkeypatch
):
    from ssd_lib.analysis import memorization
    from ssd_lib.data.cache import ImageSplit, load_prepared, write_prepared
    from ssd_lib.metrics import stored

    g = torch.Generator().manual_seed(2)
    rand = lambda n: torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)  # noqa: E731
    splits = {"train": ImageSplit(rand(20)), "val": ImageSplit(rand(100))}
    write_prepared("audit", splits, {"kind": "test"}, root=tmp_path / "data")
    ds = load_prepared("audit", tmp_path / "data")
    generated = torch.cat([ds.train.images[[1, 2]], rand(2)])
    first = memorization.inception_audit(generated, ds, tmp_path / "a1")
    assert first.generated_index[:2].tolist() == [1, 2]
    assert len(list((ds.path / "stats").glob("*.safetensors"))) == 2  # train and val cached
    calls = []
    from ssd_lib.metrics import inception

    original = inception.extract_features
    monkeypatch.setattr(
        inception,
        "extract_features",
        lambda files, *a, **k: calls.append(len(files)) or original(files, *a, **k),
    )
    # The floor (held-out against train) reads the same cached features: no Inception.
    from ssd_lib.metrics.inception_stats import real_floor

    floor = real_floor(ds, show_progress=False, min_samples=10)
    assert calls == [] and (floor.n_real, floor.n_fake) == (20, 100) and floor.value > 0

    class Published:  # a published run as metrics.stored sees one
        key, entry, path, work_dir = "audit-seed0", {}, tmp_path / "run", tmp_path / "work"

        def weights_id(self):
            return "audit-seed0/generator.safetensors@0123"

    monkeypatch.setattr(stored, "default_folder", lambda: tmp_path / "committed")
    calls.clear()
    once = memorization.remembered_inception_audit(Published(), generated, ds, sample_seed=0)
    again = memorization.remembered_inception_audit(Published(), generated, ds, sample_seed=0)
    # The first call ran Inception on the 4 generated images only (the real ones come from
    # the cache), the second read the stored audit.
    assert calls == [4]
    assert again.summary() == pytest.approx(once.summary())
    np.testing.assert_array_equal(again.generated_index, once.generated_index)


def test_weights_paths_under_home_are_shown_with_a_tilde(monkeypatch, tmp_path):
    from ssd_lib.metrics.weights import shown_path

    monkeypatch.setenv("HOME", str(tmp_path))
    assert shown_path(tmp_path / ".cache" / "w.pth") == "~/.cache/w.pth"
    assert shown_path(Path("/elsewhere/w.pth")) == "/elsewhere/w.pth"


def _cache_with_entry(tmp_path):
    cache = FeatureCache(tmp_path / "stats")
    feats = np.arange(12.0).reshape(3, 4)
    cache.put("pytorch-fid-abc", feats, {"n": 3})
    return cache, cache.folder / "pytorch-fid-abc.safetensors", feats


def test_feature_cache_round_trips_and_records_the_file_hash(tmp_path):
    cache, path, feats = _cache_with_entry(tmp_path)
    np.testing.assert_array_equal(cache.get("pytorch-fid-abc"), feats)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["features_sha256"] == sha256_file(path) and sidecar["n"] == 3
    assert cache.get("pytorch-fid-other") is None


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "garbage, no sidecar hash"])
def test_damaged_feature_file_is_reported_and_treated_as_missing(tmp_path, caplog, damage):
    cache, path, _ = _cache_with_entry(tmp_path)
    data = path.read_bytes()
    if damage == "flipped byte":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # a sidecar from before hashes were recorded: only the read can tell
        sidecar = path.with_suffix(".json")
        sidecar.write_text(json.dumps({"n": 3}))
        path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with caplog.at_level(logging.WARNING, logger="ssd_lib.metrics.inception"):
        assert cache.get("pytorch-fid-abc") is None  # never a raw SafetensorError
    (message,) = [r.getMessage() for r in caplog.records]
    assert str(path) in message and "computing them again" in message
    if damage != "garbage, no sidecar hash":
        assert sha256_file(path) in message


def test_damaged_cached_features_are_computed_again_and_replaced(tmp_path, monkeypatch):
    status = SimpleNamespace(sha256="w" * 64)
    files = [tmp_path / f"{i}.png" for i in range(3)]
    computed = []

    def fake_extract(files, library, *args):
        computed.append(library)
        return np.full((len(files), 4), float(len(computed))), status

    monkeypatch.setattr(inception, "extract_features", fake_extract)
    cache = FeatureCache(tmp_path / "stats")
    identity = {"split": "train"}
    first, _, hit = cached_features(files, PYTORCH_FID, cache, identity, status=status)
    assert not hit and computed == [PYTORCH_FID]
    (path,) = cache.folder.glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:20])
    again, _, hit = cached_features(files, PYTORCH_FID, cache, identity, status=status)
    assert not hit and len(computed) == 2 and again[0, 0] == 2.0
    third, _, hit = cached_features(files, PYTORCH_FID, cache, identity, status=status)
    assert hit and third[0, 0] == 2.0 and len(computed) == 2


def test_interrupted_export_leaves_no_folder_is_complete_accepts(tmp_path, monkeypatch):
    images = torch.zeros(5, 3, 8, 8, dtype=torch.uint8)
    target = tmp_path / "reals"
    written = []
    save = Image.Image.save

    def crash_on_third(self, fp, *args, **kwargs):
        written.append(fp)
        if len(written) == 3:
            raise KeyboardInterrupt("power cut")
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        export_split(images, target, show_progress=False)
    assert not target.exists() and not is_complete(target, 5)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_interrupted_rewrite_keeps_the_old_folder_whole(tmp_path, monkeypatch):
    target = tmp_path / "gen"
    old = write_image_folder(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), target, False)
    before = {p.name: p.read_bytes() for p in old.iterdir()}

    def crash(*args):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(export, "_write_pngs", crash)
    with pytest.raises(KeyboardInterrupt):
        write_image_folder(torch.ones(6, 3, 8, 8, dtype=torch.uint8), target, False)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert is_complete(target, 4) and not is_complete(target, 6)


def test_crash_between_the_renames_leaves_no_folder_rather_than_a_mix(tmp_path, monkeypatch):
    target = tmp_path / "gen"
    write_image_folder(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), target, False)
    rename = Path.rename

    def crash_on_new(self, dest):
        if Path(dest) == target:
            raise KeyboardInterrupt("power cut")
        return rename(self, dest)

    monkeypatch.setattr(Path, "rename", crash_on_new)
    with pytest.raises(KeyboardInterrupt):
        write_image_folder(torch.ones(6, 3, 8, 8, dtype=torch.uint8), target, False)
    assert not target.exists() and not is_complete(target, 4) and not is_complete(target, 6)


def test_is_complete_refuses_a_marker_without_all_its_images(tmp_path):
    folder = write_image_folder(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), tmp_path / "x", False)
    assert is_complete(folder, 4) and not is_complete(folder, 5)
    (folder / "000002.png").unlink()  # e.g. a half-deleted folder from an older version
    assert not is_complete(folder, 4)
    (folder / "000002.png").write_bytes(b"")
    (folder / "000009.png").write_bytes(b"")
    assert not is_complete(folder, 4)  # a stray extra image is not this export either
