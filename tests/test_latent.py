"""Tests for the latent-space analysis (ssd_lib.analysis.latent and ssd_lib.analysis.ppl).

Untrained generators and synthetic latents/labels: the tests check the geometry and the
bookkeeping, not what a trained GAN has learned.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ssd_lib.analysis.latent import (
    ear_preserving_interpolation,
    factor_preserving_path,
    interpolate,
    interpolation_images,
    label_samples,
    map_to_w,
    render,
    sample_latents,
    style_mixing_figure,
    style_mixing_images,
    truncation_images,
    walk_images,
)
from ssd_lib.analysis.ppl import path_length, toy_feature_fn
from ssd_lib.analysis.probes import (
    direction_accuracy,
    factor_direction,
    probe_bar_figure,
    probe_factors,
    probe_spaces,
)
from ssd_lib.generation.sampling import generate, sample_z
from ssd_lib.metrics.toy import FactorNet, FactorNetResult
from ssd_lib.models import DCGANGenerator, SSDGenerator, StyleGANGenerator
from ssd_lib.models.stylegan import NoiseInput

VR = "[-1, 1]"


def seeded(build, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@pytest.fixture(scope="module")
def ssd():
    return seeded(SSDGenerator).eval()


@pytest.fixture(scope="module")
def stylegan():
    """A tiny StyleGAN whose noise inputs matter (untrained ones are scaled by 0)."""
    g = seeded(lambda: StyleGANGenerator(width=0.0625)).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, NoiseInput):
                m.weight.fill_(0.5)
    return g


@pytest.fixture(scope="module")
def toy_net():
    """An untrained, very small factor net: enough to check shapes and bookkeeping."""
    names = ["left_ear_up", "fur_colour", "head_rotation_deg"]
    net = seeded(lambda: FactorNet(names, feature_dim=8, widths=(8, 8, 8, 8))).eval()
    return FactorNetResult(net, 0, "0" * 64, {}, 0.0, {})


class ConstantGenerator(nn.Module):
    """Ignores z: every image is the same grey picture. No W space."""

    num_ws, z_dim = 0, 8

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Parameter(torch.linspace(-0.5, 0.5, 3 * 64 * 64).reshape(1, 3, 64, 64))

    def forward(self, z):
        return self.image.expand(len(z), -1, -1, -1)


class LinearStyleGenerator(nn.Module):
    """mapping = identity, image = w @ A: linear in z and in w. A's entries ~ N(0, 0.01 / 64),
    so every pixel has std 0.1 and is never clipped at +-1."""

    num_ws, z_dim, w_dim = 1, 64, 64

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("A", torch.randn(64, 3 * 64 * 64, generator=g) * 0.1 / 8)

    def mapping(self, z):
        return z

    def synthesis(self, ws):
        return (ws @ self.A).reshape(-1, 3, 64, 64)


def pixels(images: torch.Tensor) -> torch.Tensor:
    return images.flatten(1).double()


def same_images(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to batch-size numerics: a convolution over 5 images and one over 2 may round
    differently (~4e-6 on StyleGAN's outputs), which moves a pixel across a uint8 boundary
    now and then. Allow 1 grey level in at most 0.1 % of the values; different codes give
    images that differ almost everywhere."""
    d = (a.int() - b.int()).abs()
    return a.shape == b.shape and int(d.max()) <= 1 and (d > 0).float().mean() <= 1e-3


pixels.tag = "pixels"
pixels.feature_network = "raw pixels in [0, 255]"


# ------------------------------------------------------------------------- codes and labels


def test_sample_latents_are_seeded_and_w_is_the_mapping_of_z(ssd):
    z, w = sample_latents(ssd, 5, seed=3)
    assert z.shape == (5, 100) and w.shape == (5, 100)
    assert torch.equal(z, sample_z(5, 100, 3))
    assert torch.equal(w, ssd.mapping(z).detach())
    z2, w2 = sample_latents(ssd, 5, seed=3)
    assert torch.equal(z, z2) and torch.equal(w, w2)


