"""The claim ledger: verdicts follow the numbers and the stated rules."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ssd_lib.analysis import claims as C
from ssd_lib.analysis.claims import (
    HELD,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    LedgerRow,
    judge_difference,
    ledger_markdown,
    parameter_rows,
)
from ssd_lib.metrics.stored import MeasurementStore, local_folder
from ssd_lib.training.health import VERDICTS


def test_a_difference_beyond_the_seed_spread_supports_or_refutes():
    sn, no_sn = [0.30, 0.32, 0.31], [0.10, 0.12, 0.11]
    assert judge_difference(sn, no_sn, "a larger")[0] == SUPPORTED
    assert judge_difference(sn, no_sn, "b larger")[0] == NOT_SUPPORTED


def test_one_seed_or_a_small_gap_is_inconclusive_and_an_unvalidated_metric_is_held():
    assert judge_difference([0.9], [0.1, 0.2], "a larger")[0] == INCONCLUSIVE
    assert judge_difference([0.3, 0.1], [0.2, 0.25], "a larger")[0] == INCONCLUSIVE
    verdict, why = judge_difference([0.3, 0.31], [0.1, 0.11], "a larger", metric_valid=False)
    assert verdict == HELD and "validity ladder" in why
    with pytest.raises(ValueError, match="expect="):
        judge_difference([1.0], [2.0], "bigger")


def test_parameter_claims_are_measured_on_the_networks():
    count, ratio = parameter_rows()
    assert count.verdict == SUPPORTED  # 6.574 M as the summary tool counts
    assert "3,778,904" in count.ours and "3,809,104" in count.ours
    assert ratio.verdict == NOT_SUPPORTED
    assert "624.44 % more" in ratio.ours and "86.2 % fewer" in ratio.ours


def test_unknown_verdicts_are_refused_and_the_markdown_counts_verdicts():
    with pytest.raises(ValueError, match="verdict='probably'"):
        LedgerRow("c", "p", "o", "probably", "w", "x")
    md = ledger_markdown(parameter_rows(), "Made on the networks alone.")
    assert md.startswith("Made on the networks alone.")
    assert "| claim | paper | ours | verdict | why | where |" in md
    assert "Verdicts: supported 1, not supported 1" in md


# --- the ledger over seeds: synthetic measurements, stub runs ---------------------------


def _frame(spec: dict[str, dict[str, list[float]]], step: int = 2980) -> pd.DataFrame:
    """``spec[run][column]`` -> per-seed values (seeds 42, 43, ...): a ``measure_runs`` frame."""
    rows = []
    for run, cols in spec.items():
        n = max(len(v) for v in cols.values())
        for i in range(n):
            row = {"run": run, "seed": 42 + i, "step": step, "verdict": "healthy"}
            row.update({k: v[i] for k, v in cols.items() if i < len(v)})
            rows.append(row)
    return pd.DataFrame(rows)


def test_judge_follows_the_metrics_direction_and_says_why_nothing_was_measured():
    fd = C.MEASURES["FD-toy"]  # lower is better
    assert C.judge([100, 102, 101], [200, 210, 205], fd, "SSD", "no SN")[0] == SUPPORTED
    assert C.judge([200, 210, 205], [100, 102, 101], fd, "SSD", "no SN")[0] == NOT_SUPPORTED
    real = C.MEASURES["realness-toy"]  # higher is better
    assert C.judge([0.8, 0.82], [0.2, 0.22], real, "a", "b")[0] == SUPPORTED
    verdict, why = C.judge([0.8], [], real, "SSD", "no SN", "no_sn: not published yet")
    assert verdict == INCONCLUSIVE and why == "not measured: no_sn: not published yet"
    probe = C.MEASURES["probe w"]  # not on the validity ladder
    assert C.judge([0.3, 0.31], [0.1, 0.11], probe, "w", "z")[0] == HELD


def test_combine_and_order_judge_every_pair_of_a_ranking():
    assert C.combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert C.combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert C.combine([SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE]) == NOT_SUPPORTED
    assert C.combine([NOT_SUPPORTED, HELD]) == HELD
    assert C.combine([]) == INCONCLUSIVE
    fd = C.MEASURES["FD-toy"]
    clear = {"SSD": [10, 11, 12], "StyleGAN": [50, 52, 51], "DCGAN": [90, 91, 92]}
    verdict, lines = C.judge_order(clear, fd)
    assert verdict == SUPPORTED and len(lines) == 3
    assert lines[0] == "SSD vs StyleGAN: StyleGAN larger"
    swapped = {"SSD": [10, 11, 12], "StyleGAN": [90, 91, 92], "DCGAN": [50, 52, 51]}
    assert C.judge_order(swapped, fd)[0] == NOT_SUPPORTED
    one_seed = {"SSD": [10, 11], "StyleGAN": [50], "DCGAN": [90]}
    verdict, lines = C.judge_order(one_seed, fd)
    assert verdict == INCONCLUSIVE and "one seed: not called" in lines[0]
    assert C.judge_order({"SSD": [10, 11], "DCGAN": []}, fd) == (
        INCONCLUSIVE,
        ["SSD vs DCGAN: not measured"],
    )


def test_a_level_is_called_only_when_the_whole_seed_band_is_on_one_side():
    assert C.judge_level([0.8, 0.82, 0.81], 0.5)[0] == SUPPORTED
    verdict, why = C.judge_level([0.30, 0.34], 0.5, name="realness")
    assert verdict == NOT_SUPPORTED and "realness = 0.32 ± 0.028 (n=2)" in why
    assert C.judge_level([0.3, 0.7], 0.5)[0] == INCONCLUSIVE  # straddles the line
    assert C.judge_level([0.9], 0.5)[0] == INCONCLUSIVE  # one seed
    assert C.judge_level([], 0.5)[0] == INCONCLUSIVE
    assert C.judge_level([10.0, 11.0], 20.0, higher_is_better=False)[0] == SUPPORTED


def test_values_and_the_per_seed_text_show_mean_sd_n_and_each_seed():
    frame = _frame({"ssd": {"FD-toy": [200.0, 250.0, float("nan")]}, "no_sn": {"FD-toy": [90.0]}})
    assert C.values(frame, "ssd", "FD-toy") == [200.0, 250.0]
    assert C.values(frame, "dcgan", "FD-toy") == [] and C.values(frame, "ssd", "other") == []
    assert C.seeds_of(frame, "ssd") == [42, 43, 44]
    assert C.per_seed_text([200.0, 250.0]) == "225 ± 35 (n=2) [200, 250]"
    assert C.per_seed_text([90.0]) == "90 (n=1)"
    assert C.per_seed_text([]) == "n/a"


def _full_frame(sn_better: bool = True) -> pd.DataFrame:
    good = {
        "realness-toy": [0.80, 0.82, 0.81],
        "combo-coverage-toy": [0.9, 0.92, 0.91],
        "FD-toy": [100.0, 105.0, 102.0],
        "KID-toy": [10.0, 11.0, 12.0],
        "structural-diversity": [0.18, 0.181, 0.179],
        "real structural-diversity": [0.19, 0.19, 0.19],
        "d_acc": [0.70, 0.71, 0.72],
        "probe w": [0.30, 0.31, 0.32],
        "probe z": [0.05, 0.06, 0.07],
        "probe R^2 w": [0.9, 0.91, 0.92],
        "probe R^2 z": [0.1, 0.2, 0.15],
    }
    bad = {k: [v[0] * (3.0 if k in ("FD-toy", "KID-toy") else 0.3)] * 3 for k, v in good.items()}
    bad["FD-toy"], bad["d_acc"] = [300.0, 310.0, 305.0], [0.95, 0.96, 0.97]
    one = {k: v[:1] for k, v in bad.items()}
    ssd, no_sn = (good, bad) if sn_better else (bad, good)
    return _frame(
        {
            "ssd": ssd,
            "no_sn": no_sn,
            "no_adain": one,
            "dcgan": {"FD-toy": [400.0], "KID-toy": [90.0]},
            "stylegan": {"FD-toy": [300.0], "KID-toy": [50.0]},
            "ssd_75": {"FD-toy": [150.0]},
            "ssd_50": {"FD-toy": [200.0]},
            "ssd_25": {"FD-toy": [250.0]},
        }
    )


def test_the_sn_rows_call_what_the_seeds_show_and_name_their_metric():
    rows = C.sn_rows(_full_frame())
    assert [r.verdict for r in rows] == [SUPPORTED] * 5  # four image metrics, then D accuracy
    assert "realness-toy" in rows[0].ours and "[0.8, 0.82, 0.81]" in rows[0].ours
    assert "sample verdicts: SSD healthy 3 of 3" in rows[3].ours
    assert rows[4].claim == "SN slows the discriminator down"
    assert all(r.where.startswith("06_claims: 2.") for r in rows)
    assert [r.verdict for r in C.sn_rows(_full_frame(sn_better=False))] == [NOT_SUPPORTED] * 5


def test_adain_table_and_latent_rows_on_one_seed_are_inconclusive_or_held():
    frame = _full_frame()
    assert [r.verdict for r in C.adain_rows(frame)] == [INCONCLUSIVE, INCONCLUSIVE]
    ranking_fd, ranking_kid, fid = C.table1_rows(frame, "; a note")
    assert ranking_fd.verdict == INCONCLUSIVE  # StyleGAN and DCGAN have one seed each
    assert "by the means, best first: SSD, StyleGAN, DCGAN" in ranking_fd.ours
    assert ranking_fd.ours.endswith("; a note") and "285.579" in ranking_fd.paper
    assert fid.verdict == C.NEEDS_AFHQ and "424.512" in fid.paper
    assert C.table1_rows(frame, dataset="afhq")[2].verdict == INCONCLUSIVE
    trend, control = C.table2_rows(frame)
    assert trend.verdict == INCONCLUSIVE and "100 %, 75 %, 50 %, 25 %" in trend.ours
    assert "clean-FID 274.1 / 283.5 / 293.0 / 319.2" in trend.paper
    assert control.verdict == INCONCLUSIVE and "ssd_25_steps: not published yet" in control.why
    sn, mapping = C.disentanglement_rows(frame)
    assert sn.verdict == HELD and mapping.verdict == HELD  # probes are not validated yet
    assert "from w 0.31 ± 0.01 (n=3)" in mapping.ours


def test_data_efficiency_is_judged_against_the_coherent_share():
    row = C.data_efficiency_row(_full_frame(), 4739)
    assert row.verdict == SUPPORTED and "from 4,739 training images" in row.ours
    low = _frame({"ssd": {"realness-toy": [0.30, 0.34], "combo-coverage-toy": [0.2, 0.25]}})
    row = C.data_efficiency_row(low)
    assert row.verdict == NOT_SUPPORTED and "more than 50% of the samples" in row.why
    empty = C.data_efficiency_row(_frame({"ssd": {"FD-toy": [1.0]}}))
    assert empty.verdict == INCONCLUSIVE and "needs the toy factor CNN" in empty.why


def test_rows_without_any_measurement_say_why():
    rows = C.sn_rows(pd.DataFrame())
    assert {r.verdict for r in rows} == {INCONCLUSIVE}
    assert "ssd, no_sn: not published yet" in rows[0].why
    assert C.table1_rows(pd.DataFrame())[0].verdict == INCONCLUSIVE


class _TinyG(nn.Module):
    z_dim = 8
    num_ws = 1

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.mapping = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3 * 16 * 16)

    def forward(self, z):
        x = torch.tanh(3 * self.out(self.mapping(z))).view(-1, 3, 16, 16)
        return nn.functional.interpolate(x, size=64, mode="nearest")


class _StubRun:
    """What ``measure_run`` reads from a run: generator, config, status, log, weights id."""

    def __init__(self, path, seed: int):
        self.path, self.work_dir, self.seed = path, path, seed
        self.config = SimpleNamespace(real_range="[-1, 1]", profile="paper", stylegan_width=1.0)
        self.status = {"step": 10}
        self.loads = 0
        self.entry, self.key = {}, path.name  # a published run: its rows are remembered

    def load_generator(self):
        self.loads += 1
        return _TinyG(self.seed)

    def history(self):
        return {"d_acc": np.array([0.5, 0.6, 0.8, 0.9])}

    def weights_id(self):
        return f"{self.path.name}@{self.seed}"


def _tiny_net():
    from ssd_lib.metrics.toy import FactorNet, FactorNetResult

    torch.manual_seed(0)
    net = FactorNet(
        ["left_ear_up", "right_ear_up", "fur_colour", "head_width"],
        feature_dim=8,
        widths=(4, 8),
        realness_widths=(4, 4),
        realness_dim=4,
    ).eval()
    return FactorNetResult(net, 0, "hash", {}, 0.0, {"recipe": "test"})


def test_measure_runs_measures_every_seed_once_and_reads_its_cache(tmp_path):
    runs = {"ssd": {}, "no_sn": {}}
    for name in runs:
        for seed in (42, 43):
            (tmp_path / f"{name}{seed}").mkdir()
            runs[name][seed] = _StubRun(tmp_path / f"{name}{seed}", seed + len(name))
    reference = torch.randint(0, 256, (60, 3, 64, 64), dtype=torch.uint8)
    frame = C.measure_runs(runs, reference, _tiny_net(), n=60, seed=0, probe_runs=("ssd",))
    assert list(frame[["run", "seed"]].itertuples(index=False, name=None)) == [
        ("ssd", 42),
        ("ssd", 43),
        ("no_sn", 42),
        ("no_sn", 43),
    ]
    for key in ("FD-toy", "KID-toy", "realness-toy", "combo-coverage-toy", "structural-diversity"):
        assert frame[key].notna().all(), key
    assert set(frame["verdict"]) <= {"collapsed", "partially collapsed", "noise", "healthy"}
    assert frame["d_acc"].tolist() == pytest.approx([0.85] * 4)  # mean of the log's 2nd half
    ssd = frame[frame["run"] == "ssd"]
    assert (
        ssd["probe R^2 w"].notna().all()
        and frame.loc[frame["run"] == "no_sn", "probe w"].isna().all()
    )
    # A second call reads every row from the local measurement store instead of generating.
    again = C.measure_runs(runs, reference, _tiny_net(), n=60, seed=0, probe_runs=("ssd",))
    pd.testing.assert_frame_equal(frame, again)
    assert all(r.loads == 1 for s in runs.values() for r in s.values())
    records = MeasurementStore(C.STORE_KIND, local_folder()).records().values()
    assert sorted(r["run"] for r in records) == ["no_sn42", "no_sn43", "ssd42", "ssd43"]
    assert {r["params"]["n"] for r in records} == {60}
    # Another n, or no cache, measures again.
    C.measure_runs({"ssd": {42: runs["ssd"][42]}}, reference, _tiny_net(), n=50, seed=0)
    C.measure_runs({"ssd": {42: runs["ssd"][42]}}, reference, None, n=60, seed=0, cache=False)
    assert runs["ssd"][42].loads == 3


def test_without_a_toy_net_only_the_pixel_measures_are_made(tmp_path):
    run = _StubRun(tmp_path, 1)
    reference = torch.randint(0, 256, (24, 3, 64, 64), dtype=torch.uint8)
    row = C.measure_run(run, reference, None, n=30, seed=0, probes=True)
    assert math.isnan(row["FD-toy"]) and math.isnan(row["probe w"])
    assert row["structural-diversity"] > 0 and row["verdict"] in VERDICTS


def test_the_ledger_saves_markdown_with_its_header_csv_and_json_byte_stably(tmp_path):
    rows = C.sn_rows(_full_frame())
    ledger = C.Ledger(rows, "# Claim ledger\n\nmade on embedded data", {"n": 1000})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ledger.save(tmp_path / "a", "claims")
    second = ledger.save(tmp_path / "b", "claims")
    for ext in ("csv", "md", "json"):
        assert first[ext].read_bytes() == second[ext].read_bytes()
    md = first["md"].read_text()
    assert md.startswith("# Claim ledger") and "Verdicts: supported 5" in md
    assert list(pd.read_csv(first["csv"]).columns) == [
        "claim",
        "paper",
        "ours",
        "verdict",
        "why",
        "where",
    ]
    doc = json.loads(first["json"].read_text())
    assert doc["meta"] == {"n": 1000} and len(doc["rows"]) == 5 and "sd_a + sd_b" in doc["rule"]
    assert ledger._repr_markdown_() == md


def test_the_header_names_data_seeds_n_and_that_it_is_not_afhq():
    ds = SimpleNamespace(name="embedded", content_hash="deda95af53c7ffff")
    run = SimpleNamespace(config=SimpleNamespace(profile="paper"))
    runs = {"ssd": {42: run, 43: run}, "ssd_25_steps": {}}
    header = C.ledger_header(ds, runs, 1000, 0, "published")
    assert "`embedded` (content hash deda95af53c7), not on AFHQ" in header
    assert "profile 'paper'; training seeds: ssd 42, 43; ssd_25_steps not published yet" in header
    assert "n=1000 samples per run and seed (codes from sample seed 0)" in header
    assert C.flat_runs(runs) == {"ssd-seed42": run, "ssd-seed43": run}


def test_the_seed_spread_figure_has_a_panel_per_metric_and_a_column_per_measured_run():
    fig = C.seed_spread_figure(_full_frame(), "label")
    axes = fig.get_axes()
    assert len(axes) == 4
    ticks = [t.get_text() for t in axes[0].get_xticklabels()]
    assert ticks[:3] == ["ssd", "no_sn", "no_adain"] and "ssd_25_steps" not in ticks
    assert axes[2].get_yscale() == "log"


def test_real_levels_are_what_held_out_images_score_and_the_figure_draws_them():
    g = torch.Generator().manual_seed(0)
    reference = torch.randint(0, 256, (60, 3, 64, 64), dtype=torch.uint8, generator=g)
    held_out = torch.randint(0, 256, (60, 3, 64, 64), dtype=torch.uint8, generator=g)
    assert C.reference_levels(reference, None, _tiny_net()) == {}
    pixels_only = C.reference_levels(reference, held_out)
    assert list(pixels_only) == ["structural-diversity"] and pixels_only["structural-diversity"] > 0
    levels = C.reference_levels(reference, held_out, _tiny_net())
    assert set(levels) == {"structural-diversity", *C.TOY_KEYS}
    fig = C.seed_spread_figure(_full_frame(), "label", levels={"FD-toy": 3.0}, levels_label="real")
    fd = fig.get_axes()[2]

    def dashed(ax):
        return [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]

    assert dashed(fd) == [3.0] and dashed(fig.get_axes()[0]) == []
    # One legend for the figure, outside the panels, so that it hides no run's dot.
    assert all(ax.get_legend() is None for ax in fig.get_axes())
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["real"]
