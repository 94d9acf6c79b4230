"""The geometry of the latent spaces: sampling, labelling, interpolations, walks and grids.

Paper Fig. 7 interpolates between two hand-picked codes "along a direction that keeps one ear
up", and the paper asserts that SN gives a more disentangled latent space. This module finds
such directions instead of picking them, and puts numbers on the assertion:

- ``label_samples`` draws codes, renders them and labels every image with the toy factor CNN;
- ``ssd_lib.analysis.probes`` fits linear probes from z or w to those labels and turns a
  binary factor (e.g. left_ear_up) into a unit direction in Z or W;
- ``interpolation_images``, ``walk_images``, ``ear_preserving_interpolation``,
  ``truncation_images`` and ``style_mixing_images`` return uint8 images (N, 3, 64, 64) for
  ``ssd_lib.reporting.plots.grid_figure``; ``style_mixing_figure`` draws the mixes with their
  row and
  column sources; ``ssd_lib.analysis.ppl`` measures perceptual path lengths.

Randomness: codes come from private generators seeded by the arguments, and the networks run
inside ``torch.random.fork_rng``, so the global RNG never moves. StyleGAN's noise inputs get
explicit maps (``style_noise``): one map shared by all images of a grid, so that neighbouring
images differ only by their codes.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ssd_lib.generation.sampling import sample_z
from ssd_lib.metrics.toy import FactorNet, FactorNetResult, embed
from ssd_lib.models.stylegan import RESOLUTIONS, StyleGANGenerator
from ssd_lib.reporting.plots import mixing_grid_figure
from ssd_lib.utils.images import float_to_uint8
from ssd_lib.utils.validate import PSI_RANGE, check_int, check_seed

log = logging.getLogger(__name__)

SPACES = ("z", "w")
MODES = ("lerp", "slerp")


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; use one of {list(allowed)}")
    return value  # type: ignore[return-value]


def _check_steps(steps: object) -> int:
    return check_int("steps", steps, 2)


def _check_noise_seed(noise_seed: object) -> int:
    return check_seed("noise_seed", noise_seed)


def _numbers(name: str, values: object, low: float, high: float) -> list[float]:
    """One or more finite numbers in [low, high] (a sequence, array or tensor) as floats."""
    try:
        flat = torch.as_tensor(values, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        flat = torch.empty(0)
    inside = torch.isfinite(flat) & (flat >= low) & (flat <= high)
    if isinstance(values, str) or not len(flat) or not inside.all():
        span = "finite numbers" if math.isinf(high) else f"numbers in [{low:g}, {high:g}]"
        raise ValueError(f"{name}={values!r} is invalid; allowed: one or more {span}")
    return flat.tolist()


def has_w_space(generator: nn.Module) -> bool:
    """True for generators with a mapping network (SSD, StyleGAN, mapping-only DCGAN)."""
    return getattr(generator, "num_ws", 0) > 0 and hasattr(generator, "mapping")


def _require_w(generator: nn.Module, what: str, hint: str = "use space='z'") -> None:
    if not has_w_space(generator):
        raise ValueError(
            f"{what} needs a W space, but {type(generator).__name__} has no W space (no mapping "
            f"network, num_ws = 0); {hint}"
        )


def _device(generator: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    p = next(generator.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _rows(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(D,) or (N, D) -> float32 (N, D) on the CPU."""
    x = torch.as_tensor(x).float().cpu()
    return x[None] if x.ndim == 1 else x


@contextmanager
def frozen(generator: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode, no autograd and a forked global RNG; the mode is restored afterwards."""
    was_training = generator.training
    generator.eval()  # also keeps forward() from updating w_avg
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            with torch.no_grad():
                yield
    finally:
        generator.train(was_training)


def style_noise(
    generator: nn.Module, n: int, rng: torch.Generator, device: torch.device | str = "cpu"
) -> list[torch.Tensor] | None:
    """Noise maps for StyleGAN's noise inputs, one (n, 1, r, r) per style layer (n=1 broadcasts
    over a batch), drawn from ``rng``; None for generators without noise inputs."""
    if not isinstance(generator, StyleGANGenerator):
        return None
    # Two style layers per resolution (stylegan.py): layers 2i and 2i + 1 run at RESOLUTIONS[i].
    sizes = [RESOLUTIONS[i // 2] for i in range(generator.num_ws)]
    return [torch.randn(n, 1, r, r, generator=rng).to(device) for r in sizes]


def codes_to_images(
    generator: nn.Module,
    codes: torch.Tensor,
    space: str,
    noise: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Raw output (N, 3, 64, 64) for z (N, z_dim) or ws (N, w_dim) / (N, num_ws, w_dim).

    No mode or RNG handling: call it inside ``frozen``.
    """
    if space == "z" and not has_w_space(generator):
        return generator(codes)
    ws = generator.mapping(codes) if space == "z" else codes
    return generator.synthesis(ws) if noise is None else generator.synthesis(ws, noise=noise)


