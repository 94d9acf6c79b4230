"""Notebook 03's measurements across runs: linear probes, path lengths, paper Fig. 7, verdict.

The building blocks live in ``latent``, ``probes`` and ``ppl``; this module applies them to
several runs the same way, so that the notebook compares like with like.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ssd_lib.analysis.latent import (
    ear_preserving_interpolation,
    has_w_space,
    interpolation_images,
    label_samples,
)
from ssd_lib.analysis.ppl import path_length, toy_feature_fn
from ssd_lib.analysis.probes import direction_accuracy, factor_direction, probe_spaces
from ssd_lib.analysis.seeds import compare, per_seed_text
from ssd_lib.generation.sampling import sample_z
from ssd_lib.metrics.stored import remember, remember_frame
from ssd_lib.metrics.toy import FactorNetResult, embed
from ssd_lib.reporting.plots import strips_figure
from ssd_lib.training.runs import Run

EAR = "left_ear_up"


def probe_runs(runs: dict[str, Run], net: FactorNetResult, n: int, seed: int = 0) -> pd.DataFrame:
    """Linear probes of every factor from z and (where there is one) w, for each run.

    Labels are the toy factor CNN's predictions on the run's own ``n`` samples: a generator has
    no ground truth, so "the factor" means what a classifier trained on real images sees."""

    def probe(title: str, run: Run) -> pd.DataFrame:
        g = run.load_generator()
        z, w, predictions, _ = label_samples(g, run.config.real_range, net, n, seed)
        return probe_spaces(title, {"z": z, "w": w}, predictions, seed=seed)

    params = {"kind": "probes", "n": n, "seed": seed, "net": net.identity()}
    tables = [
        remember_frame("probes", run, {**params, "title": title}, partial(probe, title, run))
        for title, run in runs.items()
    ]
    return pd.concat(tables, ignore_index=True)


def probe_summary(probes: pd.DataFrame) -> pd.DataFrame:
    """Mean probe score per model and space, class factors (accuracy minus chance) and
    continuous ones (R^2) apart; skipped factors are left out."""
    ok = probes[probes["status"] == "ok"].assign(gain=lambda d: d["score"] - d["chance"])
    rows = []
    for (model, space), d in ok.groupby(["model", "space"], sort=False):
        cls, cont = d[d["metric"] == "accuracy"], d[d["metric"] == "r2"]
        rows.append(
            {
                "model": model,
                "space": space,
                "accuracy over chance (mean)": float(cls["gain"].mean()) if len(cls) else np.nan,
                "R^2 (mean)": float(cont["score"].mean()) if len(cont) else np.nan,
                "factors probed": len(d),
            }
        )
    return pd.DataFrame(rows)


def ppl_runs(
    runs: dict[str, Run], net: FactorNetResult, n: int, seed: int = 0, show_progress: bool = True
) -> pd.DataFrame:
    """PPL-toy in Z and in W (where there is one) for each run, on ``n`` pairs."""
    fn = toy_feature_fn(net)

    def measure(title: str, run: Run) -> pd.DataFrame:
        g = run.load_generator()
        rows = []
        for space in ("z", "w") if has_w_space(g) else ("z",):
            r = path_length(
                g, run.config.real_range, fn, n, space, seed=seed, show_progress=show_progress
            )
            rows.append(
                {
                    "model": title,
                    "space": space.upper(),
                    r.name + " (mean, 1-99 %)": r.mean,
                    r.name + " (median)": r.median,
                    "pairs": r.n,
                    "feature network": r.feature_network,
                }
            )
        return pd.DataFrame(rows)

    params = {"kind": "ppl", "n": n, "seed": seed, "net": net.identity()}
    tables = [
        remember_frame("ppl", run, {**params, "title": title}, partial(measure, title, run))
        for title, run in runs.items()
    ]
    return pd.concat(tables, ignore_index=True)


# What notebook 03 compares over training seeds: quantity -> (table, space, column there).
SEED_QUANTITIES: dict[str, tuple[str, str, str]] = {
    "probe accuracy over chance, w": ("probes", "w", "accuracy over chance (mean)"),
    "probe accuracy over chance, z": ("probes", "z", "accuracy over chance (mean)"),
    "probe R^2, w": ("probes", "w", "R^2 (mean)"),
    "probe R^2, z": ("probes", "z", "R^2 (mean)"),
    "PPL-toy (mean, 1-99 %), W": ("ppl", "W", "PPL-toy (mean, 1-99 %)"),
    "PPL-toy (mean, 1-99 %), Z": ("ppl", "Z", "PPL-toy (mean, 1-99 %)"),
}


def seed_values(
    seed_runs: Mapping[str, Mapping[int, Run]],
    net: FactorNetResult,
    probe_n: int,
    ppl_n: int,
    seed: int = 0,
    show_progress: bool = False,
) -> pd.DataFrame:
    """Every ``SEED_QUANTITIES`` entry for every training seed of every setting, in long
    form (model, train_seed, quantity, value). ``seed_runs`` maps a model title to
    ``{training seed: run}``; each run is measured as ``probe_runs`` and ``ppl_runs`` measure
    it (and read back from the stored measurements after the first time)."""
    rows = []
    for title, by_seed in seed_runs.items():
        for train_seed, run in sorted(by_seed.items()):
            tables = {
                "probes": probe_summary(probe_runs({title: run}, net, probe_n, seed)),
                "ppl": ppl_runs({title: run}, net, ppl_n, seed, show_progress=show_progress),
            }
            for quantity, (table, space, column) in SEED_QUANTITIES.items():
                t = tables[table]
                hit = t[t["space"] == space]
                value = float(hit[column].iloc[0]) if len(hit) else np.nan
                rows.append(
                    {"model": title, "train_seed": train_seed, "quantity": quantity, "value": value}
                )
    return pd.DataFrame(rows, columns=["model", "train_seed", "quantity", "value"])


def _per_seed(values: pd.DataFrame, model: str, quantity: str) -> list[float]:
    d = values[(values["model"] == model) & (values["quantity"] == quantity)]
    return [float(v) for v in d.sort_values("train_seed")["value"] if v == v]


def seed_spread_table(values: pd.DataFrame) -> pd.DataFrame:
    """One row per model: its training seeds, then each quantity as "mean ± sd (n=k) [each
    seed's value]"."""
    rows = []
    for model in dict.fromkeys(values["model"]):
        seeds = sorted(set(values.loc[values["model"] == model, "train_seed"]))
        row = {"model": model, "training seeds": ", ".join(str(s) for s in seeds)}
        for quantity in SEED_QUANTITIES:
            row[quantity] = per_seed_text(_per_seed(values, model, quantity))
        rows.append(row)
    return pd.DataFrame(rows)


