"""The claim ledger: verdicts follow the numbers and the stated rules."""

from __future__ import annotations

import pytest

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
