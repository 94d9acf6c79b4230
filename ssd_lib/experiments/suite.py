"""The runs the notebooks share: SSD, its ablations, the baselines and the Table 2 subsets.

Notebook 01 trains them; every later notebook asks for the ones it needs with the same call.
A run's folder is named by its config hash, so asking again returns the finished run at once
(and resumes an interrupted one) instead of training it twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ssd_lib.config import TrainConfig, make_config
from ssd_lib.data.cache import PreparedDataset
from ssd_lib.training.runs import Run
from ssd_lib.training.trainer import train

log = logging.getLogger(__name__)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a suite run; its checkpoint is saved.

    Jupyter shows this as its one-line message instead of a traceback (IPython renders an
    exception through ``_render_traceback_`` when it has one)."""

    def _render_traceback_(self) -> list[str]:
        return [f"TrainingInterrupted: {self}"]


@dataclass(frozen=True)
class SuiteEntry:
    title: str  # how figures and tables name the run
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    paper_figure: str = ""  # the paper figure its samples correspond to, if any
    # Epochs are the profile's times this: 4 gives a 25 % run the full run's number of steps.
    epoch_factor: int = 1


SUITE: dict[str, SuiteEntry] = {
    "ssd": SuiteEntry("SSD", "paper", paper_figure="Fig. 1"),
    "no_sn": SuiteEntry("SSD without SN", "no_sn", paper_figure="Fig. 2 and 6"),
    "no_adain": SuiteEntry("mapping only, no AdaIN", "no_adain", paper_figure="Fig. 5"),
    "dcgan": SuiteEntry("DCGAN", "dcgan"),
    "stylegan": SuiteEntry("StyleGAN baseline", "stylegan"),
    "ssd_75": SuiteEntry("SSD, first 75 % of the data", "paper", {"data_fraction": 0.75}),
    "ssd_50": SuiteEntry("SSD, first 50 % of the data", "paper", {"data_fraction": 0.5}),
    "ssd_25": SuiteEntry("SSD, first 25 % of the data", "paper", {"data_fraction": 0.25}),
    # The control that separates "less data" from "fewer steps": 25 % of the images for as
    # many steps as the 100 % run (four times its epochs).
    "ssd_25_steps": SuiteEntry(
        "SSD, first 25 % of the data, full run's steps",
        "paper",
        {"data_fraction": 0.25},
        epoch_factor=4,
    ),
}

# Beyond the paper (notebook 07): the StyleGAN line's remedies for small data and LAPGAN, each
# on the first 25 % of the images and on all of them, at the paper's 20 epochs; on 25 % also
# for the 100 % run's number of steps. demod keeps the release's recipe, so its baseline is
# ssd (and ssd_25, ssd_25_steps above); the augmentations, R1 + EMA and LAPGAN use the
# corrected recipe, so theirs is corrected.
BEYOND_OPTIONS: dict[str, str] = {
    "corrected": "SSD, corrected recipe",
    "demod": "SSD with weight demodulation",
    "diffaugment": "SSD + DiffAugment",
    "ada": "SSD + adaptive augmentation",
    "r1_ema": "SSD + R1 + EMA",
    "lapgan": "LAPGAN",
}


def _beyond_runs() -> dict[str, SuiteEntry]:
    runs = {}
    for preset, title in BEYOND_OPTIONS.items():
        runs[preset] = SuiteEntry(title, preset)
        runs[f"{preset}_25"] = SuiteEntry(f"{title}, first 25 %", preset, {"data_fraction": 0.25})
        runs[f"{preset}_25_steps"] = SuiteEntry(
            f"{title}, first 25 %, full run's steps",
            preset,
            {"data_fraction": 0.25},
            epoch_factor=4,
        )
    return runs


BEYOND: dict[str, SuiteEntry] = _beyond_runs()
# Every run a name can ask for: the paper's suite and the runs beyond it.
ALL_RUNS: dict[str, SuiteEntry] = {**SUITE, **BEYOND}

# Which suite runs make the rows of the paper's tables.
TABLE1_RUNS = {"DCGAN": "dcgan", "StyleGAN": "stylegan", "SSD": "ssd"}
TABLE2_RUNS = {100: "ssd", 75: "ssd_75", 50: "ssd_50", 25: "ssd_25"}


# The release's training seed; the suite's first seed of every run.
DEFAULT_TRAIN_SEED = 42


