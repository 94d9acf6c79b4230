"""Progress bars under papermill are text that reaches the terminal, with images/s."""

from __future__ import annotations

import io

import pytest
from tqdm.std import tqdm as text_tqdm

from ssd_lib.config import make_config
from ssd_lib.training.trainer import train
from ssd_lib.utils.progress import progress_bar

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


def test_text_mode_gives_a_plain_bar(monkeypatch):
    monkeypatch.setenv("SSD_PROGRESS", "text")
    out = io.StringIO()
    with progress_bar(total=3, file=out, mininterval=0) as bar:
        bar.update(3)
    assert type(bar) is text_tqdm
    assert "3/3" in out.getvalue()


def test_training_reports_steps_rate_and_losses_as_text(tiny_dataset, monkeypatch, capsys):
    monkeypatch.setenv("SSD_PROGRESS", "text")
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    cfg = make_config("paper", "smoke", dataset="tiny")
    train(cfg, tiny_dataset, device="cpu", show_progress=True)
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "3/3" in last and "img_s=" in last and "loss_g=" in last
