"""Sample grids and training curves of trained runs (notebook 01: paper Fig. 1, 2, 5, 6).

Every figure is stamped with the run's dataset, preset, profile and checkpoint.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from ssd_lib.generation.sampling import fixed_codes, generate, sample_z
from ssd_lib.reporting.plots import PlotFigure, grid_figure, moving_average, plain_log_ticks, stamp
from ssd_lib.training.runs import Run

GRID_PAD = 2  # ssd_lib.utils.images.make_grid's padding
GRID_NAME = re.compile(r"(step|epoch)_(\d+)\.png")  # the trainer's sample grids


def run_label(run: Run, note: str = "") -> str:
    """The run's provenance line, plus ``note`` (e.g. " (embedded data, not AFHQ)")."""
    return run.label() + note


def samples_figure(run: Run, title: str, seed: int, n: int = 32, note: str = "") -> Figure:
    """``n`` samples of the run's final generator from codes ``sample_z(n, z_dim, seed)``."""
    cfg = run.config
    g = run.load_generator()
    images = generate(g, sample_z(n, g.z_dim, seed), cfg.real_range)
    return grid_figure(images, f"{title}, z seed {seed}", run_label(run, note))


def _grids_by_step(run: Run) -> list[tuple[int, Path]]:
    """The run's saved sample grids with the step each shows, oldest first."""
    st = run.status
    steps_per_epoch = st.get("steps_per_epoch")
    if not steps_per_epoch:  # runs saved before status.json recorded it
        epochs = max(1, int(st.get("epoch", 1)))
        steps_per_epoch = max(1, int(st.get("total_steps", 1)) // epochs)
    found = (
        (_grid_step(p.name, steps_per_epoch), p)
        for p in run.sample_grids()
        if GRID_NAME.fullmatch(p.name)  # not a published run's final.png
    )
    return sorted(found, key=lambda t: t[0])


def _grid_step(path_name: str, steps_per_epoch: int) -> int:
    """The training step a saved grid shows: ``step_000025.png`` or ``epoch_002.png``."""
    m = GRID_NAME.fullmatch(path_name)
    if m is None:
        raise ValueError(f"{path_name!r} is not a sample grid name (step_N.png or epoch_N.png)")
    n = int(m.group(2))
    return n if m.group(1) == "step" else n * steps_per_epoch


def progression_figure(
    run: Run, title: str, note: str = "", max_panels: int = 7, cells: int = 4
) -> Figure:
    """The run's fixed-code sample grids as training went on: one panel per saved grid, each
    showing the top-left ``cells`` x ``cells`` images of the grid."""
    grids = _grids_by_step(run)
    if not grids:
        raise FileNotFoundError(f"{run.path / 'samples'} holds no sample grids")
    if len(grids) > max_panels:  # keep the first and last, evenly spaced between
        pick = np.linspace(0, len(grids) - 1, max_panels).round().astype(int)
        grids = [grids[i] for i in sorted(set(pick))]
    fig = PlotFigure(figsize=(2.4 * len(grids), 3.0), layout="constrained")
    fig.inline_format = "jpeg"
    axes = np.atleast_1d(fig.subplots(1, len(grids)))
    for ax, (step, path) in zip(axes, grids, strict=True):
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        edge = GRID_PAD + cells * (64 + GRID_PAD)  # make_grid: 64 px images, 2 px padding
        ax.imshow(pixels[:edge, :edge], interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"step {step}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return stamp(fig, run_label(run, note))


def losses_overview_figure(
    runs: dict[str, Run], label: str, window: int = 25, ncols: int = 4
) -> Figure:
    """D and G loss (``window``-step means over thin raw curves), one panel per run."""
    n = len(runs)
    nrows = -(-n // ncols)
    fig = PlotFigure(figsize=(3.2 * min(n, ncols), 2.6 * nrows + 0.3), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, min(n, ncols), squeeze=False)).ravel()
    for ax, (name, run) in zip(axes, runs.items(), strict=False):
        h = run.history()
        for key, color in (("loss_d", "C0"), ("loss_g", "C1")):
            ax.plot(h["step"], h[key], lw=0.4, alpha=0.3, color=color)
            ax.plot(h["step"], moving_average(h[key], window), lw=1.5, color=color, label=key)
        loss = "WGAN-GP" if run.config.loss == "wgan_gp" else "BCE"
        ax.set_title(f"{name} ({loss})", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_axis_off()
    return stamp(fig, label)


# Run colours: the tab10 palette without its red, which marks the trainer's warnings alone.
RUN_COLOURS = tuple(f"C{i}" for i in range(10) if i != 3)
RUN_STYLES = ("-", "--", ":", "-.")  # beyond nine runs the colours repeat with a new dash
WARNING_COLOUR = "C3"  # tab10 red
REFERENCE_COLOUR = "k"


def _on_line(at: np.ndarray, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The run's diversity line at steps ``at``: interpolated between the logged steps as the
    log axis draws it (geometrically), linearly on a segment that touches a 0, and held flat
    outside them."""
    linear = np.interp(at, steps, values)
    with np.errstate(divide="ignore"):
        logs = np.log(np.where(values > 0, values, np.nan))
    geometric = np.exp(np.interp(at, steps, logs))  # NaN on a segment that touches a 0
    return np.where(np.isfinite(geometric), geometric, linear)


# What a diversity curve can show, by the history column it plots.
DIVERSITY_AXES = {
    "structural_diversity": (
        "structural diversity (4x4-averaged SD)",
        "Coarse spread of the samples at the fixed codes\n(what the trainer's alarm watches)",
    ),
    "sample_diversity": (
        "sample diversity (per-pixel SD)",
        "Per-pixel spread of the samples at the fixed codes: sees total collapse only\n"
        "(pixel noise counts as variety, eight repeated faces vary like the data)",
    ),
}


def _diversity_measure(key: str):
    from ssd_lib.training.health import sample_diversity, structural_diversity

    measure = {"structural_diversity": structural_diversity, "sample_diversity": sample_diversity}
    if key not in measure:
        raise ValueError(f"key={key!r}: one of {list(measure)}")
    return measure[key]


def grid_diversity(
    run: Run, key: str = "structural_diversity", grids: list[tuple[int, Path]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values): the spread ``key`` of the images in the run's saved fixed-code sample
    grids (``Run.grid_layout``: all the trainer's fixed codes, or the 16 a published grid
    keeps), each grid split back into the images the trainer drew at that step (lossless
    PNGs); for a run that did not log ``key`` while training. ``grids``: ``_grids_by_step``'s
    list when the caller has it already. A grid that does not split into that layout (an image
    edited or saved by other code) or cannot be read is left out with a warning naming it,
    not an error: the other grids still make a curve (which then starts later if it was the
    first)."""
    from ssd_lib.utils.images import split_grid

    measure = _diversity_measure(key)
    n, nrow = run.grid_layout()
    steps, values = [], []
    for step, path in _grids_by_step(run) if grids is None else grids:
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
            images = split_grid(pixels, n, nrow=nrow, padding=GRID_PAD)
        except (ValueError, OSError) as err:  # another layout; a truncated or damaged file
            warnings.warn(
                f"sample grid {path} left out of the diversity curve: {err}", stacklevel=2
            )
            continue
        steps.append(step)
        values.append(measure(images))
    return np.array(steps, float), np.array(values, float)


# Where a run's diversity curve comes from (``diversity_curve``), as the figure's legend says it.
DIVERSITY_SOURCES = {
    "logged": "logged while training",
    "grids": "from the saved sample grids",
    "final": "final generator only (no grids)",
    "none": "nothing to measure (no history, grids or generator)",
}


def _history(run: Run) -> dict[str, np.ndarray]:
    try:
        return run.history()
    except FileNotFoundError:
        return {}


def diversity_curve(
    run: Run, key: str = "structural_diversity"
) -> tuple[np.ndarray, np.ndarray, str]:
    """(steps, values, source) of the run's spread ``key`` at its fixed codes over training:
    the logged column ("logged"), if it was logged from the run's first sample point on; else
    its saved sample grids ("grids", ``grid_diversity``); else a column logged only from some
    step on (a run resumed across the change that added it), as "logged"; else one point,
    G's final weights at the trainer's fixed codes ("final"; the trainer draws its grids from
    G, not from a moving average); else empty arrays and "none"."""
    h = _history(run)
    partial = None
    if key in h and np.isfinite(h[key]).any():
        logged = np.isfinite(h[key])
        first = [h["step"][np.isfinite(h[k])].min() for k in DIVERSITY_AXES if k in h]
        if h["step"][logged].min() <= min(first):
            return h["step"][logged], h[key][logged], "logged"
        partial = (h["step"][logged], h[key][logged], "logged")
    grids = _grids_by_step(run)
    if grids:
        steps, values = grid_diversity(run, key, grids)
        if len(steps):
            return steps, values, "grids"
    if partial is not None:
        return partial
    try:
        g = run.load_generator(ema=False)
    except (FileNotFoundError, RuntimeError):  # no checkpoint, weights or G not published
        return np.array([]), np.array([]), "none"
    value = _diversity_measure(key)(generate(g, fixed_codes(run.config), run.config.real_range))
    return np.array([float(run.status.get("step", 0))]), np.array([value]), "final"


def _source_label(run: Run, source: str) -> str:
    """The legend's words for ``source``, with how many codes a saved grid holds when that is
    fewer than the trainer drew (a published grid keeps the top-left 4x4)."""
    if source == "grids":
        kept, drawn = run.grid_layout()[0], run.config.sample_count
        if kept < drawn:
            return f"{DIVERSITY_SOURCES[source]}, {kept} of {drawn} codes"
    return DIVERSITY_SOURCES[source]


def real_diversity(images, key: str) -> float:
    """The training ``images``' own spread by the measure behind history column ``key``."""
    return _diversity_measure(key)(images)


def diversity_figure(
    runs: dict[str, Run],
    real: float,
    label: str,
    key: str = "structural_diversity",
    threshold: tuple[float, str] | None = None,
) -> Figure:
    """Each run's spread ``key`` of its samples at the fixed codes over training
    (``diversity_curve``: logged at every sample grid, or measured from the saved grids of a
    run that did not log it, as the legend then says), against the training images' own
    spread ``real`` by the same measure; the steps where the trainer warned are marked with a
    red x, a colour no run line uses; ``threshold`` (value, legend text) adds a dotted level.

    A warning is drawn at its own step on the run's line, also between two logged steps (a D
    collapse is found at any step); outside the logged steps, at the nearest end. A diversity
    of 0 (every code gives the same image) has no place on the log axis: such points, and
    warnings there, sit on the bottom edge, and the legend says so."""
    if key not in DIVERSITY_AXES:
        raise ValueError(f"key={key!r}: one of {list(DIVERSITY_AXES)}")
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    fig = PlotFigure(figsize=(8.6, 3.6), layout="constrained")
    ax = fig.subplots()
    bottom = blended_transform_factory(ax.transData, ax.transAxes)  # x: step, y: axis edge
    n_warnings, n_zero, sources = 0, 0, {}
    for i, (name, run) in enumerate(runs.items()):
        steps, values, source = diversity_curve(run, key)
        words = _source_label(run, source)
        sources[words] = sources.get(words, 0) + 1
        if not len(steps):
            continue
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        style = RUN_STYLES[(i // len(RUN_COLOURS)) % len(RUN_STYLES)]
        ax.plot(steps, values, marker="o", ms=3, lw=1.2, color=colour, ls=style, label=name)
        zero = values <= 0
        if zero.any():
            ax.plot(
                steps[zero],
                np.full(zero.sum(), 0.02),
                marker="v",
                ms=6,
                color=colour,
                ls="none",
                transform=bottom,
                clip_on=False,
            )
            n_zero += int(zero.sum())
        at = np.array([float(w["step"]) for w in run.warnings() if "step" in w])
        if not len(at):
            continue
        y = _on_line(at, steps, values)
        mark = {"marker": "x", "ms": 9, "mew": 2, "color": WARNING_COLOUR, "ls": "none"}
        if (y > 0).any():
            ax.plot(at[y > 0], y[y > 0], zorder=5, **mark)
        if (y <= 0).any():
            ax.plot(
                at[y <= 0],
                np.full((y <= 0).sum(), 0.02),
                zorder=5,
                transform=bottom,
                clip_on=False,
                **mark,
            )
        n_warnings += len(at)
    ax.axhline(real, ls="--", color=REFERENCE_COLOUR, lw=1, label="training images")
    if threshold is not None:  # (value, legend text): a level the caller reads the curves by
        ax.axhline(threshold[0], ls=":", color="0.3", lw=1, label=threshold[1])
    handles, _ = ax.get_legend_handles_labels()
    warning_label = (
        f"trainer warning ({n_warnings})" if n_warnings else "trainer warning (none in these runs)"
    )
    handles.append(
        Line2D(
            [], [], marker="x", ms=7, mew=2, color=WARNING_COLOUR, ls="none", label=warning_label
        )
    )
    if set(sources) != {DIVERSITY_SOURCES["logged"]}:  # say where curves come from if mixed
        handles += [
            Line2D([], [], ls="none", label=f"{k} of {len(runs)} runs: {words}")
            for words, k in sources.items()
        ]
    if n_zero:
        handles.append(
            Line2D(
                [],
                [],
                marker="v",
                ms=6,
                color="0.4",
                ls="none",
                label="on the bottom edge: diversity 0 (all samples alike)",
            )
        )
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)  # 0.01, 0.02, 0.05, 0.1 rather than 10^-2 next to 2x10^-2
    ax.set_xlabel("step")
    ylabel, title = DIVERSITY_AXES[key]
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return stamp(fig, label)