def suite_config(
    name: str,
    dataset: str,
    profile: str,
    train_seed: int | None = None,
    stylegan_width: float | None = None,
) -> TrainConfig:
    """The config of suite run ``name`` on ``dataset`` (a prepared dataset's name).

    ``train_seed`` seeds the initial weights, the batch order and the training codes (default:
    the release's 42). ``stylegan_width`` overrides the profile's width of the StyleGAN
    baseline (the published CPU runs train it at 1/16 width; see docs/published_runs.md) and
    is ignored by the other runs."""
    if name not in ALL_RUNS:
        raise KeyError(f"unknown suite run {name!r}; known: {list(ALL_RUNS)}")
    entry = ALL_RUNS[name]
    overrides: dict[str, Any] = dict(entry.overrides)
    if train_seed is not None:
        overrides["seed"] = train_seed
    if stylegan_width is not None and entry.preset == "stylegan":
        overrides["stylegan_width"] = stylegan_width
    if entry.epoch_factor != 1:
        base = make_config(entry.preset, profile, dataset=dataset, **overrides)
        overrides["epochs"] = base.epochs * entry.epoch_factor
    return make_config(entry.preset, profile, dataset=dataset, **overrides)


def train_suite(
    dataset: PreparedDataset,
    profile: str,
    device: str = "auto",
    names: list[str] | None = None,
    runs_root: str | Path | None = None,
    show_progress: bool = True,
    train_seed: int | None = None,
    stylegan_width: float | None = None,
) -> dict[str, Run]:
    """Train (or reuse) the suite runs ``names`` (default: all) in order; returns name -> Run.

    ``train_seed`` and ``stylegan_width``: see ``suite_config``.

    A run interrupted by Ctrl-C stops the loop there (its checkpoint is kept; calling again
    resumes it) and raises ``TrainingInterrupted`` (a ``KeyboardInterrupt`` that notebooks
    show as one line) rather than going on to the next run.
    """
    runs: dict[str, Run] = {}
    for name in names if names is not None else list(SUITE):
        cfg = suite_config(name, dataset.name, profile, train_seed, stylegan_width)
        t = time.perf_counter()
        run = train(cfg, dataset, runs_root=runs_root, device=device, show_progress=show_progress)
        if not run.complete:
            raise TrainingInterrupted(
                f"training of {name!r} stopped at step {run.status.get('step')}; its checkpoint "
                f"in {run.path} is saved. Run this cell (or make figures) again to resume"
            )
        log.info("%s: %s (%.1f s)", name, run.path.name, time.perf_counter() - t)
        runs[name] = run
    return runs


RUN_SOURCES = ("published", "local")


def suite_runs(
    dataset: PreparedDataset,
    runs: str,
    profile: str,
    device: str = "auto",
    names: list[str] | None = None,
    train_seed: int = DEFAULT_TRAIN_SEED,
) -> dict[str, Run]:
    """The suite runs ``names`` a notebook needs: ``runs="published"`` reads the committed
    paper-budget runs (``ssd_lib.experiments.published``; hash-checked, nothing trains), ``"local"``
    trains them (or reuses them) under ``profile`` with ``train_suite``."""
    if runs not in RUN_SOURCES:
        raise ValueError(f"runs={runs!r} is unknown; known: {list(RUN_SOURCES)}")
    names = list(SUITE) if names is None else names
    if runs == "local":
        return train_suite(dataset, profile, device, names=names, train_seed=train_seed)
    from ssd_lib.experiments.published import check_trained_on, load_published

    out: dict[str, Run] = {}
    for name in names:
        run = load_published(name, train_seed)
        check_trained_on(run, dataset, "use runs='local' (make figures RUNS=local)")
        out[name] = run
    return out


def suite_table(runs: dict[str, Run]) -> pd.DataFrame:
    """One row per run: what it is, how long it trained, where its checkpoint is."""
    rows = []
    for name, run in runs.items():
        cfg, st = run.config, run.status
        rows.append(
            {
                "run": name,
                "what": ALL_RUNS[name].title if name in ALL_RUNS else name,
                "preset": cfg.preset,
                "data %": round(100 * cfg.data_fraction),
                "steps": st.get("step"),
                "train time (s)": round(float(st.get("elapsed_s", 0.0)), 1),
                "checkpoint": f"{run.path.name}@step{st.get('step')}",
            }
        )
    return pd.DataFrame(rows)


