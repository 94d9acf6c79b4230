"""Distances between two sets of feature vectors, through the libraries that define them.

- Frechet distance: ``pytorch_fid.fid_score.calculate_frechet_distance`` on the two sets'
  means and covariances (the formula behind FID).
- KID: ``cleanfid.fid.kernel_distance`` (unbiased MMD^2 with the cubic polynomial kernel,
  averaged over random subsets), seeded here so that the number is reproducible.
- Precision, recall, density, coverage: ``prdc.compute_prdc`` (Kynkaanniemi et al. 2019;
  Naeem et al. 2020), k-nearest-neighbour balls in feature space.

Every function returns a ``MetricResult`` that carries the sample counts it used, and refuses
counts too small for its statistic. Which features these are (Inception, the toy CNN, ...)
is the caller's business, and goes into the result's name: a Frechet distance is an "FID"
only on the real Inception network's pool features.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssd_lib.utils.errors import SSDError

# Below these counts the statistic is dominated by noise or undefined.
MIN_SAMPLES = {"frechet": 50, "kid": 50, "prdc": 20}


class SampleCountError(SSDError, ValueError):
    """Too few samples for the statistic asked for."""


@dataclass
class MetricResult:
    """One number with everything needed to read it: name, counts, protocol, notes."""

    name: str
    value: float
    n_real: int
    n_fake: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "n_real": self.n_real,
            "n_fake": self.n_fake,
            **self.details,
        }

    def __str__(self) -> str:
        return f"{self.name} = {self.value:.4g} (n_real={self.n_real}, n_fake={self.n_fake})"


def as_features(x: Any, name: str) -> np.ndarray:
    """Check ``x`` is a finite 2-D (N, D) array and return it as float64."""
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D) of features, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def check_count(statistic: str, n: int, which: str, minimum: int | None = None) -> None:
    minimum = MIN_SAMPLES[statistic] if minimum is None else minimum
    if n < minimum:
        raise SampleCountError(
            f"{which} has {n} samples; the {statistic} statistic needs at least {minimum} to "
            f"mean anything (pass min_samples= to override knowingly)"
        )


def _pair(real: Any, fake: Any, statistic: str, min_samples: int | None):
    r, f = as_features(real, "real"), as_features(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real has {r.shape[1]} feature dimensions but fake has {f.shape[1]}")
    check_count(statistic, len(r), "real", min_samples)
    check_count(statistic, len(f), "fake", min_samples)
    return r, f


def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features, as pytorch-fid computes them."""
    a = as_features(features, "features")
    return a.mean(axis=0), np.cov(a, rowvar=False)


def frechet_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """pytorch-fid's Frechet distance between two Gaussians."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        # pytorch-fid warns (and adds eps to the diagonal) when a covariance is singular,
        # which it is whenever N <= D; the result records that condition instead.
        warnings.simplefilter("ignore")
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def rank_note(n: int, dims: int) -> list[str]:
    if n <= dims:
        return [
            f"{n} samples <= {dims} feature dimensions: the covariance is rank deficient "
            "and the Frechet distance is biased upwards and noisy"
        ]
    return []


def frechet_distance(
    real: Any, fake: Any, name: str = "FD", min_samples: int | None = None
) -> MetricResult:
    """Frechet distance between the Gaussians fitted to two feature sets."""
    r, f = _pair(real, fake, "frechet", min_samples)
    if min(len(r), len(f)) <= r.shape[1]:
        value, how = frechet_few_samples(r, f), "exact rank-deficient form"
    else:
        value, how = frechet_from_stats(*gaussian_stats(r), *gaussian_stats(f)), "pytorch-fid"
    notes = rank_note(min(len(r), len(f)), r.shape[1])
    return MetricResult(
        name,
        value,
        len(r),
        len(f),
        {"dims": r.shape[1], "notes": notes, "library": "pytorch-fid", "computed_by": how},
    )


def frechet_few_samples(real: np.ndarray, fake: np.ndarray) -> float:
    """The Frechet distance of two sets with fewer samples than dimensions, computed exactly.

    With A = centred real / sqrt(N-1) and B = centred fake / sqrt(M-1) the covariances are
    A^T A and B^T B, and the non-zero eigenvalues of their product are the squared singular
    values of the small (N, M) matrix A B^T, so tr sqrt(S_r S_f) is the sum of those singular
    values. pytorch-fid gets the same number (agreement to about 1e-7, tested) from
    scipy.linalg.sqrtm of a singular D x D matrix, which takes minutes at D = 2048 on a CPU;
    this takes a fraction of a second.
    """
    a = (real - real.mean(axis=0)) / np.sqrt(len(real) - 1)
    b = (fake - fake.mean(axis=0)) / np.sqrt(len(fake) - 1)
    diff = real.mean(axis=0) - fake.mean(axis=0)
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(diff @ diff + (a * a).sum() + (b * b).sum() - 2.0 * cross)


def kernel_distance(
    real: Any,
    fake: Any,
    name: str = "KD",
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
    min_samples: int | None = None,
) -> MetricResult:
    """KID-style unbiased MMD^2 (cubic polynomial kernel), via clean-fid, seeded."""
    from cleanfid.fid import kernel_distance as cleanfid_kernel_distance

    r, f = _pair(real, fake, "kid", min_samples)
    # clean-fid draws its subsets from numpy's global RNG: seed it, and put it back after.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        value = cleanfid_kernel_distance(
            r, f, num_subsets=num_subsets, max_subset_size=max_subset_size
        )
    finally:
        np.random.set_state(state)
    subset = min(len(r), len(f), max_subset_size)
    return MetricResult(
        name,
        float(value),
        len(r),
        len(f),
        {
            "dims": r.shape[1],
            "library": "clean-fid",
            "num_subsets": num_subsets,
            "subset_size": subset,
            "kid_seed": seed,
        },
    )


def precision_recall(
    real: Any, fake: Any, k: int = 5, min_samples: int | None = None
) -> dict[str, MetricResult]:
    """Precision, recall, density and coverage with ``k`` nearest neighbours, via prdc."""
    from prdc import compute_prdc

    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer")
    minimum = max(MIN_SAMPLES["prdc"] if min_samples is None else min_samples, k + 1)
    r, f = _pair(real, fake, "prdc", minimum)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints its sample counts
        values = compute_prdc(real_features=r, fake_features=f, nearest_k=k)
    return {
        key: MetricResult(
            key, float(v), len(r), len(f), {"k": k, "dims": r.shape[1], "library": "prdc"}
        )
        for key, v in values.items()
    }
