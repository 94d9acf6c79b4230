"""The loss objects (ssd_lib.training.losses): one interface, the maths each promises."""

from __future__ import annotations

import inspect
import math
import typing

import pytest
import torch

from ssd_lib.config import make_config
from ssd_lib.training.losses import BCELoss, GANLoss, WGANGPLoss, make_loss


@pytest.mark.parametrize("cls", [BCELoss, WGANGPLoss])
def test_each_loss_has_the_protocols_attributes_and_signatures(cls):
    hints = typing.get_type_hints(GANLoss)
    assert set(hints) == {"name", "threshold", "supports_ddp", "watches_d_collapse"}
    for name, hint in hints.items():
        (kind,) = typing.get_args(hint)  # ClassVar[kind]
        assert isinstance(getattr(cls, name), kind), name
    for method in ("generator", "discriminator"):
        assert inspect.signature(getattr(cls, method)) == inspect.signature(
            getattr(GANLoss, method)
        ), method


def test_make_loss_follows_the_config():
    assert isinstance(make_loss(make_config("paper")), BCELoss)
    wgan = make_loss(make_config("stylegan"))
    assert isinstance(wgan, WGANGPLoss) and wgan.gp_weight == make_config("stylegan").gp_weight


def test_bce_is_the_papers_scaled_cross_entropy():
    loss = BCELoss(d_loss_scale=0.5)
    d_real, d_fake = torch.tensor([0.8, 0.6]), torch.tensor([0.1, 0.3])
    expected = 0.5 * (-(math.log(0.8) + math.log(0.6)) / 2 - (math.log(0.9) + math.log(0.7)) / 2)
    got = loss.discriminator(d_real, d_fake, torch.zeros(2, 1), torch.zeros(2, 1), critic=None)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # G's loss is the non-saturating one: -log D(G(z))
    assert loss.generator(d_fake).item() == pytest.approx(-(math.log(0.1) + math.log(0.3)) / 2)


def test_wgan_gp_penalty_vanishes_for_a_unit_slope_critic():
    """A critic whose gradient has norm 1 everywhere has no penalty: what is left is
    D(fake) - D(real) plus the drift term."""
    torch.manual_seed(0)
    direction = torch.randn(3 * 4 * 4)
    direction /= direction.norm()

    def critic(x):
        return x.flatten(1) @ direction

    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    d_real, d_fake = critic(real), critic(fake)
    loss = WGANGPLoss(d_loss_scale=1.0, gp_weight=10.0)
    got = loss.discriminator(d_real, d_fake, real, fake, critic=critic)
    expected = d_fake.mean() - d_real.mean() + 1e-3 * d_real.pow(2).mean()
    assert got.item() == pytest.approx(expected.item(), abs=1e-5)
    # a critic with slope 2 pays gp_weight * (2 - 1)^2 = 10 more
    steep = WGANGPLoss(1.0, 10.0).discriminator(
        2 * d_real, 2 * d_fake, real, fake, critic=lambda x: 2 * critic(x)
    )
    expected_steep = 2 * (d_fake.mean() - d_real.mean()) + 10.0 + 4e-3 * d_real.pow(2).mean()
    assert steep.item() == pytest.approx(expected_steep.item(), abs=1e-4)
    assert loss.generator(d_fake).item() == pytest.approx(-d_fake.mean().item())
