"""pyproject.toml and environment.yml list the same dependencies; the entry points exist."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {_name(r) for r in project["dependencies"] + extras["dev"] + extras["app"]}
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    pip_items = [line.strip()[2:] for line in lines[start + 1 :] if line.strip().startswith("- ")]
    listed = {_name(r) for r in pip_items if not r.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in yml: {listed - wanted}"
    assert any(r.startswith("-e .") for r in pip_items)
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_makefile_has_the_documented_targets_and_ci_calls_make_test():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("figures", "test", "lab", "bench", "app", "browser", "lesson"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert "make test" in (ROOT / ".ci" / "run").read_text()
