"""Weight demodulation: the grouped convolution, its variance guarantee, and the SSD variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssd_lib.models import SSDGenerator, count_parameters
from ssd_lib.models.demod import (
    ModulatedConv2d,
    SSDDemodGenerator,
    demod_generator_parameter_count,
    modulated_conv2d,
)


def _per_sample_weights(weight, styles, demodulate, gain=1.0):
    """The weights of each sample, written out the slow, obvious way."""
    out = []
    for s in styles:
        w = weight * s[None, :, None, None]
        if demodulate:
            w = w / (w.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt() * gain
        out.append(w)
    return out


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_per_sample_loop(demodulate, grouped):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 9, 9, generator=g)
    weight = torch.randn(7, 5, 3, 3, generator=g)
    styles = torch.randn(3, 5, generator=g)
    got = modulated_conv2d(x, weight, styles, demodulate=demodulate, padding=1, grouped=grouped)
    expected = torch.cat(
        [
            F.conv2d(x[i : i + 1], w, padding=1)
            for i, w in enumerate(_per_sample_weights(weight, styles, demodulate))
        ]
    )
    assert got.shape == (3, 7, 9, 9)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grouped", [True, False])
def test_modulated_transposed_conv_equals_per_sample_loop(grouped):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 6, 6, generator=g)
    weight = torch.randn(7, 5, 4, 4, generator=g)  # (C_out, C_in, k, k) for both kinds
    styles = torch.randn(3, 5, generator=g)
    got = modulated_conv2d(
        x, weight, styles, stride=2, padding=1, transposed=True, gain=2.0, grouped=grouped
    )
    expected = torch.cat(
        [
            # F.conv_transpose2d wants (C_in, C_out, k, k)
            F.conv_transpose2d(x[i : i + 1], w.transpose(0, 1), stride=2, padding=1)
            for i, w in enumerate(_per_sample_weights(weight, styles, True, gain=2.0))
        ]
    )
    assert got.shape == (3, 7, 12, 12)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_demodulation_keeps_unit_variance_whatever_the_style_scale(scale):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 32, 20, 20, generator=g)  # unit-variance i.i.d. input
    weight = torch.randn(32, 32, 3, 3, generator=g)
    styles = scale * torch.randn(8, 32, generator=g)
    y = modulated_conv2d(x, weight, styles, padding=1)[:, :, 1:-1, 1:-1]  # no padded border
    assert 0.8 < y.var().item() < 1.25


def test_transposed_layer_with_stride_gain_keeps_unit_variance():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 32, 12, 12, generator=g)
    weight = torch.randn(32, 32, 4, 4, generator=g)
    styles = 10 * torch.randn(8, 32, generator=g)
    y = modulated_conv2d(x, weight, styles, stride=2, padding=1, transposed=True, gain=2.0)
    assert y.shape == (8, 32, 24, 24)
    assert 0.8 < y[:, :, 2:-2, 2:-2].var().item() < 1.25


def test_generator_makes_n_3_64_64_images_in_minus_one_one():
    torch.manual_seed(0)
    g = SSDDemodGenerator()
    with torch.no_grad():
        img = g(torch.randn(2, 100))
        per_layer = g.synthesis(g.mapping(torch.randn(2, 100))[:, None].expand(-1, 4, -1))
    assert img.shape == per_layer.shape == (2, 3, 64, 64)
    assert img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1
    assert img.std() > 0.05  # not collapsed to a constant at initialisation
    assert g.num_ws == 4 and g.z_dim == g.w_dim == 100


def test_parameter_count_equals_the_hand_count():
    g = SSDDemodGenerator()
    assert sum(p.numel() for p in g.parameters()) == 3_686_540  # module docstring
    assert demod_generator_parameter_count() == 3_686_540
    # 92,364 fewer than SSD: AdaIN's 193,920 against 100,596 affine + 960 bias parameters.
    assert count_parameters(SSDGenerator()) - 3_686_540 == 92_364
    for kwargs in ({"ngf": 16}, {"tied_mapping": False}, {"ngf": 8, "mapping_layers": 2}):
        small = SSDDemodGenerator(**kwargs)
        assert count_parameters(small) == demod_generator_parameter_count(**kwargs), kwargs


def test_gradients_reach_mapping_affine_and_conv_weights():
    torch.manual_seed(0)
    g = SSDDemodGenerator(ngf=16)
    g(torch.randn(3, 100)).square().mean().backward()
    named = dict(g.named_parameters())
    for name in ["mapping.layers.0.weight", "const", "to_rgb.weight"] + [
        f"convs.{i}.{p}" for i in range(4) for p in ("weight", "bias", "affine.weight")
    ]:
        grad = named[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_modulated_conv_rejects_styles_of_the_wrong_width():
    layer = ModulatedConv2d(4, 6, 3, w_dim=10)
    with pytest.raises(ValueError, match=r"styles has shape \(2, 5\); expected \(2, 4\)"):
        modulated_conv2d(torch.randn(2, 4, 5, 5), layer.weight, torch.randn(2, 5))
    assert layer(torch.randn(2, 4, 5, 5), torch.randn(2, 10)).shape == (2, 6, 5, 5)


def test_modulated_weights_start_at_the_scale_of_ssds_convolutions():
    """Adam moves every weight by about the learning rate per step, so weights stored as
    N(0, 1) (StyleGAN2's run-time scaling) would learn about a hundred times slower,
    relative to their size, than SSD's under the same learning rate; with demodulation the
    scale changes nothing in the forward pass. Each modulated layer starts within a factor
    of 4 of the SSD layer it replaces."""
    from ssd_lib.models.ssd import SSDGenerator

    torch.manual_seed(0)
    ssd, demod = SSDGenerator(), SSDDemodGenerator()
    for i in range(4):
        ratio = float(demod.convs[i].weight.detach().std() / ssd.convs[i].weight.detach().std())
        assert 0.25 < ratio < 4, (i, ratio)


def test_the_first_images_are_as_quiet_as_ssds():
    """At initialisation the demodulated generator's unit-variance features, through SSD's
    output layer, drew a loud pixel pattern (SD 0.51); its output layer starts scaled down so
    the first images are near-flat, as SSD's. Pixel SD and neighbour difference within a
    factor of 2 of SSD's, on two seeds; and without the scale, several times SSD's."""
    import ssd_lib.models.demod as demod

    for seed in (0, 1):
        s = demod.first_image_stats(seed=seed)
        for key in ("pixel_sd", "neighbour_rms"):
            assert 0.5 < s["demod"][key] / s["ssd"][key] < 2, (seed, s)
    original = demod.TO_RGB_INIT_SCALE
    try:
        demod.TO_RGB_INIT_SCALE = 1.0
        loud = demod.first_image_stats(seed=0)
    finally:
        demod.TO_RGB_INIT_SCALE = original
    assert loud["demod"]["pixel_sd"] > 3 * loud["ssd"]["pixel_sd"], loud


def test_both_generators_start_with_nearly_one_image_for_every_code():
    """SSD's tied mapping barely varies w with z at initialisation, so both generators start
    by drawing almost the same image for every code; the demodulated one even more so
    (docs/beyond.md, "When the codes start to matter")."""
    import ssd_lib.models.demod as demod

    s = demod.first_image_stats(n=64, seed=0)
    for name in ("ssd", "demod"):
        assert s[name]["w_sd_across_codes"] < 0.1 * s[name]["w_mean_abs"], s
        assert s[name]["coarse_spread"] < 0.005, s  # the training images': about 0.18
    assert s["demod"]["coarse_spread"] < 0.5 * s["ssd"]["coarse_spread"], s


@pytest.mark.parametrize("grouped", [True, False])
def test_modulated_transposed_conv_gradients_equal_the_per_sample_loop(grouped):
    """The fast paths' gradients (input, weights, styles), not only their outputs, equal
    those of the per-sample loop, in float64."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 6, 6, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(7, 5, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    styles = (torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    fast = modulated_conv2d(
        x, weight, styles, stride=2, padding=1, transposed=True, gain=2.0, grouped=grouped
    )
    slow = torch.cat(
        [
            F.conv_transpose2d(x[i : i + 1], w.transpose(0, 1), stride=2, padding=1)
            for i, w in enumerate(_per_sample_weights(weight, styles, True, gain=2.0))
        ]
    )
    got = torch.autograd.grad(fast.pow(2).sum(), (x, weight, styles))
    want = torch.autograd.grad(slow.pow(2).sum(), (x, weight, styles))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
