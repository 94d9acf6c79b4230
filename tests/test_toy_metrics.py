"""Tests for the offline toy metrics (ssd_lib.metrics.toy).

One small factor net is trained once per module on 600 rendered dogs and scored on 200 more.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from ssd_lib.data.cache import ImageSplit, load_prepared, write_prepared
from ssd_lib.data.embedded import FACTOR_NAMES, prepare_embedded, render_faces, sample_factors
from ssd_lib.metrics.toy import (
    MissingFactorsError,
    embed,
    evaluate_generator_toy,
    load_or_train_factor_net,
    toy_metrics,
    train_factor_net,
    wasserstein_1d,
)
from ssd_lib.training.checkpoint import tensor_path

# `make test-fast` leaves this module out: it trains a toy net on 600 rendered dogs.
pytestmark = pytest.mark.slow

COL = {name: i for i, name in enumerate(FACTOR_NAMES)}
# ~3x cheaper than the default net; 20 epochs of 600 dogs take ~3 s on 2 idle cores
SMALL = {"widths": (16, 32, 64, 128), "feature_dim": 64, "batch_size": 32}
EPOCHS = 20


@pytest.fixture(scope="module")
def dogs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return prepare_embedded(root=root, n_train=600, n_val=200, show_progress=False)


@pytest.fixture(scope="module")
def trained(dogs):
    before = torch.random.get_rng_state()
    result = train_factor_net(dogs, seed=0, epochs=EPOCHS, show_progress=False, **SMALL)
    assert torch.equal(torch.random.get_rng_state(), before), "training moved the global RNG"
    return result


@pytest.fixture(scope="module")
def collapsed():
    """200 faces from a mode-collapsed "generator": tan fur (index 1), viewer's-left ear up."""
    factors = sample_factors(200, np.random.default_rng(5))
    factors[:, COL["fur_colour"]] = 1
    factors[:, COL["left_ear_up"]] = 1
    return render_faces(factors, seed=5)


def test_factor_net_beats_chance_on_held_out_dogs(trained):
    s = trained.scores
    assert s["left_ear_up"]["accuracy"] > 0.9  # chance 0.5
    assert s["right_ear_up"]["accuracy"] > 0.9
    assert s["fur_colour"]["accuracy"] > 0.9  # chance 1/6
    assert s["background_colour"]["accuracy"] > 0.9  # chance 1/6
    assert s["eye_patch"]["accuracy"] > s["eye_patch"]["majority"] + 0.1  # majority ~0.7
    assert s["head_rotation_deg"]["r2"] > 0.85
    assert s["head_rotation_deg"]["mae"] < 4.0  # degrees, over a 40-degree range


def test_fd_toy_of_a_set_against_itself_is_zero(trained, dogs):
    m = toy_metrics(trained, dogs.val.images, dogs.val.images)
    assert abs(m["FD-toy"].value) < 1e-3
    # the unbiased MMD^2 of a set against itself is slightly negative: with one subset of all
    # m = 200 samples, 2 * mean off-diagonal k - 2 * mean k, k(x, y) = (x . y / d + 1) ** 3
    feats, _ = embed(trained.net, dogs.val.images)
    k = (feats @ feats.T / feats.shape[1] + 1.0) ** 3
    off_diagonal = (k.sum() - np.trace(k)) / (200 * 199)
    assert m["KID-toy"].value == pytest.approx(2 * off_diagonal - 2 * k.mean(), rel=1e-6)
    assert m["KID-toy"].value < 0
    assert m["precision-toy"].value == 1.0 and m["recall-toy"].value == 1.0
    for name in FACTOR_NAMES:
        assert m[f"factor-distance-toy/{name}"].value == 0.0
    assert m["combo-coverage-toy"].value == m["combo-coverage-toy"].details["real_value"]
    assert m["FD-toy"].n_real == m["FD-toy"].n_fake == 200


