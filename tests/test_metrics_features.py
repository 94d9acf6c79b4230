"""Frechet distance, KID and precision/recall on feature sets, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ssd_lib.metrics.features import (
    SampleCountError,
    frechet_distance,
    kernel_distance,
    precision_recall,
)


@pytest.fixture
def gaussian():
    return np.random.default_rng(0).normal(size=(400, 8))


def test_frechet_of_a_set_with_itself_is_zero(gaussian):
    assert abs(frechet_distance(gaussian, gaussian).value) < 1e-6


def test_frechet_of_two_disjoint_halves_is_small_and_positive(gaussian):
    a, b = gaussian[:200], gaussian[200:]
    fd = frechet_distance(a, b).value
    assert 0 < fd < 0.5  # the same distribution: only sampling noise
    assert frechet_distance(a, b + 1.0).value > 10 * fd


def test_frechet_grows_monotonically_with_a_mean_shift(gaussian):
    a, b = gaussian[:200], gaussian[200:]
    values = [frechet_distance(a, b + s).value for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values)
    # For equal covariances FD grows as |shift|^2 * D: 8 dims, shift 2 -> about 32.
    assert values[-1] == pytest.approx(32, rel=0.15)


def test_frechet_matches_the_closed_form_for_scaled_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * 2.0
    # Means equal; tr(S1 + S2 - 2 sqrt(S1 S2)) = 2 * (1 + 4 - 2 * 2) = 2.
    assert frechet_distance(a, b).value == pytest.approx(2.0, abs=0.1)


def unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """O(n^2) unbiased MMD^2 with KID's kernel k(a, b) = (a.b / d + 1)^3."""
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
    m, n = len(x), len(y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def test_kid_equals_direct_unbiased_mmd_when_one_subset_covers_everything():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) + 0.3
    # With subsets as large as the sets, every subset is a permutation of the whole set.
    kid = kernel_distance(x, y, num_subsets=3, max_subset_size=60).value
    assert kid == pytest.approx(unbiased_mmd2(x, y), rel=1e-9)


def test_kid_is_seeded_and_leaves_numpys_global_rng_alone():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = kernel_distance(x, y, max_subset_size=100, seed=5).value
    b = kernel_distance(x, y, max_subset_size=100, seed=5).value
    assert a == b
    assert (np.random.get_state()[1] == before).all()


def test_precision_recall_identical_sets_and_single_mode_generator():
    rng = np.random.default_rng(4)
    # Real data: two well separated clusters (a binary factor). The "collapsed" generator
    # only produces the first.
    real = np.concatenate([rng.normal(size=(100, 4)), rng.normal(size=(100, 4)) + 10])
    same = precision_recall(real, real, k=5)
    assert same["precision"].value == 1.0 and same["recall"].value == 1.0
    collapsed = rng.normal(size=(200, 4))
    pr = precision_recall(real, collapsed, k=5)
    assert pr["precision"].value > 0.9  # what it makes looks real...
    assert pr["recall"].value < 0.6  # ...but half the real data is never covered
    assert pr["coverage"].value < 0.6


def test_counts_are_reported_and_too_few_samples_refused(gaussian):
    r = frechet_distance(gaussian[:100], gaussian[100:160])
    assert (r.n_real, r.n_fake) == (100, 60)
    with pytest.raises(SampleCountError, match="fake has 10 samples; the frechet statistic"):
        frechet_distance(gaussian, gaussian[:10])
    with pytest.raises(SampleCountError, match="at least 6"):
        precision_recall(gaussian[:5], gaussian[:5], k=5, min_samples=1)
    with pytest.raises(ValueError, match="2-D"):
        frechet_distance(gaussian[0], gaussian)


def test_rank_deficiency_is_noted(gaussian):
    assert frechet_distance(gaussian[:60], gaussian[60:120], min_samples=2).details["notes"] == []
    wide = np.random.default_rng(5).normal(size=(60, 100))
    notes = frechet_distance(wide, wide + 0.1).details["notes"]
    assert notes and "rank deficient" in notes[0]


@pytest.mark.parametrize("n, m, dims", [(5, 7, 64), (3, 3, 40), (20, 24, 256)])
def test_few_sample_frechet_is_pytorch_fids_number(n, m, dims):
    """Below D samples the distance is computed from an (N, M) SVD, not a D x D sqrtm: the
    value must still be pytorch-fid's."""
    from ssd_lib.metrics.features import frechet_from_stats, gaussian_stats

    rng = np.random.default_rng(n)
    real = np.abs(rng.normal(size=(n, dims)))
    fake = 1.3 * np.abs(rng.normal(size=(m, dims))) + 0.3
    result = frechet_distance(real, fake, min_samples=3)
    assert result.details["computed_by"] == "exact rank-deficient form"
    expected = frechet_from_stats(*gaussian_stats(real), *gaussian_stats(fake))
    assert result.value == pytest.approx(expected, rel=1e-6)


def test_frechet_with_more_samples_than_dimensions_goes_through_pytorch_fid(gaussian):
    assert frechet_distance(gaussian[:100], gaussian[100:]).details["computed_by"] == "pytorch-fid"
