"""Differentiable augmentation for GAN training on small data sets, fixed or adaptive.

``diff_augment`` follows Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training" (DiffAugment): the same random, differentiable transformations are applied to every
image the discriminator sees, real and generated, and G's gradient flows back through them, so D
cannot tell reals from fakes by the augmentation and G is not taught to produce augmented
images. ``AdaptiveAugment`` follows Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data" (StyleGAN2-ADA): the probability p of each augmentation is tuned
during training from how confidently D scores the reals.

Images are (N, C, H, W) in [-1, 1]. The operations, each applied to a sample with probability
p (one independent draw per sample and per operation; DiffAugment itself applies all of them
with p = 1):

    brightness   x + b,                        b ~ U(-0.5, 0.5) per sample
    saturation   (x - mean_c) * s + mean_c,    s ~ U(0, 2); mean over channels, per pixel
    contrast     (x - mean) * c + mean,        c ~ U(0.5, 1.5); mean over (C, H, W)
    translation  shift by whole pixels, up to 1/8 of the size each way; zeros come in
    cutout       a square of half the size, centred anywhere, set to 0 (it may be clipped)

Brightness, saturation and contrast can leave [-1, 1]; with ``clamp=True`` (the default) their
results are clamped back, which zeroes the gradient of the clamped pixels only. Translation
and cutout only move values or write 0, so they stay in range.

All random numbers come from the ``torch.Generator`` passed in (drawn on its device, then
moved to the images' device), so a seed fixes the result.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F

OPERATIONS = ("brightness", "saturation", "contrast", "translation", "cutout")
GROUPS = {"color": ("brightness", "saturation", "contrast")}
DEFAULT_POLICY = "color,translation,cutout"


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('brightness', 'saturation', 'contrast', 'translation')."""
    names: list[str] = []
    for part in (s.strip() for s in policy.split(",")):
        if part in GROUPS:
            names += GROUPS[part]
        elif part in OPERATIONS:
            names.append(part)
        elif part:
            raise ValueError(
                f"policy={policy!r} names {part!r}; allowed: a comma-separated list of "
                f"{sorted([*GROUPS, *OPERATIONS])}"
            )
    return tuple(names)


def _check_probability(name: str, p: Any) -> float:
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}={p!r} is invalid; allowed: a number in [0, 1]")
    return float(p)


