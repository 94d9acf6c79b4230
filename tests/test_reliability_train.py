"""Interruptions and faults during training: kill -9 anywhere, signals, full disks, NaNs,
collapses. Each guarantee here is listed in docs/reliability.md."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import ssd_lib.training.checkpoint as ck
from ssd_lib.analysis.samples import diversity_curve, diversity_figure, grid_diversity
from ssd_lib.config import make_config
from ssd_lib.experiments.suite import health_table
from ssd_lib.training.checkpoint import CheckpointError, load_checkpoint
from ssd_lib.training.health import (
    D_COLLAPSE_STEPS,
    TrainingDiverged,
    d_collapse_warning,
    first_nonfinite_weight,
    g_collapse_warning,
    sample_diversity,
)
from ssd_lib.training.metric_log import MetricLog
from ssd_lib.training.trainer import Trainer, train

# `make test-fast` leaves this module out: it kills and resumes real training processes.
pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("_train_child.py")


def _child(data_root: Path, runs_root: Path, fault: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels in every child
    return subprocess.run(
        [sys.executable, str(CHILD), str(data_root), str(runs_root), fault],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _checkpoint_step(run_dir: Path) -> int:
    _, meta = load_checkpoint(run_dir / "checkpoints" / "latest")  # also checks the hash
    return meta["step"]


def _fingerprint(run_dir: Path) -> tuple[str, str]:
    meta = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    return meta["tensors_sha256"], (run_dir / "history.csv").read_text()


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_is_bit_identical(tiny_dataset, tmp_path):
    """One run is killed five times at different points (mid-step, while writing tensors,
    between the tensor file and its JSON, while writing the JSON, and by SIGTERM); each time
    the checkpoint on disk is the previous good one, and the resumed run ends bit-identical
    to an uninterrupted one (weights, optimiser state, RNGs and the whole loss history)."""
    data = tmp_path / "data"
    whole = _child(data, tmp_path / "whole", "none")
    assert whole.returncode == 0, whole.stderr
    expected = _fingerprint(Path(whole.stdout.strip().splitlines()[-1]))

    runs = tmp_path / "cut"
    # (fault, exit code, step of the checkpoint it leaves). Checkpoints fall on the steps
    # 2, 4, 5, 6, 8, 10, 12, 14, 15; the counts N are per process.
    chain = [
        ("kill_at_step:3", -signal.SIGKILL, 2),
        ("kill_in_tensors:2", -signal.SIGKILL, 4),  # the save at step 5 dies
        ("kill_before_json:2", -signal.SIGKILL, 5),  # from 4: 5 kept, 6 dies
        ("kill_in_json:3", -signal.SIGKILL, 8),  # 6, 8 kept; 10 dies
        ("signal_at_step:SIGTERM:12", 0, 12),  # stops cleanly after step 12
    ]
    run_dir = None
    for fault, code, step in chain:
        proc = _child(data, runs, fault)
        assert proc.returncode == code, (fault, proc.stderr)
        run_dir = next(p for p in runs.iterdir() if p.is_dir())
        assert _checkpoint_step(run_dir) == step, fault
        state = json.loads((run_dir / "status.json").read_text())["state"]
        assert state == ("interrupted" if code == 0 else "running"), fault
    assert "checkpoint saved" in proc.stderr and "--resume" in proc.stderr

    final = _child(data, runs, "none")
    assert final.returncode == 0, final.stderr
    assert _fingerprint(run_dir) == expected
    assert not list(run_dir.rglob("*.tmp"))  # killed writes' temporary files are gone
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir()]
    assert sorted(leftovers) == sorted(
        ["latest.json", ck.tensor_path(run_dir / "checkpoints" / "latest").name]
    )


def test_a_full_disk_keeps_the_previous_checkpoint_and_names_the_path(
    tiny_dataset, tmp_path, monkeypatch
):
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0)  # saves at 5, 10
    real_save = ck.save_file
    calls = {"n": 0}

    def full_disk(tensors, filename, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(filename))
        return real_save(tensors, filename, *a, **kw)

    monkeypatch.setattr(ck, "save_file", full_disk)
    with pytest.raises(CheckpointError) as info:
        train(cfg, tiny_dataset, device="cpu", show_progress=False)
    message = str(info.value)
    assert "No space left on device" in message and "checkpoints" in message
    assert "previous checkpoint" in message and "unchanged" in message
    run_dir = next((tmp_path / "runs").iterdir())
    assert _checkpoint_step(run_dir) == 5
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and "No space left" in status["error"]
    assert not list((run_dir / "checkpoints").glob("*.tmp"))


def test_a_read_only_folder_gives_a_checkpoint_error_naming_it(tmp_path, monkeypatch):
    import ssd_lib.utils.atomic as atomic

    def refuse(*a, dir=None, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(CheckpointError, match="Permission denied") as info:
        ck.save_checkpoint(tmp_path / "ro" / "latest", {"w": torch.zeros(2)}, {})
    assert str(tmp_path / "ro") in str(info.value) and "no earlier checkpoint" in str(info.value)


def _nan_after(step: int, what: str):
    """A train_step that poisons the run after ``step`` completed steps."""
    original = Trainer.train_step

    def poisoned(self, real):
        stats = original(self, real)
        if self.step + 1 > step:  # self.step counts completed steps before this one
            if what == "loss":
                stats["loss_d"] = torch.tensor(math.nan)
            else:
                with torch.no_grad():
                    next(self.G.parameters()).fill_(math.inf)
        return stats

    return poisoned


@pytest.mark.parametrize("what", ["loss", "weight"])
def test_a_non_finite_value_stops_naming_step_and_tensor_and_keeps_the_good_checkpoint(
    what, tiny_dataset, tmp_path, monkeypatch
):
    # 10 steps, checkpoints at 3, 5, 6, 9, 10; poisoned from step 8 on; checks every 2 steps.
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0, checkpoint_every=3)
    monkeypatch.setattr(Trainer, "train_step", _nan_after(7, what))
    t = Trainer(cfg, tiny_dataset.train, tmp_path / "run", "cpu", False, sync_every=2)
    with pytest.raises(TrainingDiverged) as info:
        t.fit()
    message = str(info.value)
    assert "step 8" in message and "step 6) is kept" in message
    assert ("loss_d = nan" in message) if what == "loss" else ("weight G." in message)
    assert "on_nonfinite='rollback'" in message
    assert _checkpoint_step(tmp_path / "run") == 6
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "diverged" and "step 8" in status["error"]


def _rolling_trainer(cfg, dataset, tmp_path, **options) -> Trainer:
    """A trainer that checks every 2 steps and rolls back on NaN or infinity."""
    return Trainer(
        cfg,
        dataset.train,
        tmp_path / "run",
        "cpu",
        False,
        sync_every=2,
        on_nonfinite="rollback",
        **options,
    )


def test_rollback_resumes_from_the_last_checkpoint_with_lower_learning_rates(
    tiny_dataset, tmp_path, monkeypatch
):
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0, checkpoint_every=3)
    original = Trainer.train_step
    poisoned = {"done": False}

    def once(self, real):  # one NaN, at step 8, the first time only
        stats = original(self, real)
        if self.step == 7 and not poisoned["done"]:
            poisoned["done"] = True
            stats["loss_g"] = torch.tensor(math.nan)
        return stats

    monkeypatch.setattr(Trainer, "train_step", once)
    t = _rolling_trainer(cfg, tiny_dataset, tmp_path, rollback_lr_factor=0.25)
    assert t.fit() == "complete" and t.step == 10
    assert t.rollbacks == [
        {"diverged_at": 8, "resumed_from": 6, "lr_g": cfg.lr_g * 0.25, "lr_d": cfg.lr_d * 0.25}
    ]
    assert [w["kind"] for w in t.warnings] == ["rollback"]
    assert all(math.isfinite(r["loss_g"]) for r in t.log.rows)
    # The lowered rates are part of the checkpoint, so a resumed run keeps them.
    again = Trainer(cfg, tiny_dataset.train, tmp_path / "run", "cpu", False)
    again.load(tmp_path / "run" / "checkpoints" / "latest")
    assert again.opt_g.param_groups[0]["lr"] == cfg.lr_g * 0.25
    assert again.rollbacks == t.rollbacks


def test_rollback_gives_up_after_max_rollbacks(tiny_dataset, tmp_path, monkeypatch):
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0, checkpoint_every=3)
    monkeypatch.setattr(Trainer, "train_step", _nan_after(7, "loss"))
    t = _rolling_trainer(cfg, tiny_dataset, tmp_path, max_rollbacks=2)
    with pytest.raises(TrainingDiverged, match="2 roll-backs did not help"):
        t.fit()
    assert len(t.rollbacks) == 2 and _checkpoint_step(tmp_path / "run") == 6
    assert [w["kind"] for w in t.warnings] == ["rollback", "rollback"]  # both kept
    # The limit holds for the run, not per process: resuming does not grant new roll-backs.
    again = _rolling_trainer(cfg, tiny_dataset, tmp_path, max_rollbacks=2)
    again.load(tmp_path / "run" / "checkpoints" / "latest")
    with pytest.raises(TrainingDiverged, match="2 roll-backs did not help"):
        again.fit()
    assert len(again.rollbacks) == 2


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"on_nonfinite": "retry"}, "allowed: one of ['stop', 'rollback']"),
        ({"rollback_lr_factor": 1.5}, "rollback_lr_factor=1.5"),
        ({"max_rollbacks": 0}, "max_rollbacks=0"),
    ],
)
def test_fault_options_are_validated(kwargs, words, tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke", dataset="tiny")
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Trainer(cfg, tiny_dataset.train, tmp_path / "run", "cpu", False, **kwargs)


def test_discriminator_collapse_is_reported_once_per_streak():
    collapsed = {"d_acc": 1.0, "loss_d": 0.5}
    healthy = {"d_acc": 0.7, "loss_d": 0.9}
    history = [{"step": i + 1, **collapsed} for i in range(D_COLLAPSE_STEPS - 1)]
    assert d_collapse_warning(history, []) is None  # one step short
    history.append({"step": D_COLLAPSE_STEPS, "d_acc": 0.5, "loss_d": 0.001})  # loss near 0
    warning = d_collapse_warning(history, [])
    assert warning["kind"] == "d_collapse" and warning["step"] == D_COLLAPSE_STEPS
    assert f"for the {D_COLLAPSE_STEPS} steps 1-{D_COLLAPSE_STEPS}" in warning["message"]
    history.append({"step": D_COLLAPSE_STEPS + 1, **collapsed})
    assert d_collapse_warning(history, [warning]) is None  # the same streak
    history += [{"step": len(history) + 1, **healthy}]
    history += [{"step": len(history) + 1 + i, **collapsed} for i in range(D_COLLAPSE_STEPS)]
    assert d_collapse_warning(history, [warning])["step"] == history[-1]["step"]  # a new one


def test_a_collapse_streak_that_ends_between_two_checks_is_still_reported():
    collapsed, healthy = {"d_acc": 1.0, "loss_d": 0.5}, {"d_acc": 0.6, "loss_d": 0.9}
    rows = [{"step": i + 1, **collapsed} for i in range(D_COLLAPSE_STEPS)]
    rows += [{"step": D_COLLAPSE_STEPS + i + 1, **healthy} for i in range(5)]
    # The previous check covered rows up to 95; the streak reached its length at row 100.
    warning = d_collapse_warning(rows, [], since=D_COLLAPSE_STEPS - 5)
    assert warning is not None and warning["step"] == D_COLLAPSE_STEPS
    assert d_collapse_warning(rows, [warning], since=D_COLLAPSE_STEPS - 5) is None


def test_an_optimiser_moment_that_overflowed_counts_as_non_finite():
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    assert first_nonfinite_weight({"G": net, "opt_g": opt}) is None
    next(iter(opt.state.values()))["exp_avg_sq"].fill_(math.inf)
    assert first_nonfinite_weight({"G": net, "opt_g": opt}) == "opt_g.state[0].exp_avg_sq"
    with torch.no_grad():  # two bad tensors: the first in the owners' order is named
        net.bias.fill_(math.nan)
    assert first_nonfinite_weight({"G": net, "opt_g": opt}) == "G.bias"
    assert first_nonfinite_weight({"opt_g": opt, "G": net}) == "opt_g.state[0].exp_avg_sq"


def test_a_logged_nan_survives_a_resume_as_a_value_not_a_gap(tiny_dataset, tmp_path):
    # Under fp16 an overflowing step logs an infinite or NaN gradient norm; that is data.
    cfg = make_config("paper", "smoke", dataset="tiny", precision="fp16")
    t = Trainer(cfg, tiny_dataset.train, tmp_path / "run", "cpu", False)
    t.log = MetricLog(
        [
            {"step": 1, "epoch": 0, "loss_g": 0.7, "loss_d": 1.3, "grad_norm_g": math.nan},
            {"step": 2, "epoch": 0, "loss_g": 0.6, "loss_d": 1.2, "d_train_eval": 0.5},
        ]
    )
    t.step = t.batch_in_epoch = 2
    t.save()
    again = Trainer(cfg, tiny_dataset.train, tmp_path / "run", "cpu", False)
    again.load(tmp_path / "run" / "checkpoints" / "latest")
    rows = again.log.rows
    assert math.isnan(rows[0]["grad_norm_g"]) and "grad_norm_g" not in rows[1]
    assert "d_train_eval" not in rows[0] and rows[1]["d_train_eval"] == 0.5


def test_sample_diversity_is_the_per_pixel_spread_on_the_unit_scale():
    black, white = torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.full((1, 3, 4, 4), 255)
    assert sample_diversity(torch.cat([black, black, black])) == 0.0
    pair = torch.cat([black, white.to(torch.uint8)])
    assert sample_diversity(pair) == pytest.approx(2**-0.5)  # std of {0, 1}, unbiased
    with pytest.raises(ValueError, match="at least 2 uint8 images"):
        sample_diversity(pair.float())


def test_generator_collapse_needs_a_sharp_fall_and_a_spread_far_below_the_reals():
    key = "structural_diversity"
    history = [{"step": 25, key: 0.30}, {"step": 50, key: 0.12}]
    # Half the best so far, but still half as varied as the reals: the early noise fading.
    assert g_collapse_warning(history, 0.12, 50, real=0.2) is None
    warning = g_collapse_warning(history, 0.01, 75, real=0.2)
    assert warning["kind"] == "g_collapse" and "0.0100" in warning["message"]
    assert "structural diversity" in warning["message"]
    assert g_collapse_warning(history[:0], 0.0, 25, real=0.2) is None  # nothing to compare
    # another logged key is read only when named
    old = [{"step": 25, "sample_diversity": 0.30}]
    assert g_collapse_warning(old, 0.01, 75, real=0.2) is None
    assert g_collapse_warning(old, 0.01, 75, real=0.2, key="sample_diversity") is not None


def test_the_alarm_sees_one_layout_with_pixel_noise_that_the_per_pixel_spread_misses():
    """The trainer watches the structural spread: one image repeated with fresh pixel noise
    on every copy (the rung of the validity ladder the per-pixel spread fails) falls under
    the alarm's floor, while its per-pixel spread stays above it."""
    from ssd_lib.training.health import G_COLLAPSE_FLOOR, structural_diversity

    g = torch.Generator().manual_seed(0)
    blocks = torch.rand(64, 3, 4, 4, generator=g)  # varied coarse layouts, like faces
    reals = (F.interpolate(blocks, size=32, mode="nearest") * 255).to(torch.uint8)
    noisy = reals[:1].float().expand(64, -1, -1, -1) + 25.0 * torch.randn(
        64, 3, 32, 32, generator=g
    )
    noisy = noisy.clamp(0, 255).to(torch.uint8)
    for measure, caught in ((structural_diversity, True), (sample_diversity, False)):
        real, value = measure(reals), measure(noisy)
        history = [{"step": 25, "structural_diversity": real}]  # a varied start
        warned = g_collapse_warning(history, value, 50, real=real) is not None
        assert warned is caught, (measure.__name__, value / real, G_COLLAPSE_FLOOR)