def health_table(
    runs: dict[str, Run],
    reference: torch.Tensor | None = None,
    n: int = 256,
    seed: int = 0,
    dataset: Any = None,
) -> pd.DataFrame:
    """What each run's samples look like and what the trainer's health checks saw.

    With ``reference`` (uint8 training images, shuffled), each run gets the verdict of
    ``ssd_lib.training.health.generator_verdict`` on ``n`` samples at the codes of ``seed``
    ("healthy", "partially collapsed", "collapsed" or "noise", the ladder-checked collapse
    test) with the numbers it rests on. With ``dataset`` instead, the reference is its fixed
    draw of ``n`` training images and a published run's verdict is the stored one
    (``ssd_lib.analysis.beyond.stored_verdict``, the record notebook 07 reads too). Then one
    row per warning the trainer logged (collapse, roll-back), or one "none" row. The
    per-pixel ``sample_diversity`` the trainer logs is not shown: it fails its validity
    ladder (pixel noise counts as variety)."""
    from ssd_lib.analysis.beyond import stored_verdict
    from ssd_lib.training.health import generator_verdict

    def verdict(run: Run) -> dict[str, Any] | None:
        if reference is not None:
            g = run.load_generator()
            return generator_verdict(g, run.config.real_range, reference, n, seed).to_dict()
        return None if dataset is None else stored_verdict(run, dataset, n, seed)

    rows = []
    for name, run in runs.items():
        judged: dict[str, Any] = {}
        m = verdict(run)
        if m is not None:
            judged = {
                f"samples ({n})": m["verdict"],
                "near-duplicate share": round(m["duplicate_share"], 3),
                "largest group": round(m["largest_group_share"], 3),
                "structural diversity / reals'": round(
                    m["structural_diversity"] / max(m["real_structural_diversity"], 1e-12), 3
                ),
            }
        warnings = run.warnings() or [
            {"step": "-", "kind": "none", "message": "no collapse warning, no roll-back"}
        ]
        for w in warnings:
            rows.append(
                {
                    "run": name,
                    **judged,
                    "warning at step": w["step"],
                    "kind": w["kind"],
                    "what": w["message"],
                }
            )
    return pd.DataFrame(rows)


def by_title(runs: dict[str, Run], names: list[str]) -> dict[str, Run]:
    """``runs`` restricted to ``names``, keyed by their titles (for figure legends)."""
    return {SUITE[n].title: runs[n] for n in names}


# How many samples the analysis notebooks draw, per profile. The numbers in the tables depend
# on these (FD in particular grows as n shrinks), so tables state n next to every value.
EVAL_BUDGETS: dict[str, dict[str, int]] = {
    "paper": {"toy_n": 5000, "probe_n": 5000, "ppl_n": 2000, "memo_n": 5000, "net_epochs": 12},
    "quick": {"toy_n": 1000, "probe_n": 2000, "ppl_n": 500, "memo_n": 1000, "net_epochs": 12},
    "smoke": {"toy_n": 60, "probe_n": 80, "ppl_n": 8, "memo_n": 60, "net_epochs": 1},
}


def eval_budget(profile: str) -> dict[str, int]:
    """Sample counts for the analysis notebooks under ``profile``."""
    if profile not in EVAL_BUDGETS:
        raise KeyError(f"no evaluation budget for profile {profile!r}; known: {list(EVAL_BUDGETS)}")
    return dict(EVAL_BUDGETS[profile])


def factor_net_for(dataset: PreparedDataset, profile: str, show_progress: bool = True) -> Any:
    """The toy factor CNN of ``dataset`` (trained once, then cached next to the dataset)."""
    from ssd_lib.metrics.toy import load_or_train_factor_net

    epochs = eval_budget(profile)["net_epochs"]
    return load_or_train_factor_net(dataset, epochs=epochs, show_progress=show_progress)


def parameter_table(runs: dict[str, Run]) -> pd.DataFrame:
    """Exact parameter counts of each run's networks, and the total as the paper's layer
    summary tool reports it (which counts the tied mapping layer four times)."""
    from ssd_lib.metrics.tables import parameter_counts
    from ssd_lib.models import build_discriminator, build_generator
    from ssd_lib.models.counting import count_parameters

    rows = []
    for name, run in runs.items():
        cfg = run.config
        g, d = count_parameters(build_generator(cfg)), count_parameters(build_discriminator(cfg))
        rows.append(
            {
                "run": name,
                "generator": g,
                "discriminator": d,
                "total": g + d,
                "total (M), paper's tool": parameter_counts(run)[1],
            }
        )
    return pd.DataFrame(rows)
