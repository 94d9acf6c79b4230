"""The memorization audit flags copies and leaves an honest generator alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssd_lib.analysis.memorization import audit, distance_figure, nearest, neighbours_figure


def test_nearest_finds_exact_neighbours():
    ref = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0]])
    d, i = nearest(np.array([[9.0, 0.0], [0.0, 4.0]]), ref, k=2)
    assert i[:, 0].tolist() == [1, 2] and d[:, 0].tolist() == pytest.approx([1.0, 1.0])
    assert d[0, 1] == pytest.approx(9.0)
    with pytest.raises(ValueError, match="k=4"):
        nearest(ref, ref, k=4)


def test_copies_are_flagged_and_an_honest_generator_is_not():
    rng = np.random.default_rng(0)
    train, val = rng.normal(size=(1000, 8)), rng.normal(size=(300, 8))
    honest = audit(rng.normal(size=(500, 8)), train, val, "test features")
    assert honest.suspicious_fraction < 0.05  # about 1 % by construction
    copier = np.concatenate([train[:250] + 1e-6, rng.normal(size=(250, 8))])
    copied = audit(copier, train, val, "test features")
    assert copied.suspicious_fraction >= 0.5  # the 250 near-copies at least
    assert copied.generated_index[:250].tolist() == list(range(250))
    s = copied.summary()
    assert s["n_generated"] == 500 and s["n_val"] == 300
    with pytest.raises(ValueError, match="val has 50 images"):
        audit(copier, train, val[:50], "x")


def test_figures_show_the_closest_pairs_first():
    rng = np.random.default_rng(1)
    train_imgs = torch.randint(0, 256, (1000, 3, 8, 8), dtype=torch.uint8)
    feats = rng.normal(size=(1000, 4))
    gen = np.concatenate([feats[[7]], rng.normal(size=(9, 4)) + 5])
    result = audit(gen, feats, rng.normal(size=(200, 4)), "f")
    assert result.generated_index[0] == 7 and np.argmin(result.generated_to_train) == 0
    fig = neighbours_figure(train_imgs[:10], train_imgs, result, "label", rows=3)
    axes = np.array(fig.axes).reshape(3, 3)  # rows: generated, feature and pixel neighbours
    closest = [axes[r, 0].images[0].get_array() for r in range(3)]
    assert np.array_equal(closest[0], train_imgs[0].permute(1, 2, 0).numpy())
    assert np.array_equal(closest[1], train_imgs[7].permute(1, 2, 0).numpy())
    assert np.array_equal(closest[2], closest[0])  # a training image is its own pixel neighbour
    assert len(distance_figure(result, "label").axes[0].patches) == 80  # two 40-bin histograms


def test_toy_audit_runs_on_the_factor_nets_features(tmp_path):
    from types import SimpleNamespace

    from ssd_lib.analysis.memorization import toy_audit
    from ssd_lib.data.embedded import FACTOR_NAMES, prepare_embedded
    from ssd_lib.metrics.toy import FactorNet

    ds = prepare_embedded(root=tmp_path, n_train=200, n_val=120, show_progress=False)
    torch.manual_seed(0)
    net = SimpleNamespace(net=FactorNet(FACTOR_NAMES).eval(), feature_network="untrained CNN")
    result = toy_audit(net, ds.train.images[:20], ds)  # the "generator" copies 20 train images
    assert result.generated_index.tolist() == list(range(20))
    # Copies sit at distance ~0 (float rounding between batch sizes), far below held-out reals.
    assert (result.generated_to_train < 1e-6).all() and result.suspicious_fraction == 1.0
