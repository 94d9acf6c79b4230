"""The networks match docs/paper.md: parameter counts, shapes, and the style interface."""

from __future__ import annotations

import pytest
import torch

from ssd_lib.config import make_config
from ssd_lib.models import (
    DCGANGenerator,
    Discriminator,
    MappingDCGANGenerator,
    SSDGenerator,
    StyleGANDiscriminator,
    StyleGANGenerator,
    build_discriminator,
    build_generator,
    count_parameters,
    format_millions,
    summary_tool_count,
)


def test_discriminator_has_2765568_parameters_with_and_without_sn():
    assert count_parameters(Discriminator(spectral_norm=True)) == 2_765_568
    assert count_parameters(Discriminator(spectral_norm=False)) == 2_765_568


def test_dcgan_generator_and_total_match_paper():
    g = DCGANGenerator()
    assert count_parameters(g) == 3_576_704
    assert count_parameters(g) + count_parameters(Discriminator(spectral_norm=False)) == 6_342_272
    assert format_millions(6_342_272) == "6.342"


def test_ssd_generator_tied_and_untied_counts():
    tied, untied = SSDGenerator(tied_mapping=True), SSDGenerator(tied_mapping=False)
    assert count_parameters(tied) == 3_778_904
    assert count_parameters(untied) == 3_809_204
    # The parts docs/paper.md lists: mapping 10,100 + constant 100 + convs + AdaIN linears.
    assert count_parameters(tied.mapping) == 10_100
    assert tied.const.numel() == 100
    assert sum(count_parameters(c) for c in tied.convs) + count_parameters(tied.to_rgb) == 3_574_784
    assert sum(count_parameters(n) for n in tied.norms) == 193_920


def test_summary_tool_count_reproduces_the_papers_numbers():
    g, d = SSDGenerator(), Discriminator()
    g_count = summary_tool_count(g, torch.randn(2, 100))
    d_count = summary_tool_count(d, torch.randn(2, 3, 64, 64))
    assert g_count == 3_809_104  # mapping counted 4x, constant not at all
    assert d_count == 2_765_568
    assert format_millions(g_count + d_count) == "6.574"
    # For a network without reuse or bare parameters the tool's count is the true count.
    dc = DCGANGenerator()
    assert summary_tool_count(dc, torch.randn(2, 100)) == count_parameters(dc)


def test_mapping_is_tied_across_its_four_passes():
    g = SSDGenerator()
    assert len(g.mapping.layers) == 1 and g.mapping.n_layers == 4
    z = torch.randn(3, 100)
    layer = g.mapping.layers[0]
    x = torch.nn.functional.normalize(z, dim=1)
    for _ in range(4):
        x = torch.nn.functional.leaky_relu(layer(x), 0.2)
    torch.testing.assert_close(g.mapping(z), x)


def test_stylegan_baseline_full_width_within_one_percent_of_47_625m():
    total = count_parameters(StyleGANGenerator()) + count_parameters(StyleGANDiscriminator())
    assert total == 47_621_124  # the figure docs and the README quote
    assert abs(total / 47_625_000 - 1) < 0.01
    small = count_parameters(StyleGANGenerator(width=0.25))
    assert small < count_parameters(StyleGANGenerator()) / 4


@pytest.mark.parametrize("preset", ["paper", "dcgan", "no_sn", "no_adain", "stylegan"])
def test_every_preset_builds_networks_with_64px_io(preset):
    cfg = make_config(preset, "smoke")
    g, d = build_generator(cfg), build_discriminator(cfg)
    img = g(torch.randn(4, cfg.nz))
    assert img.shape == (4, 3, 64, 64)
    out = d(img)
    assert out.shape == (4,)
    if cfg.loss == "bce":
        assert ((out > 0) & (out < 1)).all()


