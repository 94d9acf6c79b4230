"""Every numbered notebook runs under the smoke profile, publishes what it says, and keeps
the outputs nbval checks (cells marked NBVAL_CHECK_OUTPUT)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ssd_lib.notebooks import (
    NotebookParameterError,
    check_parameters,
    list_notebooks,
    run_notebooks,
)

NOTEBOOKS = [p.name for p in list_notebooks()]


@pytest.fixture(scope="module")
def shared_dirs(tmp_path_factory):
    """One data and runs folder for all notebooks, as for a reader who runs 00 to 05 in
    order: 01 trains the runs, later notebooks reuse them."""
    return tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("runs")


def test_the_numbered_notebooks_exist():
    assert NOTEBOOKS == [
        "00_data.ipynb",
        "01_training.ipynb",
        "02_spectral_norm.ipynb",
        "03_disentanglement.ipynb",
        "04_fid.ipynb",
        "05_latent_explorer.ipynb",
    ]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_under_smoke_publishes_and_passes_nbval(
    name, tmp_path, shared_dirs, monkeypatch
):
    monkeypatch.setenv("SSD_DATA_DIR", str(shared_dirs[0]))
    monkeypatch.setenv("SSD_RUNS_DIR", str(shared_dirs[1]))
    out = tmp_path / "figures"
    (executed,) = run_notebooks(
        {"profile": "smoke", "device": "cpu", "out_dir": str(out)},
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
        if name != "00_data.ipynb":  # made from trained runs: which, and their content hash
            for key, file in entry["checkpoint_files"].items():
                run = entry["checkpoints"][key].split("@")[0]
                assert (shared_dirs[1] / run / "checkpoints" / file).is_file(), file
    # nbval re-executes the notebook and compares the outputs that must not change.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-q",
            "-p",
            "no:cacheprovider",
            str(executed),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path / "nb",
    )
    assert result.returncode == 0, result.stdout[-3000:]


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
    with pytest.raises(NotebookParameterError, match=r"seed='1'.*an integer >= 0"):
        check_parameters("embedded", "quick", "1", "cpu", "/tmp")
    with pytest.raises(NotebookParameterError, match=r"device='gpu'"):
        check_parameters("embedded", "quick", 0, "gpu", "/tmp")


def test_every_notebook_runs_on_a_folder_of_photos_without_labels(tmp_path, monkeypatch):
    """A researcher's own folder: no factor labels, no val split, no Inception weights.
    The label-dependent cells must say why they are skipped instead of failing."""
    from PIL import Image

    photos = tmp_path / "my_dogs"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        pixels = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"dog_{i:02d}.jpg")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    out = tmp_path / "figures"
    executed = run_notebooks(
        {"dataset": str(photos), "profile": "smoke", "device": "cpu", "out_dir": str(out)},
        output_dir=tmp_path / "nb",
        progress=False,
    )
    assert [p.name for p in executed] == NOTEBOOKS
    files = json.loads((out / "MANIFEST.json").read_text())["files"]
    (name,) = {e["dataset"] for e in files.values()}
    assert name.startswith("folder-my_dogs-")
    assert "fig1_ssd_samples.png" in files and "table1_paper.md" in files
    assert "fig7_ear_preserving_interpolation.png" not in files  # needs labels
    text = (tmp_path / "nb" / "03_disentanglement.ipynb").read_text()
    assert "Probes need factor labels (the embedded dataset)." in text


GOOD = {"dataset": "embedded", "profile": "quick", "seed": 0, "device": "cpu", "out_dir": "/tmp"}


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("dataset", 3, r"parameter dataset=3 \(type int\) is invalid; allowed: a str"),
        ("dataset", "", r"parameter dataset='' \(type str\) is invalid"),
        ("profile", ["quick"], r"parameter profile=\['quick'\] \(type list\) .* a str, one of"),
        ("profile", "huge", r"parameter profile='huge' \(type str\) .* one of \['paper'"),
        ("seed", 1.5, r"parameter seed=1.5 \(type float\) .* an integer >= 0"),
        ("seed", True, r"parameter seed=True \(type bool\) .* an integer >= 0"),
        ("seed", -1, r"parameter seed=-1 \(type int\) .* an integer >= 0"),
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
