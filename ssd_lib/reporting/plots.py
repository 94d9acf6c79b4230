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
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ssd_lib.utils.atomic import atomic_write
from ssd_lib.utils.images import make_grid


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


def _plain(value: float, _pos: object = None) -> str:
    """A tick value as a plain decimal: 0.5, 1, 2, 1.5, 0.03 (never 2x10^0 or 1e-2)."""
    return np.format_float_positional(float(value), precision=6, trim="-")


def plain_log_ticks(axis) -> None:
    """Label a log axis in one plain format: labelled ticks at 1, 2, 5 x 10^k (more steps
    on a narrow range, only powers of ten on a wide one, evenly spaced values on a range too
    narrow for three of those), all written as plain decimals; the minor ticks stay
    unlabelled. Matplotlib's default mixes "1.0" (major) with "2 x 10^0" (the minor labels
    it adds on a range under a decade)."""
    lo, hi = sorted(axis.get_view_interval())
    decades = np.log10(hi / lo) if lo > 0 else np.inf
    if decades <= 1.2:
        subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    elif decades <= 3:
        subs = (1.0, 2.0, 5.0)
    else:
        subs = (1.0,)
    locator = LogLocator(base=10, subs=subs)
    ticks = locator.tick_values(lo, hi)
    if np.sum((ticks >= lo) & (ticks <= hi)) < 3:
        locator = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10])  # a very narrow range
    axis.set_major_locator(locator)
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(NullFormatter())


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


def _hwc(image: torch.Tensor) -> np.ndarray:
    """uint8 (3, H, W) -> (H, W, 3) for imshow."""
    return image.permute(1, 2, 0).cpu().numpy()


def mixing_grid_figure(
    mixed: torch.Tensor,
    row_sources: torch.Tensor,
    col_sources: torch.Tensor,
    title: str,
    row_role: str,
    col_role: str,
    label: str,
    frame_inches: float = 1.0,
) -> Figure:
    """A (R + 1) x (C + 1) grid of panels: the column sources (C, 3, H, W) across the top, the
    row sources (R, 3, H, W) down the left, an empty top-left corner, and in cell (i, j)
    ``mixed[i * C + j]`` (uint8 (R * C, 3, H, W), row-major), which combines row source i
    with column source j. ``row_role`` and ``col_role`` say what each source gives (e.g.
    "coarse styles, layers 1-2 of 4"); they are written on the heads and under the title.

    Row sources are framed in blue, column sources in orange, so a reader can tell the heads
    from the mixes."""
    r, c = len(row_sources), len(col_sources)
    if mixed.shape[0] != r * c or mixed.shape[1:] != row_sources.shape[1:]:
        raise ValueError(
            f"mixed has shape {tuple(mixed.shape)}; expected ({r} x {c} = {r * c}, "
            f"{', '.join(map(str, row_sources.shape[1:]))}) for {r} row and {c} column sources"
        )
    fig = PlotFigure(
        figsize=(frame_inches * (c + 1) + 0.3, frame_inches * (r + 1) + 1.2), layout="constrained"
    )
    fig.inline_format = "jpeg"
    axes = fig.subplots(r + 1, c + 1, squeeze=False, gridspec_kw={"wspace": 0.02, "hspace": 0.02})
    axes[0, 0].set_axis_off()  # the corner: neither a source nor a mix
    for ax, image, colour in (
        *((axes[0, j + 1], col_sources[j], "C1") for j in range(c)),
        *((axes[i + 1, 0], row_sources[i], "C0") for i in range(r)),
    ):
        ax.imshow(_hwc(image), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set(color=colour, linewidth=2.5)
    for j in range(c):
        axes[0, j + 1].set_title(f"column source {j + 1}", fontsize=7, color="C1")
    for i in range(r):
        axes[i + 1, 0].set_ylabel(f"row source {i + 1}", fontsize=7, color="C0")
    for i in range(r):
        for j in range(c):
            ax = axes[i + 1, j + 1]
            ax.imshow(_hwc(mixed[i * c + j]), interpolation="nearest")
            ax.set_axis_off()
    explanation = (
        f"cell (row i, column j): {row_role} from row source i (blue, left), "
        f"{col_role} from column source j (orange, top)"
    )
    width = max(30, int(fig.get_figwidth() * 13))
    fig.suptitle(
        textwrap.fill(title, width=width) + "\n" + textwrap.fill(explanation, width=width + 10),
        fontsize=9,
    )
    return stamp(fig, label)


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