def test_collapses_during_training_are_logged_saved_and_reported(
    tiny_dataset, tmp_path, monkeypatch, caplog
):
    """A D that wins every step and a G whose samples stop varying: both are warned about,
    in the log and in warnings.json, without stopping the run."""
    import ssd_lib.training.health as health

    monkeypatch.setattr(health, "D_COLLAPSE_STEPS", 4)
    original = Trainer.train_step

    def d_always_right(self, real):
        stats = original(self, real)
        stats["d_acc"] = torch.tensor(1.0)
        return stats

    monkeypatch.setattr(Trainer, "train_step", d_always_right)
    from ssd_lib.generation.sampling import generate as real_generate

    calls = {"n": 0}

    def generate(g, z, value_range, device):  # the second grid: every code, one image
        calls["n"] += 1
        images = real_generate(g, z, value_range, device=device)
        return images[:1].expand_as(images) if calls["n"] == 2 else images

    monkeypatch.setattr("ssd_lib.training.trainer.generate", generate)
    cfg = make_config("paper", "smoke", dataset="tiny", epochs=2, max_steps=0)
    run = train(cfg, tiny_dataset, device="cpu", show_progress=False)
    assert run.complete
    kinds = [w["kind"] for w in json.loads((run.path / "warnings.json").read_text())]
    assert kinds == ["d_collapse", "g_collapse"]
    assert "discriminator collapse" in caplog.text and "generator collapse" in caplog.text
    h = run.history()  # both spreads logged at each epoch end
    assert h["sample_diversity"][4] > 0 and h["structural_diversity"][4] > 0
    # What notebook 01 shows for each suite run.
    table = health_table({"ssd": run})
    assert table["kind"].tolist() == ["d_collapse", "g_collapse"]
    assert table["warning at step"].tolist() == [4, 10] and (table["run"] == "ssd").all()
    steps, values, source = diversity_curve(run)
    assert source == "logged" and steps.tolist() == [5, 10]
    # A run that did not log the structural spread (trained before the alarm moved to it)
    # gets it back from its saved grids: the same images, so the same numbers.
    grid_steps, grid_values = grid_diversity(run)
    assert grid_steps.tolist() == [5, 10] and grid_values == pytest.approx(values, abs=1e-6)
    fig = diversity_figure({"ssd": run}, real=0.29, label="test")
    assert "what the trainer's alarm watches" in fig.axes[0].get_title()
    marks = [line for line in fig.axes[0].lines if line.get_marker() == "x"]
    # Both warnings, each at its own step: D's (step 4, before the first logged diversity,
    # drawn on the line) and G's (step 10, diversity 0: on the log axis' bottom edge).
    assert sorted(x for m in marks for x in m.get_xdata()) == [4.0, 10.0]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "trainer warning (2)" in legend and any("diversity 0" in t for t in legend)
