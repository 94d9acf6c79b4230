"""The metric validity ladder (ssd_lib.metrics.ladder) and what it found in the toy metrics.

One small toy net is trained once per module on 600 rendered dogs; without its realness
branch it is version 1 of the net (a test checks that the branch leaves the factor trunk's
weights unchanged). The ladder is built from 200 held-out dogs against 200 training dogs.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ssd_lib.data.embedded import prepare_embedded
from ssd_lib.metrics import degrade, toy
from ssd_lib.metrics import generator_ladder as GL
from ssd_lib.metrics.ladder import (
    EXPECTATIONS,
    RUNG_NAMES,
    RUNGS,
    build_ladder,
    check,
    expectation_for,
    factor_only,
    feature_metrics,
    format_table,
    ladder_figure,
    measure,
    pixel_metrics,
    side_by_side,
    toy_metric_fn,
)
from ssd_lib.metrics.toy import load_or_train_factor_net, toy_metrics, train_factor_net

# `make test-fast` leaves this module out: it trains a toy net on 600 rendered dogs.
pytestmark = pytest.mark.slow

SMALL = {"widths": (16, 32, 64, 128), "feature_dim": 64, "batch_size": 32}
TINY = {"widths": (8, 8, 8, 8), "feature_dim": 8, "batch_size": 64}  # bookkeeping tests only
EPOCHS = 10
N = 200


@pytest.fixture(scope="module")
def dogs(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return prepare_embedded(root=root, n_train=600, n_val=N, show_progress=False)


@pytest.fixture(scope="module")
def ladder(dogs):
    return build_ladder(dogs, n=N, seed=0)


@pytest.fixture(scope="module")
def net_v2(dogs):
    before = torch.random.get_rng_state()
    result = train_factor_net(dogs, epochs=EPOCHS, show_progress=False, **SMALL)
    assert torch.equal(torch.random.get_rng_state(), before), "training moved the global RNG"
    return result


@pytest.fixture(scope="module")
def net_v1(net_v2):
    return factor_only(net_v2)


@pytest.fixture(scope="module")
def table_v1(ladder, net_v1):
    return measure(ladder, toy_metric_fn(net_v1))


@pytest.fixture(scope="module")
def table_v2(ladder, net_v2):
    return measure(ladder, toy_metric_fn(net_v2))


# ---- the rungs -----------------------------------------------------------------------------


def test_ladder_rungs_are_what_they_say(ladder, dogs):
    real = dogs.val.images[:N]
    assert tuple(ladder.rungs) == RUNG_NAMES
    assert all(x.shape == real.shape and x.dtype == torch.uint8 for _, x in ladder)
    assert torch.equal(ladder.rungs["held_out"], real)
    assert len(ladder.rungs["one_image"].unique(dim=0)) == 1
    assert len(ladder.rungs["eight_images"].unique(dim=0)) == 8
    assert len(ladder.rungs["one_image_noisy"].unique(dim=0)) == N
    # the shuffled faces hold exactly the pixels of the faces, rearranged
    shuffled = ladder.rungs["patch_shuffle"]
    assert torch.equal(shuffled.flatten(1).sort(1).values, real.flatten(1).sort(1).values)
    assert not torch.equal(shuffled, real)
    # the reference is training images, never the held-out ones
    assert len(ladder.reference) == N
    assert not any(torch.equal(ladder.reference[0], r) for r in real)
    again = build_ladder(dogs, n=N, seed=0)
    assert all(torch.equal(again.rungs[k], v) for k, v in ladder)


def test_degradations():
    g = torch.Generator().manual_seed(0)
    faces = degrade.gaussian_blobs(6, generator=g)
    grey = torch.full((2, 3, 64, 64), 90, dtype=torch.uint8)
    assert torch.equal(degrade.rotate_hue(grey, 150.0), grey)  # greys stay grey
    assert (degrade.rotate_hue(faces, 0.0).int() - faces.int()).abs().max() <= 1
    turned = degrade.rotate_hue(degrade.rotate_hue(faces, 150.0), 210.0)
    assert (turned.float() - faces.float()).abs().mean() < 3  # 360 degrees, up to clipping
    edge = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    edge[..., 32:] = 255
    blurred = degrade.gaussian_blur(edge, 1.0)
    assert blurred[0, 0, 0, 31] > 0 and blurred[0, 0, 0, 32] < 255  # the edge spreads
    assert blurred.float().mean() == pytest.approx(edge.float().mean(), abs=1.0)
    noise = degrade.uniform_noise(4, generator=g)
    assert (degrade.jpeg(noise, 20).float() - noise.float()).abs().mean() > 20
    # the realness head's negatives: each image replaced by a broken one, deterministically
    neg = degrade.training_negatives(faces, torch.Generator().manual_seed(1))
    assert neg.shape == faces.shape and neg.dtype == torch.uint8
    assert torch.equal(neg, degrade.training_negatives(faces, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="must divide"):
        degrade.shuffle_patches(faces, 24)


# ---- what the ladder found, and the fix ----------------------------------------------------


def test_version_1_features_rank_shuffled_faces_above_blurred_ones(table_v1):
    """The failure this ladder was built to catch (issue 14): version 1 of the toy net pools
    its last feature map spatially and was trained only on factor labels, so shuffling 16 x
    16 patches, which destroys the face, costs about as much FD-toy as a mild blur, keeps the
    shuffled faces inside the real images' k-NN balls and keeps every combination."""
    t = table_v1
    assert t.loc["patch_shuffle", "FD-toy"] < 1.5 * t.loc["blur1", "FD-toy"]
    assert t.loc["patch_shuffle", "precision-toy"] > 0.8
    assert t.loc["patch_shuffle", "combo-coverage-toy"] >= 0.9
    assert "realness-toy" not in t.columns
    failures = check(t)
    assert any(f.startswith("FD-toy: blur1") and "patch_shuffle" in f for f in failures)
    assert any(f.startswith("combo-coverage-toy: held_out") for f in failures)
    # the per-pixel spread calls one image with pixel noise nearly as varied as the data
    assert any(f.startswith("sample-diversity: held_out") for f in failures)


