"""Published runs: packed weights, hash-checked loading, refusals, the command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_dataset

from ssd_lib.experiments import published as pub
from ssd_lib.experiments.published import Planned, PublishedRunError
from ssd_lib.experiments.suite import train_suite
from ssd_lib.generation.sampling import generate, sample_z

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """A complete smoke-profile SSD run (with its sample grid) and a root to publish into."""
    base = tmp_path_factory.mktemp("published")
    ds = make_tiny_dataset(base)
    runs = train_suite(ds, "smoke", "cpu", ["ssd"], base / "runs", False)
    return runs["ssd"], base


@pytest.fixture
def published_root(smoke_runs, tmp_path):
    run, _ = smoke_runs
    root = tmp_path / "published"
    pub.publish_run(run, Planned("ssd", 42, discriminator=True, grids=True), root)
    return root


def test_fp16_and_int8_packing_round_trip_within_their_precision():
    g = torch.Generator().manual_seed(0)
    state = {
        "conv.weight": torch.randn(8, 4, 3, 3, generator=g) * 0.05,
        "bn.running_var": torch.rand(8, generator=g) + 0.5,
        "bn.num_batches_tracked": torch.tensor(7),
    }
    for weights, tol in (("fp16", 1e-3), ("int8", 0.05 / 127)):
        packed = pub.pack_state(state, weights)
        back = pub.unpack_state(packed)
        assert set(back) == set(state)
        assert back["bn.num_batches_tracked"].dtype == torch.int64
        assert int(back["bn.num_batches_tracked"]) == 7
        err = (back["conv.weight"] - state["conv.weight"]).abs().max()
        assert 0 < err <= tol * 1.01 * state["conv.weight"].abs().max() / 0.05
        assert back["conv.weight"].dtype == torch.float32
    assert pub.pack_state(state, "int8")["conv.weight.int8"].dtype == torch.int8
    with pytest.raises(ValueError, match="weights='int4' is unknown"):
        pub.pack_state(state, "int4")


def test_a_published_run_draws_what_its_checkpoint_draws(smoke_runs, published_root):
    run, _ = smoke_runs
    loaded = pub.load_published("ssd", 42, published_root)
    assert loaded.config == run.config
    assert loaded.status["step"] == run.status["step"]
    assert list(loaded.history()) == list(run.history())
    z = sample_z(16, 100, 0)
    a = generate(run.load_generator(), z, run.config.real_range).int()
    b = generate(loaded.load_generator(), z, run.config.real_range).int()
    entry = pub.read_manifest(published_root)["runs"]["ssd-seed42"]
    measured = entry["weight_change"]
    # int8 weights move a pixel by at most a few of 255 levels; the manifest says how much.
    assert (a - b).abs().max() <= max(3, measured["max_abs_pixel_levels"])
    assert measured["n_samples"] == 256
    # The exact-SVD check of SN reads the published discriminator.
    published_d = loaded.load_discriminator().state_dict()
    for name, t in run.load_discriminator().state_dict().items():
        if t.is_floating_point():
            torch.testing.assert_close(published_d[name], t, atol=2e-3, rtol=1e-3)


def test_the_manifest_records_how_the_run_was_made(published_root, smoke_runs):
    run, _ = smoke_runs
    entry = pub.read_manifest(published_root)["runs"]["ssd-seed42"]
    assert entry["source_run"] == run.path.name
    assert entry["train_seed"] == 42 and entry["weights"] == "int8"
    assert set(entry["files"]) >= {
        "config.json",
        "status.json",
        "history.csv",
        "generator.safetensors",
        "discriminator.safetensors",
    }
    assert entry["grids"] and all(g.startswith("samples/") for g in entry["grids"])
    assert entry["machine"]["cpu"] and "flags" in entry["machine"]
    assert len(entry["commit"]) >= 7 and entry["published_at"].startswith("20")
    assert entry["bytes"] == sum(
        (published_root / "ssd-seed42" / f).stat().st_size for f in entry["files"]
    )
    assert pub.check_all(published_root) == []


def test_an_altered_or_missing_file_is_named_with_how_to_restore_it(published_root):
    g = published_root / "ssd-seed42" / "generator.safetensors"
    g.write_bytes(g.read_bytes()[:-1] + b"\x00")
    with pytest.raises(PublishedRunError, match=r"generator\.safetensors does not match") as err:
        pub.load_published("ssd", 42, published_root)
    assert "git checkout" in str(err.value) and "make train ONLY=ssd-seed42" in str(err.value)
    assert len(pub.check_all(published_root)) == 1
    (published_root / "ssd-seed42" / "history.csv").unlink()
    g.unlink()
    with pytest.raises(PublishedRunError, match="is missing"):
        pub.load_published("ssd", 42, published_root)


def test_unknown_runs_and_missing_discriminators_are_refused_with_the_fix(
    smoke_runs, published_root
):
    with pytest.raises(PublishedRunError, match=r"no published run 'no_sn-seed42'.*make train"):
        pub.load_published("no_sn", 42, published_root)
    run, _ = smoke_runs
    pub.publish_run(run, Planned("ssd", 42), published_root, force=True)
    with pytest.raises(PublishedRunError, match="without its discriminator"):
        pub.load_published("ssd", 42, published_root).load_discriminator()
    with pytest.raises(PublishedRunError, match="has no training checkpoint"):
        _ = pub.load_published("ssd", 42, published_root).checkpoint


def test_publishing_refuses_an_incomplete_run_a_wrong_seed_and_a_second_copy(
    smoke_runs, published_root, tmp_path
):
    run, _ = smoke_runs
    with pytest.raises(PublishedRunError, match="already published"):
        pub.publish_run(run, Planned("ssd", 42), published_root)
    with pytest.raises(PublishedRunError, match="trained with seed 42, not 43"):
        pub.publish_run(run, Planned("ssd", 43), published_root)
    status = json.loads((run.path / "status.json").read_text())
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(run.path, copy)
    (copy / "status.json").write_text(json.dumps({**status, "state": "interrupted"}))
    from ssd_lib.training.runs import Run

    with pytest.raises(PublishedRunError, match="is not complete"):
        pub.publish_run(Run(copy), Planned("ssd", 42), tmp_path / "other")


def test_analyses_write_their_caches_outside_the_published_folder(published_root, tmp_path):
    run = pub.PublishedRun(
        published_root / "ssd-seed42",
        pub.read_manifest(published_root)["runs"]["ssd-seed42"],
        runs_root=tmp_path / "runs",
    )
    assert run.work_dir == tmp_path / "runs" / "published" / "ssd-seed42"
    assert "seed=42" in run.label() and "published/ssd-seed42" in run.label()
    assert run.weights_id().startswith("ssd-seed42/generator.safetensors@")


def test_seeds_of_a_run_are_found_together(smoke_runs, tmp_path):
    run, base = smoke_runs
    ds = make_tiny_dataset(base / "again")
    other = train_suite(ds, "smoke", "cpu", ["ssd"], base / "runs43", False, train_seed=43)["ssd"]
    root = tmp_path / "p"
    pub.publish_run(run, Planned("ssd", 42), root)
    pub.publish_run(other, Planned("ssd", 43, weights="int8"), root)
    seeds = pub.published_seeds("ssd", root)
    assert list(seeds) == [42, 43]
    assert seeds[43].entry["weights"] == "int8"
    assert seeds[43].config.seed == 43


def test_check_command_reports_problems_with_exit_1(published_root, monkeypatch, capsys):
    monkeypatch.setenv("SSD_PUBLISHED_DIR", str(published_root))
    assert pub.main(["check"]) == 0
    (published_root / "stray").mkdir()
    assert pub.main(["check"]) == 1
    assert "stray is not in" in capsys.readouterr().out
    assert pub.main(["list"]) == 0


def test_a_snapshot_taken_during_training_is_published_with_both_networks(smoke_runs, tmp_path):
    run, _ = smoke_runs
    root = tmp_path / "p"
    path = pub.publish_snapshot(run.path, "ssd-seed42", root)
    step = run.status["step"]
    assert path.name == f"ssd-seed42-step{step}"
    snap = pub.load_key(path.name, root)
    assert snap.status["state"] == "snapshot" and snap.status["step"] == step
    assert len(snap.history()["step"]) == step
    assert snap.load_discriminator() is not None and snap.load_generator() is not None
    assert pub.published_seeds("ssd", root) == {}  # a snapshot is not a finished seed
    with pytest.raises(PublishedRunError, match="already published"):
        pub.publish_snapshot(run.path, "ssd-seed42", root)


def test_notebooks_read_published_runs_only_for_the_data_they_were_trained_on(
    smoke_runs, published_root, monkeypatch, tmp_path
):
    from ssd_lib.data.cache import load_prepared
    from ssd_lib.experiments.suite import suite_runs

    run, base = smoke_runs
    monkeypatch.setenv("SSD_PUBLISHED_DIR", str(published_root))
    ds = load_prepared("tiny", root=base / "data")
    runs = suite_runs(ds, "published", "smoke", "cpu", names=["ssd"])
    assert isinstance(runs["ssd"], pub.PublishedRun)
    assert runs["ssd"].config == run.config
    with pytest.raises(PublishedRunError, match="use runs='local'"):
        suite_runs(make_photos_dataset(tmp_path), "published", "smoke", names=["ssd"])
    with pytest.raises(ValueError, match="runs='cloud' is unknown"):
        suite_runs(ds, "cloud", "smoke")


def make_photos_dataset(tmp_path):
    """A prepared dataset with another name and other content than the published run's."""
    from ssd_lib.data.cache import ImageSplit, load_prepared, write_prepared

    g = torch.Generator().manual_seed(1)
    split = ImageSplit(torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, generator=g))
    write_prepared("photos", {"train": split, "val": split}, {"kind": "test"}, tmp_path / "d")
    return load_prepared("photos", root=tmp_path / "d")