def test_sn_is_on_the_three_middle_convs_only():
    d = Discriminator(spectral_norm=True)
    assert not hasattr(d.first, "weight_orig") and not hasattr(d.last, "weight_orig")
    assert all(hasattr(c, "weight_orig") for c in d.middle)
    assert all(not hasattr(c, "weight_orig") for c in Discriminator(spectral_norm=False).middle)


@pytest.mark.parametrize("make", [SSDGenerator, lambda: StyleGANGenerator(width=0.0625)])
def test_synthesis_accepts_one_w_or_one_per_layer(make):
    g = make().eval()
    z = torch.randn(2, g.z_dim)
    w = g.mapping(z)
    ws = w.unsqueeze(1).repeat(1, g.num_ws, 1)
    torch.manual_seed(0)
    a = g.synthesis(w)
    torch.manual_seed(0)
    b = g.synthesis(ws)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="ws must have shape"):
        g.synthesis(torch.randn(2, g.num_ws + 1, g.w_dim))


def test_style_mixing_takes_coarse_layers_from_a_and_fine_from_b():
    g = SSDGenerator().eval()
    wa, wb = g.mapping(torch.randn(1, 100)), g.mapping(torch.randn(1, 100))
    mixed = g.mix_styles(wa, wb, crossover=2)
    torch.testing.assert_close(mixed[:, :2], wa.unsqueeze(1).expand(-1, 2, -1))
    torch.testing.assert_close(mixed[:, 2:], wb.unsqueeze(1).expand(-1, 2, -1))
    assert not torch.equal(g.synthesis(mixed), g.synthesis(wa))
    torch.testing.assert_close(g.synthesis(g.mix_styles(wa, wb, 4)), g.synthesis(wa))


def test_truncation_pulls_towards_tracked_mean_w():
    g = SSDGenerator().train()
    g(torch.randn(64, 100))  # training forward passes update w_avg
    assert g.w_avg.abs().sum() > 0
    g.eval()
    before = g.w_avg.clone()
    g(torch.randn(8, 100))  # eval passes do not
    torch.testing.assert_close(g.w_avg, before)
    w = g.mapping(torch.randn(5, 100))
    torch.testing.assert_close(g.truncate(w, 0.0), g.w_avg.expand(5, -1))
    torch.testing.assert_close(g.truncate(w, 1.0), w)
    torch.testing.assert_close(g.truncate(w, 0.5), (w + g.w_avg) / 2)
    with pytest.raises(ValueError, match="truncation_psi"):
        g.truncate(w, -1.0)


