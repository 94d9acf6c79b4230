"""What is in a prepared dataset: counts, factor distributions, the paper's K % subsets."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ssd_lib.data.cache import ImageSplit, PreparedDataset
from ssd_lib.reporting.plots import PlotFigure, stamp

PAPER_FRACTIONS = (1.0, 0.75, 0.5, 0.25)  # Table 2


def not_afhq_note(dataset: PreparedDataset) -> str:
    """ " (embedded data, not AFHQ)" and the like; empty for AFHQ itself."""
    kind = dataset.manifest.get("source", {}).get("kind", "?")
    return "" if kind == "afhq" else f" ({kind} data, not AFHQ)"


def dataset_label(dataset: PreparedDataset) -> str:
    """One provenance line: name, counts, content hash, and whether it is AFHQ."""
    n_val = 0 if dataset.val is None else len(dataset.val)
    return (
        f"dataset={dataset.name}{not_afhq_note(dataset)}: {len(dataset.train)} train / "
        f"{n_val} val, {dataset.image_size}px, hash {dataset.content_hash[:12]}"
    )


def _factor_descriptions(split: ImageSplit) -> dict[str, dict]:
    from ssd_lib.data.embedded import FACTORS

    return {n: FACTORS.get(n, {"kind": "continuous"}) for n in split.factor_names}


def factor_shares(split: ImageSplit) -> pd.DataFrame:
    """Share of every class of every categorical/binary factor: columns factor, value, share."""
    if split.factors is None:
        return pd.DataFrame(columns=["factor", "value", "share"])
    rows = []
    for i, (name, desc) in enumerate(_factor_descriptions(split).items()):
        if desc["kind"] == "continuous":
            continue
        column = split.factors[:, i].numpy().astype(int)
        values = desc.get("values") or list(range(desc.get("n_classes", column.max() + 1)))
        for v, label in enumerate(values):
            rows.append({"factor": name, "value": label, "share": float((column == v).mean())})
    return pd.DataFrame(rows)


def subset_table(
    dataset: PreparedDataset,
    fractions: tuple[float, ...] = PAPER_FRACTIONS,
    mode: str = "first",
    seed: int = 0,
) -> pd.DataFrame:
    """The Table 2 subsets: size, and (with factors) the share of each binary factor in each."""
    rows = []
    for frac in fractions:
        sub = dataset.train.subset(frac, mode, seed)
        row = {"data %": int(round(frac * 100)), "images": len(sub), "mode": mode}
        shares = factor_shares(sub)
        for name in shares["factor"].unique() if len(shares) else []:
            part = shares[shares["factor"] == name]
            if len(part) == 2:  # binary: report the share of the positive class
                row[f"{name} share"] = round(float(part["share"].iloc[1]), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _figure_grid(n: int, max_cols: int = 5) -> tuple[int, int]:
    """(rows, cols) for ``n`` panels: at most ``max_cols`` wide, rows as full as possible."""
    rows = -(-n // max_cols)
    return rows, -(-n // rows)


def factor_figure(dataset: PreparedDataset, label: str, bins: int = 20) -> Figure:
    """One panel per factor of the train split, in column order: bar charts of the class
    shares of categorical/binary factors, histograms (share of images per bin, over the
    factor's documented range) of continuous ones."""
    split = dataset.train
    if split.factors is None or not split.factor_names:
        raise ValueError(f"dataset {dataset.name!r} has no factors to plot")
    descriptions = _factor_descriptions(split)
    shares = factor_shares(split)
    rows, cols = _figure_grid(len(descriptions))
    fig = PlotFigure(figsize=(2.2 * cols + 0.6, 2.5 * rows + 0.6), layout="constrained")
    for n, (name, desc) in enumerate(descriptions.items()):
        ax = fig.add_subplot(rows, cols, n + 1)  # only as many axes as factors
        if desc["kind"] == "continuous":
            values = split.factors[:, n].numpy().astype(float)
            values = values[np.isfinite(values)]
            documented = desc.get("range")
            lo, hi = documented if documented else (np.inf, -np.inf)
            if len(values):  # the data's span too: never drop a value outside the range
                lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
            elif not documented:
                lo, hi = 0.0, 1.0
            if hi <= lo:  # a constant factor: a unit-wide window around it
                lo, hi = lo - 0.5, hi + 0.5
            weights = np.full(len(values), 1.0 / max(len(values), 1))
            ax.hist(values, bins=bins, range=(lo, hi), weights=weights, color="C1")
            ax.set_xlim(lo, hi)
            ax.set_title(f"{name}\n(continuous)", fontsize=9)
            ax.set_xlabel("value", fontsize=8)
        else:
            part = shares[shares["factor"] == name]
            ax.bar([str(v) for v in part["value"]], part["share"], color="C0")
            ax.set_title(f"{name}\n({desc['kind']})", fontsize=9)
            ax.set_ylim(0, 1)
            ax.tick_params(axis="x", labelrotation=30)
        ax.tick_params(labelsize=7)
        if n % cols == 0:
            ax.set_ylabel("share of images", fontsize=8)
    title = (
        f"Factor distributions, {dataset.name} train split ({len(split)} images); bars: "
        f"class shares, histograms: continuous factors ({bins} bins)"
    )
    fig.suptitle(textwrap.fill(title, width=int(fig.get_figwidth() * 12)), fontsize=10)
    return stamp(fig, label)