def seed_verdict(values: pd.DataFrame, with_sn: str, without_sn: str) -> str:
    """The SN question over training seeds, by the rule of ``analysis.seeds``: is W more
    linearly informative (probe accuracy over chance and R^2 from w, higher) and smoother
    (PPL-toy in W, lower) with SN? The numbers are compared; the verdict is held, as in the
    claim ledger, because probe labels and PPL features come from the toy CNN applied to
    samples that are mostly not whole faces (docs/metrics.md)."""
    lines = []
    for quantity, better in (
        ("probe accuracy over chance, w", "higher"),
        ("probe R^2, w", "higher"),
        ("PPL-toy (mean, 1-99 %), W", "lower"),
    ):
        a, b = _per_seed(values, with_sn, quantity), _per_seed(values, without_sn, quantity)
        if not a or not b:
            lines.append(f"{quantity}: not measured on both sides.")
            continue
        c = compare(a, b)
        favours = {None: "", True: " (favours SN)", False: " (against SN)"}[
            c.favours_a(better == "higher")
        ]
        lines.append(
            f"{quantity} ({better} is better): {with_sn} {per_seed_text(a)}, {without_sn} "
            f"{per_seed_text(b)}; {c.describe(with_sn, without_sn)}{favours}."
        )
    lines.append(
        "Verdict held: the probes' labels and PPL-toy's features are the toy CNN's, read on "
        "samples that are mostly not whole faces, so neither has passed a validity ladder on "
        "such samples (docs/metrics.md); the claim ledger (notebook 06) holds the same claim."
    )
    return "\n".join(lines)


