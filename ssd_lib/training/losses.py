"""The GAN losses, one object per ``TrainConfig.loss``: the maths of a step, nothing else.

- ``BCELoss`` (``"bce"``): the paper's. D ends in a sigmoid; D's loss is
  ``scale * (BCE(D(x), 1) + BCE(D(G(z)), 0))`` and G's the non-saturating ``BCE(D(G(z)), 1)``.
- ``WGANGPLoss`` (``"wgan_gp"``): the StyleGAN baseline's. D is a critic with unbounded
  scores; D's loss is ``scale * (D(fake) - D(real) + gp_weight * penalty + 1e-3 * D(real)^2)``
  (Gulrajani et al.'s gradient penalty, ProGAN's drift term), G's is ``-D(G(z))``.

Each knows the score that separates "real" from "fake" (``threshold``: a probability of 0.5,
a score of 0), which D's accuracy and the adaptive augmentation read, and whether it can run
under DistributedDataParallel (the gradient penalty's double backward cannot).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F

from ssd_lib.config import TrainConfig


class GANLoss(Protocol):
    """What the trainer asks of a loss; :class:`BCELoss` and :class:`WGANGPLoss` provide it."""

    name: ClassVar[str]
    threshold: ClassVar[float]  # D's score that separates "real" from "fake"
    supports_ddp: ClassVar[bool]
    watches_d_collapse: ClassVar[bool]

    def generator(self, d_fake: torch.Tensor) -> torch.Tensor:
        """G's loss from D's scores on G's images."""
        ...

    def discriminator(
        self,
        d_real: torch.Tensor,
        d_fake: torch.Tensor,
        real: torch.Tensor,
        fake: torch.Tensor,
        critic: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """D's loss from its scores on both batches; ``critic`` is D as the step runs it
        (autocast, DDP), for losses that score more points than the two batches."""
        ...


class BCELoss:
    name = "bce"
    threshold = 0.5  # D outputs probabilities
    supports_ddp = True
    watches_d_collapse = True  # D's accuracy and loss floor mean something

    def __init__(self, d_loss_scale: float) -> None:
        self.d_loss_scale = d_loss_scale

    def generator(self, d_fake: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy(d_fake, torch.ones_like(d_fake))

    def discriminator(
        self,
        d_real: torch.Tensor,
        d_fake: torch.Tensor,
        real: torch.Tensor,
        fake: torch.Tensor,
        critic: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        loss = F.binary_cross_entropy(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy(
            d_fake, torch.zeros_like(d_fake)
        )
        return self.d_loss_scale * loss


class WGANGPLoss:
    name = "wgan_gp"
    threshold = 0.0  # a critic's scores: positive reads as real
    supports_ddp = False  # the penalty needs a double backward
    watches_d_collapse = False  # a critic has no accuracy or loss floor to watch

    def __init__(self, d_loss_scale: float, gp_weight: float) -> None:
        self.d_loss_scale, self.gp_weight = d_loss_scale, gp_weight

    def generator(self, d_fake: torch.Tensor) -> torch.Tensor:
        return -d_fake.mean()

    def discriminator(
        self,
        d_real: torch.Tensor,
        d_fake: torch.Tensor,
        real: torch.Tensor,
        fake: torch.Tensor,
        critic: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """``critic`` is D as the step runs it (autocast, DDP), for the penalty's points."""
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
        penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
        loss = d_fake.mean() - d_real.mean() + self.gp_weight * penalty
        return self.d_loss_scale * (loss + 1e-3 * d_real.pow(2).mean())


def make_loss(cfg: TrainConfig) -> GANLoss:
    """The loss object for ``cfg.loss`` (validated by ``TrainConfig``)."""
    if cfg.loss == "bce":
        return BCELoss(cfg.d_loss_scale)
    return WGANGPLoss(cfg.d_loss_scale, cfg.gp_weight)


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018, used by StyleGAN2): the mean over the batch of the squared
    norm of D's gradient at the real images, ``E ||d D(x) / d x||^2``. ``real`` must require
    gradients and ``d_real`` be D's output on it (the tensor the loss sees: probabilities for
    the DCGAN discriminators, scores for StyleGAN's). The graph is kept, so the penalty trains
    D; the trainer adds ``gamma / 2`` times it to D's loss."""
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()
