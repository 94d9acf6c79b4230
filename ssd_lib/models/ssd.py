"""The SSD generator, as the authors' release builds it (docs/paper.md, "The networks the
release builds").

    z (N, 100) -> mapping (one Linear(100, 100) applied 4 times) -> w (N, 100)
    learned constant (1, 100, 1, 1)
      ConvT(100 -> 512, k4 s1 p0) -> AdaIN(512, w) -> ReLU     (N, 512, 4, 4)
      ConvT(512 -> 256, k4 s2 p1) -> AdaIN(256, w) -> ReLU     (N, 256, 8, 8)
      ConvT(256 -> 128, k4 s2 p1) -> AdaIN(128, w) -> ReLU     (N, 128, 16, 16)
      ConvT(128 ->  64, k4 s2 p1) -> AdaIN(64, w)  -> ReLU     (N, 64, 32, 32)
      ConvT( 64 ->   3, k4 s2 p1) -> tanh                      (N, 3, 64, 64)

One w drives all four AdaIN layers; ``synthesis`` also takes one w per layer (N, 4, 100),
which is what style mixing needs.
"""

from __future__ import annotations

import torch
from torch import nn

from ssd_lib.models.layers import AdaIN, MappingNetwork, StyleGeneratorMixin, broadcast_ws


def conv_t(c_in: int, c_out: int, first: bool = False) -> nn.ConvTranspose2d:
    """The DCGAN up-sampling convolution: 1 -> 4 pixels for the first, x2 for the rest."""
    if first:
        return nn.ConvTranspose2d(c_in, c_out, 4, 1, 0, bias=False)
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)


class SSDGenerator(StyleGeneratorMixin, nn.Module):
    """Spectral StyleDCGAN generator; output in [-1, 1] (tanh), shape (N, 3, 64, 64)."""

    def __init__(
        self,
        nz: int = 100,
        ngf: int = 64,
        channels: int = 3,
        tied_mapping: bool = True,
        mapping_layers: int = 4,
    ) -> None:
        super().__init__()
        self.z_dim = self.w_dim = nz
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]  # 512, 256, 128, 64
        self.num_ws = len(widths)
        self.mapping = MappingNetwork(nz, mapping_layers, tied=tied_mapping)
        self.const = nn.Parameter(torch.randn(1, nz, 1, 1))
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = nz
        for i, c in enumerate(widths):
            self.convs.append(conv_t(c_in, c, first=i == 0))
            self.norms.append(AdaIN(c, nz))
            c_in = c
        self.to_rgb = conv_t(c_in, channels)
        self.register_buffer("w_avg", torch.zeros(nz))

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """ws: (N, 100) or (N, 4, 100) -> images (N, 3, 64, 64) in [-1, 1]."""
        ws = broadcast_ws(ws, self.num_ws, self.w_dim)
        # The constant is batch 1; the first AdaIN broadcasts it against per-sample styles.
        x = self.const
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = torch.relu(norm(conv(x), ws[:, i]))
        return torch.tanh(self.to_rgb(x))
