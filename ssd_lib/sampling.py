"""Drawing images from a generator: fixed latent codes, batched, returned as uint8."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ssd_lib.images import check_value_range, float_to_uint8

MAX_SEED = 2**64 - 1  # the largest seed torch.Generator.manual_seed accepts


def check_int(name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int if it is an integer (Python or NumPy, not bool) in [low, high];
    otherwise a ``ValueError`` naming ``name``, the value and the allowed range."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        if high is None:
            allowed = f"an integer >= {low}"
        else:
            # 18446744073709551615 reads better as 2**64 - 1
            top = f"2**{high.bit_length()} - 1" if (high + 1).bit_count() == 1 else str(high)
            allowed = f"an integer in [{low}, {top if high > 2**20 else high}]"
        raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")
    return int(value)


def check_psi(value: Any, name: str = "truncation_psi") -> float:
    """``value`` as a float if it is a number in [0, 2] (the range ``truncate`` accepts)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0.0 <= value <= 2.0:
        raise ValueError(f"{name}={value!r} is invalid; allowed: a number in [0, 2]")
    return float(value)


@contextlib.contextmanager
def seeded_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Seed the global RNG of the CPU and of ``device`` (CUDA or MPS) with ``seed`` for the
    block, then restore both; no other device's RNG is touched."""
    cpu_state = torch.get_rng_state()
    device_state = None
    if device.type == "cuda":
        device_state = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        device_state = torch.mps.get_rng_state()
    try:
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        elif device.type == "mps":
            torch.mps.manual_seed(seed)
        yield
    finally:
        torch.set_rng_state(cpu_state)
        if device.type == "cuda":
            torch.cuda.set_rng_state(device_state, device)
        elif device.type == "mps":
            torch.mps.set_rng_state(device_state)


def sample_z(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal codes (n, z_dim) from a private generator seeded with ``seed``."""
    n, z_dim = check_int("n", n), check_int("z_dim", z_dim)
    seed = check_int("seed", seed, 0, MAX_SEED)
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(
    generator: nn.Module,
    z: torch.Tensor,
    value_range: str,
    batch_size: int = 256,
    truncation_psi: float = 1.0,
    device: torch.device | str | None = None,
    noise_seed: int = 0,
) -> torch.Tensor:
    """Images for codes ``z`` as uint8 (N, 3, 64, 64).

    ``value_range`` is the range the generator was trained to imitate (``cfg.real_range``):
    the release's recipe teaches a tanh generator to produce [0, 1] content, so its outputs are
    read as [0, 1]; the other presets as [-1, 1]. The generator's train/eval mode and the
    global RNG are restored afterwards. StyleGAN's noise inputs are drawn from the global RNG
    seeded with ``noise_seed`` (inside a fork), so the images depend only on the arguments.
    ``batch_size`` is a positive int, ``truncation_psi`` a number in [0, 2].
    """
    if not isinstance(z, torch.Tensor) or z.ndim < 1 or len(z) < 1:
        got = f"shape {tuple(z.shape)}" if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z ({got}) is invalid; allowed: a tensor of one or more codes (N, z_dim)")
    check_value_range(value_range)
    batch_size = check_int("batch_size", batch_size)
    truncation_psi = check_psi(truncation_psi)
    noise_seed = check_int("noise_seed", noise_seed, 0, MAX_SEED)
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    if truncation_psi != 1.0 and getattr(generator, "num_ws", 0) == 0:
        raise ValueError(
            f"truncation_psi={truncation_psi!r} needs a generator with a mapping "
            f"network; {type(generator).__name__} has none (use 1.0)"
        )
    was_training = generator.training
    generator.eval()
    out = []
    try:
        with seeded_rng(device, noise_seed):
            for chunk in z.split(batch_size):
                chunk = chunk.to(device)
                if truncation_psi != 1.0:
                    img = generator(chunk, truncation_psi=truncation_psi)
                else:
                    img = generator(chunk)
                out.append(float_to_uint8(img.float(), value_range).cpu())
    finally:
        generator.train(was_training)
    return torch.cat(out)
