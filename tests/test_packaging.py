"""pyproject.toml and environment.yml list the same dependencies; the entry points exist."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib
from conftest import project_module_names

ROOT = Path(__file__).resolve().parents[1]
# The library core: what a training job imports (not the CLI, the lessons' builder or bench).
CORE = (
    "config",
    "training",
    "generation",
    "metrics",
    "analysis",
    "models",
    "data",
    "experiments",
    "reporting",
    "utils",
)


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_dependencies_and_the_torch_version_are_written_once():
    """environment.yml and the Makefile install the project's extras; neither lists a
    dependency of its own, so the versions (torch's above all) live only in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    names |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    assert "torch" in names
    yml = (ROOT / "environment.yml").read_text()
    lines = yml.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    pip_items = [line.strip()[2:] for line in lines[start + 1 :] if line.strip().startswith("- ")]
    assert pip_items == ["-e .[notebooks,dev,app]"], pip_items
    assert "python=3.11" in yml
    makefile = (ROOT / "Makefile").read_text()
    assert '-e ".[notebooks,dev,app]"' in makefile
    for text, where in ((yml, "environment.yml"), (makefile, "Makefile")):
        assert not re.search(r"\btorch(vision)?[=<>]", text), f"{where} pins torch itself"


@pytest.mark.slow  # imports every module in a fresh interpreter
def test_the_core_installs_without_jupyter():
    """Jupyter, widgets and papermill are the `notebooks` extra; the library core (training,
    generation, metrics, analysis, experiments, reporting) imports with them absent."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    front_end = {"jupyterlab", "ipywidgets", "papermill", "nbval", "voila", "notebook"}
    assert not core & front_end, core & front_end
    blocker = textwrap.dedent(
        """
        import importlib.abc, sys
        BLOCKED = ("ipywidgets", "papermill", "nbformat", "nbval", "jupyterlab", "IPython",
                   "ipykernel", "voila")
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is blocked: the core must not need it")
        sys.meta_path.insert(0, Block())
        import importlib
        for name in sys.argv[1:]:
            importlib.import_module(name)
        print("ok")
        """
    )
    modules = project_module_names(CORE)
    assert {"ssd_lib.config", "ssd_lib.training.trainer", "ssd_lib.reporting.plots"} <= set(modules)
    out = subprocess.run(
        [sys.executable, "-c", blocker, *modules],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_makefile_has_the_documented_targets_and_ci_calls_make_test():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("figures", "test", "lab", "bench", "app", "browser", "lesson"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_low_disk_message_names_the_free_space_the_folder_and_the_fix(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from conftest import MIN_FREE_DISK_GB, low_disk_message

    usage = namedtuple("usage", "total used free")
    gb = 2**30
    monkeypatch.setattr(shutil, "disk_usage", lambda where: usage(100 * gb, 98 * gb, 2 * gb))
    message = low_disk_message(tmp_path)
    assert f"only 2.0 GB free under {tmp_path}" in message
    assert f"{MIN_FREE_DISK_GB} GB" in message and "--basetemp" in message
    free = (MIN_FREE_DISK_GB + 1) * gb
    monkeypatch.setattr(shutil, "disk_usage", lambda where: usage(100 * gb, 100 * gb - free, free))
    assert low_disk_message(tmp_path) is None
