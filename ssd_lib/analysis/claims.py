"""The claim ledger: each claim of the paper, the paper's number, ours, and a verdict.

Verdicts come from numbers and stated rules only:

- a comparison between settings is judged by ``ssd_lib.analysis.seeds.compare`` (a difference
  is called only when it exceeds the seed spread, with two or more seeds on each side);
- a metric that has not passed its validity ladder (docs/metrics.md) cannot carry a verdict:
  the number is shown and the verdict is held;
- what the embedded data cannot test (AFHQ's FID values, for one) says so.

The notebook that fills the ledger (06_claims) writes it to ``figures/claims.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from ssd_lib.analysis.seeds import compare, format_mean_sd

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
HELD = "held: metric not yet validated"
NEEDS_AFHQ = "needs AFHQ"
NEEDS_INCEPTION = "needs Inception weights"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, HELD, NEEDS_AFHQ, NEEDS_INCEPTION)


@dataclass(frozen=True)
class LedgerRow:
    claim: str
    paper: str  # the paper's number or wording
    ours: str  # our measurement, with n seeds and the data it was made on
    verdict: str
    why: str  # one sentence: the rule and the numbers that decided
    where: str  # the notebook (and cell) that shows it

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r} is unknown; known: {list(VERDICTS)}")


def judge_difference(
    a: Sequence[float],
    b: Sequence[float],
    expect: str,
    metric_valid: bool = True,
    a_name: str = "a",
    b_name: str = "b",
) -> tuple[str, str]:
    """(verdict, why) for a claim that setting ``a`` beats ``b``: ``expect`` is "a larger" or
    "b larger" (the direction the claim predicts for this metric)."""
    if expect not in ("a larger", "b larger"):
        raise ValueError(f"expect={expect!r} must be 'a larger' or 'b larger'")
    c = compare(a, b)
    why = c.describe(a_name, b_name)
    if not metric_valid:
        return HELD, why + "; the metric has not passed its validity ladder"
    if not c.called:
        return INCONCLUSIVE, why
    return (SUPPORTED if c.call == expect else NOT_SUPPORTED), why


def seeds_text(values: Sequence[float], data: str = "embedded data") -> str:
    """``"0.812 ± 0.011 (n=3), embedded data"``."""
    return f"{format_mean_sd(values)}, {data}"


def parameter_rows() -> list[LedgerRow]:
    """The two parameter claims, measured on the networks themselves (no training needed)."""
    import torch

    from ssd_lib.config import make_config
    from ssd_lib.models import build_discriminator, build_generator
    from ssd_lib.models.counting import count_parameters, summary_tool_count

    cfg = make_config("paper", "paper")
    g, d = build_generator(cfg), build_discriminator(cfg)
    true_g, true_d = count_parameters(g), count_parameters(d)
    tool_g = summary_tool_count(g.eval(), torch.zeros(2, cfg.nz))
    # The paper prints millions cut (not rounded) to three decimals: 6,574,672 -> 6.574.
    tool_total = int((tool_g + true_d) / 1e3) / 1e3
    stylegan = 47.625  # the paper's StyleGAN count, M
    ratio = stylegan / tool_total
    fewer = 100 * (1 - tool_total / stylegan)
    return [
        LedgerRow(
            "SSD has 6.574 M parameters (generator 3,809,104)",
            "6.574 M; generator 3,809,104",
            f"generator {true_g:,} counted once each; a per-call summary tool counts "
            f"{tool_g:,} (total {tool_total:.3f} M)",
            SUPPORTED if round(tool_total, 3) == 6.574 else NOT_SUPPORTED,
            "the paper's number is the layer-summary tool's, which counts the tied mapping "
            f"layer four times and misses the constant; the networks hold {true_g + true_d:,}",
            "01_training: parameter counts",
        ),
        LedgerRow(
            '"624.44 % fewer parameters than StyleGAN"',
            "624.44 % fewer (StyleGAN 47.625 M)",
            f"47.625 / {tool_total:.3f} = {ratio:.4f}: StyleGAN has {100 * (ratio - 1):.2f} % "
            f"more parameters than SSD; SSD has {fewer:.1f} % fewer",
            NOT_SUPPORTED,
            "as worded the claim is impossible (nothing has more than 100 % fewer); the "
            "ratio is right, read as 'StyleGAN has 7.2 times as many'",
            "01_training: parameter counts",
        ),
    ]


def ledger_frame(rows: Sequence[LedgerRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows])


def ledger_markdown(rows: Sequence[LedgerRow], header: str) -> str:
    """The ledger as Markdown: ``header`` (what made it: data, profile, seeds), then a table."""
    cols = ["claim", "paper", "ours", "verdict", "why", "where"]
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [str(getattr(r, c)).replace("|", "/").replace("\n", " ") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    counts = pd.Series([r.verdict for r in rows]).value_counts()
    lines += ["", "Verdicts: " + ", ".join(f"{v} {n}" for v, n in counts.items()), ""]
    return "\n".join(lines)