def test_collapse_loses_combinations_and_factor_balance_that_held_out_dogs_keep(
    trained, dogs, collapsed
):
    real = dogs.train.images  # 600
    held_out = toy_metrics(trained, real, dogs.val.images)
    bad = toy_metrics(trained, real, collapsed)
    # 2 x 2 x 6 = 24 combinations; with ~8 held-out dogs per combination all should appear,
    # while one fur colour and one left-ear state leave at most 1 x 1 x 2 = 2 (+ a few errors)
    assert held_out["combo-coverage-toy"].details["n_combinations"] == 24
    assert held_out["combo-coverage-toy"].value >= 22 / 24
    assert held_out["combo-coverage-toy"].details["real_value"] >= 22 / 24
    assert bad["combo-coverage-toy"].value <= 4 / 24
    assert bad["combo-entropy-toy"].value < held_out["combo-entropy-toy"].value - 2.0  # bits
    assert held_out["combo-entropy-toy"].details["max_value"] == pytest.approx(np.log2(24))
    # predicted tan share: ~1/6 of real dogs, ~all collapsed ones -> total variation ~5/6
    fur = bad["factor-distance-toy/fur_colour"]
    assert fur.details["classes"][1] == "tan"
    assert fur.details["fake_share"][1] > 0.8
    assert fur.value > 0.6
    assert held_out["factor-distance-toy/fur_colour"].value < 0.15
    assert bad["factor-distance-toy/left_ear_up"].value > 0.3  # real ~0.5 up, collapsed all up
    assert held_out["factor-distance-toy/left_ear_up"].value < 0.15
    assert bad["FD-toy"].value > 3 * held_out["FD-toy"].value
    assert bad["KID-toy"].value > held_out["KID-toy"].value
    assert bad["recall-toy"].value < held_out["recall-toy"].value


def test_fd_toy_between_disjoint_halves_is_small(trained, dogs, collapsed):
    imgs = dogs.train.images
    halves = toy_metrics(trained, imgs[:300], imgs[300:])["FD-toy"]
    against_collapse = toy_metrics(trained, imgs[:300], collapsed)["FD-toy"]
    assert (halves.n_real, halves.n_fake) == (300, 300)
    assert 0.0 < halves.value < against_collapse.value / 3


def test_cache_round_trip_and_hash_check(dogs, tmp_path):
    kw = {"seed": 0, "root": tmp_path, "epochs": 1, "show_progress": False, **SMALL}
    first = load_or_train_factor_net(dogs, **kw)
    assert not first.from_cache
    meta = json.loads((tmp_path / "factor_net_s0_e1.json").read_text())
    assert tensor_path(tmp_path / "factor_net_s0_e1").is_file()  # a 1-epoch net: its own file
    assert meta["dataset_hash"] == dogs.content_hash and meta["seed"] == 0
    assert meta["scores"] == first.scores and meta["net_config"]["factor_names"] == FACTOR_NAMES

    second = load_or_train_factor_net(dogs, **kw)
    assert second.from_cache and second.scores == first.scores
    for key, value in first.net.state_dict().items():
        assert torch.equal(second.net.state_dict()[key], value), key
    x = dogs.val.images[:8]
    assert torch.equal(first.net.features(x), second.net.features(x))

    # The same images under another hash (another CPU's rounding): the fingerprint recorded
    # with the net says they are the same, so the net is reused.
    rounded = dataclasses.replace(dogs, manifest={**dogs.manifest, "content_hash": "0" * 64})
    assert load_or_train_factor_net(rounded, **kw).from_cache
    # Other images under another hash: trained anew.
    shifted = ImageSplit(dogs.train.images.roll(1, dims=-1), dogs.train.factors, FACTOR_NAMES)
    other = dataclasses.replace(
        dogs, train=shifted, manifest={**dogs.manifest, "content_hash": "1" * 64}
    )
    third = load_or_train_factor_net(other, **kw)
    assert not third.from_cache and third.dataset_hash == "1" * 64
    # same seed and same images: training is deterministic, so the weights are identical
    fourth = load_or_train_factor_net(dogs, force=True, **kw)
    for key, value in first.net.state_dict().items():
        assert torch.equal(fourth.net.state_dict()[key], value), key


