"""A StyleGAN (Karras et al. 2019) baseline at 64x64, the paper's large comparison model.

The paper's StyleGAN numbers came from a Keras StyleGAN example: an 8 x 512 mapping network
with equalised learning rate, a learned 4x4 constant, AdaIN after every convolution, per-layer
noise inputs, progressive growing from 4 to 64 and the WGAN-GP loss; 47.625 M parameters with
its discriminator. This module builds the same family of networks without progressive growing
(the networks are trained at 64x64 from the start; see docs). At ``width=1.0`` generator plus
discriminator have 47,621,124 parameters (paper: 47.625 M); ``width`` scales every
channel count so that CPU runs can use a small copy.

Generator, per resolution r in 4, 8, 16, 32, 64 (channels C(r)):
    r = 4: constant (1, C, 4, 4) -> noise -> AdaIN -> conv3x3 -> noise -> AdaIN
    r > 4: upsample x2 -> conv3x3 -> noise -> AdaIN -> conv3x3 -> noise -> AdaIN
    then a 1x1 to-RGB convolution at 64x64 (no tanh; outputs are compared in [-1, 1]).
That is 10 style inputs (``num_ws``): coarse styles first, fine styles last.

Discriminator: 1x1 from-RGB, then per resolution 64 -> 8 two conv3x3 and a 2x average-pool
down-sample, then at 4x4 the minibatch standard-deviation channel, a conv3x3 and two dense
layers. It returns an unbounded score (a logit for BCE, a critic value for WGAN-GP).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ssd_lib.models.layers import StyleGeneratorMixin, broadcast_ws, check_codes, check_images

RESOLUTIONS = (4, 8, 16, 32, 64)
# Channels per resolution at width 1.0: 512 up to 32x32, 256 at 64x64.
FULL_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256}


def channels_at(res: int, width: float) -> int:
    return max(8, int(round(FULL_CHANNELS[res] * width)))


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights ~ N(0, 1), scaled at run time."""

    def __init__(self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init)))
        self.w_gain = lr_mul / math.sqrt(c_in)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.w_gain, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate, 'same' padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.w_gain = 1.0 / math.sqrt(c_in * kernel * kernel)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.w_gain, self.bias, padding=self.padding)


class NoiseInput(nn.Module):
    """Adds per-pixel Gaussian noise scaled by a learned per-channel weight."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = torch.randn(
                x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype
            )
        return x + self.weight * noise


class StyleAdaIN(nn.Module):
    """StyleGAN's AdaIN: instance norm, then (1 + scale(w)) * x + bias(w) via one affine map."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.style = EqualLinear(w_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0  # start as the identity: scale 1, bias 0

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        scale, bias = self.style(w)[:, :, None, None].chunk(2, dim=1)
        return scale * self.norm(x) + bias


class StyleLayer(nn.Module):
    """conv3x3 (optional) -> noise -> LeakyReLU -> AdaIN."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, conv: bool = True) -> None:
        super().__init__()
        self.conv = EqualConv2d(c_in, c_out, 3) if conv else None
        self.noise = NoiseInput(c_out)
        self.adain = StyleAdaIN(c_out, w_dim)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        return self.adain(F.leaky_relu(self.noise(x, noise), 0.2), w)


class StyleGANGenerator(StyleGeneratorMixin, nn.Module):
    """z (N, 512) -> images (N, 3, 64, 64), roughly in [-1, 1]."""

    def __init__(
        self,
        z_dim: int = 512,
        w_dim: int = 512,
        mapping_layers: int = 8,
        width: float = 1.0,
        channels: int = 3,
        mapping_lr_mul: float = 0.01,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        dims = [z_dim] + [w_dim] * mapping_layers
        self.mapping_layers = nn.ModuleList(
            EqualLinear(a, b, lr_mul=mapping_lr_mul)
            for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        c4 = channels_at(4, width)
        self.const = nn.Parameter(torch.ones(1, c4, 4, 4))
        self.layers = nn.ModuleList(
            [StyleLayer(c4, c4, w_dim, conv=False), StyleLayer(c4, c4, w_dim)]
        )
        c_prev = c4
        for res in RESOLUTIONS[1:]:
            c = channels_at(res, width)
            self.layers.append(StyleLayer(c_prev, c, w_dim))
            self.layers.append(StyleLayer(c, c, w_dim))
            c_prev = c
        self.to_rgb = EqualConv2d(c_prev, channels, 1)
        self.num_ws = len(self.layers)  # 10
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        check_codes(z, self.z_dim)
        x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # pixel norm
        for layer in self.mapping_layers:
            x = F.leaky_relu(layer(x), 0.2)
        return x  # (N, w_dim)

    def synthesis(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """ws: (N, w_dim) or (N, 10, w_dim); ``noise`` optionally fixes each layer's noise."""
        ws = broadcast_ws(ws, self.num_ws, self.w_dim)
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, layer in enumerate(self.layers):
            # Layers 2, 4, 6, 8 open a new resolution.
            if i >= 2 and i % 2 == 0:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = layer(x, ws[:, i], None if noise is None else noise[i])
        return self.to_rgb(x)


class MinibatchStd(nn.Module):
    """Appends the mean standard deviation over groups of samples as one extra channel."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        y = x.reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n / g,)
        y = y.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, y], dim=1)


class StyleGANDiscriminator(nn.Module):
    """x (N, 3, 64, 64) -> unbounded score (N,)."""

    resolution = RESOLUTIONS[-1]

    def __init__(self, width: float = 1.0, channels: int = 3) -> None:
        super().__init__()
        self.channels = channels
        c64 = channels_at(64, width)
        self.from_rgb = EqualConv2d(channels, c64, 1)
        self.blocks = nn.ModuleList()
        c = c64
        for res in (64, 32, 16, 8):
            c_next = channels_at(res // 2, width)
            self.blocks.append(nn.ModuleList([EqualConv2d(c, c, 3), EqualConv2d(c, c_next, 3)]))
            c = c_next
        self.mbstd = MinibatchStd()
        self.conv4 = EqualConv2d(c + 1, c, 3)
        self.fc = EqualLinear(c * 16, c)
        self.out = EqualLinear(c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.channels, self.resolution, type(self).__name__)
        h = F.leaky_relu(self.from_rgb(x), 0.2)
        for conv_a, conv_b in self.blocks:
            h = F.leaky_relu(conv_a(h), 0.2)
            h = F.avg_pool2d(F.leaky_relu(conv_b(h), 0.2), 2)
        h = F.leaky_relu(self.conv4(self.mbstd(h)), 0.2)  # (N, C, 4, 4)
        h = F.leaky_relu(self.fc(h.flatten(1)), 0.2)
        return self.out(h).flatten()  # (N,)