def _ear_up(net: FactorNetResult, images: torch.Tensor) -> np.ndarray:
    return embed(net.net, images)[1][EAR]


def fig7_interpolation(
    run: Run,
    net: FactorNetResult,
    label: str,
    n: int = 1000,
    seed: int = 0,
    steps: int = 8,
    pairs: int = 3,
) -> tuple[Figure, dict[str, float]]:
    """Paper Fig. 7 with a direction found from labels instead of by hand.

    From ``n`` labelled samples, fit the W direction that separates "left ear up" from "down"
    (logistic regression), then for ``pairs`` pairs of codes draw: the plain W interpolation
    and the same path with the ear component held at the "up" class mean. Each row says in how
    many frames the toy CNN sees the ear up. Returns the figure and the direction's
    accuracy on fresh samples (how linear the factor is in W). If the samples show only one
    ear state, the rows are plain interpolations and the title says why.
    """
    g = run.load_generator()
    rng = run.config.real_range

    def fit() -> dict[str, Any]:
        """The direction (None when one ear state only), its level and how well it holds."""
        _, w, pred, _ = label_samples(g, rng, net, n, seed)
        info: dict[str, float] = {"samples": n, "ear_up_share": float(np.mean(pred[EAR]))}
        if len(np.unique(pred[EAR])) < 2:
            return {"direction": None, "level": None, "info": info}
        direction = factor_direction(w, pred[EAR])
        level = float((w[pred[EAR] == 1] @ direction).mean())
        _, w2, pred2, _ = label_samples(g, rng, net, n, seed + 1)
        if len(np.unique(pred2[EAR])) == 2:
            info["direction_accuracy_fresh_samples"] = direction_accuracy(w2, pred2[EAR], direction)
        return {"direction": direction.tolist(), "level": level, "info": info}

    # Fitted once per published run (metrics.stored); float32 survives JSON exactly.
    fitted = remember("fig7", run, {"n": n, "seed": seed, "net": net.identity()}, fit)
    info = fitted["info"]
    found = fitted["direction"] is not None
    if found:
        direction = torch.tensor(fitted["direction"], dtype=torch.float32)
        level = fitted["level"]
    z = sample_z(2 * pairs, g.z_dim, seed + 2)
    rows: list[tuple[str, torch.Tensor]] = []
    for i in range(pairs):
        za, zb = z[2 * i], z[2 * i + 1]
        plain = interpolation_images(g, rng, za, zb, steps, space="w")
        rows.append((f"pair {i + 1}, plain W path", plain))
        if found:
            held = ear_preserving_interpolation(g, rng, za, zb, direction, steps, level=level)
            rows.append((f"pair {i + 1}, left ear held up", held))
    titled = [
        (f"{name}: toy CNN sees the left ear up in {int(_ear_up(net, im).sum())}/{steps}", im)
        for name, im in rows
    ]
    head = "Interpolation keeping the left ear up (paper Fig. 7)"
    if not found:
        head += f": no direction fitted, all {n} samples show one ear state"
    return strips_figure(titled, head, label), info


def labelled_directions(
    run: Run, net: FactorNetResult, n: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Unit W directions for the explorer's sliders, one per two-valued or continuous factor:
    the logistic-regression normal separating the toy CNN's classes (continuous factors split
    at their median). Factors the samples show only one value of are left out."""
    from ssd_lib.data.embedded import FACTORS

    g = run.load_generator()
    _, w, pred, _ = label_samples(g, run.config.real_range, net, n, seed)
    out = {}
    for name, y in pred.items():
        kind = FACTORS.get(name, {}).get("kind")
        if kind == "continuous":
            y = (y > np.median(y)).astype(np.int64)
        elif kind != "binary":
            continue
        if len(np.unique(y)) == 2:
            out[name] = factor_direction(w, y)
    return out
