"""Beyond the paper (notebook 07): the StyleGAN line's remedies for small data, and LAPGAN,
measured beside SSD on the same images and budgets.

Each option is a preset trained by ``ssd_lib.experiments.suite`` under three budgets: all the
training images for the paper's 20 epochs, the first 25 % for 20 epochs, and the first 25 %
for the full run's number of steps (80 epochs). It is compared with the baseline that shares
its recipe: weight demodulation keeps the release's recipe, so its baseline is SSD as
published (``ssd``); the augmentations, R1 + EMA and LAPGAN train on the corrected recipe, so
theirs is ``corrected``.

What is measured of each run (``measure_run``, once, then read from published/measurements):
the toy columns of the paper's tables (FD-toy, KID-toy, combination coverage; the same records
notebook 04 reads), the collapse verdict of 256 samples, and for generators with a 32x32 AdaIN
or demodulated layer, how concentrated that layer's activation is (``hot_spot_share``: the
share of the layer's total activation within the 3x3 neighbourhood of its hottest pixel,
summed over channels; 9 / 1024 = 0.9 % for an even spread), AdaIN's droplet artefact being a
small spot that carries much of the activation.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

# option -> (title, the option whose runs are its baseline)
OPTIONS: dict[str, tuple[str, str | None]] = {
    "ssd": ("SSD (release recipe)", None),
    "demod": ("SSD with weight demodulation", "ssd"),
    "corrected": ("SSD, corrected recipe", None),
    "diffaugment": ("+ DiffAugment", "corrected"),
    "ada": ("+ adaptive augmentation (ADA)", "corrected"),
    "r1_ema": ("+ R1 + EMA", "corrected"),
    "lapgan": ("LAPGAN (corrected recipe)", "corrected"),
}
# budget label -> suffix of the suite run's name
BUDGETS: dict[str, str] = {
    "100 %, 20 epochs": "",
    "25 %, 20 epochs": "_25",
    "25 %, same steps": "_25_steps",
}
# the short names notebook 07's `budgets` parameter takes -> BUDGETS labels
BUDGET_KEYS: dict[str, str] = {
    suffix.lstrip("_") or "100": label for label, suffix in BUDGETS.items()
}
SEED = 42  # the training seed of every run compared here
VERDICT_N = 256
MAP_SAMPLES = 4


def run_name(option: str, budget: str) -> str:
    """The suite run of ``option`` under ``budget`` (a BUDGETS label)."""
    return option + BUDGETS[budget]


# --- the 32x32 layer --------------------------------------------------------------------------


def layer32_activations(generator: nn.Module, z: torch.Tensor) -> torch.Tensor | None:
    """The activations after the 32x32 style layer, ReLU applied, (N, C, 32, 32) float32:
    SSD's AdaIN output or the demodulated convolution's output. None for a generator without
    such a layer (DCGAN, StyleGAN baseline, LAPGAN)."""
    from ssd_lib.models import SSDDemodGenerator, SSDGenerator

    if isinstance(generator, SSDGenerator):
        layer = generator.norms[3]
    elif isinstance(generator, SSDDemodGenerator):
        layer = generator.convs[3]
    else:
        return None
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            generator(z)
    finally:
        handle.remove()
        generator.train(was_training)
    return torch.relu(seen[0]).float()


def hot_spot_share(acts: torch.Tensor) -> torch.Tensor:
    """Per sample (N,): the share of the total activation (summed over channels) within the
    3x3 neighbourhood of the hottest pixel of the channel sum."""
    total = acts.sum(1, keepdim=True)  # (N, 1, H, W)
    windows = torch.nn.functional.avg_pool2d(total, 3, stride=1, padding=1) * 9
    return windows.flatten(1).amax(1) / total.flatten(1).sum(1).clamp_min(1e-12)


def _layer32_summary(generator: nn.Module, n: int, seed: int) -> dict[str, Any] | None:
    from ssd_lib.generation.sampling import sample_z

    acts = layer32_activations(generator, sample_z(n, generator.z_dim, seed))
    if acts is None:
        return None
    share = hot_spot_share(acts)
    total = acts.sum(1)[:MAP_SAMPLES]  # (k, 32, 32), each scaled to its own maximum
    total = total / total.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    levels = (total * 255).round().to(torch.uint8).numpy()
    return {
        "hot_spot_share_median": float(share.median()),
        "hot_spot_share_p90": float(share.quantile(0.9)),
        # 0-255 per pixel, row-major, base64: 1.4 KB a map in the JSON file
        "channel_sum_maps": [base64.b64encode(m.tobytes()).decode("ascii") for m in levels],
    }


def decode_map(text: str, side: int = 32) -> np.ndarray:
    """A stored channel-sum map as floats in [0, 1], (side, side)."""
    levels = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    return levels.reshape(side, side).astype(np.float64) / 255


# --- measuring a run --------------------------------------------------------------------------


def measure_run(
    run: Any, dataset: Any = None, profile: str = "paper", seed: int = 0
) -> dict[str, Any]:
    """Everything notebook 07 shows of ``run`` (a published run), measured once and stored
    (``ssd_lib.metrics.stored.remember``): the toy columns, the collapse verdict and, where
    the generator has one, the 32x32 layer's summary."""
    from ssd_lib.data import prepare_dataset
    from ssd_lib.experiments.suite import eval_budget, factor_net_for
    from ssd_lib.metrics.stored import remember
    from ssd_lib.metrics.tables import toy_cells

    ds = dataset if dataset is not None else prepare_dataset("embedded")
    toy_n = eval_budget(profile)["toy_n"]
    n = min(VERDICT_N, toy_n)  # 256, or fewer under the smoke profile
    out: dict[str, Any] = {}
    if ds.train.factors is not None:  # the toy columns need factor labels
        net = factor_net_for(ds, profile, show_progress=False)
        out.update(toy_cells(run, ds, toy_n, seed, net))
    generator = functools.cache(run.load_generator)  # loaded once, only if something is new
    out["verdict"] = stored_verdict(run, ds, n, seed, generator)
    params = {"kind": "layer 32", "n": n, "seed": seed, "maps": MAP_SAMPLES, "encoding": "u8b64"}
    out["layer32"] = remember(
        "beyond", run, params, lambda: _layer32_summary(generator(), n, seed), ds
    )
    return out