def test_dcgan_raises_a_clear_error_for_w_space_operations():
    g = DCGANGenerator().eval()
    z = sample_z(2, 100, 0)
    with pytest.raises(ValueError, match="DCGANGenerator has no W space"):
        sample_latents(g, 4, seed=0)
    with pytest.raises(ValueError, match="DCGANGenerator has no W space"):
        interpolation_images(g, VR, z[0], z[1], 3, space="w")
    with pytest.raises(ValueError, match="DCGANGenerator has no W space"):
        truncation_images(g, VR, z, [0.5])
    with pytest.raises(ValueError, match="DCGANGenerator has no W space"):
        style_mixing_images(g, VR, z, z, 0)
    # Z-space interpolation needs no mapping: 3 images, the first is G(z_a).
    images = interpolation_images(g, VR, z[0], z[1], 3, space="z")
    assert images.shape == (3, 3, 64, 64)
    assert same_images(images[0], generate(g, z[:1], VR)[0])


def test_label_samples_labels_every_image_with_each_factor(ssd, toy_net):
    z, w, pred, images = label_samples(ssd, VR, toy_net, n=6, seed=1)
    assert z.shape == (6, 100) and w.shape == (6, 100)
    assert images.dtype == torch.uint8 and images.shape == (6, 3, 64, 64)
    assert torch.equal(images, generate(ssd, z, VR))  # same codes, same batch
    assert set(pred) == {"left_ear_up", "fur_colour", "head_rotation_deg"}
    assert set(np.unique(pred["left_ear_up"])) <= {0, 1}
    assert set(np.unique(pred["fur_colour"])) <= set(range(6))
    assert np.all(np.abs(pred["head_rotation_deg"]) <= 20.0)  # degrees, clipped to the range
    _, w_dc, pred_dc, _ = label_samples(seeded(DCGANGenerator).eval(), VR, toy_net, n=4, seed=1)
    assert w_dc is None and len(pred_dc["fur_colour"]) == 4


# ------------------------------------------------------------------------------- probes


@pytest.fixture(scope="module")
def ring_data():
    """z ~ N(0, I_8); the factor is whether z0^2 + z1^2 exceeds its median: a ring, which no
    hyperplane in z separates (chance), but w = (z, z0^2 + z1^2) encodes it linearly."""
    z = np.random.default_rng(0).standard_normal((1000, 8))
    r = z[:, 0] ** 2 + z[:, 1] ** 2
    w = np.concatenate([z, r[:, None]], axis=1)
    labels = {
        "left_ear_up": (r > np.median(r)).astype(np.int64),  # binary
        "head_rotation_deg": r,  # continuous
        "eye_patch": np.zeros(1000, np.int64),  # one class only
    }
    return z, w, labels


def test_probe_reads_a_factor_linear_in_w_but_not_in_z(ring_data):
    z, w, labels = ring_data
    pz = probe_factors(z, labels, test_fraction=0.3, seed=0).set_index("factor")
    pw = probe_factors(w, labels, test_fraction=0.3, seed=0).set_index("factor")
    assert pw.loc["left_ear_up", "n_test"] == 300 and pw.loc["left_ear_up", "n_train"] == 700
    assert pw.loc["left_ear_up", "metric"] == "accuracy"
    assert pw.loc["left_ear_up", "score"] > 0.97  # a threshold on the last coordinate
    assert abs(pw.loc["left_ear_up", "chance"] - 0.5) < 0.05  # median split: half and half
    assert pz.loc["left_ear_up", "score"] < 0.6
    assert pw.loc["head_rotation_deg", "metric"] == "r2"
    assert pw.loc["head_rotation_deg", "score"] > 0.99
    assert pz.loc["head_rotation_deg", "score"] < 0.05
    assert pw.loc["head_rotation_deg", "chance"] == 0.0
    assert pw.loc["eye_patch", "status"].startswith("skipped")
    assert np.isnan(pw.loc["eye_patch", "score"])


