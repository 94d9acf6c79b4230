"""LAPGAN: the Laplacian pyramid, the per-level networks, and sampling a 64x64 image."""

from __future__ import annotations

import pytest
import torch

from ssd_lib.models import count_parameters
from ssd_lib.models.lapgan import (
    CoarseDiscriminator,
    LAPGANGenerator,
    ResidualDiscriminator,
    build_lapgan_discriminators,
    downsample,
    laplacian_pyramid,
    level_pairs,
    reconstruct,
    upsample,
)


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_pyramid_has_coarse_image_then_residuals_and_reconstructs_exactly():
    x = _images()
    pyramid = laplacian_pyramid(x)
    assert [tuple(p.shape) for p in pyramid] == [(4, 3, 16, 16), (4, 3, 32, 32), (4, 3, 64, 64)]
    torch.testing.assert_close(reconstruct(pyramid), x, rtol=0, atol=1e-6)
    # The coarse level is the 4x4 block mean of the image.
    torch.testing.assert_close(pyramid[0], x.unfold(2, 4, 4).unfold(3, 4, 4).mean((-1, -2)))


def test_constant_image_has_zero_residuals():
    x = torch.full((2, 3, 64, 64), 0.25)
    coarse, h32, h64 = laplacian_pyramid(x)
    assert torch.allclose(coarse, x[:, :, :16, :16])
    assert h32.abs().max() < 1e-7 and h64.abs().max() < 1e-7


def test_level_pairs_are_the_pyramid_with_its_conditions():
    x = _images()
    (c16, i16), (c32, h32), (c64, h64) = level_pairs(x)
    pyramid = laplacian_pyramid(x)
    assert c16 is None
    torch.testing.assert_close(i16, pyramid[0])
    torch.testing.assert_close(h32, pyramid[1])
    torch.testing.assert_close(h64, pyramid[2])
    torch.testing.assert_close(c32, upsample(i16))
    torch.testing.assert_close(c64, upsample(downsample(x)))
    torch.testing.assert_close(c64 + h64, x)


def test_generator_levels_have_the_right_shapes_and_range():
    torch.manual_seed(0)
    g = LAPGANGenerator()
    z = torch.randn(3, 100)
    with torch.no_grad():
        levels = g.levels(z, torch.Generator().manual_seed(1))
        again = g.levels(z, torch.Generator().manual_seed(1))
        final = g(z, torch.Generator().manual_seed(1))
    assert [tuple(x.shape) for x in levels] == [(3, 3, 16, 16), (3, 3, 32, 32), (3, 3, 64, 64)]
    for img in levels:
        assert img.min() >= -1 and img.max() <= 1
    assert torch.equal(final, levels[-1])
    assert all(torch.equal(a, b) for a, b in zip(levels, again, strict=True))
    assert g.z_dim == 100 and g.num_ws == 0


def test_generator_parameter_counts_match_the_hand_count():
    counts = LAPGANGenerator().parameter_counts()
    # Coarse: 100*256*16 + 2*256 + 256*128*16 + 2*128 + 128*3*16 = 940,800.
    # Refiner: 4*64*9 + 2*64 + 64*64*9 + 2*64 + 64*3*9 + 3 = 41,155.
    assert counts == {"16": 940_800, "32": 41_155, "64": 41_155, "total": 1_023_110}
    assert counts["total"] == count_parameters(LAPGANGenerator())


@pytest.mark.parametrize("spectral_norm", [True, False])
def test_each_level_discriminator_gives_one_logit_per_image(spectral_norm):
    d16, d32, d64 = build_lapgan_discriminators(spectral_norm=spectral_norm)
    (_, i16), (c32, h32), (c64, h64) = level_pairs(_images(n=5))
    assert d16(i16).shape == (5,)
    assert d32(c32, h32).shape == (5,)
    assert d64(c64, h64).shape == (5,)
    assert [count_parameters(d) for d in (d16, d32, d64)] == [136_385, 666_049, 2_767_809]


def test_discriminators_reject_the_wrong_resolution():
    with pytest.raises(ValueError, match=r"expected \(N, 3, 16, 16\)"):
        CoarseDiscriminator()(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expected \(N, 3, 32, 32\)"):
        ResidualDiscriminator(32)(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 64, 64))


def test_gradients_reach_every_level_generator_through_its_own_loss():
    torch.manual_seed(0)
    g = LAPGANGenerator(ngf=8)
    d16, d32, d64 = build_lapgan_discriminators(ndf=8)
    levels = g.levels(torch.randn(4, 100), torch.Generator().manual_seed(0))
    # Level-by-level training: each refiner is judged on its own residual.
    up16, up32 = upsample(levels[0]).detach(), upsample(levels[1]).detach()
    noise = torch.zeros(4, 1, 32, 32)
    loss = -d16(levels[0]).mean() - d32(up16, g.refiners[0](up16, noise)).mean()
    loss = loss - d64(up32, g.refiners[1](up32, torch.zeros(4, 1, 64, 64))).mean()
    loss.backward()
    for name, p in g.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---- training: three independent GANs in one loop (ssd_lib.training.lapgan_step) ----------


