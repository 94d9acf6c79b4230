"""Figures: loss curves and sample grids, each stamped with what made it.

Functions return ``matplotlib.figure.Figure`` objects built without pyplot, so they work the
same in a notebook, a script and a test, and never change the global backend.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ssd_lib.atomic import atomic_write
from ssd_lib.images import make_grid


class PlotFigure(Figure):
    """A matplotlib ``Figure`` that shows itself in Jupyter, so a notebook cell ending in
    ``fig`` displays it without pyplot or an inline backend.

    Plots show as PNG. Figures made of many generated images set ``inline_format = "jpeg"``:
    noisy pixels compress badly as PNG, and the committed notebooks would grow by megabytes.
    (Files written with ``save_figure`` are PNG either way.)"""

    inline_format = "png"

    def _inline(self, fmt: str, **kwargs: object) -> bytes | None:
        if self.inline_format != fmt:
            return None  # IPython leaves out a representation that returns None
        buf = io.BytesIO()
        self.savefig(buf, format=fmt, dpi=100, **kwargs)
        return buf.getvalue()

    def _repr_png_(self) -> bytes | None:
        return self._inline("png")

    def _repr_jpeg_(self) -> bytes | None:
        return self._inline("jpeg", pil_kwargs={"quality": 88})


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


STAMP_FONTSIZE = 7


def stamp(fig: Figure, label: str) -> Figure:
    """Write ``label`` (dataset, preset, profile, checkpoint) along the bottom of ``fig``,
    wrapped to the figure's width, and keep the axes clear of it."""
    # About 16 characters per inch at 7 pt; wrap on spaces so no word is cut.
    text = textwrap.fill(label, width=max(20, int(fig.get_figwidth() * 16)))
    n_lines = text.count("\n") + 1
    fig.text(0.01, 0.005, text, fontsize=STAMP_FONTSIZE, color="0.35", ha="left", va="bottom")
    bottom = (n_lines * 1.3 * STAMP_FONTSIZE / 72 + 0.05) / fig.get_figheight()
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))  # (left, bottom, w, h)
    return fig


def loss_figure(history: dict[str, np.ndarray], label: str, window: int = 25) -> Figure:
    """D and G losses per step (thin) with a ``window``-step moving average (thick)."""
    fig = PlotFigure(figsize=(10, 3.6), layout="constrained")
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
    return stamp(fig, label)


def grid_figure(images: torch.Tensor, title: str, label: str, nrow: int = 8) -> Figure:
    """uint8 images (N, 3, H, W) as one grid with a title."""
    grid = make_grid(images, nrow=nrow)
    h, w = grid.shape[:2]
    fig = PlotFigure(figsize=(6, 6 * h / w + 0.6), layout="constrained")
    fig.inline_format = "jpeg"
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    return stamp(fig, label)


def strips_figure(
    rows: list[tuple[str, torch.Tensor]], title: str, label: str, frame_inches: float = 1.2
) -> Figure:
    """One titled row per ``(name, uint8 images (K, 3, H, W))``: interpolations, walks."""
    width = max(len(images) for _, images in rows)
    fig = PlotFigure(
        figsize=(frame_inches * width, 1.25 * frame_inches * len(rows) + 0.9), layout="constrained"
    )
    fig.inline_format = "jpeg"
    axes = np.atleast_1d(fig.subplots(len(rows), 1))
    for ax, (name, images) in zip(axes, rows, strict=True):
        ax.imshow(torch.cat(list(images), dim=2).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return stamp(fig, label)


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