def test_probe_spaces_table_and_bar_figure(ring_data):
    z, w, labels = ring_data
    df = probe_spaces("SSD (SN)", {"z": z, "w": w}, labels)
    df_dc = probe_spaces("DCGAN", {"z": z, "w": None}, labels)  # no W space: left out
    assert list(df.columns[:2]) == ["model", "space"]
    assert len(df) == 6 and len(df_dc) == 3 and set(df_dc["space"]) == {"z"}
    fig = probe_bar_figure(__import__("pandas").concat([df, df_dc]), label="test run")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["SSD (SN)", "DCGAN"]


def test_factor_direction_recovers_the_true_normal():
    rng = np.random.default_rng(1)
    truth = rng.standard_normal(16)
    truth /= np.linalg.norm(truth)
    w = rng.standard_normal((2000, 16))
    y = (w @ truth > 0).astype(np.int64)
    for method in ("logistic", "mean_diff"):
        d = factor_direction(w, y, method=method)
        assert d.shape == (16,) and d.dtype == torch.float32
        assert abs(float(d.norm()) - 1.0) < 1e-6
        assert float(d.double() @ torch.from_numpy(truth)) > 0.95  # cosine; sign: towards 1
        assert direction_accuracy(w, y, d) > 0.95
    with pytest.raises(ValueError, match="both classes"):
        factor_direction(w, np.zeros(2000), method="logistic")
    with pytest.raises(ValueError, match="method='svm'"):
        factor_direction(w, y, method="svm")


# ---------------------------------------------------------------------------- interpolation


def test_interpolate_keeps_endpoints_and_slerp_keeps_norms():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(10, generator=g), torch.randn(10, generator=g)
    a, b = 3 * a / a.norm(), 3 * b / b.norm()
    path = interpolate(a, b, 5, "lerp")
    assert path.shape == (5, 10)
    assert torch.equal(path[0], a) and torch.allclose(path[-1], b)
    assert torch.allclose(path[2], (a + b) / 2)
    arc = interpolate(a, b, 7, "slerp")
    assert torch.allclose(arc[0], a, atol=1e-6) and torch.allclose(arc[-1], b, atol=1e-6)
    assert torch.allclose(arc.norm(dim=1), torch.full((7,), 3.0), atol=1e-5)
    e1, e2 = torch.eye(2)
    mid = interpolate(e1, e2, 3, "slerp")[1]  # 45 degrees between the two axes
    assert torch.allclose(mid, torch.tensor([1.0, 1.0]) / math.sqrt(2), atol=1e-6)
    with pytest.raises(ValueError, match="mode='cubic'"):
        interpolate(a, b, 3, "cubic")
    with pytest.raises(ValueError, match="steps=1"):
        interpolate(a, b, 1)


@pytest.mark.parametrize("name", ["ssd", "stylegan"])
def test_w_interpolation_starts_and_ends_at_the_endpoint_images(name, request):
    g = request.getfixturevalue(name)
    z = sample_z(2, g.z_dim, 5)
    images = interpolation_images(g, VR, z[0], z[1], 5, space="w", noise_seed=7)
    assert images.shape == (5, 3, 64, 64) and images.dtype == torch.uint8
    ends = render(g, map_to_w(g, z), VR, "w", noise_seed=7)
    assert same_images(images[0], ends[0]) and same_images(images[-1], ends[1])
    assert not same_images(images[0], images[-1])
    # Two pairs at once: one row of 5 per pair.
    z2 = sample_z(2, g.z_dim, 6)
    rows = interpolation_images(g, VR, z, z2, 5, space="z", noise_seed=7)
    assert rows.shape == (10, 3, 64, 64)
    assert same_images(rows[5], render(g, z[1:], VR, "z", noise_seed=7)[0])


