"""A 3-level Laplacian pyramid GAN for 64x64 images (Denton et al. 2015, "Deep Generative Image
Models using a Laplacian Pyramid of Adversarial Networks", LAPGAN).

The Laplacian pyramid of an image I64 (all images in [-1, 1]):

    I32 = down(I64), I16 = down(I32)          down: 2x2 average pooling
    h32 = I32 - up(I16), h64 = I64 - up(I32)  up: bilinear x2 (align_corners=False)
    pyramid = [I16, h32, h64]                 and back: I32 = up(I16) + h32, I64 = up(I32) + h64

LAPGAN generates the pyramid coarse to fine: an ordinary GAN makes I16 from z, then at each
finer level a conditional generator sees the up-sampled coarser image (plus one channel of
noise) and makes the band-pass residual that is added to it:

    z (N, 100) -> CoarseGenerator -> I16 (N, 3, 16, 16)       DCGAN-like, tanh
    up(I16) (N, 3, 32, 32) + noise (N, 1, 32, 32) -> ResidualGenerator -> h32 (N, 3, 32, 32)
    I32 = clamp(up(I16) + h32, -1, 1)
    up(I32) (N, 3, 64, 64) + noise (N, 1, 64, 64) -> ResidualGenerator -> h64
    I64 = clamp(up(I32) + h64, -1, 1)                         (N, 3, 64, 64) in [-1, 1]

Each level has its own discriminator returning one logit per image: ``CoarseDiscriminator``
scores I16; ``ResidualDiscriminator`` scores a residual together with the up-sampled image it
refines (the two are concatenated, 6 channels), so it judges whether the detail fits the
coarse image.

Training: level by level, as in the paper. Each level's (G, D) pair is an independent GAN
trained on the *real* pyramid (``level_pairs`` gives its condition and target): level 16 is an
unconditional GAN on I16; level r is a conditional GAN whose condition is up(real I_{r/2}) and
whose reals are the real residuals h_r. No gradient passes between levels, so each level is
a small GAN problem that can be trained (and tuned, and restarted) on its own, possibly in
parallel, and a level never has to follow the drifting output of the level below it. The
price is a train/test mismatch: at sampling time the finer generators are conditioned on
*generated* coarse images. Joint training would remove that mismatch but needs gradients
through the whole chain and three discriminator losses kept in balance; the paper did not do
it, and neither do we. The three independent GANs do step together, in one loop over the same
batches (``ssd_lib.training.lapgan_step``): one Adam over all of G's levels is the same as
three, since each level's weights get gradients from their own level's loss only and Adam
works weight by weight.

Parameter counts at the defaults (nz = 100, ngf = ndf = 64): CoarseGenerator 940,800, each
ResidualGenerator 41,155, LAPGANGenerator 1,023,110 (``parameter_counts``); discriminators
D16 136,385, D32 666,049, D64 2,767,809.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm as torch_spectral_norm

from ssd_lib.models.layers import check_codes, check_images

RESOLUTIONS = (16, 32, 64)  # coarse to fine


def downsample(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H/2, W/2) by 2x2 average pooling."""
    return F.avg_pool2d(x, 2)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 2H, 2W), bilinear; a value range [a, b] is kept."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def laplacian_pyramid(x: torch.Tensor, levels: int = 3) -> list[torch.Tensor]:
    """[coarse image, residual, ..., finest residual], coarse to fine.

    For x (N, C, 64, 64) and 3 levels: [I16 (N, C, 16, 16), h32 (..., 32, 32), h64 (64, 64)].
    """
    gaussian = [x]
    for _ in range(levels - 1):
        gaussian.append(downsample(gaussian[-1]))
    residuals = [fine - upsample(coarse) for fine, coarse in pairwise(gaussian)]
    return [gaussian[-1], *reversed(residuals)]


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """The inverse of ``laplacian_pyramid``: up-sample and add, coarse to fine."""
    x = pyramid[0]
    for residual in pyramid[1:]:
        x = upsample(x) + residual
    return x


