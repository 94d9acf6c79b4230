"""Every numbered notebook runs under the smoke profile, publishes what it says, and keeps
the outputs nbval checks (cells marked NBVAL_CHECK_OUTPUT)."""

from __future__ import annotations

import json
import subprocess
import sys

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


def test_check_parameters_names_the_parameter():
    with pytest.raises(NotebookParameterError, match=r"seed='1'.*an integer >= 0"):
        check_parameters("embedded", "quick", "1", "cpu", "/tmp")
    with pytest.raises(NotebookParameterError, match=r"device='gpu'"):
        check_parameters("embedded", "quick", 0, "gpu", "/tmp")