def test_the_committed_published_runs_match_their_manifest():
    assert pub.check_all() == []
    manifest = pub.read_manifest()["runs"]
    assert "ssd-seed42" in manifest
    run = pub.load_published("ssd", 42)
    assert run.status["step"] == 2980 and run.config.epochs == 20
    assert run.entry["weight_change"]["mean_abs_pixel_levels"] < 1.0  # invisible
    assert pub.folder_size() < 80e6


def test_the_committed_subset_runs_load_for_the_embedded_data():
    """Table 2's runs trained on the first 25/50/75 % of the embedded images: their recorded
    hash is the subset's, which suite_runs must recompute (not compare with the full split)."""
    from ssd_lib.data import prepare_dataset
    from ssd_lib.experiments.suite import suite_runs

    ds = prepare_dataset("embedded")
    runs = suite_runs(ds, "published", "paper", names=["ssd_25", "ssd_50", "ssd_75", "ssd"])
    assert [r.config.data_fraction for r in runs.values()] == [0.25, 0.5, 0.75, 1.0]
    assert len({r.entry["train_split_hash"] for r in runs.values()}) == 4


def test_a_published_run_is_refused_for_other_images_and_says_what_differs():
    from ssd_lib.data import prepare_dataset
    from ssd_lib.experiments.published import (
        check_trained_on,
        load_published,
        trained_on_other_images,
    )

    ds = prepare_dataset("embedded")
    run = load_published("ssd_50", 42)
    # Trained on this machine's render or on another CPU's (the fingerprint then decides).
    assert trained_on_other_images(run, ds) == ""
    run.entry = dict(run.entry, train_split_hash="0" * 64)
    fp = dict(run.entry["train_split_fingerprint"])
    run.entry["train_split_fingerprint"] = dict(
        fp, projections=[p + 10_000 for p in fp["projections"]]
    )
    with pytest.raises(PublishedRunError, match=r"pixel sums differ by.*run_source='local'") as err:
        check_trained_on(run, ds)
    # 10,000 plus this CPU's rounding of the render, which the fingerprint tolerates
    m = re.search(r"differ by (\d+) \(rounding allows (\d+)\)", str(err.value))
    assert m and abs(int(m[1]) - 10_000) <= int(m[2]), str(err.value)
    run.entry["train_split_fingerprint"] = None
    assert "training images' hash 000000000000" in trained_on_other_images(run, ds)


