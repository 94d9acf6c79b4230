"""The seed-spread rule: mean ± sd over seeds, and when a difference is called."""

from __future__ import annotations

import math

import pytest

from ssd_lib.analysis.seeds import compare, format_mean_sd, mean_sd, seed_table


def test_mean_sd_uses_one_degree_of_freedom_and_drops_nans():
    mean, sd, n = mean_sd([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert sd == pytest.approx(1.0)
    assert math.isnan(mean_sd([5.0])[1])
    assert mean_sd([])[2] == 0


def test_format_shows_the_seed_count_always():
    assert format_mean_sd([0.81, 0.82, 0.83]) == "0.82 ± 0.01 (n=3)"
    assert format_mean_sd([0.8123]) == "0.812 (n=1)"
    assert format_mean_sd([]) == "n/a"


def test_a_gap_larger_than_the_summed_spreads_is_called_either_way():
    c = compare([0.90, 0.91, 0.92], [0.70, 0.72, 0.74])
    assert c.call == "a larger" and c.called
    assert c.gap == pytest.approx(0.19)
    assert c.spread == pytest.approx(0.01 + 0.02)
    assert compare([0.70, 0.72, 0.74], [0.90, 0.91, 0.92]).call == "b larger"
    assert "a is larger" in c.describe()


def test_a_gap_inside_the_spread_is_not_called():
    c = compare([0.80, 0.70, 0.90], [0.78, 0.84, 0.72])
    assert c.call == "within seed spread" and not c.called
    assert "not shown" in c.describe("SN", "no SN")


def test_one_seed_on_either_side_is_never_called_however_large_the_gap():
    c = compare([0.99], [0.10, 0.11])
    assert c.call == "one seed: not called" and not c.called
    assert "seed spread is unknown" in c.describe()
    with pytest.raises(ValueError, match="needs values on both sides"):
        compare([], [1.0])


def test_seed_table_has_one_cell_per_setting_and_metric():
    t = seed_table({"SN": {"acc": [0.8, 0.82]}, "no SN": {"acc": [0.7]}})
    assert list(t["setting"]) == ["SN", "no SN"]
    assert list(t["acc"]) == ["0.81 ± 0.014 (n=2)", "0.7 (n=1)"]


def test_favours_a_reads_the_called_direction_against_what_is_better():
    high, low = [0.9, 0.91, 0.89], [0.5, 0.51, 0.49]
    assert compare(high, low).favours_a(higher_is_better=True) is True
    assert compare(high, low).favours_a(higher_is_better=False) is False
    assert compare(low, high).favours_a(higher_is_better=False) is True
    assert compare(high, [0.9, 0.92, 0.88]).favours_a(True) is None  # within the spread
    assert compare([0.9], [0.1]).favours_a(True) is None  # one seed: nothing called