def test_walk_with_amount_zero_is_the_start_image(ssd):
    _, w = sample_latents(ssd, 2, seed=2)
    d = torch.zeros(100)
    d[0] = 1.0
    images = walk_images(ssd, VR, w, d, [0.0, 2.0, 4.0])
    assert images.shape == (6, 3, 64, 64)
    start = render(ssd, w, VR, "w")
    assert same_images(images[0], start[0]) and same_images(images[3], start[1])
    assert not same_images(images[0], images[2])


def test_factor_preserving_path_holds_the_projection_and_moves_the_rest(ssd):
    g = torch.Generator().manual_seed(0)
    a, b, d = (torch.randn(6, generator=g) for _ in range(3))
    u = d / d.norm()
    path = factor_preserving_path(a, b, d, steps=4)
    assert torch.allclose(path @ u, torch.full((4,), float(a @ u)), atol=1e-5)
    assert torch.allclose(path[0], a, atol=1e-5)  # the start already has its own level
    assert torch.allclose(path[-1] - (path[-1] @ u) * u, b - (b @ u) * u, atol=1e-5)
    held = factor_preserving_path(a, b, d, steps=4, level=2.5)
    assert torch.allclose(held @ u, torch.full((4,), 2.5), atol=1e-5)
    z = sample_z(2, 100, 3)
    images = ear_preserving_interpolation(ssd, VR, z[0], z[1], torch.ones(100), steps=4)
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.uint8


# ---------------------------------------------------------------- truncation, style mixing


def test_truncation_psi_one_is_untruncated_and_psi_zero_is_w_avg(ssd):
    g = seeded(SSDGenerator).eval()
    g.w_avg.copy_(map_to_w(g, sample_z(64, 100, 9)).mean(0))
    z = sample_z(3, 100, 4)
    images = truncation_images(g, VR, z, [1.0, 0.5, 0.0])  # row per z, column per psi
    assert images.shape == (9, 3, 64, 64)
    cols = images.reshape(3, 3, 3, 64, 64)
    assert same_images(cols[:, 0], generate(g, z, VR))
    # psi = 0: every row is the image of w_avg (same batch, so bit-identical).
    assert torch.equal(cols[0, 2], cols[1, 2]) and torch.equal(cols[0, 2], cols[2, 2])
    assert same_images(cols[0, 2], render(g, g.w_avg[None], VR, "w")[0])
    assert not same_images(cols[0, 1], cols[1, 1])


@pytest.mark.parametrize("name", ["ssd", "stylegan"])
def test_style_mixing_extremes_reproduce_the_row_and_column_images(name, request):
    g = request.getfixturevalue(name)
    z_rows, z_cols = sample_z(2, g.z_dim, 1), sample_z(3, g.z_dim, 2)
    row_img = render(g, map_to_w(g, z_rows), VR, "w")
    col_img = render(g, map_to_w(g, z_cols), VR, "w")
    all_rows = style_mixing_images(g, VR, z_rows, z_cols, crossover=g.num_ws).reshape(2, 3, -1)
    all_cols = style_mixing_images(g, VR, z_rows, z_cols, crossover=0).reshape(2, 3, -1)
    for i in range(2):
        for j in range(3):
            assert same_images(all_rows[i, j], row_img[i].flatten())
            assert same_images(all_cols[i, j], col_img[j].flatten())
    mixed = style_mixing_images(g, VR, z_rows, z_cols, crossover=2).reshape(2, 3, -1)
    assert not same_images(mixed[0, 0], row_img[0].flatten())
    assert not same_images(mixed[0, 0], col_img[0].flatten())


