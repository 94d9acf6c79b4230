"""SN vs no-SN analysis: summaries, the verdict's reading, the exact SN check, the figures."""

from __future__ import annotations

import pytest

from ssd_lib.analysis.spectral import (
    check_sn_layers,
    discriminator_figure,
    loss_comparison_figure,
    sigma_figure,
    sn_seed_table,
    sn_seed_values,
    sn_summary,
    verdict,
)
from ssd_lib.config import make_config
from ssd_lib.training.trainer import train

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture
def pair(tiny_dataset):
    runs = {}
    for name, preset in (("SN", "paper"), ("no SN", "no_sn")):
        # 2 epochs of 5 steps; a fast D so that the stored weights move away from sigma 1.
        cfg = make_config(preset, "smoke", dataset="tiny", epochs=2, max_steps=0, lr_d=5e-3)
        runs[name] = train(cfg, tiny_dataset, device="cpu", show_progress=False)
    return runs


def test_summary_has_late_means_and_the_train_val_gap(pair):
    s = sn_summary(pair, fraction=0.5)
    assert list(s.columns) == ["SN", "no SN"]
    h = pair["SN"].history()
    assert s.loc["d_acc", "SN"] == pytest.approx(h["d_acc"][5:].mean())  # steps 6-10
    assert "d_train_minus_val (last epoch)" in s.index
    with pytest.raises(ValueError, match="fraction=0"):
        sn_summary(pair, fraction=0)


def _values(sn: dict, plain: dict, n: int = 3) -> dict:
    """Per-seed values; each side's seeds spread by +-0.01 around the given mean."""
    base = {"d_acc": 0.9, "d_real": 0.9, "d_fake": 0.1}
    spread = [0.0, 0.01, -0.01][:n]
    return {
        t: {k: [v + e for e in spread] for k, v in {**base, **over}.items()}
        for t, over in (("SN", sn), ("no SN", plain))
    }


def test_verdict_reads_the_numbers_in_each_direction_over_seeds():
    weaker = _values({"d_acc": 0.7, "d_real": 0.7, "d_fake": 0.3}, {})
    assert "'SN slows the discriminator' holds here" in verdict(weaker, "SN", "no SN")
    stronger = _values({"d_acc": 0.95, "d_real": 0.95, "d_fake": 0.05}, {})
    text = verdict(stronger, "SN", "no SN")
    assert "does not hold" in text and "stronger by D accuracy, D(x) on reals, D(G(z))" in text
    # one measure called in SN's favour, two within the spread: not shown, never "mixed"
    partial = _values({"d_acc": 0.8, "d_real": 0.905}, {})
    text = verdict(partial, "SN", "no SN")
    assert "Not shown" in text and "called weaker only by D accuracy" in text
    assert "mixed" not in text


def test_verdict_calls_nothing_from_one_seed_however_large_the_gap():
    one = _values({"d_acc": 0.5, "d_real": 0.5, "d_fake": 0.5}, {}, n=1)
    text = verdict(one, "SN", "no SN")
    assert text.count("not called") == 3 and "Not shown" in text


def test_seed_table_lists_seeds_and_each_quantity(pair):
    values = sn_seed_values({"SN": {42: pair["SN"], 7: pair["SN"]}})
    assert values["SN"]["d_acc"][0] == values["SN"]["d_acc"][1]
    table = sn_seed_table(values, {"SN": [7, 42]}).set_index("quantity")
    assert table.loc["training seeds", "SN"] == "7, 42"
    assert table.loc["d_acc", "SN"].endswith(
        "(n=2) [" + ", ".join([f"{values['SN']['d_acc'][0]:.3g}"] * 2) + "]"
    )


def test_check_sn_layers_exactly(pair):
    sn = check_sn_layers(pair["SN"], tolerance=0.1)
    plain = check_sn_layers(pair["no SN"])
    assert list(sn["layer"]) == ["middle.0", "middle.1", "middle.2"]
    assert sn["spectral_norm"].all() and not plain["spectral_norm"].any()
    assert sn["within_tolerance"].all()
    # SN rescales what the layer applies; the stored weights are free to grow.
    assert ((sn["sigma_applied"] - 1).abs() < (sn["sigma_stored"] - 1).abs()).all()
    assert (plain["sigma_applied"] == plain["sigma_stored"]).all()


def test_figures_draw_every_run(pair):
    fig = loss_comparison_figure(pair, "label")
    assert len(fig.axes) == 4 and all(len(ax.lines) == 2 for ax in fig.axes)
    fig = sigma_figure(pair, "label")
    assert [len(ax.lines) for ax in fig.axes] == [7, 7]  # 3 layers x 2 + the sigma=1 line
    fig = discriminator_figure(pair, "label")
    assert len(fig.axes) == 6  # every statistic is logged: no panel dropped, none empty
    assert len(fig.axes[0].lines) == 4  # 2 runs x (raw + mean)
    assert len(fig.axes[4].lines) == 4  # D's gradient norm, 2 runs x (raw + mean)
    assert len(fig.axes[5].lines) == 3  # the gap of each run + the zero line