def _lapgan_trainer(tmp_path, name: str, **overrides):
    from ssd_lib.config import make_config
    from ssd_lib.data.cache import ImageSplit
    from ssd_lib.training.trainer import Trainer

    cfg = make_config("lapgan", "smoke", ngf=8, ndf=8, **overrides)
    images = torch.zeros(8, 3, 64, 64, dtype=torch.uint8)
    return Trainer(cfg, ImageSplit(images), tmp_path / name, "cpu", False)


def _fine_detail(n: int) -> torch.Tensor:
    """A pattern whose every 2x2 block averages to 0: it changes the finest residual h64 of
    an image and leaves its I32 and I16 exactly as they were."""
    sign = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(32, 32)
    return 0.25 * sign.expand(n, 3, 64, 64)


def test_a_lapgan_step_trains_each_level_only_on_its_own_level(tmp_path):
    # Multiples of 1/128 in [-0.5, 0.5]: room for the +-0.25 detail, and every sum the
    # pyramid takes is exact in float32.
    g = torch.Generator().manual_seed(0)
    real = torch.randint(-64, 65, (8, 3, 64, 64), generator=g).float() / 128
    detailed = real + _fine_detail(8)
    assert torch.equal(downsample(detailed), downsample(real))
    a, b = _lapgan_trainer(tmp_path, "a"), _lapgan_trainer(tmp_path, "b")
    stats = a.train_step(real)
    b.train_step(detailed)
    for key in ("loss_d", "loss_g", "d_acc", "loss_d_16", "loss_g_64", "d_acc_32"):
        assert torch.isfinite(stats[key]), key
    for i in range(3):  # the logged means are over the levels
        assert 0 <= float(stats[f"d_acc_{(16, 32, 64)[i]}"]) <= 1
    assert torch.isclose(
        stats["loss_d"], (stats["loss_d_16"] + stats["loss_d_32"] + stats["loss_d_64"]) / 3
    )

    def same(m1: torch.nn.Module, m2: torch.nn.Module) -> bool:
        s1, s2 = m1.state_dict(), m2.state_dict()
        return all(torch.equal(s1[k], s2[k]) for k in s1)

    # Levels 16 and 32 saw identical data: their updated weights are bit-identical.
    assert same(a.G.coarse, b.G.coarse) and same(a.G.refiners[0], b.G.refiners[0])
    assert same(a.D.levels[0], b.D.levels[0]) and same(a.D.levels[1], b.D.levels[1])
    # Level 64 saw other reals, and learnt from them.
    assert not same(a.D.levels[2], b.D.levels[2])
    assert not same(a.G.refiners[1], b.G.refiners[1])


def test_lapgan_config_rejects_what_its_step_does_not_support(tmp_path, monkeypatch):
    from ssd_lib.config import ConfigError, make_config

    with pytest.raises(ConfigError, match=r"discriminator.*'lapgan' exactly when"):
        make_config("lapgan", "smoke", discriminator="sn")
    with pytest.raises(ConfigError, match=r"step_order.*'d_then_g' with generator='lapgan'"):
        make_config("lapgan", "smoke", step_order="g_then_d")
    with pytest.raises(ConfigError, match=r"augment.*'none' with generator='lapgan'"):
        make_config("lapgan", "smoke", augment="diffaugment")
    with pytest.raises(ConfigError, match=r"r1_gamma"):
        make_config("lapgan", "smoke", r1_gamma=1.0)
    monkeypatch.setattr("ssd_lib.training.trainer.rank_and_world", lambda: (0, 2))
    with pytest.raises(ConfigError, match="one process only"):
        _lapgan_trainer(tmp_path, "ddp")


def test_the_lapgan_discriminator_scores_an_image_by_its_own_pyramid():
    from ssd_lib.models.lapgan import LAPGANDiscriminator

    torch.manual_seed(0)
    d = LAPGANDiscriminator(ndf=8)
    x = _images(3)
    for _ in range(20):  # SN's power iteration runs in train mode only: let it converge
        d(x)
    d.eval()
    per_level = [d.score(i, c, t) for i, (c, t) in enumerate(level_pairs(x))]
    assert all(s.shape == (3,) and ((s > 0) & (s < 1)).all() for s in per_level)
    torch.testing.assert_close(d(x), torch.stack(per_level).mean(0))
