"""The shared runs of the notebooks (ssd_lib.experiments.suite), their figures and notebook
03's verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ssd_lib.analysis.disentangle import probe_summary
from ssd_lib.analysis.samples import _grid_step, losses_overview_figure, progression_figure
from ssd_lib.config import make_config
from ssd_lib.experiments.suite import (
    SUITE,
    TABLE1_RUNS,
    TABLE2_RUNS,
    eval_budget,
    parameter_table,
    suite_config,
    suite_table,
    train_suite,
)
from ssd_lib.models.counting import format_millions
from ssd_lib.reporting.figures import main as figures_main
from ssd_lib.training.trainer import Trainer

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


def test_training_seed_and_stylegan_width_are_suite_options():
    assert suite_config("ssd", "embedded", "paper").seed == 42  # the release's seed
    assert suite_config("ssd", "embedded", "paper", train_seed=43).seed == 43
    narrow = suite_config("stylegan", "embedded", "paper", stylegan_width=0.0625)
    assert narrow.stylegan_width == 0.0625
    # The width override touches only the StyleGAN baseline.
    ssd = suite_config("ssd", "embedded", "paper", stylegan_width=0.0625)
    assert ssd == suite_config("ssd", "embedded", "paper")


def test_suite_configs_are_the_presets_with_the_subsets_of_table2():
    assert set(TABLE1_RUNS.values()) | set(TABLE2_RUNS.values()) <= set(SUITE)
    cfg = suite_config("ssd_25", "embedded", "quick")
    assert cfg == make_config("paper", "quick", dataset="embedded", data_fraction=0.25)
    assert suite_config("no_sn", "x", "paper").discriminator == "plain"
    with pytest.raises(KeyError, match="unknown suite run 'ssd_10'"):
        suite_config("ssd_10", "embedded", "quick")
    with pytest.raises(KeyError, match="no evaluation budget for profile 'huge'"):
        eval_budget("huge")


def test_the_same_steps_control_trains_a_quarter_of_the_data_for_the_full_runs_steps():
    """4,739 embedded training images, batch 32: SSD takes 149 steps an epoch, the 25 % subset
    (floor: 1,184 images) 37; four times the epochs give 2,960 steps against the full run's
    2,980 (the published ssd_25-seed42 took 740 steps in 20 epochs)."""
    full, control = (suite_config(n, "embedded", "paper") for n in ("ssd", "ssd_25_steps"))
    expected = make_config("paper", "paper", dataset="embedded", data_fraction=0.25, epochs=80)
    assert control == expected
    steps = lambda cfg, n: -(-int(n * cfg.data_fraction) // cfg.batch_size) * cfg.epochs  # noqa: E731
    assert steps(full, 4739) == 2980 and steps(control, 4739) == 2960
    # Under the quick profile as well, four times the profile's epochs.
    assert suite_config("ssd_25_steps", "embedded", "quick").epochs == 4


def test_the_runs_beyond_the_paper_are_each_option_at_three_budgets():
    from ssd_lib.experiments.suite import BEYOND, BEYOND_OPTIONS

    assert not set(BEYOND) & set(SUITE)  # the paper's suite (notebooks 01-06) is unchanged
    for preset in BEYOND_OPTIONS:
        full, quarter, steps = (
            suite_config(n, "embedded", "paper")
            for n in (preset, f"{preset}_25", f"{preset}_25_steps")
        )
        assert full == make_config(preset, "paper", dataset="embedded")
        assert quarter == full.replace(data_fraction=0.25)
        assert steps == quarter.replace(epochs=4 * full.epochs)


def test_train_suite_trains_once_then_reuses(tiny_dataset, tmp_path, monkeypatch):
    # 40 train images, smoke batch 8, at most 3 steps: the 25 % subset (10 images) has 2.
    runs = train_suite(tiny_dataset, "smoke", "cpu", ["ssd", "ssd_25"], tmp_path, False)
    assert [r.status["step"] for r in runs.values()] == [3, 2]
    table = suite_table(runs)
    assert table["data %"].tolist() == [100, 25] and table["steps"].tolist() == [3, 2]

    # The smoke profile's quarter-width networks (the paper's widths: tests/test_models.py).
    counts = parameter_table(runs).set_index("run")
    g, d = counts.loc["ssd", "generator"], counts.loc["ssd", "discriminator"]
    assert (g, d) == (436_280, 175_296) and counts.loc["ssd", "total"] == g + d
    # The paper's tool counts the tied 100 -> 100 mapping layer four times: 3 x 10,100 more.
    assert counts.loc["ssd", "total (M), paper's tool"] == format_millions(g + d + 30_300)

    def fail(self):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(Trainer, "fit", fail)
    again = train_suite(tiny_dataset, "smoke", "cpu", ["ssd_25", "ssd"], tmp_path, False)
    assert {k: r.path for k, r in again.items()} == {k: r.path for k, r in runs.items()}


def test_progression_and_loss_figures_read_a_run(tiny_dataset, tmp_path):
    (run,) = train_suite(tiny_dataset, "smoke", "cpu", ["ssd"], tmp_path, False).values()
    fig = progression_figure(run, "SSD", " (test data)")
    assert [ax.get_title() for ax in fig.axes] == ["step 3"]
    fig = losses_overview_figure({"SSD": run}, "label")
    assert fig.axes[0].get_title() == "SSD (BCE)"
    assert _grid_step("epoch_002.png", 148) == 296 and _grid_step("step_000025.png", 148) == 25
    with pytest.raises(ValueError, match="'grid.png' is not a sample grid name"):
        _grid_step("grid.png", 148)


def _seed_values(sn: dict[str, list[float]], plain: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"model": model, "train_seed": 42 + i, "quantity": q, "value": v}
        for model, per in (("SSD", sn), ("SSD without SN", plain))
        for q, vals in per.items()
        for i, v in enumerate(vals)
    ]
    return pd.DataFrame(rows)


ACC, R2, PPL = "probe accuracy over chance, w", "probe R^2, w", "PPL-toy (mean, 1-99 %), W"


@pytest.mark.parametrize(
    "sn, plain, words",
    [
        # SN clearly ahead on all three: higher probes, shorter paths
        (
            {ACC: [0.5, 0.52, 0.48], R2: [0.9, 0.91, 0.89], PPL: [10, 11, 9]},
            {ACC: [0.2, 0.22, 0.18], R2: [0.5, 0.52, 0.48], PPL: [30, 31, 29]},
            ["is larger (favours SN)", "SSD without SN is larger (favours SN)"],
        ),
        # SN behind on the probes, within spread on PPL
        (
            {ACC: [0.2, 0.22, 0.18], R2: [0.5, 0.52, 0.48], PPL: [10, 30, 20]},
            {ACC: [0.5, 0.52, 0.48], R2: [0.9, 0.91, 0.89], PPL: [12, 28, 22]},
            ["SSD without SN is larger (against SN)", "within the seed spread (not shown)."],
        ),
        # one seed a side: nothing is called
        (
            {ACC: [0.5], R2: [0.9], PPL: [10]},
            {ACC: [0.2], R2: [0.5], PPL: [30]},
            ["seed spread is unknown: not called."],
        ),
    ],
)
def test_seed_verdict_calls_only_beyond_the_seed_spread_and_holds(sn, plain, words):
    from ssd_lib.analysis.disentangle import seed_verdict

    text = seed_verdict(_seed_values(sn, plain), "SSD", "SSD without SN")
    for w in words:
        assert w in text
    if len(sn[ACC]) == 1:
        assert "favours" not in text and "against SN" not in text
    assert "Verdict held" in text  # probes and PPL-toy are not validated on such samples


def test_seed_verdict_says_what_was_not_measured():
    from ssd_lib.analysis.disentangle import seed_verdict

    values = _seed_values({ACC: [0.5, 0.4]}, {ACC: [0.2, 0.3]})
    text = seed_verdict(values, "SSD", "SSD without SN")
    assert "probe R^2, w: not measured on both sides." in text
    assert "SSD - SSD without SN = +0.2" in text


def test_seed_spread_table_lists_each_seed_and_mean_sd():
    from ssd_lib.analysis.disentangle import SEED_QUANTITIES, seed_spread_table

    values = _seed_values({ACC: [0.5, 0.3]}, {ACC: [0.2]})
    table = seed_spread_table(values).set_index("model")
    assert list(table.columns) == ["training seeds", *SEED_QUANTITIES]
    assert table.loc["SSD", "training seeds"] == "42, 43"
    assert table.loc["SSD", ACC] == "0.4 ± 0.14 (n=2) [0.5, 0.3]"
    assert table.loc["SSD without SN", ACC] == "0.2 (n=1)"
    assert table.loc["SSD without SN", R2] == "n/a"


def test_probe_summary_separates_class_and_continuous_factors_and_drops_skipped():
    probes = pd.DataFrame(
        [
            ("m", "w", "a", "accuracy", 0.9, 0.5, "ok"),
            ("m", "w", "b", "accuracy", 0.7, 0.6, "ok"),
            ("m", "w", "c", "r2", 0.4, 0.0, "ok"),
            ("m", "w", "d", "accuracy", np.nan, np.nan, "skipped: a single class"),
        ],
        columns=["model", "space", "factor", "metric", "score", "chance", "status"],
    )
    row = probe_summary(probes).iloc[0]
    assert row["accuracy over chance (mean)"] == pytest.approx(0.25)
    assert row["R^2 (mean)"] == pytest.approx(0.4) and row["factors probed"] == 3


def test_figures_cli_refuses_an_unknown_notebook(capsys):
    with pytest.raises(SystemExit):
        figures_main(["--only", "99_nope.ipynb"])
    assert "invalid choice: '99_nope.ipynb'" in capsys.readouterr().err


def test_published_lists_one_notebooks_files(tmp_path):
    from ssd_lib.reporting.publish import published, record

    record(tmp_path, ["b.png", "a.csv"], {"notebook": "01_training.ipynb"})
    record(tmp_path, ["c.png"], {"notebook": "02_spectral_norm.ipynb"})
    assert published(tmp_path, "01_training.ipynb") == ["a.csv", "b.png"]
    assert published(tmp_path / "nowhere", "01_training.ipynb") == []