def test_default_cache_folder_is_next_to_the_dataset(dogs):
    result = load_or_train_factor_net(dogs, seed=3, epochs=1, show_progress=False, **SMALL)
    assert result.path == dogs.path / "factor_net" / "factor_net_s3_e1"
    assert result.path.with_suffix(".json").is_file()


def test_refuses_a_dataset_without_factors(tmp_path):
    images = torch.zeros(4, 3, 64, 64, dtype=torch.uint8)
    write_prepared("photos", {"train": ImageSplit(images)}, {"kind": "test"}, root=tmp_path)
    photos = load_prepared("photos", root=tmp_path)
    with pytest.raises(MissingFactorsError, match="'photos' has no ground-truth factors"):
        train_factor_net(photos)
    with pytest.raises(MissingFactorsError, match="embedded data's factors"):
        load_or_train_factor_net(photos, root=tmp_path)


def test_metric_names_never_claim_inception(trained, dogs):
    m = toy_metrics(trained, dogs.val.images, dogs.train.images[:200])
    for key, result in m.items():
        assert key == result.name
        assert "FID" not in key.upper()
        assert "KID" not in key.upper() or key == "KID-toy"
        assert result.details["feature_network"].startswith("toy factor CNN, seed 0, dataset hash")
    assert set(m) >= {"FD-toy", "KID-toy", "precision-toy", "coverage-toy", "combo-coverage-toy"}


def test_combo_factors_must_be_discrete(trained, dogs):
    with pytest.raises(ValueError, match="combo_factors"):
        toy_metrics(trained, dogs.val.images, dogs.val.images, combo_factors=("head_width",))


def test_wasserstein_1d_matches_hand_computed_values():
    assert wasserstein_1d([0.0, 1.0], [1.0, 0.0]) == 0.0
    assert wasserstein_1d([0.0], [1.0]) == 1.0
    assert wasserstein_1d([0.0, 0.0, 1.0], [0.0, 1.0, 1.0]) == pytest.approx(1 / 3)
    assert wasserstein_1d([0.0, 2.0], [1.0]) == pytest.approx(1.0)  # unequal sizes


class ReplayGenerator(nn.Module):
    """A stand-in generator that returns one of a fixed set of images per code: (N, 3, 64, 64)
    in [-1, 1], picked by the first coordinate of z."""

    z_dim = 8

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("images", images.float() / 127.5 - 1.0)
        self.anchor = nn.Parameter(torch.zeros(1))  # sampling.generate reads the device here

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        idx = (z[:, 0].abs() * 1e4).long() % len(self.images)
        return self.images[idx]


def test_evaluate_generator_toy_reports_sample_counts(trained, dogs):
    gen = ReplayGenerator(dogs.val.images)
    m = evaluate_generator_toy(gen, "[-1, 1]", dogs, n=100, net=trained)
    assert (m["FD-toy"].n_real, m["FD-toy"].n_fake) == (100, 100)
    m = evaluate_generator_toy(gen, "[-1, 1]", dogs, n=800, net=trained)
    assert (m["FD-toy"].n_real, m["FD-toy"].n_fake) == (600, 800)  # all 600 train images
    # replayed val dogs: every combination real dogs show, the generator shows too
    assert m["combo-coverage-toy"].value == m["combo-coverage-toy"].details["real_value"]


def test_damaged_cache_is_trained_over(dogs, tmp_path):
    kw = {"root": tmp_path, "epochs": 1, "show_progress": False, **SMALL}
    load_or_train_factor_net(dogs, **kw)
    (tmp_path / "factor_net_s0_e1.json").write_text("{not json")
    again = load_or_train_factor_net(dogs, **kw)
    assert not again.from_cache
    assert load_or_train_factor_net(dogs, **kw).from_cache  # and the new one is cached
