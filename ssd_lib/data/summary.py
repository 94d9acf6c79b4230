"""What is in a prepared dataset: counts, factor distributions, the paper's K % subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ssd_lib.data.cache import ImageSplit, PreparedDataset
from ssd_lib.plots import PlotFigure, stamp

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


def factor_figure(dataset: PreparedDataset, label: str) -> Figure:
    """Bar charts of the class shares of every categorical/binary factor (train split)."""
    shares = factor_shares(dataset.train)
    names = list(shares["factor"].unique())
    if not names:
        raise ValueError(f"dataset {dataset.name!r} has no categorical factors to plot")
    cols = 3
    rows = int(np.ceil(len(names) / cols))
    fig = PlotFigure(figsize=(10, 2.6 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, name in zip(axes, names, strict=False):
        part = shares[shares["factor"] == name]
        ax.bar([str(v) for v in part["value"]], part["share"], color="C0")
        ax.set_title(name, fontsize=10)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    fig.suptitle(f"Factor distributions, {dataset.name} train split ({len(dataset.train)} images)")
    return stamp(fig, label)
