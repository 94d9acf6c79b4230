"""Spectral normalisation, measured: what the paper asserts about SN, in numbers and plots.

The paper claims SN in the discriminator "slows the discriminator down" and so lets the
generator learn coherent attributes. A run's history (``Run.history()``) records, per step,
the losses, D(x), D(G(z)), D's accuracy, the gradient norm reaching G, the largest singular
value of every tracked D layer (stored and applied) and, at epoch ends, D's mean output on
training vs held-out reals. This module turns two runs (with and without SN) into:

- ``loss_comparison_figure``: paper Fig. 4 (D and G losses, SN vs no SN, 2 x 2 panels);
- ``sigma_figure``: sigma of each layer's applied weight over training;
- ``discriminator_figure``: D(x), D(G(z)), accuracy, the train/val gap and the gradient norms
  reaching G and of D;
- ``check_sn_layers``: the applied weights of the final checkpoint, by exact SVD;
- ``sn_summary`` and ``verdict``: late-training means side by side and a plain-words reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ssd_lib.analysis.seeds import compare, per_seed_text
from ssd_lib.reporting.plots import PlotFigure, moving_average, plain_log_ticks, stamp
from ssd_lib.training.runs import Run
from ssd_lib.training.sigma_tracker import exact_sigma, weight_matrix

SUMMARY_KEYS = ("loss_d", "loss_g", "d_real", "d_fake", "d_acc", "grad_norm_g", "grad_norm_d")


def _late(values: np.ndarray, fraction: float) -> np.ndarray:
    """The last ``fraction`` of a per-step series, NaNs dropped."""
    tail = values[int(len(values) * (1 - fraction)) :]
    return tail[~np.isnan(tail)]


def sn_summary(runs: dict[str, Run], fraction: float = 0.5) -> pd.DataFrame:
    """Mean of each logged quantity over the last ``fraction`` of training, one column per run;
    plus the last train-vs-val gap of D (eval mode) when it was recorded."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} must be in (0, 1]")
    table = {}
    for name, run in runs.items():
        h = run.history()
        col = {k: float(_late(h[k], fraction).mean()) for k in SUMMARY_KEYS if k in h}
        if "d_train_eval" in h:
            tr, va = h["d_train_eval"], h["d_val_eval"]
            last = np.flatnonzero(~np.isnan(tr))
            if len(last):
                col["d_train_minus_val (last epoch)"] = float(tr[last[-1]] - va[last[-1]])
        table[name] = col
    return pd.DataFrame(table)


def sn_seed_values(
    seed_runs: Mapping[str, Mapping[int, Run]], fraction: float = 0.5
) -> dict[str, dict[str, list[float]]]:
    """``{title: {quantity: [value per training seed, seeds ascending]}}`` of every
    ``sn_summary`` quantity, for each setting's runs (``{title: {seed: run}}``)."""
    out: dict[str, dict[str, list[float]]] = {}
    for title, by_seed in seed_runs.items():
        per: dict[str, list[float]] = {}
        for _, run in sorted(by_seed.items()):
            for quantity, value in sn_summary({title: run}, fraction)[title].items():
                per.setdefault(quantity, []).append(float(value))
        out[title] = per
    return out


def sn_seed_table(
    values: dict[str, dict[str, list[float]]], seeds: Mapping[str, Sequence[int]]
) -> pd.DataFrame:
    """``sn_summary`` over training seeds: one row per quantity, one column per setting, each
    cell "mean ± sd (n=k) [each seed's value]"; the first row names the seeds."""
    rows = [{"quantity": "training seeds", **{t: ", ".join(map(str, seeds[t])) for t in values}}]
    quantities = dict.fromkeys(q for per in values.values() for q in per)
    for q in quantities:
        cells = {t: per_seed_text(per.get(q, [])) for t, per in values.items()}
        rows.append({"quantity": q, **cells})
    return pd.DataFrame(rows)


# The three readings of "SN slows the discriminator down": the sign says which direction
# means a weaker D (lower accuracy, lower D(x), higher D(G(z))).
WEAKER = (("d_acc", -1, "D accuracy"), ("d_real", -1, "D(x) on reals"), ("d_fake", +1, "D(G(z))"))


