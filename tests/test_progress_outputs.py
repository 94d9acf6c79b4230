"""Committed notebooks keep a progress bar's final state, not every update of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssd_lib.reporting.notebooks import collapse_progress_output

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(
    [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("lessons/*/*.ipynb"), *ROOT.glob("app/*.ipynb")]
)


def _stream(name, *text):
    return {"output_type": "stream", "name": name, "text": list(text)}


def test_updates_of_a_bar_collapse_to_its_last_state():
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    _stream("stderr", "\r", "PPL (z):   0%| 0/8"),
                    _stream("stderr", "\r", "PPL (z):  50%| 4/8"),
                    _stream("stderr", "\r", "PPL (z): 100%| 8/8\n"),
                    _stream("stdout", "a result\n"),
                    _stream("stderr", "warning: x\n", "\rB: 10%\rB: 100%\n"),
                    {"output_type": "display_data", "data": {"text/plain": "fig"}},
                ],
            },
            {"cell_type": "markdown", "source": "text"},
        ]
    }
    outputs = collapse_progress_output(nb)["cells"][0]["outputs"]
    assert outputs[0] == {"output_type": "stream", "name": "stderr", "text": "PPL (z): 100%| 8/8\n"}
    assert outputs[1]["text"] == ["a result\n"]  # no carriage return: left as it was
    assert outputs[2]["text"] == "warning: x\nB: 100%\n"
    assert outputs[3]["output_type"] == "display_data" and len(outputs) == 4


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_notebooks_hold_no_intermediate_progress(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                assert "\r" not in "".join(out["text"]), f"{path.name} cell {i}"