def stored_verdict(
    run: Any, dataset: Any, n: int = VERDICT_N, seed: int = 0, generator: Any = None
) -> dict[str, Any]:
    """The collapse verdict on ``run``'s ``n`` samples at the codes of ``seed`` against the
    fixed draw of ``n`` training images (``ssd_lib.training.health.generator_verdict``, as a
    dict: verdict, reason, measures), measured once for a published run and stored (kind
    ``beyond``): notebooks 01 and 07 read the same record. ``generator`` (a callable) loads
    the weights if they are needed; default ``run.load_generator``."""
    from ssd_lib.metrics.stored import remember
    from ssd_lib.training.health import generator_verdict, reference_images

    load = generator or run.load_generator

    def verdict() -> dict[str, Any]:
        reference = reference_images(dataset.train.images, n)
        return generator_verdict(load(), run.config.real_range, reference, n, seed).to_dict()

    params = {"kind": "sample verdict", "n": n, "seed": seed}
    return remember("beyond", run, params, verdict, dataset)


# The evaluation budgets a run published without weights is measured under when it is
# published: `make figures` uses quick (1,000 samples), PROFILE=paper 5,000.
PUBLISHED_PROFILES = ("quick", "paper")


def measure_for_publication(run: Any) -> list[dict[str, Any]]:
    """``measure_run`` under every PUBLISHED_PROFILES budget, while the weights are at hand."""
    from ssd_lib.data import prepare_dataset

    ds = prepare_dataset(run.config.dataset)
    return [measure_run(run, ds, profile) for profile in PUBLISHED_PROFILES]


# --- reading the published runs ---------------------------------------------------------------


@dataclass
class Comparison:
    """The runs of notebook 07 and what was measured of them, for the options and budgets
    chosen (all by default): the tables and figures have a row per option and a column per
    budget of these."""

    runs: dict[str, Any]  # suite name -> PublishedRun or Run
    missing: list[str]  # suite names not published yet
    measured: dict[str, dict[str, Any]]  # suite name -> measure_run's dict
    options: list[str] = field(default_factory=lambda: list(OPTIONS))
    budgets: list[str] = field(default_factory=lambda: list(BUDGETS))  # BUDGETS labels

    def option_items(self) -> list[tuple[str, tuple[str, str | None]]]:
        """(option, (title, baseline)) of the chosen options, in OPTIONS' order."""
        return [(o, OPTIONS[o]) for o in self.options]