def verdict(values: dict[str, dict[str, list[float]]], with_sn: str, without_sn: str) -> str:
    """Does SN make D weaker (slower)? Each of ``WEAKER`` compared over training seeds by the
    rule of ``analysis.seeds``; the claim holds when all three are called in SN's favour, is
    contradicted when any is called against it, and is otherwise not shown (one seed a side,
    or differences within the seed spread)."""
    a, b = values[with_sn], values[without_sn]
    lines, weaker, stronger = [], [], []
    for key, sign, name in WEAKER:
        c = compare(a[key], b[key])
        sn_weaker = c.favours_a(higher_is_better=sign > 0)  # "better" here: weaker D
        if sn_weaker is not None:
            (weaker if sn_weaker else stronger).append(name)
        lines.append(
            f"{name}, late-training mean: {with_sn} {per_seed_text(a[key])}, {without_sn} "
            f"{per_seed_text(b[key])}; {c.describe(with_sn, without_sn)}."
        )
    if stronger:
        lines.append(
            f"Against the claim: with SN the discriminator is called stronger by "
            f"{', '.join(stronger)}, so 'SN slows the discriminator' does not hold here."
        )
    elif len(weaker) == len(WEAKER):
        lines.append(
            "By all three measures the discriminator with SN is called weaker: 'SN slows the "
            "discriminator' holds here."
        )
    else:
        called = f" (called weaker only by {', '.join(weaker)})" if weaker else ""
        lines.append(
            "Not shown: the differences are within the seed spread or rest on one seed a "
            f"side{called}, so these runs neither support nor contradict 'SN slows the "
            "discriminator'."
        )
    return "\n".join(lines)


def check_sn_layers(run: Run, tolerance: float = 0.02) -> pd.DataFrame:
    """For each tracked D layer of the final checkpoint: the exact largest singular value of
    the stored weight and of the weight the layer applies (stored / torch's SN estimate), and
    whether an SN layer applies sigma within ``tolerance`` of 1."""
    d = run.load_discriminator()
    rows = []
    for name, conv in d.tracked_convs().items():
        w = weight_matrix(conv)
        stored = exact_sigma(w)
        sn = hasattr(conv, "weight_u")
        sigma_hat = float(conv.weight_u @ (w @ conv.weight_v)) if sn else 1.0
        applied = exact_sigma(w / sigma_hat)
        rows.append(
            {
                "layer": name,
                "spectral_norm": sn,
                "sigma_stored": stored,
                "sigma_applied": applied,
                "within_tolerance": bool(abs(applied - 1) <= tolerance) if sn else None,
            }
        )
    return pd.DataFrame(rows)


def _logged(h: dict[str, np.ndarray], key: str) -> bool:
    """Whether the history holds at least one measured (finite) value of ``key``."""
    return key in h and bool(np.isfinite(h[key]).any())


def _legend(ax, missing: list[str], why: str = "") -> None:
    """The panel's legend, with one entry per run that did not log its statistic ("<run>:
    not logged"), so an absent curve is never read as a flat or hidden one."""
    handles, _ = ax.get_legend_handles_labels()
    for name in missing:
        handles.append(Line2D([], [], ls="none", label=f"{name}: not logged{why}"))
    if handles:
        ax.legend(handles=handles, fontsize=8)


def _panel(
    ax, histories: dict[str, dict[str, np.ndarray]], key: str, window: int, title: str
) -> None:
    """``key`` of each run's history (``Run.history()``, read once by the caller)."""
    missing = []
    for i, (name, h) in enumerate(histories.items()):
        if not _logged(h, key):
            missing.append(name)
            continue
        ax.plot(h["step"], h[key], lw=0.4, alpha=0.25, color=f"C{i}")
        ax.plot(h["step"], moving_average(h[key], window), lw=1.6, color=f"C{i}", label=name)
    ax.set(title=title, xlabel="step")
    _legend(ax, missing)