def _uniform(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """n draws from U(0, 1) in ``generator``'s stream, as (n, 1, 1, 1) on ``like``'s device."""
    u = torch.rand(n, generator=generator, device=generator.device)
    return u.to(like.device, like.dtype).view(n, 1, 1, 1)


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n integers in [0, high) as (n, 1) on ``device``."""
    r = torch.randint(0, high, (n,), generator=generator, device=generator.device)
    return r.to(device).view(n, 1)


def brightness(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return x + (_uniform(x.shape[0], generator, x) - 0.5)


def saturation(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)  # (N, 1, H, W): the grey image
    return (x - mean) * (_uniform(x.shape[0], generator, x) * 2) + mean


def contrast(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1)
    return (x - mean) * (_uniform(x.shape[0], generator, x) + 0.5) + mean


def translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its size each way; zeros fill in."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = _randint(2 * sy + 1, n, generator, x.device) - sy  # (N, 1) in [-sy, sy]
    dx = _randint(2 * sx + 1, n, generator, x.device) - sx
    # Output pixel i reads input pixel i - d; indices that fall off the image read the zero
    # border added by the padding (index 0 or size + 1 of the padded image).
    rows = (torch.arange(h, device=x.device) - dy + 1).clamp(0, h + 1)  # (N, H)
    cols = (torch.arange(w, device=x.device) - dx + 1).clamp(0, w + 1)  # (N, W)
    padded = F.pad(x, (1, 1, 1, 1))  # (N, C, H + 2, W + 2)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Set a square of side ``ratio`` x size, centred on a uniform random pixel, to 0."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = _randint(h, n, generator, x.device) - size_y // 2  # (N, 1): top edge, may be < 0
    x0 = _randint(w, n, generator, x.device) - size_x // 2
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_y = (rows >= y0) & (rows < y0 + size_y)  # (N, H)
    in_x = (cols >= x0) & (cols < x0 + size_x)  # (N, W)
    keep = ~(in_y[:, :, None] & in_x[:, None, :])  # (N, H, W)
    return x * keep[:, None].to(x.dtype)


def diff_augment(
    x: torch.Tensor,
    p: float,
    generator: torch.Generator,
    policy: str = DEFAULT_POLICY,
    *,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
    clamp: bool = True,
) -> torch.Tensor:
    """Augment images x (N, C, H, W) in [-1, 1]; same shape, dtype and range.

    Each operation of ``policy`` is applied to each sample with probability ``p``; samples
    not drawn keep their values exactly. ``p = 0`` returns ``x`` itself and draws nothing.
    Differentiable with respect to ``x``.
    """
    p = _check_probability("p", p)
    ops = parse_policy(policy)
    if x.ndim != 4:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (N, C, H, W) images")
    if p == 0.0 or not ops:
        return x
    for name in ops:
        chosen = _uniform(x.shape[0], generator, x) < p  # (N, 1, 1, 1), drawn even if p = 1
        if name == "translation":
            y = translation(x, generator, translation_ratio)
        elif name == "cutout":
            y = cutout(x, generator, cutout_ratio)
        else:
            y = {"brightness": brightness, "saturation": saturation, "contrast": contrast}[name](
                x, generator
            )
            if clamp:
                y = y.clamp(-1.0, 1.0)
        x = torch.where(chosen, y, x)
    return x


class AdaptiveAugment:
    """StyleGAN2-ADA's controller for p, plus ``diff_augment`` at the current p.

    Per training step, ``observe(d_real)`` adds D's scores on the (augmented) reals to the
    overfitting signal r_t = E[sign(d_real - threshold)], and ``step()`` counts the step. Every
    ``interval`` steps p moves by ``sign(r_t - target) * images / speed_images``, where
    ``images`` is the number of reals observed in the interval: p can go from 0 to 1 within
    ``speed_images`` real images (500,000 in the paper), and is clamped to [0, 1].

    r_t is 0 for a D that cannot separate reals from fakes and 1 for one that is sure of every
    real; ADA holds it at ``target`` (0.6). ``threshold`` is 0 for a D returning logits or
    scores, 0.5 for one returning probabilities (this project's DCGAN discriminators).
    """

    def __init__(
        self,
        target: float = 0.6,
        interval: int = 4,
        speed_images: int = 500_000,
        p: float = 0.0,
        policy: str = DEFAULT_POLICY,
        threshold: float = 0.0,
    ) -> None:
        if not isinstance(target, numbers.Real) or isinstance(target, bool) or not 0 < target <= 1:
            raise ValueError(f"target={target!r} is invalid; allowed: a number in (0, 1]")
        for name, v in (("interval", interval), ("speed_images", speed_images)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}={v!r} is invalid; allowed: an integer >= 1")
        if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
            raise ValueError(f"threshold={threshold!r} is invalid; allowed: a number")
        parse_policy(policy)
        self.target, self.interval, self.speed_images = float(target), interval, speed_images
        self.policy, self.threshold = policy, float(threshold)
        self.p = _check_probability("p", p)
        self.steps = 0
        self.sign_sum: torch.Tensor | float = 0.0  # a tensor between updates: no device sync
        self.count = 0
        self.log: list[tuple[int, float, float]] = []  # (step, p after the update, r_t)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``diff_augment`` at the current p."""
        return diff_augment(x, self.p, generator, self.policy)

    def observe(self, d_real: torch.Tensor) -> None:
        """Add D's outputs on this step's reals, any shape, to the signal."""
        signs = torch.sign(d_real.detach().float() - self.threshold)
        self.sign_sum = self.sign_sum + signs.sum()
        self.count += signs.numel()

    def step(self) -> float:
        """Count one training step; every ``interval`` steps update p. Returns p."""
        self.steps += 1
        if self.steps % self.interval == 0 and self.count > 0:
            r_t = float(self.sign_sum) / self.count  # the one host sync per interval
            adjust = (1.0 if r_t > self.target else -1.0 if r_t < self.target else 0.0) * (
                self.count / self.speed_images
            )
            self.p = min(max(self.p + adjust, 0.0), 1.0)
            self.log.append((self.steps, self.p, r_t))
            self.sign_sum, self.count = 0.0, 0
        return self.p

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (JSON-ready): p, the step count, the accumulators and the log."""
        return {
            "p": self.p,
            "steps": self.steps,
            "sign_sum": float(self.sign_sum),
            "count": self.count,
            "log": [list(row) for row in self.log],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = _check_probability("p", state["p"])
        self.steps, self.count = int(state["steps"]), int(state["count"])
        self.sign_sum = float(state["sign_sum"])
        self.log = [(int(s), float(p), float(r)) for s, p, r in state["log"]]
