"""The DCGAN discriminator, with spectral normalisation (SSD) or without (DCGAN, no-SN ablation).

    x (N, 3, 64, 64)
      Conv(3 -> 64, k4 s2 p1) -> LeakyReLU(0.2)                        (N, 64, 32, 32)
      SN(Conv(64 -> 128, k4 s2 p1)) -> BN -> LeakyReLU(0.2)            (N, 128, 16, 16)
      SN(Conv(128 -> 256, k4 s2 p1)) -> BN -> LeakyReLU(0.2)           (N, 256, 8, 8)
      SN(Conv(256 -> 512, k4 s2 p1)) -> BN -> LeakyReLU(0.2)           (N, 512, 4, 4)
      Conv(512 -> 1, k4 s1 p0) -> Sigmoid                              (N,)

All convolutions have no bias. SN is torch's ``spectral_norm`` with one power iteration per
forward pass, on the three middle convolutions only (not the first or the last).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm as torch_spectral_norm

from ssd_lib.models.layers import check_images


class Discriminator(nn.Module):
    """Returns D(x) as a probability in (0, 1), shape (N,); x must be (N, channels, 64, 64)."""

    resolution = 64  # four stride-2 convolutions to 4x4, then a 4x4 convolution to 1x1

    def __init__(self, ndf: int = 64, channels: int = 3, spectral_norm: bool = True) -> None:
        super().__init__()
        self.spectral_norm = spectral_norm
        self.channels = channels
        self.first = nn.Conv2d(channels, ndf, 4, 2, 1, bias=False)
        self.middle = nn.ModuleList()
        self.bns = nn.ModuleList()
        c = ndf
        for _ in range(3):
            conv = nn.Conv2d(c, c * 2, 4, 2, 1, bias=False)
            self.middle.append(torch_spectral_norm(conv) if spectral_norm else conv)
            self.bns.append(nn.BatchNorm2d(c * 2))
            c *= 2
        self.last = nn.Conv2d(c, 1, 4, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.channels, self.resolution, type(self).__name__)
        h = nn.functional.leaky_relu(self.first(x), 0.2)
        for conv, bn in zip(self.middle, self.bns, strict=True):
            h = nn.functional.leaky_relu(bn(conv(h)), 0.2)
        # The output layer runs in fp32 even under bf16 autocast: bf16 rounds sigmoid(8)
        # to exactly 1, which would clamp BCE at 100 with zero gradient.
        with torch.autocast(h.device.type, enabled=False):
            return torch.sigmoid(self.last(h.float())).flatten()  # (N,)

    def tracked_convs(self) -> dict[str, nn.Conv2d]:
        """The three middle convolutions, whose spectra the trainer records (with or without SN)."""
        return {f"middle.{i}": conv for i, conv in enumerate(self.middle)}