def loss_comparison_figure(runs: dict[str, Run], label: str, window: int = 25) -> Figure:
    """Paper Fig. 4: D loss and G loss (columns) for each run (rows), same axes per column."""
    fig = PlotFigure(figsize=(10, 3.2 * len(runs)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(runs), 2, sharex=True, sharey="col"))
    for row, (name, run) in zip(axes, runs.items(), strict=True):
        h = run.history()
        for ax, key, who in zip(
            row, ("loss_d", "loss_g"), ("discriminator", "generator"), strict=True
        ):
            _panel(ax, {name: h}, key, window, f"{who} loss, {name}")
    return stamp(fig, label)


def sigma_figure(runs: dict[str, Run], label: str) -> Figure:
    """Largest singular value of each tracked layer's stored (dashed) and applied (solid)
    weight over training, one panel per run."""
    fig = PlotFigure(figsize=(5 * len(runs), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(runs), sharey=True))
    for ax, (name, run) in zip(axes, runs.items(), strict=True):
        h = run.history()
        layers = sorted(k.split("/", 1)[1] for k in h if k.startswith("sigma_eff/"))
        for i, layer in enumerate(layers):
            ax.plot(h["step"], h[f"sigma_raw/{layer}"], ls="--", color=f"C{i}", lw=1)
            ax.plot(h["step"], h[f"sigma_eff/{layer}"], color=f"C{i}", lw=1.4, label=layer)
        ax.axhline(1.0, color="0.5", lw=0.8)
        ax.set(title=f"{name}: sigma (solid applied, dashed stored)", xlabel="step", yscale="log")
        ax.legend(fontsize=8)
    for ax in axes:  # after every panel is drawn: the (shared) limits are final
        plain_log_ticks(ax.yaxis)
    return stamp(fig, label)


DISCRIMINATOR_PANELS = (
    ("d_real", "D(x), reals"),
    ("d_fake", "D(G(z)), fakes"),
    ("d_acc", "D accuracy"),
    ("grad_norm_g", "gradient norm reaching G"),
    ("grad_norm_d", "gradient norm of D's weights"),
)
GAP_TITLE = "D(train reals) - D(val reals), eval mode"


def _gap_panel(ax, histories: dict[str, dict[str, np.ndarray]]) -> None:
    missing = []
    for i, (name, h) in enumerate(histories.items()):
        if not (_logged(h, "d_train_eval") and _logged(h, "d_val_eval")):
            missing.append(name)
            continue
        mask = np.isfinite(h["d_train_eval"]) & np.isfinite(h["d_val_eval"])
        gap = (h["d_train_eval"] - h["d_val_eval"])[mask]
        ax.plot(h["step"][mask], gap, "o-", color=f"C{i}", label=name)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set(title=GAP_TITLE, xlabel="step")
    _legend(ax, missing, " (no val split?)")


def discriminator_figure(runs: dict[str, Run], label: str, window: int = 25) -> Figure:
    """D(x), D(G(z)), D accuracy, the gradient norms reaching G and of D, and D's
    train-minus-val gap (eval mode, at epoch ends), runs overlaid.

    A statistic that no run logged gets no panel (the figure says which were left out); one
    that only some runs logged says in its panel which runs lack it. No axis is left empty."""
    histories = {name: run.history() for name, run in runs.items()}
    panels: list[tuple[str, str]] = []
    absent: list[str] = []
    for key, title in DISCRIMINATOR_PANELS:
        (panels if any(_logged(h, key) for h in histories.values()) else absent).append(
            (key, title)
        )
    has_gap = any(
        _logged(h, "d_train_eval") and _logged(h, "d_val_eval") for h in histories.values()
    )
    (panels if has_gap else absent).append(("gap", GAP_TITLE))
    if not panels:
        raise ValueError(f"no run in {list(runs)} logged any discriminator statistic")
    ncols = 3 if len(panels) > 4 else min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = PlotFigure(figsize=(4 * ncols, 3.2 * nrows), layout="constrained")
    for n, (key, title) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, n + 1)  # only drawn panels get an axis
        if key == "gap":
            _gap_panel(ax, histories)
        else:
            _panel(ax, histories, key, window, title)
    if absent:
        fig.suptitle(
            "not logged by any run, so not drawn: " + "; ".join(t for _, t in absent), fontsize=9
        )
    return stamp(fig, label)