def render(
    generator: nn.Module,
    codes: torch.Tensor,
    value_range: str,
    space: str = "w",
    device: torch.device | str | None = None,
    batch_size: int = 256,
    noise_seed: int = 0,
    per_image_noise: bool = False,
) -> torch.Tensor:
    """uint8 images (N, 3, 64, 64) for codes in ``space``; ``value_range`` as in ``generate``.

    StyleGAN noise comes from ``noise_seed``: one map for all images, or one per image.
    """
    _check_choice("space", space, SPACES)
    batch_size, noise_seed = check_int("batch_size", batch_size), _check_noise_seed(noise_seed)
    if space == "w":
        _require_w(generator, "render(space='w')")
    dev = _device(generator, device)
    rng = torch.Generator().manual_seed(noise_seed)
    out = []
    with frozen(generator, dev):
        shared = style_noise(generator, 1, rng, dev)
        for chunk in codes.split(batch_size):
            noise = style_noise(generator, len(chunk), rng, dev) if per_image_noise else shared
            img = codes_to_images(generator, chunk.to(dev), space, noise)
            out.append(float_to_uint8(img, value_range).cpu())
    return torch.cat(out)


def map_to_w(
    generator: nn.Module,
    z: torch.Tensor,
    device: torch.device | str | None = None,
    batch_size: int = 1024,
) -> torch.Tensor:
    """w = mapping(z): (N, z_dim) -> (N, w_dim) float32 on the CPU."""
    _require_w(generator, "map_to_w")
    batch_size = check_int("batch_size", batch_size)
    dev = _device(generator, device)
    with frozen(generator, dev):
        return torch.cat([generator.mapping(c.to(dev)).cpu() for c in _rows(z).split(batch_size)])


def sample_latents(
    generator: nn.Module, n: int, seed: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """z (n, z_dim) ~ N(0, I) from ``seed`` and w = mapping(z) (n, w_dim), both on the CPU."""
    hint = "use ssd_lib.generation.sampling.sample_z(n, generator.z_dim, seed) for its Z codes"
    _require_w(generator, "sample_latents", hint)
    z = sample_z(n, generator.z_dim, seed)
    return z, map_to_w(generator, z, device)


def label_samples(
    generator: nn.Module,
    value_range: str,
    net: FactorNetResult | FactorNet,
    n: int,
    seed: int,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, np.ndarray], torch.Tensor]:
    """``n`` samples labelled by the toy factor CNN: (z, w, predictions, uint8 images).

    z = ``sample_z(n, z_dim, seed)``; w is None for generators without a W space (DCGAN), so
    that their Z can still be probed. Predictions per factor (n,): class indices (int64) or
    values in the factor's natural units. StyleGAN noise: one map per image, seeded by ``seed``.
    """
    batch_size = check_int("batch_size", batch_size)
    z = sample_z(n, generator.z_dim, seed)
    w = map_to_w(generator, z, device) if has_w_space(generator) else None
    # StyleGAN's noise gets its own stream: Generator(seed) would repeat the numbers of z.
    noise_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    images = render(generator, z, value_range, "z", device, batch_size, noise_seed, True)
    _, predictions = embed(net.net if isinstance(net, FactorNetResult) else net, images, batch_size)
    return z, w, predictions, images


