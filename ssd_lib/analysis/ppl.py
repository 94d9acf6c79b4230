"""Perceptual path length (Karras et al. 2019) on a feature network that needs no download.

StyleGAN defines the perceptual path length of a generator G as

    l = E_{z1, z2 ~ N(0, I), t ~ U(0, 1)} [ d(G(p(t)), G(p(t + eps))) / eps^2 ]

where p is the slerp from z1 to z2 in Z, or the lerp from w1 = f(z1) to w2 = f(z2) in W, and d
is the LPIPS distance (a squared distance between VGG16 features). The reported number is the
mean after dropping the lowest and highest 1 % of the values, which the heavy tail would
otherwise dominate. Short paths mean small steps in the code make small changes in the image:
a smooth, "perceptually linear" space.

Here d is the squared Euclidean distance between the features of a function passed in.
``toy_feature_fn`` uses the penultimate layer of the toy factor CNN (``ssd_lib.metrics.toy``),
so those results are named "PPL-toy": comparable with each other (same net, same eps), not
with the LPIPS-based numbers in the StyleGAN papers.

Images reach the feature function as float (N, 3, 64, 64) on the uint8 scale [0, 255], clipped
but not rounded: at eps = 1e-4 the two images of a pair differ by far less than one grey
level, so rounding them to uint8 would replace the signal by quantisation noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ssd_lib.analysis.latent import (
    SPACES,
    _check_choice,
    _device,
    _require_w,
    codes_to_images,
    frozen,
    lerp,
    slerp,
    style_noise,
)
from ssd_lib.metrics.toy import FactorNetResult
from ssd_lib.utils.images import check_value_range
from ssd_lib.utils.progress import progress_bar as tqdm

log = logging.getLogger(__name__)

TRIM_PERCENT = 1.0  # StyleGAN drops the lowest and highest 1 % before averaging


def to_pixel_scale(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """float images in ``value_range`` -> float32 in [0, 255], clipped, not rounded.

    The unrounded twin of ``ssd_lib.utils.images.float_to_uint8``.
    """
    check_value_range(value_range)
    x = images.float()
    if value_range == "[-1, 1]":
        x = (x + 1.0) / 2.0
    return x.clamp(0.0, 1.0) * 255.0


class ToyFeatures:
    """Penultimate features (N, D) of the toy factor CNN for float images in [0, 255]."""

    tag = "toy"

    def __init__(self, net: FactorNetResult) -> None:
        self.net = net.net
        self.feature_network = net.feature_network

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                # FactorNet reads float input as [-1, 1]; the same scaling ``embed`` applies to
                # uint8 images, without the rounding that would drown a 1e-4 step.
                x = images.to(device).float() / 127.5 - 1.0
                return self.net.features(x).double().cpu()
        finally:
            self.net.train(was_training)


def toy_feature_fn(net: FactorNetResult) -> ToyFeatures:
    """The feature function for "PPL-toy": the toy factor CNN's penultimate layer."""
    return ToyFeatures(net)


@dataclass
class PathLengthResult:
    """PPL values in squared feature units per squared path length (d / eps^2).

    mean: over the values between the 1st and 99th percentile (StyleGAN's report); median and
    values (n,): all pairs, untrimmed.
    """

    name: str
    mean: float
    median: float
    values: np.ndarray = field(repr=False)
    space: str
    n: int
    epsilon: float
    seed: int
    feature_network: str
    n_kept: int

    def as_dict(self) -> dict[str, Any]:
        """Everything but the values, for a JSONL record."""
        return {k: v for k, v in self.__dict__.items() if k != "values"}


def path_length(
    generator: nn.Module,
    value_range: str,
    feature_fn: Callable[[torch.Tensor], torch.Tensor | np.ndarray],
    n: int = 1000,
    space: str = "z",
    epsilon: float = 1e-4,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str | None = None,
    show_progress: bool = True,
) -> PathLengthResult:
    """Perceptual path length over ``n`` random pairs (z1, z2, t), full paths (t ~ U(0, 1)).

    ``feature_fn`` maps float images (N, 3, 64, 64) in [0, 255] to features (N, D); its
    ``tag`` (e.g. "toy") names the result "PPL-<tag>" and its ``feature_network`` is recorded.
    Codes, t and StyleGAN's noise (one map per pair, the same for both images of the pair)
    come from ``seed``; the noise also depends on ``batch_size``.
    """
    _check_choice("space", space, SPACES)
    check_value_range(value_range)
    if space == "w":
        _require_w(generator, "path_length(space='w')")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    if not epsilon > 0:
        raise ValueError(f"epsilon={epsilon!r} must be > 0")
    tag = getattr(feature_fn, "tag", "custom")
    feature_network = getattr(feature_fn, "feature_network", getattr(feature_fn, "__name__", "?"))
    dev = _device(generator, device)
    rng = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, generator.z_dim, generator=rng)
    z2 = torch.randn(n, generator.z_dim, generator=rng)
    t = torch.rand(n, 1, generator=rng)
    values = []
    with frozen(generator, dev):
        for lo in tqdm(
            range(0, n, batch_size), desc=f"PPL-{tag} ({space})", disable=not show_progress
        ):
            a, b, tt = (x[lo : lo + batch_size].to(dev) for x in (z1, z2, t))
            if space == "w":
                a, b, path = generator.mapping(a), generator.mapping(b), lerp
            else:
                path = slerp
            codes = torch.cat([path(a, b, tt), path(a, b, tt + epsilon)])
            noise = style_noise(generator, len(tt), rng, dev)
            if noise is not None:
                noise = [torch.cat([m, m]) for m in noise]  # both images of a pair share it
            images = to_pixel_scale(codes_to_images(generator, codes, space, noise), value_range)
            f0, f1 = torch.as_tensor(feature_fn(images), dtype=torch.float64).chunk(2)
            values.append(((f1 - f0) ** 2).sum(1) / epsilon**2)
    values = torch.cat(values).numpy()
    low = np.percentile(values, TRIM_PERCENT, method="lower")
    high = np.percentile(values, 100 - TRIM_PERCENT, method="higher")
    kept = values[(values >= low) & (values <= high)]
    result = PathLengthResult(
        name=f"PPL-{tag}",
        mean=float(kept.mean()),
        median=float(np.median(values)),
        values=values,
        space=space,
        n=n,
        epsilon=epsilon,
        seed=seed,
        feature_network=str(feature_network),
        n_kept=len(kept),
    )
    log.info(
        "%s in %s: mean %.4g, median %.4g over %d pairs",
        result.name,
        space,
        result.mean,
        result.median,
        n,
    )
    return result