def _choose(value: Any, name: str, known: list[str]) -> list[str]:
    """``value`` ("all" or comma-separated names of ``known``) as a list in ``known``'s order;
    a bad value raises NotebookParameterError naming the parameter."""
    from ssd_lib.reporting.notebooks import parameter_error

    if isinstance(value, str) and value.strip() == "all":
        return list(known)
    chosen = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else []
    unknown = [v for v in chosen if v not in known]
    if not chosen or unknown:
        raise parameter_error(name, value, f"'all' or comma-separated names among {known}")
    return [k for k in known if k in chosen]


def select(options: Any = "all", budgets: Any = "all") -> tuple[list[str], list[str]]:
    """Notebook 07's ``options`` and ``budgets`` parameters ("all", or comma-separated names:
    options as in OPTIONS, budgets as in BUDGET_KEYS) as (options, BUDGETS labels). Each
    chosen option brings its baseline along, since its verdicts are judged against it."""
    chosen = _choose(options, "options", list(OPTIONS))
    with_baselines = set(chosen) | {OPTIONS[o][1] for o in chosen if OPTIONS[o][1]}
    keys = _choose(budgets, "budgets", list(BUDGET_KEYS))
    return [o for o in OPTIONS if o in with_baselines], [BUDGET_KEYS[k] for k in keys]


def selection_text(comp: Comparison) -> str:
    """What narrowed the comparison, for the labels of its tables and figures: "" for every
    option and budget, else "; options: a, b" and/or "; budgets: 25, 25_steps" (the short
    names the parameters take)."""
    text = ""
    if comp.options != list(OPTIONS):
        text += f"; options: {', '.join(comp.options)}"
    if comp.budgets != list(BUDGETS):
        keys = {label: key for key, label in BUDGET_KEYS.items()}
        text += f"; budgets: {', '.join(keys[b] for b in comp.budgets)}"
    return text


def comparison_names(
    options: list[str] | None = None, budgets: list[str] | None = None
) -> list[str]:
    """The suite runs the comparison reads, option by option: every one, or those of
    ``options`` under ``budgets`` (BUDGETS labels)."""
    return [
        run_name(option, budget)
        for option in (OPTIONS if options is None else options)
        for budget in (BUDGETS if budgets is None else budgets)
    ]


def load_comparison(
    dataset: Any,
    run_source: str = "published",
    profile: str = "paper",
    device: str = "auto",
    train_seed: int = SEED,
    seed: int = 0,
    options: Any = "all",
    budgets: Any = "all",
) -> Comparison:
    """The comparison's runs and their measurements. ``run_source="published"``: SSD's from
    the paper's suite, the others from suite.BEYOND, hash-checked; runs not published yet are
    listed in ``missing``, not an error. ``"local"``: every run trained (or reused) here under
    ``profile`` with ``train_seed``. ``options`` and ``budgets`` (see ``select``) narrow the
    comparison: at the paper's budget a local run takes from a quarter of an hour (25 %, 20
    epochs) to about an hour on a 2-core CPU."""
    from ssd_lib.experiments.published import (
        PublishedRunError,
        check_trained_on,
        load_published,
    )
    from ssd_lib.experiments.suite import train_suite

    chosen_options, chosen_budgets = select(options, budgets)
    names = comparison_names(chosen_options, chosen_budgets)
    runs, missing = {}, []
    if run_source == "local":
        runs = train_suite(dataset, profile, device, names=names, train_seed=train_seed)
    else:
        for name in names:
            try:
                run = load_published(name, train_seed)
            except PublishedRunError as err:
                if "no published run" not in str(err):
                    raise
                missing.append(name)
                continue
            check_trained_on(run, dataset, "use run_source='local'")
            runs[name] = run
    measured = {name: measure_run(run, dataset, profile, seed) for name, run in runs.items()}
    return Comparison(runs, missing, measured, chosen_options, chosen_budgets)


