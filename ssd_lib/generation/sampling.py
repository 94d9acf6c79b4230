"""Drawing images from a generator: fixed latent codes, batched, returned as uint8."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ssd_lib.utils.images import check_value_range, float_to_uint8
from ssd_lib.utils.validate import check_int, check_psi, check_seed


@contextlib.contextmanager
def seeded_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Seed the global RNG of the CPU and of ``device`` (CUDA or MPS) with ``seed`` for the
    block, then restore both (``torch.random.fork_rng``); no other device's RNG is touched."""
    accelerator = device.type if device.type in ("cuda", "mps") else None
    with torch.random.fork_rng(
        devices=[device] if accelerator else [], device_type=accelerator or "cpu"
    ):
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        elif device.type == "mps":
            torch.mps.manual_seed(seed)
        yield


def sample_z(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal codes (n, z_dim) from a private generator seeded with ``seed``."""
    n, z_dim = check_int("n", n), check_int("z_dim", z_dim)
    seed = check_seed("seed", seed)
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def fixed_codes(cfg) -> torch.Tensor:
    """The codes a training run of ``cfg`` draws its sample grids from (and measures its
    samples' spread on): ``cfg.sample_count`` codes of seed ``cfg.seed + 2``."""
    return sample_z(cfg.sample_count, cfg.nz, cfg.seed + 2)


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
    noise_seed = check_seed("noise_seed", noise_seed)
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
