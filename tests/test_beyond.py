"""Beyond the paper (notebook 07): runs published without their weights, and the measures and
verdicts the comparison rests on."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import train_smoke_run

from ssd_lib.analysis import beyond
from ssd_lib.config import make_config
from ssd_lib.experiments import published as pub
from ssd_lib.generation.sampling import generate, sample_z
from ssd_lib.models import build_generator
from ssd_lib.training.checkpoint import load_checkpoint, load_state_strict, split_prefix
from ssd_lib.training.runs import Run


def test_a_run_published_without_weights_keeps_samples_and_measurements(tmp_path, monkeypatch):
    monkeypatch.setenv("SSD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SSD_PUBLISHED_DIR", str(tmp_path / "pub"))
    run, ds = train_smoke_run(tmp_path, n=20)  # a collapse verdict needs 16 reference images
    plan = pub.Planned("corrected_25", 42, generator=False)
    # What the samples must be: the int8-stored generator at the codes of seed 0.
    tensors, _ = load_checkpoint(run.checkpoint)
    g = build_generator(run.config)
    stored = pub.unpack_state(pub.pack_state(split_prefix(tensors, "G"), "int8"))
    load_state_strict(g, stored, "G")
    expected = generate(g, sample_z(pub.LIGHT_SAMPLES, g.z_dim, 0), run.config.real_range)

    measured = []

    def measure(r):
        measured.append(beyond.measure_run(r, ds, profile="smoke"))

    pub.publish_run(run, plan, tmp_path / "pub", measure=measure)
    entry = pub.read_manifest(tmp_path / "pub")["runs"][plan.key]
    assert "generator.safetensors" not in entry["files"] and len(entry["generator_sha256"]) == 64
    assert not (tmp_path / "pub" / plan.key / "generator.safetensors").exists()
    assert pub.check_all(tmp_path / "pub") == []
    light = pub.load_key(plan.key, tmp_path / "pub")
    assert not light.has_generator
    assert torch.equal(pub.read_final_samples(light), expected)
    assert torch.equal(beyond.samples_of(light, 4), expected[:4])
    with pytest.raises(pub.PublishedRunError, match=r"without its generator's weights.*ONLY="):
        light.load_generator()
    # The measurements moved into the committed store, keyed by the generator's digest: they
    # are read back without the weights.
    (first,) = measured
    assert first["verdict"]["verdict"] in ("healthy", "partially collapsed", "collapsed", "noise")
    assert first["layer32"]["channel_sum_maps"] and 0 < first["layer32"]["hot_spot_share_median"]
    records = beyond_records(tmp_path / "pub")
    assert {r["run"] for r in records} == {plan.key}
    assert {r["weights"] for r in records} == {light.weights_id()}
    assert beyond.measure_run(light, ds, profile="smoke") == first
    pub.strip_generator(plan.key, tmp_path / "pub")  # again: nothing left to do
    assert pub.read_manifest(tmp_path / "pub")["runs"][plan.key] == entry


def beyond_records(root):
    from ssd_lib.metrics.stored import MeasurementStore

    return list(MeasurementStore("beyond", root / pub.MEASUREMENTS).records().values())


def test_the_thinned_history_keeps_every_20th_step_the_evaluations_and_the_last(tmp_path):
    src, dst = tmp_path / "h.csv", tmp_path / "thin.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss_g", "d_val_eval"])
        for step in range(1, 102):
            w.writerow([step, step / 10, 0.5 if step in (37, 74) else ""])
    pub._thin_history(src, dst, 20)
    rows = list(csv.reader(open(dst, newline="")))
    assert rows[0] == ["step", "loss_g", "d_val_eval"]
    assert [int(r[0]) for r in rows[1:]] == [20, 37, 40, 60, 74, 80, 100, 101]


def test_the_hot_spot_share_is_an_even_spread_for_flat_maps_and_one_for_a_spike():
    flat = torch.ones(2, 5, 32, 32)
    torch.testing.assert_close(beyond.hot_spot_share(flat), torch.full((2,), 9 / 1024))
    spike = torch.zeros(1, 5, 32, 32)
    spike[0, 3, 10, 20] = 7.0
    torch.testing.assert_close(beyond.hot_spot_share(spike), torch.ones(1))


@pytest.mark.parametrize("preset", ["paper", "demod", "lapgan", "dcgan"])
def test_the_32_pixel_layer_is_read_from_adain_or_demodulation_only(preset):
    torch.manual_seed(0)
    cfg = make_config(preset, "smoke")
    acts = beyond.layer32_activations(build_generator(cfg), torch.randn(3, 100))
    if preset in ("paper", "demod"):  # the 32x32 layer has ngf channels
        assert acts.shape == (3, cfg.ngf, 32, 32) and (acts >= 0).all() and acts.max() > 0
    else:
        assert acts is None


def _measured(fd: float, verdict: str = "healthy") -> dict:
    return {"FD-toy": fd, "verdict": {"verdict": verdict}, "layer32": None}


def test_verdicts_compare_with_the_baseline_against_the_seed_spread():
    measured = {
        "corrected": _measured(100.0),
        "diffaugment": _measured(80.0),  # 20 better: beyond a spread of 5
        "ada": _measured(103.0),  # within the spread
        "lapgan": _measured(150.0, "collapsed"),
        "corrected_25": _measured(200.0),
    }
    comp = beyond.Comparison({}, [], measured)
    lines = {line.split(":")[0]: line for line in beyond.verdicts(comp, spread=5.0)}
    assert "100 %, 20 epochs: helps (FD-toy 80.0 against 100.0)" in lines["+ DiffAugment"]
    assert "25 %, 20 epochs: not measured yet" in lines["+ DiffAugment"]
    assert "100 %, 20 epochs: no clear change" in lines["+ adaptive augmentation (ADA)"]
    assert (
        "hurts (FD-toy 150.0 against 100.0; its samples: collapsed)"
        in lines["LAPGAN (corrected recipe)"]
    )
    table = beyond.results_table(comp)
    row = table.set_index("option").loc["+ DiffAugment"]
    assert row["FD-toy, 100 %, 20 epochs"] == 80.0 and row["change, 100 %, 20 epochs"] == -20.0
    assert row["change, 25 %, 20 epochs"] == "-"
    assert table.set_index("option").loc["SSD, corrected recipe"]["change, 100 %, 20 epochs"] == "-"


def test_a_stored_map_decodes_to_its_levels():
    torch.manual_seed(0)
    g = build_generator(make_config("paper", "smoke"))
    summary = beyond._layer32_summary(g, 8, 0)
    maps = [beyond.decode_map(m) for m in summary["channel_sum_maps"]]
    assert len(maps) == beyond.MAP_SAMPLES and all(m.shape == (32, 32) for m in maps)
    acts = beyond.layer32_activations(g, sample_z(8, 100, 0)).sum(1)[: beyond.MAP_SAMPLES]
    expected = (acts / acts.flatten(1).amax(1)[:, None, None]).numpy()
    np.testing.assert_allclose(np.stack(maps), expected, atol=0.5 / 255 + 1e-6)
    assert all(m.max() == 1.0 for m in maps)  # each scaled to its own maximum


def test_the_beyond_plan_covers_every_compared_run_without_weights():
    from ssd_lib.experiments.suite import BEYOND

    keys = {p.key for p in pub.BEYOND_PLAN}
    assert keys == {f"{name}-seed42" for name in BEYOND}
    assert all(not p.generator for p in pub.BEYOND_PLAN)
    assert pub.planned("lapgan_25-seed42").generator is False
    assert pub.planned("ssd-seed42").generator is True
    # Every run notebook 07 compares is either in the beyond plan or the paper's.
    paper = {p.key for p in pub.PLAN}
    assert {f"{n}-seed42" for n in beyond.comparison_names()} <= keys | paper


def _history_run(path, spreads, status_step):
    """A run folder with only a history (per-pixel spread at every 10th step) and a status."""
    import json

    import pandas as pd

    path.mkdir(parents=True)
    steps = np.arange(1, status_step + 1)
    column = np.full(len(steps), np.nan)
    for i, value in enumerate(spreads):
        column[(i + 1) * 10 - 1] = value
    pd.DataFrame({"step": steps, "sample_diversity": column}).to_csv(
        path / "history.csv", index=False
    )
    (path / "status.json").write_text(json.dumps({"step": status_step}))
    return Run(path)


def test_the_codes_matter_from_the_first_sample_point_at_a_tenth_of_the_reals_spread(tmp_path):
    real = 0.2  # a run counts from a spread of 0.02
    late = _history_run(tmp_path / "late", [0.002, 0.019, 0.021, 0.001, 0.15], 50)
    never = _history_run(tmp_path / "never", [0.002, 0.003, 0.019], 30)
    early = _history_run(tmp_path / "early", [0.05, 0.1], 20)
    # the first point over 0.02; a later dip is ignored
    assert beyond.codes_onset(late, real) == {"step": 30, "first": 10}
    assert beyond.codes_onset(never, real) == {"step": None, "first": 10}
    assert beyond.codes_onset(never, real, share=0.0125)["step"] == 20  # 0.0025 < 0.003
    (tmp_path / "blank").mkdir()  # no history, no grids: nothing to say
    assert beyond.codes_onset(Run(tmp_path / "blank"), real) is None
    comp = beyond.Comparison({"corrected_25": late, "ada_25": never, "lapgan_25": early}, [], {})
    table = beyond.onset_table(comp, real).set_index("option")
    assert table.loc["SSD, corrected recipe", "25 %, 20 epochs"] == "step 30 of 50"
    assert table.loc["+ adaptive augmentation (ADA)", "25 %, 20 epochs"] == "never in 30 steps"
    # over the threshold at its first sample point: that bounds the onset, no more
    assert (
        table.loc["LAPGAN (corrected recipe)", "25 %, 20 epochs"]
        == "by step 10 (first sample point) of 20"
    )
    assert table.loc["+ DiffAugment", "25 %, 20 epochs"] == "-"  # not published
    assert beyond.onset_text(None, 20) == "not measured"
    fig = beyond.onset_figure(comp, real, "test", "25 %, 20 epochs")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "SSD, corrected recipe" in labels and "+ adaptive augmentation (ADA)" in labels
    dotted = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert [ln.get_ydata()[0] for ln in dotted] == [pytest.approx(0.02)]
    assert any("codes matter above" in t for t in labels)


def test_a_chosen_option_brings_its_baseline_and_bad_choices_name_the_parameter():
    from ssd_lib.reporting.notebooks import NotebookParameterError

    assert beyond.select() == (list(beyond.OPTIONS), list(beyond.BUDGETS))
    # order follows OPTIONS and BUDGETS, whatever the order asked; ADA's baseline comes along
    assert beyond.select(" lapgan,ada ", "25_steps,25") == (
        ["corrected", "ada", "lapgan"],
        ["25 %, 20 epochs", "25 %, same steps"],
    )
    assert beyond.select("demod", "100") == (["ssd", "demod"], ["100 %, 20 epochs"])
    assert beyond.comparison_names(*beyond.select("demod", "25")) == ["ssd_25", "demod_25"]
    assert len(beyond.comparison_names()) == len(beyond.OPTIONS) * len(beyond.BUDGETS) == 21
    for options, budgets, bad in [
        ("adaa", "all", r"parameter options='adaa' \(type str\).*'ssd', 'demod'"),
        ("", "all", r"parameter options=''"),
        ("ada", "50", r"parameter budgets='50'.*\['100', '25', '25_steps'\]"),
        ("ada", 25, r"parameter budgets=25 \(type int\)"),
        (["ada"], "all", r"parameter options=\['ada'\] \(type list\)"),
    ]:
        with pytest.raises(NotebookParameterError, match=bad):
            beyond.select(options, budgets)


def test_a_narrowed_comparison_shows_only_its_options_and_budgets(tmp_path):
    options, budgets = beyond.select("ada", "25")
    measured = {"corrected_25": _measured(200.0), "ada_25": _measured(180.0)}
    comp = beyond.Comparison({}, [], measured, options, budgets)
    assert beyond.selection_text(comp) == "; options: corrected, ada; budgets: 25"
    assert beyond.selection_text(beyond.Comparison({}, [], {})) == ""
    table = beyond.results_table(comp)
    assert list(table["option"]) == ["SSD, corrected recipe", "+ adaptive augmentation (ADA)"]
    assert [c for c in table.columns if c != "option"] == [
        "FD-toy, 25 %, 20 epochs",
        "change, 25 %, 20 epochs",
        "verdict, 25 %, 20 epochs",
    ]
    assert table.set_index("option").loc["+ adaptive augmentation (ADA)"].iloc[1] == -20.0
    (line,) = beyond.verdicts(comp, spread=5.0)
    assert (
        line == "+ adaptive augmentation (ADA): 25 %, 20 epochs: helps (FD-toy 180.0 against 200.0)"
    )
    assert beyond.layer32_names(comp) == ["corrected_25"]  # the AdaIN runs among those chosen
    status = beyond.status_table(comp)
    assert status.shape == (2, 2) and status.iloc[1, 1] == "not published yet"
    # one option, one budget: a single cell, not a crash on a 1x1 grid of axes
    one = beyond.Comparison({}, ["corrected_25_steps"], {}, ["corrected"], ["25 %, same steps"])
    fig = beyond.samples_figure(one, "test")
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "25 %, same steps"
    assert fig.axes[0].texts[0].get_text() == "not published yet"
    # the onset figure falls back on the one chosen budget
    one.runs["corrected_25_steps"] = _history_run(tmp_path / "early", [0.05, 0.1], 20)
    stamped = " ".join(t.get_text() for t in beyond.onset_figure(one, 0.2, "test").texts)
    assert "test, 25 %, same steps" in stamped.replace("\n", " ")


def test_baselines_alone_say_why_there_is_no_verdict_and_budgets_alone_name_only_budgets():
    ssd_only = beyond.Comparison({}, [], {}, *beyond.select("ssd", "25_steps"))
    assert beyond.verdicts(ssd_only, 5.0) == [
        "no verdicts: the chosen options (ssd) are baselines only"
    ]
    assert beyond.selection_text(ssd_only) == "; options: ssd; budgets: 25_steps"
    # same-steps runs are looked into only when no 20-epoch budget is chosen
    assert beyond.layer32_names(ssd_only) == ["ssd_25_steps"]
    every = beyond.Comparison({}, [], {}, *beyond.select("all", "100,25_steps"))
    assert beyond.selection_text(every) == "; budgets: 100, 25_steps"
    assert beyond.layer32_names(every) == ["ssd", "demod", "corrected"]
    fig = beyond.layer32_figure(every, beyond.layer32_names(every), "test")  # none measured
    assert "no measured 32x32" in fig.axes[0].texts[0].get_text()
