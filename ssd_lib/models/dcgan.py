"""The DCGAN baseline generator and the "mapping network without AdaIN" ablation.

DCGAN (Radford et al.), as the paper's baseline: z (N, 100, 1, 1) goes straight into the
same five transposed convolutions as SSD, with BatchNorm2d where SSD has AdaIN.

    z (N, 100, 1, 1)
      ConvT(100 -> 512, k4 s1 p0) -> BN -> ReLU     (N, 512, 4, 4)
      ConvT(512 -> 256, k4 s2 p1) -> BN -> ReLU     (N, 256, 8, 8)
      ConvT(256 -> 128, k4 s2 p1) -> BN -> ReLU     (N, 128, 16, 16)
      ConvT(128 ->  64, k4 s2 p1) -> BN -> ReLU     (N, 64, 32, 32)
      ConvT( 64 ->   3, k4 s2 p1) -> tanh           (N, 3, 64, 64)

Mapping only, no AdaIN (paper Fig. 5): the paper does not spell out how this ablation was
built. We build the smallest change that removes AdaIN and keeps the mapping network: z goes
through SSD's mapping network, and its output w (N, 100) is reshaped to (N, 100, 1, 1) and fed
to the DCGAN generator above in place of z. There is no learned constant and no per-layer
style; BatchNorm normalises every layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ssd_lib.models.layers import MappingNetwork, StyleGeneratorMixin, broadcast_ws
from ssd_lib.models.ssd import conv_t


class DCGANGenerator(nn.Module):
    """DCGAN generator; z (N, 100) or (N, 100, 1, 1) -> images (N, 3, 64, 64) in [-1, 1]."""

    num_ws = 0  # no style inputs: truncation and mixing do not apply

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.z_dim = nz
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = []
        c_in = nz
        for i, c in enumerate(widths):
            layers += [conv_t(c_in, c, first=i == 0), nn.BatchNorm2d(c), nn.ReLU(True)]
            c_in = c
        layers += [conv_t(c_in, channels), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim == 2 and z.shape[1] == self.z_dim:
            z = z[:, :, None, None]  # (N, 100) -> (N, 100, 1, 1)
        elif z.ndim != 4 or z.shape[1:] != (self.z_dim, 1, 1):
            raise ValueError(
                f"z has shape {tuple(z.shape)}; expected (N, {self.z_dim}) or "
                f"(N, {self.z_dim}, 1, 1) latent codes"
            )
        return self.net(z)


class MappingDCGANGenerator(StyleGeneratorMixin, nn.Module):
    """Ablation "mapping only, no AdaIN": w = mapping(z) feeds a DCGAN generator."""

    num_ws = 1

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
        self.mapping = MappingNetwork(nz, mapping_layers, tied=tied_mapping)
        self.body = DCGANGenerator(nz, ngf, channels)
        self.register_buffer("w_avg", torch.zeros(nz))

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """ws: (N, 100) or (N, 1, 100) -> images (N, 3, 64, 64) in [-1, 1]."""
        return self.body(broadcast_ws(ws, self.num_ws, self.w_dim)[:, 0])
