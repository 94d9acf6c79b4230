"""Memorization audit: does the generator copy its training images?

With 4,739 training images (or fewer, in Table 2) a GAN can reproduce training images
nearly exactly and still score well on FID. The audit compares, in a feature space (the toy
factor CNN offline, or Inception), each generated sample's distance to its nearest training
image with the same distance for real *held-out* (val) images. A generator that copies puts
many samples closer to the training set than held-out reals ever are.

Functions take feature arrays, so any feature network works; ``toy_audit`` is the offline
convenience for the embedded data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ssd_lib.images import make_grid
from ssd_lib.plots import PlotFigure, stamp


def nearest(
    query: np.ndarray, reference: np.ndarray, k: int = 1, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances (Q, k) and indices (Q, k) of each query row's k nearest reference
    rows, computed in chunks so memory stays at chunk x R."""
    q = torch.as_tensor(np.asarray(query, dtype=np.float64))
    r = torch.as_tensor(np.asarray(reference, dtype=np.float64))
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise ValueError(
            f"query {tuple(q.shape)} and reference {tuple(r.shape)} must be (N, D) with the same D"
        )
    if not 1 <= k <= len(r):
        raise ValueError(f"k={k!r} must be in [1, {len(r)}] (the reference size)")
    dists, idx = [], []
    for part in q.split(chunk):
        d, i = torch.cdist(part, r).topk(k, dim=1, largest=False)
        dists.append(d)
        idx.append(i)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


@dataclass
class MemorizationAudit:
    """Nearest-training-image distances of generated samples and of held-out reals."""

    generated_to_train: np.ndarray  # (G,) distance of each sample to its nearest train image
    generated_index: np.ndarray  # (G,) index of that train image
    val_to_train: np.ndarray  # (V,) the same for held-out real images
    feature_network: str
    details: dict = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        """The 1st percentile of held-out reals' distances: closer than this is suspicious."""
        return float(np.percentile(self.val_to_train, 1))

    @property
    def suspicious_fraction(self) -> float:
        """Share of generated samples nearer to a training image than 99 % of held-out reals;
        about 0.01 for a generator that does not copy."""
        return float((self.generated_to_train < self.threshold).mean())

    def summary(self) -> dict[str, float]:
        return {
            "median distance, generated -> train": float(np.median(self.generated_to_train)),
            "median distance, held-out real -> train": float(np.median(self.val_to_train)),
            "1st percentile, held-out real -> train": self.threshold,
            "share of generated closer than that": self.suspicious_fraction,
            "n_generated": len(self.generated_to_train),
            "n_val": len(self.val_to_train),
        }


def audit(
    generated: np.ndarray, train: np.ndarray, val: np.ndarray, feature_network: str
) -> MemorizationAudit:
    """Audit from (N, D) feature arrays of generated, training and held-out images."""
    if len(val) < 100:
        raise ValueError(f"val has {len(val)} images; the 1st-percentile threshold needs >= 100")
    g_dist, g_idx = nearest(generated, train)
    v_dist, _ = nearest(val, train)
    return MemorizationAudit(g_dist[:, 0], g_idx[:, 0], v_dist[:, 0], feature_network)


def toy_audit(net: Any, generated_uint8: torch.Tensor, dataset: Any) -> MemorizationAudit:
    """``audit`` on the toy factor CNN's features (embedded data, offline)."""
    from ssd_lib.metrics.toy import embed

    images = (generated_uint8, dataset.train.images, dataset.val.images)
    feats = [embed(net.net, x)[0] for x in images]  # net: a FactorNetResult
    return audit(*feats, feature_network=net.feature_network)


def inception_audit(
    generated_uint8: torch.Tensor,
    dataset: Any,
    folder: str | Path,
    library: str = "pytorch-fid",
    device: torch.device | str = "cpu",
) -> MemorizationAudit:
    """``audit`` on Inception pool features (any dataset; needs the library's weights).

    The images go through PNG folders under ``folder`` exactly as for FID (64x64, the
    library's own resize), so the features are those FID compares."""
    from ssd_lib.metrics.export import export_split, write_image_folder
    from ssd_lib.metrics.inception import extract_features, list_images
    from ssd_lib.metrics.weights import require_weights

    status = require_weights(library)  # fail before writing anything
    folder = Path(folder)
    dirs = [
        write_image_folder(generated_uint8, folder / "generated", desc="writing samples"),
        export_split(dataset.train.images, folder / "train"),
        export_split(dataset.val.images, folder / "val"),
    ]
    feats = [extract_features(list_images(d), library, device, status=status)[0] for d in dirs]
    kind = "reference" if status.verified else "UNVERIFIED (not the reference)"
    return audit(*feats, feature_network=f"Inception pool features, {kind} {library} weights")


def neighbours_figure(
    generated_uint8: torch.Tensor,
    train_uint8: torch.Tensor,
    result: MemorizationAudit,
    label: str,
    rows: int = 8,
) -> Figure:
    """Each row: a generated sample, then its nearest training image; the closest pairs first
    (the likeliest copies), so a reader can judge them by eye."""
    order = np.argsort(result.generated_to_train)[:rows]
    pairs = []
    for i in order:
        pairs += [generated_uint8[int(i)], train_uint8[int(result.generated_index[i])]]
    grid = make_grid(torch.stack(pairs), nrow=2)
    fig = PlotFigure(figsize=(3.2, 1.5 * rows), layout="constrained")
    fig.inline_format = "jpeg"  # many generated images: see PlotFigure
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title("generated | nearest training image\n(closest pairs first)", fontsize=9)
    return stamp(fig, label)


def distance_figure(result: MemorizationAudit, label: str) -> Figure:
    """Histograms of nearest-training-image distances: generated vs held-out reals."""
    fig = PlotFigure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    bins = np.histogram_bin_edges(
        np.concatenate([result.generated_to_train, result.val_to_train]), bins=40
    )
    ax.hist(result.val_to_train, bins=bins, density=True, alpha=0.6, label="held-out reals")
    ax.hist(result.generated_to_train, bins=bins, density=True, alpha=0.6, label="generated")
    ax.axvline(result.threshold, color="k", lw=1, ls="--", label="1st pct. of held-out")
    ax.set(
        xlabel=f"distance to nearest training image ({result.feature_network})", ylabel="density"
    )
    ax.legend(fontsize=8)
    return stamp(fig, label)