def status_table(comp: Comparison) -> pd.DataFrame:
    """Option x budget: the run's steps and training time, or "not published yet"."""
    rows = []
    for option, (title, _) in comp.option_items():
        row: dict[str, Any] = {"option": title}
        for budget in comp.budgets:
            name = run_name(option, budget)
            run = comp.runs.get(name)
            if run is None:
                row[budget] = "not published yet"
            else:
                st = run.status
                row[budget] = f"{st['step']} steps, {float(st['elapsed_s']) / 60:.0f} min"
        rows.append(row)
    return pd.DataFrame(rows)


def results_table(comp: Comparison, metric: str = "FD-toy") -> pd.DataFrame:
    """Option x budget: ``metric`` (lower is better for FD-toy and KID-toy; absent without
    factor labels), the change against the option's baseline under the same budget, and the
    collapse verdict; "-" where a run or its baseline is not published (or has no baseline)."""
    rows = []
    for option, (title, baseline) in comp.option_items():
        row: dict[str, Any] = {"option": title}
        for budget in comp.budgets:
            a = _value(comp, run_name(option, budget), metric)
            b = _value(comp, run_name(baseline, budget), metric) if baseline else None
            row[f"{metric}, {budget}"] = "-" if a is None else round(a, 2)
            row[f"change, {budget}"] = "-" if a is None or b is None else round(a - b, 2)
            m = comp.measured.get(run_name(option, budget))
            row[f"verdict, {budget}"] = m["verdict"]["verdict"] if m else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def _value(comp: Comparison, name: str, metric: str) -> float | None:
    m = comp.measured.get(name)
    return None if m is None or metric not in m else float(m[metric])


def seed_spread(
    dataset: Any, metric: str = "FD-toy", name: str = "ssd", profile: str = "paper"
) -> dict[str, Any] | None:
    """The spread (max - min) of ``metric`` over the published training seeds of ``name``,
    the yardstick for the comparison's one-seed differences, with the values; None with
    fewer than two seeds or without the metric."""
    from ssd_lib.experiments.published import published_seeds

    if dataset.train.factors is None:
        return None
    values = {
        seed: measure_run(run, dataset, profile)[metric]
        for seed, run in published_seeds(name).items()
    }
    if len(values) < 2:
        return None
    return {"values": values, "spread": max(values.values()) - min(values.values())}


def verdicts(comp: Comparison, spread: float | None, metric: str = "FD-toy") -> list[str]:
    """One sentence per option and budget: helps, hurts, or no clear change, judged against
    ``spread`` (the baseline's seed spread; None: the direction only, not judged), with the
    numbers and any collapse."""
    lines = []
    for option, (title, baseline) in comp.option_items():
        if baseline is None:
            continue
        parts = []
        for budget in comp.budgets:
            m = comp.measured.get(run_name(option, budget))
            a = _value(comp, run_name(option, budget), metric)
            b = _value(comp, run_name(baseline, budget), metric)
            if m is None or b is None:
                parts.append(f"{budget}: not measured yet")
                continue
            note = (
                ""
                if m["verdict"]["verdict"] == "healthy"
                else f"; its samples: {m['verdict']['verdict']}"
            )
            if a is None:
                parts.append(f"{budget}: no {metric} (no factor labels){note}")
                continue
            if spread is None:
                word = (
                    "lower (not judged: no seed spread)"
                    if a < b
                    else "higher (not judged: no seed spread)"
                )
            else:
                word = (
                    "helps" if a < b - spread else "hurts" if a > b + spread else "no clear change"
                )
            parts.append(f"{budget}: {word} ({metric} {a:.1f} against {b:.1f}{note})")
        lines.append(f"{title}: " + "; ".join(parts))
    if not lines:
        lines.append(
            f"no verdicts: the chosen options ({', '.join(comp.options)}) are baselines only"
        )
    return lines


# --- when the codes start to matter -------------------------------------------------------

# A run "uses its codes" from the first sample point at which the per-pixel spread of its
# samples at the fixed codes reaches this share of the training images' own. The per-pixel
# spread fails its ladder as a measure of variety, but it passes the rung asked here: one
# image repeated scores 0 (docs/metrics.md). It does not tell layouts from pixel noise: one
# image with fresh noise on every copy scores 0.089 on the ladder, over the threshold.
ONSET_SHARE = 0.1


