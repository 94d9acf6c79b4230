"""The sample verdict (ssd_lib.training.health.sample_verdict / generator_verdict) says what a
person
sees in a sample grid: one image, a few images, noise, or varied structured samples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssd_lib.data.embedded import FACTORS, generate_split, render_faces
from ssd_lib.metrics.degrade import gaussian_blobs, rotate_hue
from ssd_lib.training.health import (
    COLLAPSED_GROUP_SHARE,
    PARTIAL_DUPLICATE_SHARE,
    generator_verdict,
    roughness,
    sample_diversity,
    sample_verdict,
    structural_diversity,
)

N = 128


@pytest.fixture(scope="module")
def faces():
    """Rendered dogs: 256 'training' images and 256 others a good generator may draw."""
    return generate_split(256, seed=3, split="train").images, generate_split(
        256, seed=3, split="val"
    ).images


class TableGenerator(nn.Module):
    """Returns one of a fixed table of images per code (picked by z), in [-1, 1]; with
    ``noise`` > 0 adds independent Gaussian pixel noise of that SD (on the [0, 1] scale) to
    every output, drawn from the code so that it differs per sample."""

    z_dim = 16

    def __init__(self, images: torch.Tensor, noise: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("table", images.float() / 127.5 - 1.0)
        self.noise = noise
        self.anchor = nn.Parameter(torch.zeros(1))  # sampling.generate reads the device here

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        idx = (z[:, 0].abs() * 1e4).long() % len(self.table)
        out = self.table[idx]
        if self.noise:
            g = torch.Generator().manual_seed(int(z[0, 0].abs() * 1e6))
            out = out + 2 * self.noise * torch.randn(out.shape, generator=g)
        return out


class DogGenerator(nn.Module):
    """A good generator: every code is turned into factor values (through the normal CDF)
    and rendered as a new dog, as the embedded data's own renderer draws them."""

    z_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = torch.distributions.Normal(0.0, 1.0).cdf(z[:, : len(FACTORS)].double()).clamp(0, 0.999)
        cols = []
        for i, desc in enumerate(FACTORS.values()):
            if desc["kind"] == "continuous":
                lo, hi = desc["range"]
                cols.append(lo + (hi - lo) * u[:, i])
            else:
                cols.append((u[:, i] * desc["n_classes"]).floor())
        seed = int(z[0, -1].abs() * 1e6)
        return render_faces(torch.stack(cols, 1).float(), seed).float() / 127.5 - 1.0


class NoiseGenerator(nn.Module):
    """Uniform noise in [-1, 1], different for every code."""

    z_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(z[0, 0].abs() * 1e6))
        return torch.rand(len(z), 3, 64, 64, generator=g) * 2 - 1


def test_same_image_for_every_code_is_collapsed(faces):
    train, others = faces
    v = generator_verdict(TableGenerator(others[:1]), "[-1, 1]", train, n=N)
    assert v.verdict == "collapsed", v
    assert v.measures["largest_group_share"] == 1.0
    assert v.measures["structural_diversity"] == 0.0


def test_one_image_with_pixel_noise_is_collapsed_though_its_pixels_vary(faces):
    """The StyleGAN baseline's grid: one blob with fresh pixel noise on every copy. Its
    per-pixel spread (what the trainer logs) is close to real dogs'; its layout never moves."""
    train, others = faces
    v = generator_verdict(TableGenerator(others[:1], noise=0.1), "[-1, 1]", train, n=N)
    assert v.verdict == "collapsed", v
    assert v.measures["sample_diversity"] > 0.35 * v.measures["real_sample_diversity"]
    assert v.measures["structural_diversity"] < 0.25 * v.measures["real_structural_diversity"]


def test_eight_images_is_partially_collapsed(faces):
    train, others = faces
    v = generator_verdict(TableGenerator(others[:8]), "[-1, 1]", train, n=N)
    assert v.verdict == "partially collapsed", v
    assert v.measures["duplicate_share"] == 1.0 >= PARTIAL_DUPLICATE_SHARE
    assert v.measures["largest_group_share"] < COLLAPSED_GROUP_SHARE
    assert v.measures["distinct_groups"] == 8
    # the per-pixel spread of eight different dogs is that of the data: it cannot see this
    assert sample_diversity(others[:8]) > 0.15


def test_noise_is_noise(faces):
    train, _ = faces
    v = generator_verdict(NoiseGenerator(), "[-1, 1]", train, n=N)
    assert v.verdict == "noise", v
    assert v.measures["roughness"] > 0.9 and v.measures["real_roughness"] < 0.3


def test_a_generator_that_draws_new_dogs_is_healthy(faces):
    train, _ = faces
    v = generator_verdict(DogGenerator(), "[-1, 1]", train, n=N)
    assert v.verdict == "healthy", v
    assert v.measures["duplicate_share"] < 0.05


