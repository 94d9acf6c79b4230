"""One LAPGAN iteration (``TrainConfig.generator == "lapgan"``): the pyramid's three GANs,
each on its own level of the same real batch, D step then G step.

For reals x (N, 3, 64, 64) in [-1, 1], ``level_pairs(x)`` gives each level's condition and
real target: (None, I16), (up(I16), h32), (up(I32), h64). Each level's generator makes a fake
target from the same condition (``LAPGANGenerator.training_outputs``); its discriminator scores
(condition, target) pairs. D's loss is the sum of the three levels' BCE losses and G's the sum
of their non-saturating losses: no weight is shared between levels, so each level's weights
see only their own level's gradient, exactly as three separate trainings would.

Logged: ``loss_d``, ``loss_g``, ``d_real``, ``d_fake`` and ``d_acc`` as means over the levels
(the same scale as one GAN's, so the trainer's collapse checks read them as usual), and each
level's ``loss_d_<r>``, ``loss_g_<r>`` and ``d_acc_<r>`` (r = 16, 32, 64).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ssd_lib.models.lapgan import RESOLUTIONS, level_pairs

if TYPE_CHECKING:
    from ssd_lib.training.trainer import Trainer


def lapgan_step(trainer: Trainer, real: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """One D update and one G update of all three levels on ``real`` with codes ``z``;
    returns the logged statistics as 0-d tensors on the device."""
    G, D, loss = trainer.G, trainer.D, trainer.loss
    pairs = level_pairs(real)
    conditions = [c for c, _ in pairs[1:]]
    # The refiners' noise channels come from the trainer's code generator (on the CPU, so
    # every device draws the same), which the checkpoint stores.
    noise = [
        torch.randn(c.shape[0], 1, *c.shape[2:], generator=trainer.noise_gen) for c in conditions
    ]
    with trainer.autocast:
        fakes = G.training_outputs(z, conditions, noise)

    def scores(targets: list[torch.Tensor]) -> list[torch.Tensor]:
        with trainer.autocast:
            return [
                D.score(i, c, t) for i, ((c, _), t) in enumerate(zip(pairs, targets, strict=True))
            ]

    # ---- D step on the fakes detached
    d_real = scores([t for _, t in pairs])
    d_fake = scores([f.detach() for f in fakes])
    per_level_d = [
        loss.discriminator(r, f, t, fk, critic=None)  # BCE reads only the scores
        for r, f, (_, t), fk in zip(d_real, d_fake, pairs, fakes, strict=True)
    ]
    norm_d = trainer._update(trainer.opt_d, torch.stack(per_level_d).sum(), D, "D")
    # ---- G step through the updated discriminators
    D.requires_grad_(False)
    try:
        per_level_g = [loss.generator(s) for s in scores(fakes)]
        norm_g = trainer._update(trainer.opt_g, torch.stack(per_level_g).sum(), G, "G")
    finally:
        D.requires_grad_(True)
    threshold = loss.threshold
    acc = [
        0.5 * ((r.detach() > threshold).float().mean() + (f.detach() < threshold).float().mean())
        for r, f in zip(d_real, d_fake, strict=True)
    ]
    stats = {
        "loss_d": torch.stack(per_level_d).detach().mean(),
        "loss_g": torch.stack(per_level_g).detach().mean(),
        "grad_norm_d": norm_d,
        "grad_norm_g": norm_g,
        "d_real": torch.stack([r.detach().mean() for r in d_real]).mean(),
        "d_fake": torch.stack([f.detach().mean() for f in d_fake]).mean(),
        "d_acc": torch.stack(acc).mean(),
    }
    for r, ld, lg, a in zip(RESOLUTIONS, per_level_d, per_level_g, acc, strict=True):
        stats[f"loss_d_{r}"] = ld.detach()
        stats[f"loss_g_{r}"] = lg.detach()
        stats[f"d_acc_{r}"] = a
    return stats
