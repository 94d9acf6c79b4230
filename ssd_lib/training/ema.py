"""An exponential moving average of the generator's weights (StyleGAN's "G_ema").

Each step moves the average towards G by ``1 - beta``, with ``beta`` set so that the weight of
a step halves every ``half_life_images`` training images:
``beta = 0.5 ** (batch_size / half_life_images)``. Buffers (BatchNorm's running statistics,
StyleGAN's w_avg) are copied, not averaged. Samples, metrics and the explorer use the average
when a checkpoint has one (``Run.load_generator``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(batch_size: int, half_life_images: int) -> float:
    """The per-step decay for a batch of ``batch_size`` images and the given half-life."""
    return 0.5 ** (batch_size / half_life_images)


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the average (same device and layout)."""
    return copy.deepcopy(model).eval().requires_grad_(False)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema <- beta * ema + (1 - beta) * model`` for parameters; buffers copied."""
    for a, p in zip(ema.parameters(), model.parameters(), strict=True):
        a.lerp_(p.detach(), 1.0 - beta)
    for a, b in zip(ema.buffers(), model.buffers(), strict=True):
        a.copy_(b)