# ---------------------------------------------------------------------------- linear probes


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a + t (b - a) for rows a, b (N, D) and t (N, 1)."""
    return a + t * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle interpolation of the directions of a, b (N, D) at t (N, 1), with the norm
    going linearly from |a| to |b|: equal norms are kept and the endpoints are a and b.

    Both mappings normalise z first, so only the direction matters for SSD and StyleGAN; the
    norm is kept for DCGAN, whose codes would otherwise leave the shell N(0, I) lives on.
    """
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na, b / nb
    omega = torch.acos((ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    # Parallel (or opposite) directions: sin -> 0; the lerp of the directions is the limit
    # for parallel ones (opposite ones have no unique great circle).
    flat = sin < 1e-6
    safe = torch.where(flat, torch.ones_like(sin), sin)
    wa = torch.where(flat, 1 - t, torch.sin((1 - t) * omega) / safe)
    wb = torch.where(flat, t, torch.sin(t * omega) / safe)
    return (wa * ua + wb * ub) * (na + t * (nb - na))


def interpolate(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, steps: int, mode: str = "lerp"
) -> torch.Tensor:
    """``steps`` evenly spaced codes (steps, D) from a (D,) to b (D,), both included."""
    _check_choice("mode", mode, MODES)
    steps = _check_steps(steps)
    a, b = _rows(a), _rows(b)
    t = torch.linspace(0.0, 1.0, steps)[:, None]
    return (lerp if mode == "lerp" else slerp)(a.expand(steps, -1), b.expand(steps, -1), t)


def _endpoints(generator, z_a, z_b, space, mode, device):
    _check_choice("space", space, SPACES)
    z_a, z_b = _rows(z_a), _rows(z_b)
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must have the same shape, got {z_a.shape} and {z_b.shape}")
    if space == "z":
        return z_a, z_b, mode or "slerp"
    _require_w(generator, f"space={space!r}")
    return map_to_w(generator, z_a, device), map_to_w(generator, z_b, device), mode or "lerp"


def interpolation_images(
    generator: nn.Module,
    value_range: str,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    steps: int,
    space: str = "z",
    mode: str | None = None,
    device: torch.device | str | None = None,
    noise_seed: int = 0,
) -> torch.Tensor:
    """uint8 (N * steps, 3, 64, 64): row i goes from z_a[i] to z_b[i] (z (N, z_dim) or (z_dim,)).

    space="z": slerp between the codes; space="w": map both endpoints, lerp in W (StyleGAN's
    conventions; ``mode`` overrides them).
    """
    steps, noise_seed = _check_steps(steps), _check_noise_seed(noise_seed)
    a, b, mode = _endpoints(generator, z_a, z_b, space, mode, device)
    codes = torch.cat([interpolate(a[i], b[i], steps, mode) for i in range(len(a))])
    return render(generator, codes, value_range, space, device, noise_seed=noise_seed)


def walk_images(
    generator: nn.Module,
    value_range: str,
    w_start: torch.Tensor,
    direction: torch.Tensor,
    amounts: Sequence[float] | torch.Tensor,
    space: str = "w",
    device: torch.device | str | None = None,
    noise_seed: int = 0,
) -> torch.Tensor:
    """uint8 (N * len(amounts), 3, 64, 64): row i shows w_start[i] + amount * direction.

    Codes are in ``space`` (W by default; (N, D) or (D,)). Amounts are in latent units; the
    spread of ``latents @ direction`` over samples is a natural scale for them.
    """
    _check_choice("space", space, SPACES)
    noise_seed = _check_noise_seed(noise_seed)
    values = torch.tensor(_numbers("amounts", amounts, -math.inf, math.inf))
    start, amounts = _rows(w_start), values.float()
    d = _rows(direction)[0]
    codes = start[:, None, :] + amounts[None, :, None] * d  # (N, A, D)
    return render(generator, codes.flatten(0, 1), value_range, space, device, noise_seed=noise_seed)


def factor_preserving_path(
    a: torch.Tensor,
    b: torch.Tensor,
    direction: torch.Tensor,
    steps: int,
    level: float | None = None,
    mode: str = "lerp",
) -> torch.Tensor:
    """Codes (steps, D) from a to b whose component along ``direction`` is held at ``level``.

    Method: interpolate a -> b as usual, then replace each code's projection onto the unit
    direction d by ``level`` (default a . d, the start's level): c' = c - (c . d) d + level d.
    Everything orthogonal to d still moves from a to b, so a linear probe for the factor sees
    the same value all along the path. The last code is b with its d-component replaced.
    """
    steps = _check_steps(steps)
    real = isinstance(level, numbers.Real) and not isinstance(level, bool)
    if level is not None and not (real and math.isfinite(level)):
        raise ValueError(f"level={level!r} is invalid; allowed: a finite number or None")
    d = _rows(direction)[0]
    d = d / d.norm()
    path = interpolate(a, b, steps, mode)
    level = float(_rows(a)[0] @ d) if level is None else float(level)
    return path - (path @ d)[:, None] * d + level * d


def ear_preserving_interpolation(
    generator: nn.Module,
    value_range: str,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    direction: torch.Tensor,
    steps: int,
    space: str = "w",
    level: float | None = None,
    mode: str | None = None,
    device: torch.device | str | None = None,
    noise_seed: int = 0,
) -> torch.Tensor:
    """Paper Fig. 7 with a found direction: uint8 (steps, 3, 64, 64) from z_a to z_b (z_dim,)
    with the factor along ``direction`` (in ``space``; e.g. from ``factor_direction`` for
    left_ear_up) held constant; see ``factor_preserving_path`` for the method. Use ``level``
    (e.g. the class-1 mean of ``latents @ direction``) to hold the ear up, not at the start's
    level."""
    steps, noise_seed = _check_steps(steps), _check_noise_seed(noise_seed)
    a, b, mode = _endpoints(generator, z_a, z_b, space, mode, device)
    codes = factor_preserving_path(a[0], b[0], direction, steps, level, mode)
    return render(generator, codes, value_range, space, device, noise_seed=noise_seed)


# ----------------------------------------------------------------- truncation, style mixing


def truncation_images(
    generator: nn.Module,
    value_range: str,
    z: torch.Tensor,
    psis: Sequence[float],
    device: torch.device | str | None = None,
    noise_seed: int = 0,
) -> torch.Tensor:
    """uint8 (len(z) * len(psis), 3, 64, 64): row per z, column per psi, each image rendered
    from ``generator.truncate(w, psi)`` = w_avg + psi (w - w_avg)."""
    _require_w(generator, "truncation_images", "truncation needs a mapping network")
    noise_seed = _check_noise_seed(noise_seed)
    psis = _numbers("psis", psis, *PSI_RANGE)
    if not torch.any(generator.w_avg != 0):
        log.warning(
            "%s.w_avg is all zeros (never trained?): truncation pulls towards w = 0",
            type(generator).__name__,
        )
    w = map_to_w(generator, z, device).to(generator.w_avg.device)
    codes = torch.stack([generator.truncate(w, float(psi)) for psi in psis], dim=1)  # (N, P, D)
    return render(
        generator, codes.flatten(0, 1).cpu(), value_range, "w", device, noise_seed=noise_seed
    )


def style_mixing_images(
    generator: nn.Module,
    value_range: str,
    z_rows: torch.Tensor,
    z_cols: torch.Tensor,
    crossover: int,
    device: torch.device | str | None = None,
    noise_seed: int = 0,
) -> torch.Tensor:
    """uint8 (R * C, 3, 64, 64), row-major: image (i, j) takes the coarse styles, layers
    [0, crossover), from z_rows[i] and the rest from z_cols[j]. crossover = num_ws reproduces
    the row images, 0 the column images."""
    _require_w(generator, "style_mixing_images", "style mixing needs a mapping network")
    crossover = check_int("crossover", crossover, 0, generator.num_ws)
    noise_seed = _check_noise_seed(noise_seed)
    w_rows, w_cols = map_to_w(generator, z_rows, device), map_to_w(generator, z_cols, device)
    r, c = len(w_rows), len(w_cols)
    ws = generator.mix_styles(w_rows.repeat_interleave(c, 0), w_cols.repeat(r, 1), crossover)
    return render(generator, ws, value_range, "w", device, noise_seed=noise_seed)


def _layer_span(start: int, stop: int, total: int) -> str:
    """Style layers [start, stop) in words, counted from 1: "layers 1-2 of 4", "no layer"."""
    if stop <= start:
        return f"no layer of {total}"
    if stop == start + 1:
        return f"layer {start + 1} of {total}"
    return f"layers {start + 1}-{stop} of {total}"


def style_mixing_figure(
    generator: nn.Module,
    value_range: str,
    z_rows: torch.Tensor,
    z_cols: torch.Tensor,
    crossover: int,
    title: str,
    label: str,
    device: torch.device | str | None = None,
    noise_seed: int = 0,
) -> Figure:
    """``style_mixing_images`` as a figure with its sources: the images of z_cols across the
    top, those of z_rows down the left (an empty top-left corner), and the mixes inside; the
    heads and the title say which style layers (coarse: [0, crossover), fine: the rest) come
    from which source. Sources are rendered from the same noise maps as the mixes, so a
    source is exactly what the mixes with crossover = num_ws (rows) or 0 (columns) show."""
    _require_w(generator, "style_mixing_figure", "style mixing needs a mapping network")
    crossover = check_int("crossover", crossover, 0, generator.num_ws)
    mixed = style_mixing_images(
        generator, value_range, z_rows, z_cols, crossover, device, noise_seed
    )
    row_img, col_img = (
        render(
            generator,
            map_to_w(generator, z, device),
            value_range,
            "w",
            device,
            noise_seed=noise_seed,
        )
        for z in (z_rows, z_cols)
    )
    n = generator.num_ws
    return mixing_grid_figure(
        mixed,
        row_img,
        col_img,
        title,
        f"coarse styles ({_layer_span(0, crossover, n)})",
        f"fine styles ({_layer_span(crossover, n, n)})",
        label,
    )
