"""Training on from a published snapshot (the class's third part), on a tiny smoke run."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_dataset
from torch import nn

from ssd_lib.experiments import published as pub
from ssd_lib.experiments.suite import train_suite
from ssd_lib.teach.train_on import (
    comparison_figure,
    continue_training,
    has_spectral_norm,
    remove_spectral_norm,
    snapshot_networks,
)

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A tiny dataset and a snapshot of a 3-step smoke SSD run, published with both networks."""
    base = tmp_path_factory.mktemp("train_on")
    ds = make_tiny_dataset(base)
    run = train_suite(ds, "smoke", "cpu", ["ssd"], base / "runs", False)["ssd"]
    path = pub.publish_snapshot(run.path, "ssd-seed42", base / "published")
    return pub.load_key(path.name, base / "published"), ds


def _go(snapshot, tmp_path, **kwargs):
    snap, ds = snapshot
    args = {"steps": 2, "seconds": None, "seed": 0, "device": "cpu", "show_progress": False}
    args.update(kwargs)
    return continue_training(snap, runs_root=tmp_path / "runs", dataset=ds, **args)


def _same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


def test_the_loaded_networks_are_the_snapshots(snapshot):
    snap, _ = snapshot
    cfg, g, d = snapshot_networks(snap, keep_sn=True)
    assert cfg == snap.config and g.training and d.training
    _same_state(g, snap.load_generator())
    _same_state(d, snap.load_discriminator())
    assert has_spectral_norm(d)


def test_without_sn_the_discriminator_has_no_sn_and_starts_as_the_same_function(snapshot):
    snap, _ = snapshot
    cfg, g, d = snapshot_networks(snap, keep_sn=False)
    assert cfg.discriminator == "plain" and cfg.replace(discriminator="sn") == snap.config
    assert not has_spectral_norm(d)
    assert not any(k.endswith(("_orig", "_u", "_v")) for k in d.state_dict())
    _same_state(g, snap.load_generator())
    d_sn = snap.load_discriminator()
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(d.eval()(x), d_sn.eval()(x), rtol=1e-4, atol=1e-5)
    # The applied weight's largest singular value is SN's estimate of 1 at the start.
    w = d.middle[0].weight.detach()
    sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), 2)
    assert 0.9 < float(sigma) < 1.1


def test_remove_spectral_norm_reads_the_parametrizations_api_too():
    from torch.nn.utils.parametrizations import spectral_norm

    torch.manual_seed(0)
    conv = spectral_norm(nn.Conv2d(3, 5, 3, bias=False))
    x = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        conv(x)  # training mode: power iterations move u and v
    conv.eval()
    plain = nn.Conv2d(3, 5, 3, bias=False)
    plain.load_state_dict(remove_spectral_norm(conv.state_dict()))
    assert has_spectral_norm(conv) and not has_spectral_norm(plain)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), conv(x), rtol=1e-5, atol=1e-6)


def test_training_on_changes_the_weights_and_writes_its_log(snapshot, tmp_path):
    snap, _ = snapshot
    r = _go(snapshot, tmp_path, steps=2, n_samples=4)
    assert r.steps == 2 and r.stopped_by == "steps" and r.start_step == snap.status["step"]
    h = r.history()
    assert list(h["step"]) == [r.start_step + 1, r.start_step + 2]
    assert {"loss_g", "loss_d", "d_real", "d_fake", "sigma_eff/middle.0"} <= set(h)
    assert r.before.shape == r.after.shape == (4, 3, 64, 64) and r.before.dtype == torch.uint8
    g0 = snap.load_generator().state_dict()
    moved = [k for k, v in r.generator.state_dict().items() if not torch.equal(v, g0[k])]
    assert moved, "two steps of Adam must move the generator"
    files = {p.relative_to(r.path).as_posix() for p in r.path.rglob("*") if p.is_file()}
    assert files == {
        "config.json",
        "history.csv",
        "summary.json",
        "samples/before.png",
        "samples/after.png",
    }
    assert r.path.name == f"{snap.key}-sn-seed0" and "2 steps" in str(r)
    assert comparison_figure([r]) is not None
    from ssd_lib.generation.explorer import Explorer  # the result stands in for a run

    assert Explorer.from_run(r, scale_samples=20).image.shape == (3, 64, 64)


def test_zero_steps_leaves_the_snapshot_as_it_was(snapshot, tmp_path):
    snap, _ = snapshot
    r = _go(snapshot, tmp_path, steps=0, keep_sn=False, n_samples=2)
    assert r.steps == 0 and r.max_pixel_change() == 0
    _same_state(r.generator, snap.load_generator())
    assert not has_spectral_norm(r.discriminator) and r.path.name.endswith("-no_sn-seed0")


def test_the_global_rng_is_untouched_and_the_seed_reproduces_the_run(snapshot, tmp_path):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = _go(snapshot, tmp_path / "a", steps=1, keep_sn=False, n_samples=2)
    assert torch.equal(torch.get_rng_state(), state)
    b = _go(snapshot, tmp_path / "b", steps=1, keep_sn=False, n_samples=2)
    _same_state(a.generator, b.generator)
    _same_state(a.discriminator, b.discriminator)
    assert a.history()["loss_d"].tolist() == b.history()["loss_d"].tolist()


def test_the_time_budget_is_checked_before_every_step(snapshot, tmp_path, monkeypatch):
    """A fake clock that advances one second per training step: 2.5 s fit 2 steps."""
    from ssd_lib.training.trainer import Trainer

    now = [0.0]
    real_step = Trainer.train_step

    def one_second_step(self, real):
        now[0] += 1.0
        return real_step(self, real)

    monkeypatch.setattr(Trainer, "train_step", one_second_step)
    r = _go(snapshot, tmp_path, steps=None, seconds=2.5, n_samples=2, clock=lambda: now[0])
    assert r.stopped_by == "time" and r.steps == 2 and r.seconds <= 2.5
    assert r.history()["step_s"].tolist() == [1.0, 1.0]


def test_a_real_time_budget_ends_the_training(snapshot, tmp_path):
    """With the real clock: the call ends within the budget (or right after loading, if
    loading alone took longer), give or take one step, whose length is not known before it
    runs, and a second for the "after" samples beyond the time kept for them."""
    r = _go(snapshot, tmp_path, steps=10_000, seconds=3.0, n_samples=2)
    assert r.stopped_by == "time" and r.steps < 10_000
    longest = max((row["step_s"] for row in r.rows), default=0.0)
    assert r.seconds <= max(3.0, r.setup_s) + longest + 1.0, (r.seconds, r.setup_s, longest)


def test_bad_budgets_and_snapshots_are_refused(snapshot, tmp_path):
    with pytest.raises(ValueError, match="needs a budget"):
        _go(snapshot, tmp_path, steps=None, seconds=None)
    with pytest.raises(ValueError, match="seconds=0"):
        _go(snapshot, tmp_path, seconds=0)
    with pytest.raises(ValueError, match="steps=-1"):
        _go(snapshot, tmp_path, steps=-1)

    class NoSN:
        config = snapshot[0].config.replace(discriminator="plain")
        key = "no-sn-snapshot"

    with pytest.raises(ValueError, match="trained with spectral norm"):
        snapshot_networks(NoSN(), keep_sn=False)