def codes_onset(run: Any, real: float, share: float = ONSET_SHARE) -> dict[str, int | None] | None:
    """When ``run``'s samples at its fixed codes started to differ: {"step": the first sample
    point whose per-pixel spread is at least ``share`` x ``real`` (the training images'
    spread), None if none is, "first": the first sample point} from the logged spread or the
    saved grids (``samples.diversity_curve``), or None when neither exists. Generators built
    on a learned constant start with one image for every code (SSD's tied mapping hardly
    varies w with z at initialisation); this is when a run broke out of that. When "step" is
    "first", the run had broken out by its first sample point, which bounds the onset only."""
    from ssd_lib.analysis.samples import diversity_curve

    steps, values, source = diversity_curve(run, "sample_diversity")
    if source not in ("logged", "grids"):
        return None
    reached = np.flatnonzero(values >= share * real)
    return {
        "step": int(steps[reached[0]]) if len(reached) else None,
        "first": int(steps[0]),
    }


def onset_text(onset: dict[str, int | None] | None, total: int) -> str:
    """``codes_onset``'s answer for a table cell, ``total`` being the run's steps."""
    if onset is None:
        return "not measured"
    if onset["step"] is None:
        return f"never in {total} steps"
    if onset["step"] == onset["first"]:
        return f"by step {onset['step']} (first sample point) of {total}"
    return f"step {onset['step']} of {total}"


def onset_table(comp: Comparison, real: float) -> pd.DataFrame:
    """Option x budget: the step from which each run's samples differ from code to code
    (``codes_onset``, ``onset_text``); "-" where not published."""
    rows = []
    for option, (title, _) in comp.option_items():
        row: dict[str, Any] = {"option": title}
        for budget in comp.budgets:
            run = comp.runs.get(run_name(option, budget))
            row[budget] = (
                "-" if run is None else onset_text(codes_onset(run, real), int(run.status["step"]))
            )
        rows.append(row)
    return pd.DataFrame(rows)


def onset_figure(comp: Comparison, real: float, label: str, budget: str | None = None) -> Any:
    """The per-pixel spread of each run's samples at its fixed codes over training, for the
    runs of ``budget`` (default: 25 %, 20 epochs, or the first chosen budget without it),
    against the training images' (notebook 01's figure, per-pixel), with the threshold of
    ``codes_onset`` dotted."""
    from ssd_lib.analysis.samples import diversity_figure

    if budget is None:
        budget = BUDGET_KEYS["25"] if BUDGET_KEYS["25"] in comp.budgets else comp.budgets[0]

    runs = {
        title: comp.runs[run_name(option, budget)]
        for option, (title, _) in comp.option_items()
        if run_name(option, budget) in comp.runs
    }
    threshold = (ONSET_SHARE * real, f"{ONSET_SHARE:g} x the training images' (codes matter above)")
    return diversity_figure(
        runs, real, f"{label}, {budget}", key="sample_diversity", threshold=threshold
    )


def one_run_per_option(comp: Comparison) -> dict[str, Any]:
    """Option -> the first published run of it (its networks' sizes do not depend on the
    budget)."""
    out = {}
    for option in comp.options:
        for budget in comp.budgets:
            run = comp.runs.get(run_name(option, budget))
            if run is not None:
                out[option] = run
                break
    return out


def samples_of(run: Any, n: int = 16) -> torch.Tensor:
    """uint8 (n, 3, 64, 64) samples at the codes ``sample_z(n, z_dim, 0)``: drawn from the
    generator when it is published, else the samples kept at publication."""
    from ssd_lib.experiments.published import LIGHT_SAMPLES, read_final_samples
    from ssd_lib.generation.sampling import generate, sample_z

    if getattr(run, "has_generator", True):
        g = run.load_generator()
        return generate(g, sample_z(n, g.z_dim, 0), run.config.real_range)
    if n > LIGHT_SAMPLES:
        raise ValueError(f"{run.key} keeps {LIGHT_SAMPLES} samples; asked for {n}")
    return read_final_samples(run)[:n]