def test_every_metric_passes_the_ladder_with_the_current_net(table_v2):
    """All but one: sample-diversity, the per-pixel spread, still counts pixel noise as
    variety (one image with fresh noise on every copy keeps 40 % of the data's spread, over
    the 25 % collapse line), so nothing judges on it any more. structural-diversity, which
    the sample verdict and the trainer's collapse alarm use, is its replacement and passes."""
    failures = check(table_v2)
    assert len(failures) == 1, failures
    assert failures[0].startswith("sample-diversity: held_out") and "one_image_noisy" in failures[0]


def test_blobs_and_noise_rank_clearly_worse_than_dogs_on_fd_and_kid(table_v2):
    t = table_v2
    for rung in ("blobs", "noise"):
        for metric in ("FD-toy", "KID-toy"):
            assert t.loc[rung, metric] > 3 * max(t.loc[r, metric] for r in ("blur1", "jpeg20"))
            assert t.loc[rung, metric] > 10 * t.loc["held_out", metric]


def test_realness_separates_faces_from_broken_images(table_v2, net_v2):
    t = table_v2["realness-toy"]
    assert t["held_out"] > 0.9 and t["blur1"] > 0.5 and t["jpeg20"] > 0.5
    assert max(t["patch_shuffle"], t["blobs"], t["noise"]) < 0.3
    s = net_v2.scores["realness"]
    assert s["clean"] > 0.9 and s["broken"] > 0.85  # val images and their broken copies


def test_verdict_column_says_what_a_person_sees(table_v2):
    v = table_v2["verdict"]
    assert v["one_image"] == v["one_image_noisy"] == "collapsed"
    assert v["eight_images"] == "partially collapsed"
    assert v["noise"] == "noise"
    assert v["held_out"] == v["blur1"] == v["jpeg20"] == "healthy"


def test_combinations_count_only_what_looks_like_a_face(net_v2, ladder):
    m = toy_metrics(net_v2, ladder.reference, ladder.rungs["patch_shuffle"])
    c = m["combo-coverage-toy"]
    assert c.details["counted"] == "samples the realness head takes for faces"
    assert c.details["n_counted"] == round(m["realness-toy"].value * N)
    assert c.details["real_value"] >= 0.8  # real training dogs are counted