@pytest.mark.parametrize("name", ["ssd", "stylegan"])
def test_style_mixing_figure_shows_the_sources_on_its_heads(name, request):
    g = request.getfixturevalue(name)
    z_rows, z_cols = sample_z(2, g.z_dim, 1), sample_z(3, g.z_dim, 2)
    fig = style_mixing_figure(g, VR, z_rows, z_cols, 2, "title", "label")
    assert len(fig.axes) == (2 + 1) * (3 + 1)
    axes = np.array(fig.axes).reshape(3, 4)
    assert not axes[0, 0].images and not axes[0, 0].axison  # the empty corner

    def shown(ax):
        return torch.from_numpy(np.array(ax.images[0].get_array())).permute(2, 0, 1)

    row_img = render(g, map_to_w(g, z_rows), VR, "w")
    col_img = render(g, map_to_w(g, z_cols), VR, "w")
    mixed = style_mixing_images(g, VR, z_rows, z_cols, crossover=2)
    for j in range(3):
        assert same_images(shown(axes[0, j + 1]), col_img[j])
        assert axes[0, j + 1].get_title() == f"column source {j + 1}"
    for i in range(2):
        assert same_images(shown(axes[i + 1, 0]), row_img[i])
        assert axes[i + 1, 0].get_ylabel() == f"row source {i + 1}"
        for j in range(3):
            assert torch.equal(shown(axes[i + 1, j + 1]), mixed[i * 3 + j])
    text = fig._suptitle.get_text().replace("\n", " ")
    n = g.num_ws
    assert f"coarse styles (layers 1-2 of {n}) from row source i" in text
    fine = f"layer 3 of {n}" if n == 3 else f"layers 3-{n} of {n}"
    assert f"fine styles ({fine}) from column source j" in text


# --------------------------------------------------------------------- perceptual path length


def test_ppl_of_a_constant_generator_is_zero():
    r = path_length(ConstantGenerator(), VR, pixels, n=50, batch_size=20, show_progress=False)
    assert r.mean == 0.0 and r.median == 0.0 and r.values.shape == (50,)
    assert r.name == "PPL-pixels" and r.feature_network == "raw pixels in [0, 255]"


def test_ppl_of_a_linear_generator_in_w_matches_the_closed_form():
    """image = w A, pixels = 127.5 (image + 1): each pair gives 127.5^2 |(w2 - w1) A|^2, whose
    expectation over w1, w2 ~ N(0, I) is 127.5^2 * 2 * ||A||_F^2 (about 4.0e6 here)."""
    g = LinearStyleGenerator()
    expected = 127.5**2 * 2 * float(g.A.double().pow(2).sum())
    r = path_length(g, VR, pixels, n=1000, space="w", batch_size=250, show_progress=False)
    assert r.n == 1000 and r.n_kept >= 960  # 1 % dropped at each end
    assert abs(r.mean / expected - 1) < 0.03
    rz = path_length(g, VR, pixels, n=200, space="z", seed=1, show_progress=False)
    again = path_length(g, VR, pixels, n=200, space="z", seed=1, show_progress=False)
    other = path_length(g, VR, pixels, n=200, space="z", seed=2, show_progress=False)
    assert np.isfinite(rz.values).all() and rz.mean > 0
    assert np.array_equal(rz.values, again.values)
    assert not np.array_equal(rz.values, other.values)


def test_ppl_toy_on_stylegan_is_named_reproducible_and_leaves_global_rng_alone(stylegan, toy_net):
    before = torch.random.get_rng_state()
    fn = toy_feature_fn(toy_net)
    runs = [
        path_length(stylegan, VR, fn, n=8, space="w", batch_size=4, show_progress=False)
        for _ in range(2)
    ]
    assert runs[0].name == "PPL-toy" and runs[0].space == "w"
    assert runs[0].feature_network == toy_net.feature_network
    assert np.isfinite(runs[0].mean) and runs[0].mean > 0
    assert np.array_equal(runs[0].values, runs[1].values)
    z = sample_z(2, stylegan.z_dim, 0)
    first = interpolation_images(stylegan, VR, z[0], z[1], 3)
    assert torch.equal(first, interpolation_images(stylegan, VR, z[0], z[1], 3))
    label_samples(stylegan, VR, toy_net, n=4, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)
