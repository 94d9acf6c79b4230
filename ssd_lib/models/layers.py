"""Building blocks shared by the generators: the mapping network and AdaIN, and the shape
checks every network runs on its inputs."""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from ssd_lib.utils.validate import check_psi


def check_codes(z: torch.Tensor, dim: int, name: str = "z") -> None:
    """Raise ``ValueError`` unless ``z`` is (N, dim).

    Without it a code of the wrong width fails as a matmul shape error deep inside torch. The
    check compares Python ints only: no GPU sync, and under ``torch.compile`` it becomes a
    shape guard instead of a graph break.
    """
    if z.ndim != 2 or z.shape[1] != dim:
        raise ValueError(f"{name} has shape {tuple(z.shape)}; expected (N, {dim}) latent codes")


def check_images(x: torch.Tensor, channels: int, size: int, owner: str) -> None:
    """Raise ``ValueError`` unless ``x`` is (N, channels, size, size); as cheap as ``check_codes``.

    A discriminator fed 128x128 images would otherwise return N * 25 scores instead of N.
    """
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(
            f"{owner} input x has shape {tuple(x.shape)}; expected (N, {channels}, {size}, "
            f"{size}) images (resize to {size}x{size} first)"
        )


class MappingNetwork(nn.Module):
    """z -> w as the release builds it: L2-normalise z, then ``n_layers`` x (Linear + LeakyReLU).

    With ``tied=True`` (the release) ONE Linear layer is applied ``n_layers`` times, so the
    network has the parameters of a single layer. With ``tied=False`` each pass has its own
    layer, which is what the paper's text describes.
    """

    def __init__(self, dim: int = 100, n_layers: int = 4, tied: bool = True) -> None:
        super().__init__()
        self.dim, self.n_layers, self.tied = dim, n_layers, tied
        n_distinct = 1 if tied else n_layers
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_distinct))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_codes(z, self.dim)
        x = F.normalize(z, dim=1)  # (N, dim), unit L2 norm per sample
        for i in range(self.n_layers):
            layer = self.layers[0 if self.tied else i]
            x = F.leaky_relu(layer(x), 0.2)
        return x  # (N, dim)


class AdaIN(nn.Module):
    """Adaptive instance norm: InstanceNorm2d (no affine), then ``scale(w) * x + bias(w)``.

    As in the release, the scale is used as is (not ``1 + scale``).
    """

    def __init__(self, channels: int, w_dim: int = 100) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.scale = nn.Linear(w_dim, channels)
        self.bias = nn.Linear(w_dim, channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        scale = self.scale(w)[:, :, None, None]  # (N, C, 1, 1)
        bias = self.bias(w)[:, :, None, None]
        return scale * self.norm(x) + bias


def broadcast_ws(ws: torch.Tensor, num_ws: int, w_dim: int | None = None) -> torch.Tensor:
    """Accept one w per sample (N, D) or one per style layer (N, num_ws, D); return the latter.

    With ``w_dim`` given, D must equal it.
    """
    dim_ok = w_dim is None or (ws.ndim > 0 and ws.shape[-1] == w_dim)
    if ws.ndim == 2 and dim_ok:
        return ws.unsqueeze(1).expand(-1, num_ws, -1)
    if ws.ndim == 3 and ws.shape[1] == num_ws and dim_ok:
        return ws
    d = "w_dim" if w_dim is None else w_dim
    raise ValueError(f"ws must have shape (N, {d}) or (N, {num_ws}, {d}), got {tuple(ws.shape)}")


class StyleGeneratorMixin:
    """Truncation and style mixing for generators with ``mapping`` and ``synthesis``.

    Subclasses define ``num_ws``, ``mapping(z)``, ``synthesis(ws)`` and a ``w_avg`` buffer.
    ``w_avg`` tracks the mean w during training (an exponential moving average, as StyleGAN
    does); it is a buffer, not a parameter, and never changes what the networks compute
    unless truncation is asked for.
    """

    w_avg_beta: float = 0.995
    # The trainer clears this for a second forward pass in the same step, so that ``w_avg``
    # advances once per training step (see ``Trainer.train_step``).
    track_w: bool = True

    def track_w_avg(self, w: torch.Tensor) -> None:
        if self.training and self.track_w:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))

    def truncate(self, ws: torch.Tensor, psi: float) -> torch.Tensor:
        """Pull ws towards the tracked mean: ``w_avg + psi * (w - w_avg)``; psi=1 is a no-op."""
        psi = check_psi(psi)
        if psi == 1.0:
            return ws
        return self.w_avg.to(ws.dtype).lerp(ws, psi)

    def mix_styles(self, ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
        """Layers [0, crossover) take their style from ``ws_a``, the rest from ``ws_b``."""
        ok = isinstance(crossover, numbers.Integral) and not isinstance(crossover, bool)
        if not ok or not 0 <= crossover <= self.num_ws:
            raise ValueError(
                f"crossover={crossover!r} is invalid; allowed: an integer in [0, {self.num_ws}]"
            )
        a = broadcast_ws(ws_a, self.num_ws, self.w_dim)
        b = broadcast_ws(ws_b, self.num_ws, self.w_dim)
        return torch.cat([a[:, :crossover], b[:, crossover:]], dim=1)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        w = self.mapping(z)
        self.track_w_avg(w)
        return self.synthesis(self.truncate(w, truncation_psi))