def level_pairs(x: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
    """(condition, real target) for each level's GAN, from real images x (N, 3, 64, 64).

    [(None, I16), (up(I16), h32), (up(I32), h64)]: level 0 is unconditional.
    """
    i32 = downsample(x)
    i16 = downsample(i32)
    return [(None, i16), (upsample(i16), i32 - upsample(i16)), (upsample(i32), x - upsample(i32))]


class CoarseGenerator(nn.Module):
    """z (N, 100) -> I16 (N, 3, 16, 16) in [-1, 1], the DCGAN recipe at 16x16:

    ConvT(100 -> 256, k4 s1 p0) -> BN -> ReLU    (N, 256, 4, 4)
    ConvT(256 -> 128, k4 s2 p1) -> BN -> ReLU    (N, 128, 8, 8)
    ConvT(128 ->   3, k4 s2 p1) -> tanh          (N, 3, 16, 16)
    """

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.z_dim = nz
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, channels, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_codes(z, self.z_dim)
        return self.net(z[:, :, None, None])


class ResidualGenerator(nn.Module):
    """(up-sampled image (N, 3, r, r), noise (N, 1, r, r)) -> residual (N, 3, r, r).

    Three 3x3 convolutions at full resolution (as the paper's CIFAR/STL refiners):
    conv(4 -> 64) -> BN -> ReLU -> conv(64 -> 64) -> BN -> ReLU -> conv(64 -> 3).
    The output is linear: real residuals are small and signed.
    """

    def __init__(self, ngf: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.net = nn.Sequential(
            nn.Conv2d(channels + 1, ngf, 3, 1, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.Conv2d(ngf, ngf, 3, 1, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.Conv2d(ngf, channels, 3, 1, 1),
        )

    def forward(self, condition: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, noise], dim=1))


def _conv_discriminator(c_in: int, resolution: int, ndf: int, spectral_norm: bool) -> nn.Module:
    """Stride-2 4x4 convolutions (channels ndf, 2 ndf, ...) down to 4x4, then a 4x4 conv to a
    logit; LeakyReLU(0.2) between, spectral norm on every convolution if asked."""
    sn = torch_spectral_norm if spectral_norm else (lambda m: m)
    layers: list[nn.Module] = []
    c, c_next, r = c_in, ndf, resolution
    while r > 4:
        layers += [sn(nn.Conv2d(c, c_next, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        c, c_next, r = c_next, c_next * 2, r // 2
    layers += [sn(nn.Conv2d(c, 1, 4, 1, 0)), nn.Flatten(0)]  # (N, 1, 1, 1) -> (N,)
    return nn.Sequential(*layers)


class CoarseDiscriminator(nn.Module):
    """I16 (N, 3, 16, 16) -> one logit per image (N,)."""

    resolution = RESOLUTIONS[0]

    def __init__(self, ndf: int = 64, channels: int = 3, spectral_norm: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.net = _conv_discriminator(channels, self.resolution, ndf, spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.channels, self.resolution, type(self).__name__)
        return self.net(x)


class ResidualDiscriminator(nn.Module):
    """(up-sampled image, residual), each (N, 3, r, r) -> one logit per image (N,)."""

    def __init__(
        self, resolution: int, ndf: int = 64, channels: int = 3, spectral_norm: bool = True
    ) -> None:
        super().__init__()
        self.resolution, self.channels = resolution, channels
        self.net = _conv_discriminator(2 * channels, resolution, ndf, spectral_norm)

    def forward(self, condition: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        check_images(condition, self.channels, self.resolution, owner)
        check_images(residual, self.channels, self.resolution, owner)
        return self.net(torch.cat([condition, residual], dim=1))


class LAPGANGenerator(nn.Module):
    """z (N, 100) -> images (N, 3, 64, 64) in [-1, 1] through a 16 -> 32 -> 64 pyramid."""

    num_ws = 0  # no style inputs: truncation and mixing do not apply

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.z_dim = nz
        self.coarse = CoarseGenerator(nz, ngf, channels)
        self.refiners = nn.ModuleList(ResidualGenerator(ngf, channels) for _ in RESOLUTIONS[1:])

    def levels(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """The sampled images at 16, 32 and 64 pixels, each in [-1, 1].

        ``generator`` draws the refiners' noise channels (on its own device); without one,
        torch's global generator on z's device does.
        """
        images = [self.coarse(z)]  # (N, 3, 16, 16)
        for refiner in self.refiners:
            condition = upsample(images[-1])  # (N, 3, 2r, 2r), still in [-1, 1]
            n, _, h, w = condition.shape
            device = z.device if generator is None else generator.device
            noise = torch.randn(n, 1, h, w, generator=generator, device=device)
            residual = refiner(condition, noise.to(condition.device, condition.dtype))
            # Real pyramid levels are averages of [-1, 1] pixels; keep generated ones there.
            images.append((condition + residual).clamp(-1.0, 1.0))
        return images

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.levels(z, generator)[-1]

    def training_outputs(
        self, z: torch.Tensor, conditions: list[torch.Tensor], noise: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """What each level's generator makes during training, where a finer level is
        conditioned on the *real* coarser image (``level_pairs``' conditions):
        [I16 from z, h32 from (conditions[0], noise[0]), h64 from (conditions[1], noise[1])],
        each to be judged against the matching real target."""
        refined = [
            refiner(c, n.to(c.device, c.dtype))
            for refiner, c, n in zip(self.refiners, conditions, noise, strict=True)
        ]
        return [self.coarse(z), *refined]

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per level ("16", "32", "64") and in all ("total")."""
        parts = [self.coarse, *self.refiners]
        counts = {
            str(r): sum(p.numel() for p in m.parameters())
            for r, m in zip(RESOLUTIONS, parts, strict=True)
        }
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts


def build_lapgan_discriminators(
    ndf: int = 64, channels: int = 3, spectral_norm: bool = True
) -> nn.ModuleList:
    """[D16 (CoarseDiscriminator), D32, D64 (ResidualDiscriminator)], one per level."""
    return nn.ModuleList(
        [CoarseDiscriminator(ndf, channels, spectral_norm)]
        + [ResidualDiscriminator(r, ndf, channels, spectral_norm) for r in RESOLUTIONS[1:]]
    )


class LAPGANDiscriminator(nn.Module):
    """The three level discriminators as one module (what the trainer and checkpoints hold),
    each ending in a sigmoid like the paper's discriminator, so the BCE loss applies.

    ``score(level, condition, target)`` is level ``level``'s probability that ``target`` (an
    I16, or a residual that refines ``condition``) is real, (N,). Called on 64x64 images,
    the module returns the mean of the three levels' probabilities on each image's own
    pyramid (``level_pairs``), (N,): what D's train/val gap measures.
    """

    def __init__(self, ndf: int = 64, channels: int = 3, spectral_norm: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.levels = build_lapgan_discriminators(ndf, channels, spectral_norm)

    def score(
        self, level: int, condition: torch.Tensor | None, target: torch.Tensor
    ) -> torch.Tensor:
        d = self.levels[level]
        logit = d(target) if condition is None else d(condition, target)
        return torch.sigmoid(logit.float())  # in fp32, as the paper's discriminator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.channels, RESOLUTIONS[-1], type(self).__name__)
        scores = [self.score(i, c, t) for i, (c, t) in enumerate(level_pairs(x))]
        return torch.stack(scores).mean(0)