# ---- the checks themselves -----------------------------------------------------------------


def test_check_reports_a_broken_order_and_accepts_a_kept_one():
    t = pd.DataFrame({"FD-x": np.arange(len(RUNG_NAMES), dtype=float)}, index=list(RUNG_NAMES))
    t.loc["held_out", "FD-x"] = 0.1
    t.loc["blur1", "FD-x"], t.loc["jpeg20", "FD-x"] = 5.0, 5.0
    t.loc["patch_shuffle", "FD-x"], t.loc["colour_shift", "FD-x"] = 50.0, 50.0
    t.loc["blobs", "FD-x"], t.loc["noise", "FD-x"] = 500.0, 500.0
    t.loc["eight_images", "FD-x"], t.loc["one_image", "FD-x"] = 20.0, 80.0
    t.loc["one_image_noisy", "FD-x"] = 60.0
    assert check(t) == []
    t.loc["patch_shuffle", "FD-x"] = 5.5  # within the 25 % margin of the blur
    failures = check(t)
    assert failures and all("patch_shuffle" in f for f in failures)
    assert any("blur1 (5) should be lower than patch_shuffle (5.5)" in f for f in failures)


def test_every_expectation_names_real_rungs_and_reasons():
    for name, exp in EXPECTATIONS.items():
        assert exp.better in ("lower", "higher"), name
        assert exp.orders, name
        for a, b in exp.orders:
            assert a in RUNG_NAMES and b in RUNG_NAMES and a != b, (name, a, b)
        for rung, why in exp.not_separated.items():
            assert rung in RUNG_NAMES and len(why) > 3, (name, rung)
    assert expectation_for("FD-inception") is EXPECTATIONS["FD"]
    assert expectation_for("combo-coverage-toy") is EXPECTATIONS["combo-coverage"]
    assert expectation_for("coverage-toy") is EXPECTATIONS["coverage"]
    assert expectation_for("factor-distance-toy/left_ear_up") is None


def test_figure_and_table(table_v1, table_v2, tmp_path):
    fig = ladder_figure(table_v2, "test", before=table_v1)
    n_metrics = len([c for c in table_v2.columns if c != "verdict"])
    assert len([ax for ax in fig.axes if ax.has_data()]) == n_metrics
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "FD-toy (lower better)" in titles and "passes (failed before)" in titles
    md = format_table(table_v2)
    assert md.splitlines()[0].count("|") == len(RUNGS) + 2
    assert "held-out reals" in md and "| verdict" in md


# ---- any feature extractor (Inception when its weights are there) --------------------------


