"""Every numbered notebook runs under the smoke profile on runs it trains itself and publishes
what it says, on a researcher's own image folder: no factor labels, no val split, no Inception
weights, so the cells that need labels must say why they are skipped instead of failing. The
notebooks whose cells measure with the embedded data's labels (00's factor figures, 03's probes,
fig. 7 and PPL, 04's toy columns and audit, 07's toy columns and verdicts) also run on the
embedded data, on runs trained here: the re-executions from the published runs in
tests/test_notebooks_published.py read most of those numbers back from published/measurements
instead of computing them. That module also checks once per notebook that the committed outputs
come back (nbval, cells marked NBVAL_CHECK_OUTPUT): a second nbval execution here would double
the cost of this module and check only that a smoke run repeats itself."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ssd_lib.reporting.notebooks import (
    NotebookParameterError,
    check_parameters,
    list_notebooks,
    run_notebooks,
)

# `make test-fast` leaves this module out: it executes every notebook with papermill and nbval.
pytestmark = pytest.mark.slow

NOTEBOOKS = [p.name for p in list_notebooks()]


@pytest.fixture(scope="module")
def shared_dirs(tmp_path_factory):
    """One data and runs folder for all notebooks, as for a reader who runs 00 to 07 in
    order: 01 trains the runs, later notebooks reuse them."""
    return tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A researcher's own folder: 24 JPEG photos of another size than 64x64, nothing else."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos") / "my_dogs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        pixels = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"dog_{i:02d}.jpg")
    return folder


def test_the_numbered_notebooks_exist():
    assert NOTEBOOKS == [
        "00_data.ipynb",
        "01_training.ipynb",
        "02_spectral_norm.ipynb",
        "03_disentanglement.ipynb",
        "04_fid.ipynb",
        "05_latent_explorer.ipynb",
        "06_claims.ipynb",
        "07_beyond_the_paper.ipynb",
    ]


# What a label-free folder changes, per notebook: a figure or table that must still come out,
# or a cell that must say why it skipped (in its output, not its source).
ON_A_FOLDER = {
    "01_training.ipynb": {"published": ["fig1_ssd_samples.png", "training_health.md"]},
    "03_disentanglement.ipynb": {
        "says": ["Probes need factor labels (the embedded dataset)."],
        "not_published": ["fig7_ear_preserving_interpolation.png"],
    },
    "04_fid.ipynb": {"published": ["table1_paper.md"]},
    "07_beyond_the_paper.ipynb": {"published": ["beyond_samples.png"], "says": ["budgets: 25"]},
}
# What the labels add on the embedded data.
ON_EMBEDDED = {
    "03_disentanglement.ipynb": {"published": ["fig7_ear_preserving_interpolation.png"]},
    "04_fid.ipynb": {"published": ["table1_paper.md", "memorization_audit.md"]},
    "07_beyond_the_paper.ipynb": {
        "published": ["beyond_fd_toy.md", "beyond_kid_toy.md", "beyond_combo_coverage_toy.md"],
        "says": ["options: corrected, lapgan; budgets: 25"],
    },
}
CASES = (
    [(n, "folder") for n in NOTEBOOKS]
    + [("00_data.ipynb", "embedded")]
    + [(n, "embedded") for n in ON_EMBEDDED]
)


def _printed(notebook) -> str:
    """What an executed notebook's cells printed or displayed as text."""
    nb = json.loads(notebook.read_text())
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for kind in ("text/plain", "text/markdown"):
                parts.append("".join(out.get("data", {}).get(kind, "")))
    return "\n".join(parts)


@pytest.mark.parametrize("name, dataset", CASES)
def test_notebook_runs_under_smoke_on_runs_it_trains_and_publishes(
    name, dataset, tmp_path, shared_dirs, photos, monkeypatch
):
    monkeypatch.setenv("SSD_DATA_DIR", str(shared_dirs[0]))
    monkeypatch.setenv("SSD_RUNS_DIR", str(shared_dirs[1]))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    out = tmp_path / "figures"
    params = {
        "dataset": str(photos) if dataset == "folder" else dataset,
        "profile": "smoke",
        "device": "cpu",
        "out_dir": str(out),
        "run_source": "local",
    }
    if name == "07_beyond_the_paper.ipynb":  # every option, one budget: 7 runs, not 21
        params["budgets"] = "25"
        if dataset == "embedded":  # the label-dependent measures are the same for each option
            params["options"] = "lapgan"
    (executed,) = run_notebooks(
        params,
        names=[name],
        output_dir=tmp_path / "nb",
        progress=False,
    )
    files = json.loads((out / "MANIFEST.json").read_text())["files"]
    assert files, f"{name} published nothing"
    for fname, entry in files.items():
        assert (out / fname).is_file(), fname
        assert entry["notebook"] == name and entry["parameters"]["profile"] == "smoke"
        assert entry["dataset"] and entry["dataset_hash"]
        if dataset == "folder":
            assert entry["dataset"].startswith("folder-my_dogs-"), entry["dataset"]
        if name != "00_data.ipynb":  # made from trained runs: which, and their content hash
            for key, file in entry["checkpoint_files"].items():
                run = entry["checkpoints"][key].split("@")[0]
                assert (shared_dirs[1] / run / "checkpoints" / file).is_file(), file
    expected = (ON_A_FOLDER if dataset == "folder" else ON_EMBEDDED).get(name, {})
    printed = _printed(executed)
    for fname in expected.get("published", []):
        assert fname in files, f"{name} on {dataset} did not publish {fname}"
    for fname in expected.get("not_published", []):
        assert fname not in files, f"{name} published {fname}, which needs factor labels"
    for line in expected.get("says", []):
        assert line in printed, f"{name} on {dataset} does not say {line!r}"
    if name == "07_beyond_the_paper.ipynb" and dataset == "folder":
        assert "options:" not in printed  # every option chosen: nothing narrowed to name
    if name == "07_beyond_the_paper.ipynb" and dataset == "embedded":
        # LAPGAN's row: an FD-toy, its change against the corrected recipe, a verdict
        table = (out / "beyond_fd_toy.md").read_text()
        assert re.search(r"\| LAPGAN[^|]*\| [0-9.]+ \| -?[0-9.]+ \| [a-z ]+ \|", table), table


