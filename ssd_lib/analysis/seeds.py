"""Numbers over training seeds, and the one rule by which a difference is called.

A single GAN run is not evidence: two runs of the same commit on two CPU kinds gave the no-SN
discriminator accuracy 0.79 and 0.70 after one epoch. So every comparison of settings is
reported as mean ± standard deviation over the training seeds that exist, with their number,
and a difference is called only when it is larger than the seed spread:

    |mean_a - mean_b| > sd_a + sd_b, with at least two seeds on each side

(standard deviations with one degree of freedom removed). With one seed on either side the
spread is unknown and nothing is called. The rule is deliberately conservative: with three
seeds each it asks for roughly a two-standard-error gap, so "within seed spread" means "not
shown", never "shown equal". docs/metrics.md states it for readers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

RULE = (
    "a difference is called only when |mean_a - mean_b| > sd_a + sd_b over at least two "
    "training seeds on each side"
)


def _clean(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray([float(v) for v in values], dtype=float)
    return arr[~np.isnan(arr)]


def mean_sd(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, standard deviation (ddof=1; NaN for one value) and count, NaNs dropped."""
    arr = _clean(values)
    if len(arr) == 0:
        return math.nan, math.nan, 0
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else math.nan
    return float(arr.mean()), sd, len(arr)


def format_mean_sd(values: Sequence[float], digits: int = 3) -> str:
    """``"0.812 ± 0.011 (n=3)"``; ``"0.812 (n=1)"`` for one seed; ``"n/a"`` for none."""
    mean, sd, n = mean_sd(values)
    if n == 0:
        return "n/a"
    if n == 1:
        return f"{mean:.{digits}g} (n=1)"
    return f"{mean:.{digits}g} ± {sd:.2g} (n={n})"


def per_seed_text(vals: Sequence[float], digits: int = 3) -> str:
    """``"0.323 ± 0.024 (n=2) [0.34, 0.306]"``: mean ± SD, n, then each seed's value."""
    if not vals:
        return "n/a"
    text = format_mean_sd(vals, digits)
    if len(vals) > 1:
        text += " [" + ", ".join(f"{v:.{digits}g}" for v in vals) + "]"
    return text


@dataclass(frozen=True)
class Comparison:
    """The outcome of ``compare``: which side is larger, if the rule calls it."""

    call: str  # "a larger", "b larger", "within seed spread", "one seed: not called"
    gap: float  # mean_a - mean_b
    spread: float  # sd_a + sd_b (NaN with one seed)
    n_a: int
    n_b: int

    @property
    def called(self) -> bool:
        return self.call in ("a larger", "b larger")

    def favours_a(self, higher_is_better: bool) -> bool | None:
        """Whether the called difference is in ``a``'s favour for a quantity where higher (or
        lower) is better; None when nothing is called."""
        if not self.called:
            return None
        return (self.call == "a larger") == higher_is_better

    def describe(self, a: str = "a", b: str = "b") -> str:
        if self.call == "one seed: not called":
            return (
                f"{a} - {b} = {self.gap:+.3g}, but with {min(self.n_a, self.n_b)} seed on one "
                "side the seed spread is unknown: not called"
            )
        verb = {
            "a larger": f"{a} is larger",
            "b larger": f"{b} is larger",
            "within seed spread": "the difference is within the seed spread (not shown)",
        }[self.call]
        return f"{a} - {b} = {self.gap:+.3g} against a seed spread of {self.spread:.3g}: {verb}"


def compare(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Apply the rule of this module to the per-seed values of two settings."""
    mean_a, sd_a, n_a = mean_sd(a)
    mean_b, sd_b, n_b = mean_sd(b)
    if n_a == 0 or n_b == 0:
        raise ValueError(f"compare needs values on both sides; got {n_a} and {n_b}")
    gap = mean_a - mean_b
    if n_a < 2 or n_b < 2:
        return Comparison("one seed: not called", gap, math.nan, n_a, n_b)
    spread = sd_a + sd_b
    if abs(gap) > spread:
        return Comparison("a larger" if gap > 0 else "b larger", gap, spread, n_a, n_b)
    return Comparison("within seed spread", gap, spread, n_a, n_b)


def seed_table(
    values: Mapping[str, Mapping[str, Sequence[float]]], digits: int = 3
) -> pd.DataFrame:
    """``values[setting][metric]`` -> per-seed numbers; one row per setting, one column per
    metric, each cell "mean ± sd (n=k)"."""
    rows = []
    for setting, metrics in values.items():
        row: dict[str, str] = {"setting": setting}
        for metric, per_seed in metrics.items():
            row[metric] = format_mean_sd(per_seed, digits)
        rows.append(row)
    return pd.DataFrame(rows)
