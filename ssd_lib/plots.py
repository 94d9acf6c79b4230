"""Figures: loss curves and sample grids, each stamped with what made it.

Functions return ``matplotlib.figure.Figure`` objects built without pyplot, so they work the
same in a notebook, a script and a test, and never change the global backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ssd_lib.atomic import atomic_write
from ssd_lib.images import make_grid


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps (shorter at the start); NaNs are skipped."""
    if window < 1:
        raise ValueError(f"window={window!r} must be >= 1")
    x = np.asarray(x, dtype=float)
    valid = ~np.isnan(x)
    c = np.concatenate([[0.0], np.cumsum(np.where(valid, x, 0.0))])
    n = np.concatenate([[0], np.cumsum(valid)])
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(idx - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c[idx] - c[lo]) / (n[idx] - n[lo])


def stamp(fig: Figure, label: str) -> Figure:
    """Write ``label`` (dataset, preset, profile, checkpoint) along the bottom of ``fig``."""
    fig.text(0.01, 0.005, label, fontsize=7, color="0.35", ha="left", va="bottom")
    return fig


def loss_figure(history: dict[str, np.ndarray], label: str, window: int = 25) -> Figure:
    """D and G losses per step (thin) with a ``window``-step moving average (thick)."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    step = history["step"]
    for ax, key, name in zip(
        axes, ("loss_d", "loss_g"), ("discriminator", "generator"), strict=True
    ):
        ax.plot(step, history[key], lw=0.5, alpha=0.35, color="C0")
        ax.plot(
            step,
            moving_average(history[key], window),
            lw=1.8,
            color="C0",
            label=f"{window}-step mean",
        )
        ax.set(title=f"{name} loss", xlabel="step", ylabel=key)
        ax.legend(loc="upper right", fontsize=8)
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    return stamp(fig, label)


def grid_figure(images: torch.Tensor, title: str, label: str, nrow: int = 8) -> Figure:
    """uint8 images (N, 3, H, W) as one grid with a title."""
    grid = make_grid(images, nrow=nrow)
    h, w = grid.shape[:2]
    fig = Figure(figsize=(6, 6 * h / w + 0.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    return stamp(fig, label)


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