def test_add_fingerprints_fills_what_is_missing_preparing_each_dataset_once(
    published_root, tmp_path, monkeypatch
):
    import shutil

    import ssd_lib.data
    from ssd_lib.utils.atomic import atomic_write_json

    ds = make_tiny_dataset(tmp_path)
    manifest = pub.read_manifest(published_root)
    entry = manifest["runs"]["ssd-seed42"]
    expected = entry.pop("train_split_fingerprint")
    shutil.copytree(published_root / "ssd-seed42", published_root / "ssd-seed43")
    manifest["runs"]["ssd-seed43"] = json.loads(json.dumps(entry))  # a second entry, same data
    atomic_write_json(published_root / pub.MANIFEST, manifest)
    prepared = []
    monkeypatch.setattr(ssd_lib.data, "prepare_dataset", lambda name: prepared.append(name) or ds)
    assert pub.add_fingerprints(published_root) == ["ssd-seed42", "ssd-seed43"]
    assert prepared == ["tiny"]
    after = pub.read_manifest(published_root)["runs"]
    assert after["ssd-seed42"]["train_split_fingerprint"] == expected
    # on this machine the images are the very ones the run was trained on
    assert (
        after["ssd-seed43"]["fingerprint_added"]["content_hash_here"] == entry["train_split_hash"]
    )
    assert pub.add_fingerprints(published_root) == []  # nothing left to fill


