"""How the trainer runs (reading logged scalars, memory layout, fp16 loss scaling, stopping
in several processes) without changing what it computes. The GPU itself is not available in
CI; these tests run the same code on the CPU."""

from __future__ import annotations

import json
import math
import os
import signal
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from ssd_lib.config import ConfigError, make_config
from ssd_lib.training.checkpoint import load_checkpoint
from ssd_lib.training.health import TrainingDiverged
from ssd_lib.training.trainer import Trainer
from ssd_lib.utils.images import uint8_to_float

# `make test-fast` leaves this module out: it multi-process and long training paths.
pytestmark = pytest.mark.slow


def _interrupt_after(monkeypatch, completed_steps: int):
    """Send this process SIGINT while it trains step ``completed_steps + 1``; returns the
    original ``train_step``."""
    original = Trainer.train_step

    def train_step(self, real):
        stats = original(self, real)
        if self.step == completed_steps:
            os.kill(os.getpid(), signal.SIGINT)
        return stats

    monkeypatch.setattr(Trainer, "train_step", train_step)
    return original


def test_reading_scalars_every_seven_steps_logs_the_same_run_as_every_step(tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0)  # 10 steps
    each = Trainer(cfg, tiny_dataset.train, tmp_path / "a", "cpu", False, sync_every=1)
    every7 = Trainer(cfg, tiny_dataset.train, tmp_path / "b", "cpu", False, sync_every=7)
    each.fit(), every7.fit()
    assert every7.log.rows == each.log.rows
    values = [v for row in every7.log.rows for v in row.values()]
    assert all(type(v) in (int, float) for v in values)  # no tensor left in the log
    assert every7.state_digest() == each.state_digest()
    assert (tmp_path / "a" / "history.csv").read_bytes() == (
        tmp_path / "b" / "history.csv"
    ).read_bytes()


def test_sync_every_must_be_a_positive_integer(tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke", dataset="tiny")
    with pytest.raises(ValueError, match="sync_every=0"):
        Trainer(cfg, tiny_dataset.train, tmp_path, "cpu", False, sync_every=0)


def test_channels_last_layout_trains_like_the_default_and_round_trips(tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0)
    plain = Trainer(cfg, tiny_dataset.train, tmp_path / "plain", "cpu", False)
    cl = Trainer(cfg, tiny_dataset.train, tmp_path / "cl", "cpu", False, channels_last=True)
    assert not plain.channels_last  # the default on a CPU
    weights = [p for p in cl.D.parameters() if p.dim() == 4]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert not all(w.is_contiguous() for w in weights)
    # Other convolution kernels round differently: one step agrees closely, not exactly.
    real = uint8_to_float(tiny_dataset.train.images[:8], cfg.real_range)
    a, b = plain.train_step(real), cl.train_step(real)
    for key in a:
        assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-3, abs=1e-6), key
    for one, other in ((plain.G, cl.G), (plain.D, cl.D)):
        pairs = zip(one.parameters(), other.parameters(), strict=True)
        diff = torch.cat([(p - q).abs().flatten() for p, q in pairs])
        # Adam's first step moves each weight by +-lr: a gradient near 0 whose sign differs
        # moves a weight 2 lr apart. Few do; on average the weights agree.
        assert diff.max() <= 2 * cfg.lr_g * 1.01 and diff.mean() < 1e-5
    cl.fit()
    again = Trainer(cfg, tiny_dataset.train, tmp_path / "cl", "cpu", False, channels_last=True)
    again.load(tmp_path / "cl" / "checkpoints" / "latest")
    assert again.state_digest() == cl.state_digest()


def test_fp16_scales_its_losses_and_resumes_bit_identically(tiny_dataset, tmp_path, monkeypatch):
    # fp16 is emulated on a CPU (slow): narrow networks keep the 20 steps short.
    cfg = make_config(
        "paper", "smoke", dataset="tiny", epochs=2, max_steps=0, precision="fp16", ngf=16, ndf=16
    )
    whole = Trainer(cfg, tiny_dataset.train, tmp_path / "whole", "cpu", False)
    assert whole.scalers["G"].is_enabled() and whole.scalers["D"].is_enabled()
    assert whole.fit() == "complete"
    _, meta = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest")
    assert meta["precision"] == "fp16"
    for net in ("G", "D"):
        scale = meta["grad_scalers"][net]["scale"]
        assert scale == whole.scalers[net].get_scale() and 1 <= scale <= 2.0**16
    assert all(np.isfinite(r["loss_g"]) and np.isfinite(r["grad_norm_d"]) for r in whole.log.rows)

    original = _interrupt_after(monkeypatch, 6)
    cut = Trainer(cfg, tiny_dataset.train, tmp_path / "cut", "cpu", False)
    assert cut.fit() == "interrupted" and cut.step == 7
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = Trainer(cfg, tiny_dataset.train, tmp_path / "cut", "cpu", False)
    resumed.load(tmp_path / "cut" / "checkpoints" / "latest")
    assert resumed.scalers["G"].get_scale() == cut.scalers["G"].get_scale()
    assert resumed.fit() == "complete"
    assert resumed.state_digest() == whole.state_digest()