def test_mapping_dcgan_ablation_has_no_adain_and_one_style():
    g = MappingDCGANGenerator()
    assert not any(type(m).__name__ == "AdaIN" for m in g.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
    assert count_parameters(g) == 3_576_704 + 10_100
    assert g.num_ws == 1


def test_stylegan_noise_inputs_change_output_unless_fixed():
    g = StyleGANGenerator(width=0.0625).eval()
    for layer in g.layers:  # noise weights start at 0; give them weight to see their effect
        torch.nn.init.constant_(layer.noise.weight, 0.5)
    w = g.mapping(torch.randn(2, 512))
    assert not torch.equal(g.synthesis(w), g.synthesis(w))
    noise = [torch.randn(2, 1, r, r) for r in (4, 4, 8, 8, 16, 16, 32, 32, 64, 64)]
    torch.testing.assert_close(g.synthesis(w, noise=noise), g.synthesis(w, noise=noise))


# ------------------------------------------------- inputs are validated where they enter


@pytest.mark.parametrize(
    "make",
    [
        lambda: Discriminator(spectral_norm=True),
        lambda: Discriminator(spectral_norm=False),
        lambda: StyleGANDiscriminator(width=0.0625),
    ],
    ids=["sn", "plain", "stylegan"],
)
@pytest.mark.parametrize(
    "shape", [(2, 3, 128, 128), (2, 1, 64, 64), (2, 3, 64, 32), (3, 64, 64)], ids=str
)
def test_discriminators_refuse_images_of_the_wrong_size_or_channel_count(make, shape):
    d = make()
    with pytest.raises(ValueError) as err:
        d(torch.randn(*shape))
    assert str(err.value) == (
        f"{type(d).__name__} input x has shape {shape}; expected (N, 3, 64, 64) images "
        "(resize to 64x64 first)"
    )


@pytest.mark.parametrize(
    "make",
    [
        SSDGenerator,
        DCGANGenerator,
        MappingDCGANGenerator,
        lambda: StyleGANGenerator(width=0.0625),
    ],
    ids=["ssd", "dcgan", "mapping_dcgan", "stylegan"],
)
def test_generators_refuse_codes_of_the_wrong_width(make):
    g = make()
    for bad in (torch.randn(2, g.z_dim + 1), torch.randn(g.z_dim), torch.randn(2, g.z_dim, 2)):
        with pytest.raises(ValueError, match=rf"z has shape \({', '.join(map(str, bad.shape))}"):
            g(bad)
    assert g(torch.randn(2, g.z_dim)).shape == (2, 3, 64, 64)


@pytest.mark.parametrize("make", [SSDGenerator, MappingDCGANGenerator])
def test_synthesis_refuses_styles_of_the_wrong_width(make):
    g = make()
    with pytest.raises(ValueError, match=r"ws must have shape \(N, 100\) or .* got \(2, 99\)"):
        g.synthesis(torch.randn(2, 99))


def test_truncation_and_mixing_arguments_are_checked():
    g = SSDGenerator().eval()
    w = g.mapping(torch.randn(2, 100))
    for psi in ("0.5", float("nan"), 2.5, True):
        with pytest.raises(ValueError, match=r"truncation_psi=.* allowed: a number in \[0, 2\]"):
            g.truncate(w, psi)
    for crossover in (1.5, -1, 5, True):
        with pytest.raises(ValueError, match=r"crossover=.* allowed: an integer in \[0, 4\]"):
            g.mix_styles(w, w, crossover)


def test_shape_checks_trace_under_torch_compile_without_graph_breaks():
    d, g = Discriminator().eval(), SSDGenerator().eval()
    # fullgraph=True fails on any graph break; dynamic=True makes the batch size symbolic.
    cd = torch.compile(d, backend="eager", fullgraph=True, dynamic=True)
    cg = torch.compile(g, backend="eager", fullgraph=True, dynamic=True)
    z = torch.randn(3, 100)
    torch.testing.assert_close(cg(z), g(z))
    x = torch.randn(5, 3, 64, 64)
    torch.testing.assert_close(cd(x), d(x))
    # A compiled model without fullgraph raises the same clear error.
    with pytest.raises(ValueError, match=r"input x has shape \(2, 1, 64, 64\)"):
        torch.compile(d, backend="eager")(torch.randn(2, 1, 64, 64))


# ------------------------- sampling and latent analyses (the generators' public entry points)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, r"n=0 is invalid; allowed: an integer >= 1"),
        ({"n": 2.0}, r"n=2.0 is invalid; allowed: an integer >= 1"),
        ({"n": True}, r"n=True is invalid"),
        ({"z_dim": 0}, r"z_dim=0 is invalid; allowed: an integer >= 1"),
        ({"seed": -1}, r"seed=-1 is invalid; allowed: an integer in \[0, 2\*\*32 - 1\]"),
        ({"seed": "1"}, r"seed='1' is invalid"),
    ],
)
def test_sample_z_names_a_bad_count_or_seed(kwargs, message):
    from ssd_lib.generation.sampling import sample_z

    args = {"n": 2, "z_dim": 100, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        sample_z(**args)


def test_sample_z_accepts_numpy_integers():
    import numpy as np

    from ssd_lib.generation.sampling import sample_z

    torch.testing.assert_close(sample_z(np.int64(3), 100, np.int64(7)), sample_z(3, 100, 7))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, r"batch_size=0 is invalid; allowed: an integer >= 1"),
        ({"batch_size": 1.5}, r"batch_size=1.5 is invalid"),
        ({"truncation_psi": 2.5}, r"truncation_psi=2.5 is invalid; allowed: a number in \[0, 2\]"),
        ({"truncation_psi": float("nan")}, r"truncation_psi=nan is invalid"),
        ({"truncation_psi": "0.7"}, r"truncation_psi='0.7' is invalid"),
        ({"noise_seed": -1}, r"noise_seed=-1 is invalid"),
        ({"value_range": "[0, 255]"}, r"value_range='\[0, 255\]' is not supported"),
        ({"z": torch.zeros(0, 100)}, r"z \(shape \(0, 100\)\) is invalid; allowed: a tensor"),
        ({"z": [[0.0] * 100]}, r"z \(list\) is invalid"),
        ({"z": torch.zeros(2, 99)}, r"z has shape \(2, 99\); expected \(N, 100\)"),
    ],
)
def test_generate_names_a_bad_argument_before_any_work(kwargs, message):
    from ssd_lib.generation.sampling import generate

    args = {"z": torch.zeros(2, 100), "value_range": "[-1, 1]", **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(SSDGenerator(), **args)


@pytest.fixture(scope="module")
def small_ssd():
    torch.manual_seed(0)
    return SSDGenerator().eval()


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda L, g, z: L.interpolate(z[0], z[1], 1),
            r"steps=1 is invalid; allowed: an integer >= 2",
        ),
        (
            lambda L, g, z: L.interpolation_images(g, "[-1, 1]", z[0], z[1], 2.5),
            r"steps=2.5 is invalid",
        ),
        (
            lambda L, g, z: L.ear_preserving_interpolation(g, "[-1, 1]", z[0], z[1], z[0], 0),
            r"steps=0 is invalid",
        ),
        (
            lambda L, g, z: L.factor_preserving_path(z[0], z[1], z[0], 3, level="up"),
            r"level='up' is invalid; allowed: a finite number or None",
        ),
        (
            lambda L, g, z: L.truncation_images(g, "[-1, 1]", z, []),
            r"psis=\[\] is invalid; allowed: one or more numbers in \[0, 2\]",
        ),
        (
            lambda L, g, z: L.truncation_images(g, "[-1, 1]", z, [0.5, 3.0]),
            r"psis=\[0.5, 3.0\] is invalid",
        ),
        (
            lambda L, g, z: L.truncation_images(g, "[-1, 1]", z, "0.5"),
            r"psis='0.5' is invalid",
        ),
        (
            lambda L, g, z: L.walk_images(g, "[-1, 1]", g.mapping(z), z[0], [0.0, float("inf")]),
            r"amounts=\[0.0, inf\] is invalid; allowed: one or more finite numbers",
        ),
        (
            lambda L, g, z: L.style_mixing_images(g, "[-1, 1]", z, z, 5),
            r"crossover=5 is invalid; allowed: an integer in \[0, 4\]",
        ),
        (
            lambda L, g, z: L.style_mixing_images(g, "[-1, 1]", z, z, 1.5),
            r"crossover=1.5 is invalid",
        ),
        (lambda L, g, z: L.render(g, z, "[-1, 1]", "z", batch_size=0), r"batch_size=0 is invalid"),
        (
            lambda L, g, z: L.render(g, z, "[-1, 1]", "z", noise_seed=-2),
            r"noise_seed=-2 is invalid",
        ),
        (lambda L, g, z: L.map_to_w(g, z, batch_size=-1), r"batch_size=-1 is invalid"),
        (lambda L, g, z: L.sample_latents(g, 0, 0), r"n=0 is invalid; allowed: an integer >= 1"),
        (lambda L, g, z: L.sample_latents(g, 4, -3), r"seed=-3 is invalid"),
    ],
)
def test_latent_analyses_name_a_bad_count_psi_or_step(small_ssd, call, message):
    import ssd_lib.analysis.latent as L

    z = torch.randn(2, 100)
    with pytest.raises(ValueError, match=message):
        call(L, small_ssd, z)