def test_the_ladder_runs_on_any_feature_extractor(ladder, table_v2):
    """A tiny random conv net stands in for Inception: the plumbing, names and checks work on
    whatever features are passed in."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tiny = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        ).eval()
    calls = []

    def extract(images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        with torch.no_grad():
            return tiny(images.float() / 127.5 - 1.0)

    small = type(ladder)(
        {k: ladder.rungs[k] for k in ("held_out", "one_image", "noise")},
        ladder.reference,
        ladder.n,
        ladder.seed,
        ladder.dataset,
    )
    t = measure(small, [feature_metrics(extract, "tiny"), pixel_metrics])
    assert list(t.index) == ["held_out", "one_image", "noise"]
    assert {"FD-tiny", "KID-tiny", "precision-tiny", "recall-tiny", "coverage-tiny"} <= set(
        t.columns
    )
    assert calls == [N] * 4  # the shared reference once, then each rung's samples
    # another reference tensor, even with equal values, is extracted again
    fn = feature_metrics(extract, "tiny")
    calls.clear()
    fn(ladder.reference, ladder.rungs["noise"])
    fn(ladder.reference, ladder.rungs["noise"])
    fn(ladder.reference.clone(), ladder.rungs["noise"])
    assert calls == [N, N, N, N, N]
    assert np.isfinite(t.drop(columns="verdict").to_numpy(float)).all()
    # even random features see a total collapse and noise
    assert t.loc["one_image", "FD-tiny"] > 5 * t.loc["held_out", "FD-tiny"]
    assert t.loc["noise", "FD-tiny"] > 5 * t.loc["held_out", "FD-tiny"]
    assert t.loc["one_image", "recall-tiny"] < t.loc["held_out", "recall-tiny"]
    broken = check(t)
    assert all(f.split(":")[0] in t.columns for f in broken)

    # beside the toy net's table: values copied, ranks in each metric's better direction
    both = side_by_side(table_v2, t, tag="tiny")
    assert list(both.index) == ["held_out", "one_image", "noise"]
    for name in ("FD-toy", "FD-tiny", "recall-toy", "recall-tiny"):
        src = table_v2 if name.endswith("toy") else t
        assert both[name].tolist() == src.loc[both.index, name].astype(float).tolist()
    assert both["rank FD-toy"].tolist() == both["FD-toy"].rank(method="min").astype(int).tolist()
    assert both.loc["held_out", "rank FD-toy"] == both.loc["held_out", "rank FD-tiny"] == 1
    assert both.loc["held_out", "rank recall-toy"] == 1  # higher recall ranks first
    assert both["rank recall-tiny"].tolist() == (
        (-both["recall-tiny"]).rank(method="min").astype(int).tolist()
    )
    assert "| rank FD-toy | 1 |" in format_table(both)  # ranks print as integers
    gap = t.copy()
    gap.loc["noise", "FD-tiny"] = float("nan")
    ranked = side_by_side(table_v2, gap, tag="tiny")
    assert ranked.loc["noise", "rank FD-tiny"] is pd.NA and ranked["rank FD-tiny"].max() == 2
    assert "| FD-tiny |" in format_table(ranked) and "n/a" in format_table(ranked)


# ---- the cache key follows the recipe ------------------------------------------------------


def test_the_realness_branch_leaves_the_factor_trunk_as_version_1_trained_it(dogs, net_v2):
    kw = {"epochs": 2, "show_progress": False, **TINY}
    with_branch = train_factor_net(dogs, **kw)
    without = train_factor_net(dogs, realness_weight=0.0, **kw)
    assert with_branch.net.has_realness and not without.net.has_realness
    assert without.net.state_dict().keys() == factor_only(with_branch).net.state_dict().keys()
    for key, value in without.net.state_dict().items():
        assert torch.equal(with_branch.net.state_dict()[key], value), key
    # the features are the factor features followed by the realness branch's
    x = dogs.val.images[:4]
    full, trunk = net_v2.net.features(x), factor_only(net_v2).net.features(x)
    assert full.shape[1] == trunk.shape[1] + net_v2.net.config["realness_dim"]
    assert torch.equal(full[:, : trunk.shape[1]], trunk)


def test_a_cached_net_of_another_recipe_is_not_reused(dogs, tmp_path, monkeypatch):
    kw = {"root": tmp_path, "epochs": 1, "show_progress": False, **TINY}
    first = load_or_train_factor_net(dogs, realness_weight=0.0, **kw)
    assert not first.from_cache and not first.net.has_realness
    assert load_or_train_factor_net(dogs, realness_weight=0.0, **kw).from_cache
    # the same file, another recipe (the current one): trained again, and overwritten
    second = load_or_train_factor_net(dogs, **kw)
    assert not second.from_cache and second.net.has_realness
    meta = json.loads((tmp_path / "factor_net_s0_e1.json").read_text())
    assert meta["train_config"]["net_version"] == toy.NET_VERSION == 2
    assert meta["train_config"]["realness_negatives"] == list(degrade.NEGATIVE_KINDS)
    assert meta["net_config"]["realness"] is True
    assert meta["train_config"]["realness_widths"] == list(toy.DEFAULT_REALNESS_WIDTHS)
    assert load_or_train_factor_net(dogs, **kw).from_cache
    # a cache written by an older net version is stale even with the same settings
    monkeypatch.setattr(toy, "NET_VERSION", 1)
    assert not load_or_train_factor_net(dogs, **kw).from_cache
    # and a change in the realness head's negatives changes the key too
    monkeypatch.setattr(degrade, "NEGATIVE_KINDS", degrade.NEGATIVE_KINDS[:-1])
    assert toy._recipe(1, 32, 1e-3, 64, (16,), 1.0)["realness_negatives"][-1] != "splice"


def test_a_published_factor_net_is_loaded_instead_of_trained_and_hash_checked(
    dogs, tmp_path, monkeypatch
):
    from ssd_lib.experiments import published as pub

    kw = {"epochs": 1, "show_progress": False, **TINY}
    made = load_or_train_factor_net(dogs, root=tmp_path / "cache", **kw)
    root = tmp_path / "published"
    pub.publish_factor_net(made, root)
    monkeypatch.setenv("SSD_PUBLISHED_DIR", str(root))
    monkeypatch.setattr(toy, "train_factor_net", lambda *a, **k: pytest.fail("trained"))
    loaded = load_or_train_factor_net(dogs, root=tmp_path / "empty", **kw)
    assert loaded.from_cache and loaded.path.parent == root / "toy-factor-net-s0_e1"
    for name, t in made.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[name], t), name
    # another recipe is not served the published net: it trains (here: fails the test)
    with pytest.raises(pytest.fail.Exception, match="trained"):
        load_or_train_factor_net(dogs, root=tmp_path / "empty2", **{**kw, "feature_dim": 4})
    # an altered published file is named, never loaded
    weights = next((root / "toy-factor-net-s0_e1").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(pub.PublishedRunError, match=weights.name):
        load_or_train_factor_net(dogs, root=tmp_path / "empty3", **kw)


# ---- the generator ladder: probes and PPL-toy (ssd_lib.metrics.generator_ladder) ----------
def test_image_bank_generators_choose_images_as_they_say(dogs):
    z = torch.randn(64, GL.Z_DIM, generator=torch.Generator().manual_seed(0))
    coded = GL.ImageBankGenerator(dogs, "coded")
    idx = coded._coded_index(z)
    col = {name: i for i, name in enumerate(dogs.train.factor_names)}
    left = dogs.train.factors[idx, col["left_ear_up"]].round()
    assert torch.equal(left, (z[:, 0] > 0).float())  # the ear is written in z[0]
    assert torch.equal(coded(z), coded(z + 1e-7))  # piecewise constant
    hashed = GL.ImageBankGenerator(dogs, "hashed")
    assert (hashed._hashed_index(z) != hashed._hashed_index(z + 1e-5)).float().mean() > 0.9
    blend = GL.ImageBankGenerator(dogs, "blend")
    step = (blend(z + 1e-3) - blend(z)).abs().max()
    assert 0 < step < 0.05  # moves, and smoothly
    one = GL.ImageBankGenerator(dogs, "one_image")(z)
    assert torch.equal(one, one[:1].expand_as(one))
    for g in (coded(z), blend(z)):
        assert g.shape == (64, 3, 64, 64) and g.min() >= -1 and g.max() <= 1


def test_probes_and_ppl_pass_the_generator_ladder(dogs, net_v2):
    table = GL.measure(dogs, net_v2, n=1000, ppl_n=60)
    assert GL.check(table) == []
    by = table.set_index("generator")
    assert by.loc["coded", "probe accuracy over chance (z)"] > 0.2
    assert by.loc["blend", "PPL-toy (z)"] < by.loc["hashed", "PPL-toy (z)"]
    # The blind spots the docs state: a code-blind or piecewise-constant generator is
    # "perfectly smooth" to PPL.
    assert by.loc["one_image", "PPL-toy (z)"] == by.loc["coded", "PPL-toy (z)"] == 0


def test_the_generator_ladder_check_reports_a_broken_order():
    good = pd.DataFrame(
        {
            "generator": list(GL.GENERATORS),
            "probe accuracy over chance (z)": [0.5, 0.0, 0.2, np.nan],
            "factors probed": [3, 3, 3, 0],
            "PPL-toy (z)": [0.0, 1e9, 1e3, 0.0],
        }
    )
    assert GL.check(good) == []
    bad = good.assign(**{"PPL-toy (z)": [0.0, 1e3, 1e9, 0.0]})
    bad.loc[1, "probe accuracy over chance (z)"] = 0.3
    broken = GL.check(bad)
    assert len(broken) == 3 and any(b.startswith("PPL-toy (z): blend") for b in broken)