def test_fp32_runs_keep_their_scalers_switched_off(tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke", dataset="tiny")
    trainer = Trainer(cfg, tiny_dataset.train, tmp_path, "cpu", False)
    trainer.fit()
    assert not trainer.scalers["G"].is_enabled()
    _, meta = load_checkpoint(tmp_path / "checkpoints" / "latest")
    assert meta["grad_scalers"] == {"G": {}, "D": {}}


def test_fp16_is_refused_with_the_gradient_penalty():
    with pytest.raises(ConfigError, match="precision='fp16'.*wgan_gp"):
        make_config("stylegan", "smoke", precision="fp16")


# ---- several processes ------------------------------------------------------------------
def _ddp_worker(
    rank, world, init_file, cfg, data, run_dir, resume, signal_at, out_dir, poison_at=None
):
    """One rank of a gloo process group training ``cfg``; rank 0 alone may get a SIGINT
    during step ``signal_at + 1``, and rank 1 alone may get an infinite Adam moment after
    step ``poison_at``. Writes what it ended with to ``out_dir/<rank>.json``."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        trainer = Trainer(cfg, data, run_dir, "cpu", False, sync_every=2)
        if resume:
            trainer.load(run_dir / "checkpoints" / "latest")
        if signal_at is not None and rank == 0:
            original = trainer.train_step

            def train_step(real):
                stats = original(real)
                if trainer.step == signal_at:
                    os.kill(os.getpid(), signal.SIGINT)
                return stats

            trainer.train_step = train_step
        if poison_at is not None and rank == 1:
            original_step = trainer.train_step

            def poisoned_step(real):
                stats = original_step(real)
                if trainer.step + 1 == poison_at:  # the step being trained now
                    next(iter(trainer.opt_d.state.values()))["exp_avg_sq"].fill_(math.inf)
                return stats

            trainer.train_step = poisoned_step
        try:
            state = trainer.fit()
        except TrainingDiverged as err:
            result = {"state": "diverged", "step": err.step, "message": str(err)}
            (out_dir / f"{rank}.json").write_text(json.dumps(result))
            return
        result = {"state": state, "step": trainer.step, "digest": trainer.state_digest()}
        (out_dir / f"{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _run_two_ranks(
    tmp_path, name, cfg, data, run_dir, resume=False, signal_at=None, poison_at=None
):
    out = tmp_path / f"out-{name}"
    out.mkdir()
    args = (2, tmp_path / f"rendezvous-{name}", cfg, data, run_dir, resume, signal_at, out)
    ctx = mp.start_processes(
        _ddp_worker, args=(*args, poison_at), nprocs=2, start_method="spawn", join=False
    )
    deadline = time.monotonic() + 240  # a rank left waiting in a collective would hang
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{name}: the ranks did not finish (one waits for the other?)")
    return [json.loads((out / f"{rank}.json").read_text()) for rank in (0, 1)]


def test_a_signal_to_one_rank_stops_all_ranks_at_one_step_and_the_run_resumes(
    tiny_dataset, tmp_path
):
    # 40 images, global batch 8 (4 per rank): 10 steps over 2 epochs. Rank 0 alone is
    # signalled during step 3; the ranks agree every 2 steps, so both stop after step 4
    # (a rank stopping alone would leave the other waiting in an all-reduce for ever).
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0)
    data = tiny_dataset.train
    whole = _run_two_ranks(tmp_path, "whole", cfg, data, tmp_path / "whole")
    assert [r["state"] for r in whole] == ["complete"] * 2

    cut = _run_two_ranks(tmp_path, "cut", cfg, data, tmp_path / "cut", signal_at=2)
    assert [(r["state"], r["step"]) for r in cut] == [("interrupted", 4)] * 2
    status = json.loads((tmp_path / "cut" / "status.json").read_text())
    assert status["state"] == "interrupted" and status["step"] == 4

    resumed = _run_two_ranks(tmp_path, "resumed", cfg, data, tmp_path / "cut", resume=True)
    assert [(r["state"], r["step"]) for r in resumed] == [("complete", 10)] * 2
    # Every rank ends with the weights, optimiser state and log of the uninterrupted run.
    assert [r["digest"] for r in resumed] == [r["digest"] for r in whole]
    assert (tmp_path / "cut" / "history.csv").read_bytes() == (
        tmp_path / "whole" / "history.csv"
    ).read_bytes()


def test_a_non_finite_value_on_one_rank_stops_every_rank_at_the_same_step(tiny_dataset, tmp_path):
    # Rank 1 alone gets an infinite optimiser moment during step 3; the ranks check every
    # 2 steps and decide together, so both stop at step 4 instead of one waiting for ever.
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0)
    ranks = _run_two_ranks(tmp_path, "nan", cfg, tiny_dataset.train, tmp_path / "nan", poison_at=3)
    assert [(r["state"], r["step"]) for r in ranks] == [("diverged", 4)] * 2
    assert "found by another process" in ranks[0]["message"]
    assert "opt_d.state[" in ranks[1]["message"]