def test_a_generator_that_replays_held_out_dogs_is_healthy(faces):
    """Real images drawn without repeats (each code its own image) are healthy too."""
    train, others = faces
    v = sample_verdict(others[:N], train)
    assert v.verdict == "healthy", v


def test_the_verdict_is_about_variety_not_realism(faces):
    """Varied smooth blobs are not dogs, but they are not collapsed either: realism is the
    realness score's and FD's job (see the metric ladder)."""
    train, _ = faces
    blobs = gaussian_blobs(N, generator=torch.Generator().manual_seed(0))
    assert sample_verdict(blobs, train).verdict == "healthy"
    same_blob = blobs[:1].expand(N, -1, -1, -1).contiguous()
    assert sample_verdict(same_blob, train).verdict == "collapsed"


def test_brightness_changes_alone_do_not_make_a_collapsed_generator_healthy(faces):
    """The same face at 128 brightness levels is one face to a person (SSD's grid after one
    epoch)."""
    train, others = faces
    gains = torch.linspace(0.55, 1.0, N).view(N, 1, 1, 1)
    dimmed = (others[:1].float() * gains).round().to(torch.uint8)
    v = sample_verdict(dimmed, train)
    assert v.verdict == "collapsed", v
    assert sample_diversity(dimmed) > 0.04  # the per-pixel spread calls this varied


def test_one_face_in_many_colours_is_partially_collapsed(faces):
    """SSD's paper recipe after 20 epochs: one face shape, drawn in several fur and
    background colours. A person sees a narrow generator, not 128 copies of one image."""
    train, others = faces
    hues = torch.cat([rotate_hue(others[:1], a) for a in torch.linspace(0, 330, N).tolist()])
    v = sample_verdict(hues, train)
    assert v.verdict == "partially collapsed", v
    assert "one face in several colours" in v.reason
    assert v.measures["chroma_spread"] > 0.25 * v.measures["real_chroma_spread"]


def test_measures_are_defined_on_simple_images():
    flat = torch.full((4, 3, 8, 8), 128, dtype=torch.uint8)
    assert roughness(flat).tolist() == [0.0] * 4
    noise = torch.randint(0, 256, (4, 3, 64, 64), generator=torch.Generator().manual_seed(0))
    assert roughness(noise.to(torch.uint8)) == pytest.approx([1.0] * 4, abs=0.05)
    assert structural_diversity(flat) == 0.0
    with pytest.raises(ValueError, match="at least 16"):
        sample_verdict(flat, flat)


class _StubRun:
    """What ``suite.health_table`` reads from a run: history, warnings, generator, range."""

    def __init__(self, generator: nn.Module, warnings: list | None = None) -> None:
        self._g, self._w = generator, warnings or []
        self.config = type("Cfg", (), {"real_range": "[-1, 1]"})()

    def history(self):
        return {"sample_diversity": torch.tensor([0.2, float("nan"), 0.15]).numpy()}

    def warnings(self):
        return self._w

    def load_generator(self):
        return self._g


def test_the_health_table_gives_each_run_the_sample_verdict(faces):
    """Notebook 01's table: the ladder-checked verdict next to the trainer's warnings, so a
    run that draws one face reads "collapsed" even when the trainer warned of nothing."""
    from ssd_lib.experiments.suite import health_table

    train, others = faces
    warned = [{"step": 40, "kind": "g_collapse", "message": "variety fell"}]
    table = health_table(
        {
            "one_face": _StubRun(TableGenerator(others[:1])),
            "dogs": _StubRun(DogGenerator(), warned),
        },
        reference=train,
        n=64,
    )
    rows = table.set_index("run")
    assert rows.loc["one_face", "samples (64)"] == "collapsed"
    assert rows.loc["one_face", "largest group"] == 1.0
    assert rows.loc["one_face", "kind"] == "none"  # the trainer saw nothing
    assert rows.loc["dogs", "samples (64)"] == "healthy"
    assert rows.loc["dogs", "structural diversity / reals'"] > 0.5
    assert rows.loc["dogs", "warning at step"] == 40
    # the per-pixel spread the trainer logs fails its ladder: the table leaves it out
    assert "last logged sample diversity" not in table.columns
    # Without reference images only the trainer's record is shown.
    assert "samples (64)" not in health_table({"dogs": _StubRun(DogGenerator())}).columns


def test_the_reference_images_are_one_fixed_draw_without_repeats():
    from ssd_lib.training.health import reference_images

    images = torch.arange(50).view(50, 1, 1, 1).expand(50, 3, 2, 2).to(torch.uint8)
    first = reference_images(images, 20)
    ids = first[:, 0, 0, 0].tolist()
    assert len(set(ids)) == 20 and ids != list(range(20))  # a shuffled draw, no repeats
    assert torch.equal(reference_images(images, 20), first)  # the same every time
    assert not torch.equal(reference_images(images, 20, seed=1), first)
    assert len(reference_images(images, 80)) == 50  # asked for more: every image once
