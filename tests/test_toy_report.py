"""The toy report command prints the run's metrics beside their floor."""

from __future__ import annotations

import pytest

from ssd_lib.config import make_config
from ssd_lib.data.embedded import prepare_embedded
from ssd_lib.metrics.toy_report import main
from ssd_lib.training.trainer import train

# `make test-fast` leaves this module out: it trains a toy net.
pytestmark = pytest.mark.slow


def test_toy_report_prints_run_and_floor(capsys):
    ds = prepare_embedded(n_train=300, n_val=100, show_progress=False)
    run = train(
        make_config("paper", "smoke", dataset=ds.name), ds, device="cpu", show_progress=False
    )
    assert main([str(run.path), "-n", "100"]) == 0
    out = capsys.readouterr().out
    assert f"dataset={ds.name} preset=paper profile=smoke" in out
    fd_line = next(line for line in out.splitlines() if line.startswith("FD-toy"))
    run_value, run_small, floor_value = map(float, fd_line.split()[1:])
    assert run_small > floor_value > 0  # a 3-step generator is far from real dogs, at equal n
    assert "counts: n_real=100 n_fake=100" in out  # as many reals as samples, drawn from 300
