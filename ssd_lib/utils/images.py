"""Image tensors, their value ranges, and sample grids.

Three value ranges occur in this project, and every conversion between them happens here:

- ``uint8``: stored images, integers in [0, 255], shape (N, 3, H, W).
- ``"[0, 1]"``: what the authors' release fed the discriminator (ToTensor output).
- ``"[-1, 1]"``: what a tanh generator produces, and what the corrected recipe feeds D.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ssd_lib.utils.atomic import atomic_write
from ssd_lib.utils.validate import VALUE_RANGES

GRID_NROW = 8  # images per row of the trainer's sample grids


def check_value_range(value_range: str) -> str:
    if value_range not in VALUE_RANGES:
        raise ValueError(
            f"value_range={value_range!r} is not supported; use one of {list(VALUE_RANGES)}"
        )
    return value_range


def uint8_to_float(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """uint8 (N, C, H, W) in [0, 255] -> float32 in ``value_range``."""
    check_value_range(value_range)
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    x = images.float() / 255.0
    return x if value_range == "[0, 1]" else x * 2.0 - 1.0


def float_to_uint8(images: torch.Tensor, value_range: str) -> torch.Tensor:
    """float (N, C, H, W) in ``value_range`` -> uint8 in [0, 255], clipped and rounded."""
    check_value_range(value_range)
    x = images.detach().float()
    if value_range == "[-1, 1]":
        x = (x + 1.0) / 2.0
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def make_grid(
    images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Tile uint8 images (N, 3, H, W) into one (H', W', 3) uint8 array, ``nrow`` per row
    (row-major, ``padding`` pixels of ``pad_value`` around and between the cells; an empty
    cell at the end of the last row stays padding). Other channel counts give (H', W'): the
    grid of the first channel.

    A thin wrapper around ``torchvision.utils.make_grid``, which does the tiling. It adds
    only: the check that the input is uint8 (N, C, H, W) with N >= 1 and nrow >= 1, the
    padding of a single image (torchvision returns one image unpadded), white padding by
    default (torchvision: 0), and the result as a NumPy (H', W', 3) array instead of a
    (C, H', W') tensor.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) < 1 or nrow < 1:
        raise ValueError(
            f"make_grid needs uint8 (N, C, H, W) with N >= 1 and nrow >= 1, got "
            f"{images.dtype} {tuple(images.shape)}, nrow={nrow!r}"
        )
    import torchvision.utils  # here: importing torchvision takes seconds

    if len(images) == 1:
        grid = F.pad(images[0], (padding,) * 4, value=pad_value)
    else:
        grid = torchvision.utils.make_grid(images, nrow, padding, pad_value=pad_value)
    grid = np.ascontiguousarray(grid.permute(1, 2, 0).cpu().numpy())
    return grid if images.shape[1] == 3 else grid[..., 0]


def save_image(array: np.ndarray, path: str | Path) -> Path:
    """Save a uint8 (H, W, 3) array as PNG, atomically."""
    image = Image.fromarray(array)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = GRID_NROW) -> Path:
    """Save uint8 images (N, 3, H, W) as one PNG grid, atomically."""
    return save_image(make_grid(images, nrow=nrow), path)


def split_grid(grid: np.ndarray, n: int, nrow: int = GRID_NROW, padding: int = 2) -> torch.Tensor:
    """The ``n`` uint8 images (N, 3, S, S) that ``make_grid(images, nrow, padding)`` tiled
    into ``grid`` (H', W', 3), S read off the grid's width: the inverse of ``make_grid``,
    exact for a grid read back from a PNG (lossless)."""
    if n < 1 or nrow < 1:
        raise ValueError(f"split_grid needs n >= 1 and nrow >= 1, got n={n!r}, nrow={nrow!r}")
    rows, cols = -(-n // nrow), min(n, nrow)
    size = (grid.shape[1] - padding) // cols - padding if grid.ndim == 3 else 0
    step = size + padding
    expected = (padding + rows * step, padding + cols * step, 3)
    if size < 1 or grid.dtype != np.uint8 or grid.shape != expected:
        raise ValueError(
            f"not a grid of {n} square images, {nrow} per row with {padding} px padding: "
            f"shape {grid.shape}, dtype {grid.dtype}"
        )
    cells = [
        grid[padding + r * step : padding + r * step + size, padding + c * step :][:, :size]
        for r, c in (divmod(i, nrow) for i in range(n))
    ]
    return torch.from_numpy(np.stack(cells)).permute(0, 3, 1, 2).contiguous()