def test_runs_published_elsewhere_are_brought_with_their_measurements_only(
    published_root, tmp_path, monkeypatch, capsys
):
    import shutil

    from ssd_lib.metrics.stored import MeasurementStore

    theirs = published_root  # a worktree that trained two runs while this one was busy
    entry = pub.read_manifest(theirs)["runs"]["ssd-seed42"]
    shutil.copytree(theirs / "ssd-seed42", theirs / "ssd-seed43")
    manifest = pub.read_manifest(theirs)
    manifest["runs"]["ssd-seed43"] = entry
    (theirs / "MANIFEST.json").write_text(json.dumps(manifest))
    weights = pub.load_key("ssd-seed42", theirs).weights_id()
    MeasurementStore("toy", theirs / "measurements").merge(
        {
            "a": {"run": "ssd-seed42", "weights": weights, "FD-toy": 1.0},
            "old": {"run": "ssd-seed42", "weights": "ssd-seed42/generator.safetensors@0"},
            "b": {"run": "ssd_25-seed42", "weights": "ssd_25-seed42/x"},  # not brought
        }
    )
    mine = tmp_path / "mine"
    MeasurementStore("toy", mine / "measurements").merge({"c": {"run": "dcgan-seed42"}})
    assert pub.bring(["ssd-seed42", "ssd-seed43"], theirs, mine) == ["ssd-seed42", "ssd-seed43"]
    assert pub.check_all(mine) == []
    assert pub.read_manifest(mine)["runs"] == {"ssd-seed42": entry, "ssd-seed43": entry}
    # only the records of the brought weights (ssd-seed43's weights id differs by its folder)
    assert set(MeasurementStore("toy", mine / "measurements").records()) == {"a", "c"}
    assert torch.equal(
        pub.load_key("ssd-seed42", mine).load_generator().const,
        pub.load_key("ssd-seed42", theirs).load_generator().const,
    )
    assert pub.bring(["ssd-seed42"], theirs, mine) == ["ssd-seed42"]  # the same entry: fine
    before = sorted(p.name for p in mine.iterdir())

    # Altered on disk there: refused before anything is staged or copied here.
    (theirs / "ssd-seed42" / "history.csv").write_text("step\n1\n")
    with pytest.raises(PublishedRunError, match=r"history.csv does not match its SHA-256"):
        pub.bring(["ssd-seed42"], theirs, mine)
    assert sorted(p.name for p in mine.iterdir()) == before and pub.check_all(mine) == []
    # Another entry under a key already here: refused unless forced.
    other = pub.read_manifest(theirs)
    other["runs"]["ssd-seed43"] = dict(entry, title="retrained")
    (theirs / "MANIFEST.json").write_text(json.dumps(other))
    with pytest.raises(PublishedRunError, match=r"\['ssd-seed43'\] already published .*--force"):
        pub.bring(["ssd-seed43"], theirs, mine)
    assert pub.read_manifest(mine)["runs"]["ssd-seed43"] == entry
    pub.bring(["ssd-seed43"], theirs, mine, force=True)
    assert pub.read_manifest(mine)["runs"]["ssd-seed43"]["title"] == "retrained"
    # A file that changes between its check and its copy: the staged copy fails its own check
    # and nothing of the run is left behind.
    real_copy = shutil.copyfile

    def corrupting(src, dst, *args, **kwargs):
        out = real_copy(src, dst, *args, **kwargs)
        if str(dst).endswith("config.json"):
            Path(dst).write_text("{}")
        return out

    monkeypatch.setattr(shutil, "copyfile", corrupting)
    with pytest.raises(PublishedRunError, match=r"\.staging-ssd-seed43/config.json does not"):
        pub.bring(["ssd-seed43"], theirs, mine, force=True)
    monkeypatch.undo()
    assert sorted(p.name for p in mine.iterdir()) == before and pub.check_all(mine) == []

    with pytest.raises(PublishedRunError, match=r"not published in .*\['nope'\].*'ssd-seed42'"):
        pub.bring(["nope"], theirs, mine)
    monkeypatch.setenv("SSD_PUBLISHED_DIR", str(mine))
    assert pub.main(["bring", "nope", "--from", str(theirs)]) == 1
    assert "not published in" in capsys.readouterr().err
    assert pub.main(["bring", "ssd-seed43", "--from", str(theirs)]) == 0
    assert "brought ssd-seed43" in capsys.readouterr().out
