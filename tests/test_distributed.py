"""Training in two processes with torchrun (gloo on the CPU) against one process."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ssd_lib.training.runs import Run

# `make test-fast` leaves this module out: it starts torchrun-style process groups.
pytestmark = pytest.mark.slow

# DistributedDataParallel averages the gradients of the two halves of each global batch,
# which equals one process's gradient on the whole batch, except that the discriminator's
# BatchNorm sees only its half (SyncBatchNorm needs CUDA). Stated tolerance for the logged
# losses: 10 % of the value plus 0.01.
RTOL, ATOL = 0.10, 0.01


def _train(photos, data, out, processes: int) -> Run:
    args = ["train", "--preset", "paper", "--profile", "smoke", "--epochs", "2"]
    args += ["--data", f"folder:{photos}", "--data-root", str(data), "--out", str(out)]
    args += ["--device", "cpu"]
    if processes == 1:
        cmd = [sys.executable, "-m", "ssd_lib", *args]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd = [*launcher, f"--nproc_per_node={processes}", "-m", "ssd_lib", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = [Run(p) for p in out.iterdir()]
    return run


def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path, photo_folder):
    photos = photo_folder(32)
    data = tmp_path / "data"
    one = _train(photos, data, tmp_path / "one", 1)
    two = _train(photos, data, tmp_path / "two", 2)
    assert two.status["processes"] == 2 and one.status["processes"] == 1
    assert two.complete and two.status["step"] == one.status["step"] == 3
    files = sorted(p.name for p in (two.path / "checkpoints").iterdir())
    assert len(files) == 2 and files[0].startswith("latest-")  # one checkpoint, one writer
    a, b = one.history(), two.history()
    for key in ("loss_g", "loss_d", "d_real", "d_fake"):
        np.testing.assert_allclose(b[key], a[key], rtol=RTOL, atol=ATOL, err_msg=key)
    assert not np.array_equal(a["loss_d"], b["loss_d"])  # two processes really ran