def test_a_bad_papermill_parameter_fails_in_the_parameters_cell(tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError, match=r"parameter profile='huge'"):
        run_notebooks(
            {"profile": "huge", "out_dir": str(tmp_path)},
            names=["00_data.ipynb"],
            output_dir=tmp_path / "nb",
            progress=False,
        )
    # Only a complete run replaces a notebook; the failed copy, error included, is kept aside.
    assert sorted(p.name for p in (tmp_path / "nb").iterdir()) == [".failed"]
    failed = (tmp_path / "nb" / ".failed" / "00_data.ipynb").read_text()
    assert "NotebookParameterError" in failed


def test_check_parameters_names_the_parameter():
    with pytest.raises(NotebookParameterError, match=r"sample_seed='1'.*an integer >= 0"):
        check_parameters("embedded", "quick", "1", "cpu", "/tmp")
    with pytest.raises(NotebookParameterError, match=r"device='gpu'"):
        check_parameters("embedded", "quick", 0, "gpu", "/tmp")


GOOD = {
    "dataset": "embedded",
    "profile": "quick",
    "sample_seed": 0,
    "device": "cpu",
    "out_dir": "/tmp",
    "run_source": "published",
    "train_seed": 43,
}


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("dataset", 3, r"parameter dataset=3 \(type int\) is invalid; allowed: a str"),
        ("dataset", "", r"parameter dataset='' \(type str\) is invalid"),
        ("profile", ["quick"], r"parameter profile=\['quick'\] \(type list\) .* a str, one of"),
        ("profile", "huge", r"parameter profile='huge' \(type str\) .* one of \['paper'"),
        ("sample_seed", 1.5, r"parameter sample_seed=1.5 \(type float\) .* an integer >= 0"),
        ("sample_seed", True, r"parameter sample_seed=True \(type bool\) .* an integer >= 0"),
        ("sample_seed", -1, r"parameter sample_seed=-1 \(type int\) .* an integer >= 0"),
        ("run_source", "runs", r"parameter run_source='runs' .* one of \['published', 'local'\]"),
        ("train_seed", "42", r"parameter train_seed='42' \(type str\) .* an integer >= 0"),
        ("device", 0, r"parameter device=0 \(type int\) .* a str: 'auto', 'cpu'"),
        ("device", "cudax", r"parameter device='cudax' \(type str\) is invalid"),
        ("out_dir", None, r"parameter out_dir=None \(type NoneType\) .* a non-empty str"),
    ],
)
def test_check_parameters_names_the_parameter_value_and_expected_type(name, value, expected):
    with pytest.raises(NotebookParameterError, match=expected):
        check_parameters(**{**GOOD, name: value})


def test_check_parameters_accepts_the_defaults_and_cuda_devices():
    assert check_parameters(**GOOD) == GOOD
    for device in ("auto", "mps", "cuda", "cuda:1"):
        assert check_parameters(**{**GOOD, "device": device})["device"] == device


def test_papermills_injected_cell_is_folded_into_the_one_parameters_cell():
    import nbformat

    from ssd_lib.reporting.notebooks import merge_parameter_cells

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell('# Parameters\nprofile = "quick"  # the budget\nsample_seed = 0'),
        nbformat.v4.new_code_cell('# Parameters\nprofile = "smoke"\nextra = [1, 2]\n'),
        nbformat.v4.new_code_cell("print(profile)"),
    ]
    nb.cells[1].metadata["tags"] = ["parameters"]
    nb.cells[2].metadata["tags"] = ["injected-parameters"]
    merged = merge_parameter_cells(nb)
    assert [c.cell_type for c in merged.cells] == ["markdown", "code", "code"]
    assert merged.cells[1].source == (
        '# Parameters\nprofile = "smoke"  # the budget\nsample_seed = 0\nextra = [1, 2]'
    )
    assert merged.cells[2].source == "print(profile)"


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_have_one_parameters_cell_and_only_live_widget_state(name):
    """A reader who edits the parameters and runs all gets those values (no second, injected
    cell); GitHub refuses a notebook whose widget metadata lacks its state; progress bars are
    text (their final state), never a widget frozen at "0%"."""
    nb = json.loads((list_notebooks()[0].parent / name).read_text())
    tags = [t for c in nb["cells"] for t in c["metadata"].get("tags", [])]
    assert tags.count("parameters") == 1 and "injected-parameters" not in tags
    views = {
        o["data"][WIDGET_VIEW]["model_id"]
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if WIDGET_VIEW in o.get("data", {})
    }
    widgets = nb["metadata"].get("widgets")
    if not views:
        assert widgets is None, f"{name} stores widget state that no output uses"
        return
    state = widgets[WIDGET_STATE]
    assert {"state", "version_major", "version_minor"} <= set(state)
    assert views <= set(state["state"]), "an output shows a widget the state lacks"
    models = {m["model_name"] for m in state["state"].values()}
    assert "FloatProgressModel" not in models, "a tqdm widget bar is stored"
