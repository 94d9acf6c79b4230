"""R1 and the moving average of G (StyleGAN2's remedies, issue "beyond the paper"): the maths
on hand-made cases, and the trainer's use of them, resume included."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssd_lib.config import ConfigError, make_config
from ssd_lib.training.ema import ema_beta, make_ema, update_ema
from ssd_lib.training.losses import r1_penalty
from ssd_lib.training.trainer import Trainer, train


def test_r1_of_a_linear_critic_is_the_squared_norm_of_its_weights():
    w = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    d = (x * w).flatten(1).sum(1)  # D(x) = <w, x>: the gradient is w at every x
    penalty = r1_penalty(d, x)
    assert penalty.item() == pytest.approx(w.square().sum().item(), rel=1e-6)
    penalty.backward()  # it trains D through a second derivative: d||w||^2/dw = 2w
    torch.testing.assert_close(w.grad, 2 * w.detach())
    quadratic = (x.square()).flatten(1).sum(1)  # D(x) = ||x||^2: gradient 2x
    expect = (2 * x).square().flatten(1).sum(1).mean()
    assert r1_penalty(quadratic, x).item() == pytest.approx(expect.item(), rel=1e-6)


def test_ema_halves_a_steps_weight_after_the_half_life():
    assert ema_beta(8, 80) ** 10 == pytest.approx(0.5)  # 10 steps of 8 images = 80 images
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = make_ema(model)
    assert not any(p.requires_grad for p in ema.parameters())
    before = [p.clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.fill_(3.0)
    update_ema(ema, model, beta=0.75)
    for a, b, m in zip(ema.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(a, 0.75 * b + 0.25 * m)
    assert torch.equal(ema[1].running_mean, model[1].running_mean)  # buffers are copied


def test_the_options_are_checked_and_leave_other_configs_named_as_before():
    base = make_config("corrected", "smoke")
    assert "r1_gamma" not in base.to_dict() and "ema_half_life_images" not in base.to_dict()
    assert base.replace(r1_gamma=1.0).config_hash() != base.config_hash()
    with pytest.raises(ConfigError, match="r1_every"):
        make_config("corrected", "smoke", r1_every=0)
    with pytest.raises(ConfigError, match="ema_half_life_images"):
        make_config("corrected", "smoke", ema_half_life_images=-5)


def test_trainer_logs_lazy_r1_and_keeps_an_average_that_samples_use(tiny_dataset, tmp_path):
    cfg = make_config(
        "corrected", "smoke", dataset="tiny", epochs=2, max_steps=6, r1_gamma=10.0, r1_every=2,
        ema_half_life_images=40,
    )  # fmt: skip
    t = Trainer(cfg, tiny_dataset.train, tmp_path / "a", "cpu", False)
    assert t.fit() == "complete"
    logged = [r.get("r1") for r in t.log.rows]
    assert len(logged) == 6
    assert [v is not None for v in logged] == [i % 2 == 0 for i in range(len(logged))]
    assert all(v > 0 for v in logged if v is not None)
    # The average trails G: close to it, not equal.
    pairs = list(zip(t.G_ema.parameters(), t.G.parameters(), strict=True))
    assert max((a - g).abs().max().item() for a, g in pairs) > 0
    plain = Trainer(cfg.replace(r1_gamma=0.0), tiny_dataset.train, tmp_path / "b", "cpu", False)
    plain.fit()
    assert "r1" not in plain.log.columns()
    assert not torch.equal(  # the penalty changed D's updates
        next(t.D.parameters()), next(plain.D.parameters())
    )


def test_an_average_survives_a_resume_bit_identically_and_is_what_the_run_samples(
    tiny_dataset, tmp_path
):
    cfg = make_config(
        "corrected", "smoke", dataset="tiny", epochs=2, max_steps=6, checkpoint_every=2,
        r1_gamma=1.0, r1_every=2, ema_half_life_images=40,
    )  # fmt: skip
    run = train(cfg, tiny_dataset, runs_root=tmp_path / "runs", device="cpu", show_progress=False)
    whole = Trainer(cfg, tiny_dataset.train, run.path, "cpu", False)
    whole.load(run.checkpoint)
    # train() passes the val split (D's gap at evaluation points is part of the run): so here.
    half = Trainer(cfg, tiny_dataset.train, tmp_path / "half", "cpu", False, val=tiny_dataset.val)
    half.total_steps = 4  # stop after 4 of 6 steps, then resume from the checkpoint
    half.fit()
    half.save()
    resumed = Trainer(
        cfg, tiny_dataset.train, tmp_path / "half", "cpu", False, val=tiny_dataset.val
    )
    resumed.load(half.checkpoint_stem)
    resumed.fit()
    assert resumed.step == whole.step == 6
    assert resumed.state_digest() == whole.state_digest()
    z = torch.randn(4, cfg.nz, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ema_out = run.load_generator()(z)
        g_out = run.load_generator(ema=False)(z)
    assert not torch.equal(ema_out, g_out)
