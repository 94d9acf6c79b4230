"""The committed notebooks re-executed from the published runs. Apart from
tests/test_notebooks.py (the smoke runs share one data and runs folder, in order) so that
``make test``'s two workers can run these beside those."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ssd_lib.reporting.notebooks import list_notebooks

# `make test-fast` leaves this module out: it executes every notebook.
pytestmark = pytest.mark.slow

NOTEBOOKS = [p.name for p in list_notebooks()]


def _committed_source(name: str) -> str:
    nb = json.loads((list_notebooks()[0].parent / name).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    return "".join(cell["source"])


# Every notebook that reads published runs is re-executed here. 03, 04 and 06 measure most of
# what they show once per published run and read it back from published/measurements
# (ssd_lib.metrics.stored), so each takes well under a minute on a 2-core CPU.
PUBLISHED_NOTEBOOKS = [n for n in NOTEBOOKS if 'run_source = "published"' in _committed_source(n)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One prepared-data folder for the re-executions of a worker, as for a reader who runs the
    notebooks in turn: the embedded data is rendered once, not once per notebook (preparing it
    is locked, so two processes would not clash either). So only the first notebook starts
    from an empty folder (01 under ``make test``'s ``--dist loadfile``); the caches the later
    ones find (rendered data, the factor net's features) are those a reader's first notebook
    leaves."""
    return tmp_path_factory.mktemp("data")


@pytest.mark.slow
@pytest.mark.parametrize("name", PUBLISHED_NOTEBOOKS)
def test_a_committed_notebook_reproduces_its_outputs_from_the_published_runs(
    name, tmp_path, data_dir, monkeypatch
):
    """The committed notebook, executed again from the published runs, prints what it
    committed in every NBVAL_CHECK_OUTPUT cell (numbers rounded so that another CPU kind
    prints the same text). Only the output folder moves, to keep figures/ untouched."""
    nb = json.loads((list_notebooks()[0].parent / name).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    source = "".join(cell["source"])
    assert 'out_dir = "../figures"' in source
    cell["source"] = source.replace('out_dir = "../figures"', f'out_dir = "{tmp_path / "fig"}"')
    # The committed output of the listing cell names files in ../figures: the same names.
    copy = tmp_path / name
    copy.write_text(json.dumps(nb))
    monkeypatch.setenv("SSD_RUNS_DIR", str(tmp_path / "runs"))  # caches of published runs
    monkeypatch.setenv("SSD_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SSD_PROGRESS", "text")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", str(copy)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:]
