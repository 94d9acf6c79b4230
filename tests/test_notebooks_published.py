"""The notebooks on a researcher's own image folder, and the committed notebooks re-executed
from the published runs. Apart from tests/test_notebooks.py (the smoke runs share one data and
runs folder, in order) so that ``make test``'s two workers can run these beside those."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ssd_lib.reporting.notebooks import list_notebooks, run_notebooks

# `make test-fast` leaves this module out: it executes every notebook.
pytestmark = pytest.mark.slow

NOTEBOOKS = [p.name for p in list_notebooks()]


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
    params = {
        "dataset": str(photos),
        "profile": "smoke",
        "device": "cpu",
        "out_dir": str(out),
        "run_source": "local",
    }
    beyond = "07_beyond_the_paper.ipynb"
    first = [n for n in NOTEBOOKS if n != beyond]
    executed = run_notebooks(params, first, output_dir=tmp_path / "nb", progress=False)
    # 07 on two of its 21 runs (LAPGAN brings its baseline); 07's smoke test takes every option
    executed += run_notebooks(
        params | {"options": "lapgan", "budgets": "25"},
        [beyond],
        output_dir=tmp_path / "nb",
        progress=False,
    )
    assert sorted(p.name for p in executed) == NOTEBOOKS
    files = json.loads((out / "MANIFEST.json").read_text())["files"]
    (name,) = {e["dataset"] for e in files.values()}
    assert name.startswith("folder-my_dogs-")
    assert "fig1_ssd_samples.png" in files and "table1_paper.md" in files
    assert "fig7_ear_preserving_interpolation.png" not in files  # needs labels
    text = (tmp_path / "nb" / "03_disentanglement.ipynb").read_text()
    assert "Probes need factor labels (the embedded dataset)." in text
    assert "beyond_samples.png" in files
    text = (tmp_path / "nb" / "07_beyond_the_paper.ipynb").read_text()
    assert "options: corrected, lapgan; budgets: 25" in text


def _committed_source(name: str) -> str:
    nb = json.loads((list_notebooks()[0].parent / name).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    return "".join(cell["source"])


# Every notebook that reads published runs is re-executed here. 03, 04 and 06 measure most of
# what they show once per published run and read it back from published/measurements
# (ssd_lib.metrics.stored), so each takes well under a minute on a 2-core CPU.
PUBLISHED_NOTEBOOKS = [n for n in NOTEBOOKS if 'run_source = "published"' in _committed_source(n)]


@pytest.mark.slow
@pytest.mark.parametrize("name", PUBLISHED_NOTEBOOKS)
def test_a_committed_notebook_reproduces_its_outputs_from_the_published_runs(
    name, tmp_path, monkeypatch
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
    monkeypatch.setenv("SSD_PROGRESS", "text")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", str(copy)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:]