def samples_figure(comp: Comparison, label: str, n: int = 16) -> Any:
    """Rows: options; columns: budgets; each cell a 4x4 grid of the run's samples."""
    from ssd_lib.reporting.plots import PlotFigure, stamp
    from ssd_lib.utils.images import make_grid

    n_rows, n_cols = len(comp.options), len(comp.budgets)
    fig = PlotFigure(figsize=(2.3 * n_cols + 1.2, 2.3 * n_rows), layout="constrained")
    fig.inline_format = "jpeg"  # many generated images: see PlotFigure
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, (option, (title, _)) in enumerate(comp.option_items()):
        for j, budget in enumerate(comp.budgets):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            run = comp.runs.get(run_name(option, budget))
            if run is None:
                ax.text(0.5, 0.5, "not published yet", ha="center", va="center", fontsize=8)
            else:
                ax.imshow(make_grid(samples_of(run, n), nrow=int(n**0.5)))
            if i == 0:
                ax.set_title(budget, fontsize=9)
            if j == 0:
                ax.set_ylabel(title, fontsize=8)
    return stamp(fig, label)


def ada_figure(comp: Comparison, label: str) -> Any:
    """ADA's augmentation probability p and its overfitting signal r_t against the step, one
    panel per budget, with the target r_t."""
    from ssd_lib.reporting.plots import PlotFigure, stamp

    fig = PlotFigure(figsize=(4 * len(comp.budgets), 3.2), layout="constrained")
    axes = fig.subplots(1, len(comp.budgets), sharey=True, squeeze=False)[0]
    for ax, budget in zip(axes, comp.budgets, strict=True):
        run = comp.runs.get(run_name("ada", budget))
        ax.set_title(f"ADA, {budget}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(-0.05, 1.05)
        if run is None:
            ax.text(0.5, 0.5, "not published yet", ha="center", va="center", transform=ax.transAxes)
            continue
        h = run.history()
        ax.plot(h["step"], h["augment_p"], label="p")
        if "augment_rt" in h:  # absent before the first update of p (a few-step run)
            keep = ~np.isnan(h["augment_rt"])
            ax.plot(h["step"][keep], h["augment_rt"][keep], ".", ms=2, alpha=0.5, label="r_t")
        ax.axhline(run.config.ada_target, color="grey", lw=0.8, ls="--", label="target r_t")
        ax.legend(fontsize=8)
    return stamp(fig, label)


# the options whose generators have a 32x32 AdaIN or demodulated layer to look into
LAYER32_OPTIONS = ("ssd", "demod", "corrected")


def layer32_names(comp: Comparison) -> list[str]:
    """The runs ``layer32_figure`` shows: the AdaIN and demodulated options under the chosen
    budgets of 20 epochs (the same-steps runs only when no other budget is chosen), whether
    published or not."""
    budgets = [b for b in comp.budgets if b != BUDGET_KEYS["25_steps"]] or comp.budgets
    return [run_name(o, b) for b in budgets for o in LAYER32_OPTIONS if o in comp.options]


def layer32_figure(comp: Comparison, names: list[str], label: str) -> Any:
    """For each run of ``names``, the channel sum of its 32x32 layer's activations for the
    first MAP_SAMPLES codes (each scaled to its maximum), titled with the hot-spot share."""
    from ssd_lib.reporting.plots import PlotFigure, stamp

    names = [n for n in names if n in comp.measured and comp.measured[n]["layer32"]]
    fig = PlotFigure(
        figsize=(1.8 * MAP_SAMPLES + 0.6, 1.9 * max(1, len(names)) + 0.4), layout="constrained"
    )
    axes = fig.subplots(max(1, len(names)), MAP_SAMPLES, squeeze=False)
    for i, name in enumerate(names):
        summary = comp.measured[name]["layer32"]
        for j, m in enumerate(summary["channel_sum_maps"]):
            axes[i, j].imshow(decode_map(m), cmap="magma", vmin=0, vmax=1)
        axes[i, 0].set_ylabel(
            f"{name}\nhot spot {100 * summary['hot_spot_share_median']:.1f} %", fontsize=8
        )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if not names:
        axes[0, 0].text(
            0, 0.5, "no measured 32x32 AdaIN or demodulated layer among the chosen runs", fontsize=9
        )
        for ax in axes.flat:
            ax.axis("off")
    return stamp(fig, label)
