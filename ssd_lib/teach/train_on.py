"""Train on from a published snapshot for a few minutes, with or without spectral norm.

The class's third part starts from ``ssd-seed42-step447`` (SSD after 3 of its 20 epochs,
published with both networks) instead of from random weights, so that a few minutes on a
laptop show visible progress::

    from ssd_lib.experiments.published import load_key
    from ssd_lib.teach.train_on import comparison_figure, continue_training

    snap = load_key("ssd-seed42-step447")
    with_sn = continue_training(snap, steps=300, seconds=120, keep_sn=True)
    without = continue_training(snap, steps=300, seconds=120, keep_sn=False)
    comparison_figure([with_sn, without])

What is kept from the snapshot and what is new:

- the weights of both networks (the generator's ``w_avg`` included) and the run's recipe
  from its config (loss, learning rates, Adam's betas, step order, D-loss scale, batch size,
  real range, precision): each step is the project trainer's own ``Trainer.train_step``;
- new: Adam's moments (a snapshot holds no optimiser state, so both optimisers start
  fresh, and their first steps differ from the ones the original run took), the order of
  the training images and the codes z (both from ``seed``), and, with ``keep_sn=False``, the
  discriminator's class (see :func:`remove_spectral_norm`).

Randomness comes from ``seed`` alone, inside ``torch.random.fork_rng``: the caller's global
RNG is left as it was, and two calls with the same arguments and a step budget train the same
weights on a CPU. A time budget makes the number of steps depend on the machine.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssd_lib.config import TrainConfig
from ssd_lib.data.cache import PreparedDataset
from ssd_lib.generation.sampling import generate, sample_z
from ssd_lib.models import build_discriminator
from ssd_lib.training.checkpoint import load_state_strict
from ssd_lib.training.devices import resolve_device
from ssd_lib.training.runs import default_runs_root
from ssd_lib.training.sigma_tracker import SpectralTracker
from ssd_lib.utils.atomic import atomic_write_csv, atomic_write_json
from ssd_lib.utils.images import save_grid, uint8_to_float
from ssd_lib.utils.progress import progress_bar
from ssd_lib.utils.validate import check_int, check_real, check_seed

log = logging.getLogger(__name__)

STOP_REASONS = ("steps", "time", "diverged", "interrupted")
# "<prefix.>parametrizations.<name>.<rest>": a tensor of a layer parametrised with torch's
# newer API; the prefix is empty for a state of the layer itself.
PARAMETRIZED = re.compile(r"^((?:.+\.)?)parametrizations\.([^.]+)\.(.+)$")
LOGGED = ("loss_g", "loss_d", "d_real", "d_fake", "d_acc", "grad_norm_g", "grad_norm_d")


# ----- spectral norm off ------------------------------------------------------------------


def applied_weight(weight_orig: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The weight an SN layer applies when it runs without a power iteration (eval mode):
    ``weight_orig / sigma`` with ``sigma = u^T W v``, W the stored weight read as a
    (out, in * k * k) matrix (torch's reshaping for a convolution, ``dim=0``)."""
    matrix = weight_orig.reshape(weight_orig.shape[0], -1)
    sigma = torch.dot(u, matrix @ v)
    return weight_orig / sigma


def remove_spectral_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A discriminator's state with SN, rewritten for the same network without SN.

    torch stores an SN layer's weight in two ways, and both are read:

    - ``torch.nn.utils.spectral_norm`` (what ``Discriminator`` uses): the parameter
      ``<layer>.weight_orig`` (the weight before division) and the buffers
      ``<layer>.weight_u`` and ``<layer>.weight_v`` (the power iteration's vectors);
      ``<layer>.weight`` itself is recomputed on every forward pass and is not stored;
    - ``torch.nn.utils.parametrizations.spectral_norm``:
      ``<layer>.parametrizations.weight.original`` with ``...weight.0._u`` and ``._v``.

    Each such layer becomes a plain ``<layer>.weight`` equal to what the SN layer applied
    (:func:`applied_weight`): the stored weight divided by SN's own estimate of its largest
    singular value. So the network without SN starts as exactly the function the SN network
    computes in eval mode, its applied weights with a largest singular value of about 1. What
    changes is what happens next: nothing divides the weight any more, so an optimiser step
    moves the applied weight directly and its largest singular value is free to grow. (Each
    middle convolution here is followed by BatchNorm, which undoes an overall rescaling of its
    output in training mode; what SN changes in this network is mostly how far each Adam step
    moves the applied weight, since with SN that step is divided by a stored weight whose
    sigma grows during training.) Every other entry is copied unchanged.
    """
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        if key.endswith("_orig") and f"{key[:-5]}_u" in state and f"{key[:-5]}_v" in state:
            base = key[:-5]
            out[base] = applied_weight(t, state[f"{base}_u"], state[f"{base}_v"])
        elif key.endswith(("_u", "_v")) and f"{key[:-2]}_orig" in state:
            continue  # the vectors of an old-style SN layer, used above
        elif (found := PARAMETRIZED.match(key)) is not None:
            prefix, name, tail = found.groups()
            if tail == "original":
                stem = f"{prefix}parametrizations.{name}.0"
                u, v = state[f"{stem}._u"], state[f"{stem}._v"]
                out[f"{prefix}{name}"] = applied_weight(t, u, v)
            # the vectors ("0._u", "0._v") are used above; nothing else is stored there
        else:
            out[key] = t
    return out


def has_spectral_norm(module: nn.Module) -> bool:
    """Whether any layer of ``module`` applies spectral normalisation (either torch API)."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.spectral_norm import SpectralNorm

    for m in module.modules():
        if any(isinstance(hook, SpectralNorm) for hook in m._forward_pre_hooks.values()):
            return True
        if parametrize.is_parametrized(m) and any(
            "SpectralNorm" in type(p).__name__ for ps in m.parametrizations.values() for p in ps
        ):
            return True
    return False


def snapshot_networks(
    snapshot: Any, keep_sn: bool = True
) -> tuple[TrainConfig, nn.Module, nn.Module]:
    """(config, generator, discriminator) with the snapshot's weights, in training mode.

    With ``keep_sn=False`` the config's discriminator is "plain" and the discriminator is
    the network without SN, loaded through :func:`remove_spectral_norm`. The snapshot must
    have been trained with the SN discriminator and published with it (``load_key`` gives
    such snapshots; ``load_discriminator`` must work)."""
    cfg, g, d, _ = _load_networks(snapshot, keep_sn)
    return cfg, g, d


def _load_networks(
    snapshot: Any, keep_sn: bool
) -> tuple[TrainConfig, nn.Module, nn.Module, dict[str, torch.Tensor]]:
    """:func:`snapshot_networks`, plus SN's stored right singular vector v of each SN layer
    (by the name ``tracked_convs`` gives it): a converged start for measuring sigma, valid
    with SN removed too, since dividing a matrix by a number keeps its singular vectors."""
    cfg = snapshot.config
    if cfg.discriminator != "sn":
        raise ValueError(
            f"{_name(snapshot)} was trained with discriminator={cfg.discriminator!r}; "
            f"continue_training(keep_sn=...) starts from a run trained with spectral norm ('sn')"
        )
    g = snapshot.load_generator().cpu()
    d_sn = snapshot.load_discriminator().cpu()
    convs = d_sn.tracked_convs() if hasattr(d_sn, "tracked_convs") else {}
    vectors = {k: c.weight_v.detach().clone() for k, c in convs.items() if hasattr(c, "weight_v")}
    if keep_sn:
        return cfg, g.train(), d_sn.train(), vectors
    cfg = cfg.replace(discriminator="plain")
    d = build_discriminator(cfg)
    load_state_strict(d, remove_spectral_norm(d_sn.state_dict()), f"{_name(snapshot)} D without SN")
    return cfg, g.train(), d.train(), vectors


def _name(snapshot: Any) -> str:
    return str(getattr(snapshot, "key", None) or Path(getattr(snapshot, "path", "?")).name)


# ----- the result -------------------------------------------------------------------------


@dataclass
class TrainOnResult:
    """What :func:`continue_training` did: samples at the same codes before and after, the
    log, and the trained networks.

    ``seconds`` is the whole call, ``setup_s`` the part before the first step (loading, the
    "before" samples); ``rows`` holds one dict per step, with its duration ``step_s`` and the
    time since the call ``seconds``. ``history()`` and ``label()`` answer as a run's do
    (``ssd_lib.reporting.plots.loss_figure(r.history(), r.label())`` works), and ``load_generator``,
    ``config`` and ``work_dir`` let ``ssd_lib.generation.explorer.Explorer.from_run(r)`` explore the
    trained generator."""

    snapshot: str
    keep_sn: bool
    seed: int
    config: TrainConfig
    start_step: int
    steps: int
    seconds: float
    stopped_by: str
    z: torch.Tensor
    before: torch.Tensor
    after: torch.Tensor
    generator: nn.Module
    discriminator: nn.Module
    path: Path
    rows: list[dict[str, float]] = field(default_factory=list)
    setup_s: float = 0.0

    @property
    def sn(self) -> str:
        return "with SN" if self.keep_sn else "without SN"

    @property
    def work_dir(self) -> Path:
        return self.path

    def history(self) -> dict[str, np.ndarray]:
        """One array per logged value, one entry per step trained (``step`` counts on from
        the snapshot's step)."""
        keys = list(dict.fromkeys(k for row in self.rows for k in row))
        return {k: np.array([row.get(k, np.nan) for row in self.rows], dtype=float) for k in keys}

    def label(self) -> str:
        cfg = self.config
        return (
            f"dataset={cfg.dataset} preset={cfg.preset}: published/{self.snapshot} trained on "
            f"{self.sn} from step {self.start_step} for {self.steps} steps "
            f"({self.seconds:.0f} s, stopped by {self.stopped_by}, seed {self.seed})"
        )

    def load_generator(self, device: str | torch.device = "cpu") -> nn.Module:
        """A copy of the trained generator, in eval mode."""
        return copy.deepcopy(self.generator).to(device).eval()

    def max_pixel_change(self) -> int:
        """The largest change of one pixel value (0-255) between the before and after
        samples: 0 means the generator did not move."""
        return int((self.after.int() - self.before.int()).abs().max())

    def __str__(self) -> str:
        h = self.history()
        tail = ""
        if self.steps:
            last = slice(-min(25, self.steps), None)
            tail = (
                f"; last {min(25, self.steps)} steps: loss_g {np.nanmean(h['loss_g'][last]):.2f}, "
                f"loss_d {np.nanmean(h['loss_d'][last]):.3f}"
            )
        return (
            f"{self.snapshot} {self.sn}: {self.steps} steps from step {self.start_step} in "
            f"{self.seconds:.0f} s, {self.setup_s:.0f} s of them loading (stopped by "
            f"{self.stopped_by}){tail}"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def figure(self) -> Any:
        """:func:`comparison_figure` of this result alone."""
        return comparison_figure([self])


def comparison_figure(results: Sequence[TrainOnResult], n_show: int = 16) -> Any:
    """One row per result: samples before, samples after (same codes), the two losses
    (thin: per step; thick: 10-step mean), and the largest singular value of each middle
    convolution's applied weight."""
    from ssd_lib.reporting.plots import PlotFigure, moving_average, stamp
    from ssd_lib.utils.images import make_grid

    if not results:
        raise ValueError("comparison_figure needs at least one TrainOnResult")
    fig = PlotFigure(figsize=(15, 3.5 * len(results) + 0.4), layout="constrained")
    fig.inline_format = "jpeg"
    axes = np.atleast_2d(fig.subplots(len(results), 4))
    for row, r in zip(axes, results, strict=True):
        n = min(n_show, len(r.before))
        ncol = int(math.ceil(math.sqrt(n)))
        for ax, images, when in ((row[0], r.before, "before"), (row[1], r.after, "after")):
            ax.imshow(make_grid(images[:n], nrow=ncol), interpolation="nearest")
            ax.set_axis_off()
            step = r.start_step if when == "before" else r.start_step + r.steps
            ax.set_title(f"{r.sn}: {when} (step {step})", fontsize=9)
        h = r.history()
        if r.steps:
            for key, color in (("loss_g", "C1"), ("loss_d", "C0")):
                row[2].plot(h["step"], h[key], lw=0.5, alpha=0.4, color=color)
                row[2].plot(h["step"], moving_average(h[key], 10), lw=1.6, color=color, label=key)
            row[2].set_yscale("log")
            row[2].legend(fontsize=7)
            layers = sorted(k.split("/", 1)[1] for k in h if k.startswith("sigma_eff/"))
            for i, layer in enumerate(layers):
                row[3].plot(h["step"], h[f"sigma_eff/{layer}"], color=f"C{i}", label=layer)
            row[3].axhline(1.0, color="0.5", lw=0.8)
            row[3].legend(fontsize=7)
        row[2].set_title(f"{r.sn}: losses", fontsize=9)
        row[2].set_xlabel("step", fontsize=8)
        row[3].set_title(f"{r.sn}: largest singular value, applied weight", fontsize=9)
        row[3].set_xlabel("step", fontsize=8)
    return stamp(fig, " | ".join(r.label() for r in results))


# ----- training ---------------------------------------------------------------------------


def continue_training(
    snapshot: Any,
    steps: int | None = 300,
    seconds: float | None = 120.0,
    keep_sn: bool = True,
    runs_root: str | Path | None = None,
    seed: int = 0,
    dataset: PreparedDataset | None = None,
    device: str | torch.device = "auto",
    n_samples: int = 16,
    sample_seed: int = 0,
    show_progress: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> TrainOnResult:
    """Train on from ``snapshot`` for ``steps`` steps or ``seconds`` seconds, whichever ends
    first; see the module docstring for what is kept and what is new.

    ``snapshot``: a published entry with both networks
    (``ssd_lib.experiments.published.load_key(...)``)
    or its key. ``keep_sn=False`` trains the discriminator without spectral norm from the
    same starting function (:func:`remove_spectral_norm`). ``dataset`` defaults to preparing
    the snapshot's dataset (it must be the one it was trained on; a different training split
    is warned about). ``n_samples`` images are drawn at the codes
    ``sample_z(n_samples, nz, sample_seed)`` before and after.

    Time: ``seconds`` counts from the call, loading and the "before" samples included. A step
    starts only if the time so far, plus the previous step's duration, plus what the "before"
    samples took (kept for the "after" samples) fits, so the call returns within the budget
    unless one step alone is longer than what is left (the first step's duration cannot be
    known in advance). Ctrl-C (or the notebook's stop button) ends training early and still
    returns the result so far. A non-finite loss stops training at that step.

    Writes to ``<runs_root>/teach/<snapshot>-<sn|no_sn>-seed<seed>/`` (replacing an earlier
    call's files): config.json (the recipe used), history.csv, summary.json and
    samples/before.png, samples/after.png. The trained networks are in the result only.
    """
    start = clock()
    if steps is None and seconds is None:
        raise ValueError("give steps, seconds or both: continue_training needs a budget")
    if steps is not None:
        steps = check_int("steps", steps, 0)
    if seconds is not None:
        seconds = check_real("seconds", seconds, 0, math.inf, low_open=True)
    seed = check_seed("seed", seed)
    n_samples = check_int("n_samples", n_samples, 1)
    from ssd_lib.data import dataset_for
    from ssd_lib.experiments.published import load_key, trained_on_other_images

    if isinstance(snapshot, str):
        snapshot = load_key(snapshot)
    key = _name(snapshot)
    dev = resolve_device(device)
    original = snapshot.config
    dataset = dataset_for(original.dataset, dataset, f"training on from {key}")
    split = dataset.train.subset(original.data_fraction, original.subset_mode, seed=original.seed)
    differs = trained_on_other_images(snapshot, dataset)
    if differs:
        log.warning(
            "%s was trained on another version of the %r images (%s); training on from it "
            "mixes the two",
            key,
            dataset.name,
            differs,
        )
    start_step = int(snapshot.status.get("step", 0))
    folder = Path(runs_root or default_runs_root()) / "teach"
    path = folder / f"{key}-{'sn' if keep_sn else 'no_sn'}-seed{seed}"

    devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        cfg, g, d, vectors = _load_networks(snapshot, keep_sn)
        cfg = cfg.replace(seed=seed)
        trainer = _trainer(cfg, split, path, dev, g, d, vectors)
        z = sample_z(n_samples, cfg.nz, sample_seed)
        t = clock()
        before = generate(trainer.G, z, cfg.real_range, device=dev)
        # the "after" samples will take about as long as the "before" ones
        budget = _Budget(steps, seconds, start, reserve=clock() - t, clock=clock)
        setup_s = clock() - start
        label = f"{key} {'with' if keep_sn else 'without'} SN"
        rows, stopped_by = _loop(trainer, split, budget, start_step, label, show_progress)
        after = generate(trainer.G, z, cfg.real_range, device=dev)
    result = TrainOnResult(
        snapshot=key,
        keep_sn=keep_sn,
        seed=seed,
        config=cfg,
        start_step=start_step,
        steps=len(rows),
        seconds=clock() - start,
        stopped_by=stopped_by,
        z=z,
        before=before,
        after=after,
        generator=trainer.G.eval(),
        discriminator=trainer.D.eval(),
        path=path,
        rows=rows,
        setup_s=setup_s,
    )
    _write(result)
    return result


def _trainer(
    cfg: TrainConfig,
    split: Any,
    path: Path,
    dev: torch.device,
    g: nn.Module,
    d: nn.Module,
    vectors: dict[str, torch.Tensor],
):
    """The project's trainer for ``cfg``, holding the snapshot's weights and fresh Adam state.

    The trainer builds and seeds its own networks; the snapshot's weights are copied into
    them in place, so the optimisers (built on those parameters) train the loaded weights.
    Its sigma tracker starts from SN's stored vectors ``vectors`` instead of hundreds of
    warm-up iterations from a random vector."""
    from ssd_lib.training.trainer import Trainer

    trainer = Trainer(cfg, split, path, device=dev, show_progress=False, val=None)
    load_state_strict(trainer.G, g.state_dict(), "snapshot G")
    load_state_strict(trainer.D, d.state_dict(), "snapshot D")
    trainer.G.train()
    trainer.D.train()
    convs = trainer.D.tracked_convs() if hasattr(trainer.D, "tracked_convs") else {}
    trainer.tracker = None
    if convs:
        warm = 0 if set(vectors) >= set(convs) else 300  # a random start needs warming up
        tracker = SpectralTracker(convs, warmup_iters=warm)
        for name, v in vectors.items():
            if name in tracker.v and tracker.v[name].shape == v.shape:
                tracker.v[name] = torch.nn.functional.normalize(v.float(), dim=0)
        trainer.tracker = tracker
    trainer.noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    return trainer


@dataclass
class _Budget:
    """When ``continue_training`` stops: after ``steps`` steps or, counting from ``start`` on
    ``clock``, before a step that would not end ``reserve`` seconds before ``seconds``."""

    steps: int | None
    seconds: float | None
    start: float
    reserve: float
    clock: Callable[[], float]

    def out_of_time(self, now: float, last_step_s: float) -> bool:
        if self.seconds is None:
            return False
        return (now - self.start) + last_step_s + self.reserve > self.seconds


def _loop(
    trainer: Any, split: Any, budget: _Budget, start_step: int, label: str, show_progress: bool
) -> tuple[list[dict[str, float]], str]:
    """Train ``trainer`` on ``split`` in epochs shuffled by its config's seed until ``budget``
    ends; returns one row per step and why it stopped ("steps", "time", "diverged",
    "interrupted")."""
    cfg, clock = trainer.cfg, budget.clock
    order = torch.Generator().manual_seed(cfg.seed)
    n, bs = len(split), cfg.batch_size
    per_epoch = n // bs if cfg.drop_last else math.ceil(n / bs)
    if per_epoch < 1:
        raise ValueError(f"{n} training images are fewer than one batch of {bs} (drop_last)")
    rows: list[dict[str, float]] = []
    last = 0.0  # the previous step's duration
    stopped_by = "steps"
    perm, b = torch.randperm(n, generator=order), 0
    bar = progress_bar(
        total=budget.steps, disable=not show_progress, desc=label, unit="step", dynamic_ncols=True
    )
    with bar:
        try:
            while budget.steps is None or len(rows) < budget.steps:
                now = clock()
                if budget.out_of_time(now, last):
                    stopped_by = "time"
                    break
                if b == per_epoch:
                    perm, b = torch.randperm(n, generator=order), 0
                idx = perm[b * bs : (b + 1) * bs]
                b += 1
                batch = split.images[idx].to(trainer.device)
                stats = trainer.train_step(uint8_to_float(batch, cfg.real_range))
                if trainer.tracker is not None:
                    stats.update(trainer.tracker.measure())
                row = {"step": start_step + len(rows) + 1}
                row.update({k: float(v) for k, v in stats.items()})
                last = clock() - now
                row["step_s"] = last
                row["seconds"] = clock() - budget.start
                rows.append(row)
                bar.update(1)
                bar.set_postfix(
                    loss_g=f"{row['loss_g']:.2f}", loss_d=f"{row['loss_d']:.3f}", refresh=False
                )
                if not (math.isfinite(row["loss_g"]) and math.isfinite(row["loss_d"])):
                    stopped_by = "diverged"
                    log.warning("%s: a loss is not finite at step %d; stopped", label, row["step"])
                    break
        except KeyboardInterrupt:
            stopped_by = "interrupted"
            log.warning(
                "%s: interrupted after %d steps; returning what was trained", label, len(rows)
            )
    return rows, stopped_by


def _write(result: TrainOnResult) -> None:
    path = result.path
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / "config.json", result.config.to_dict())
    columns = list(dict.fromkeys(k for row in result.rows for k in row)) or ["step"]
    atomic_write_csv(path / "history.csv", result.rows, columns)
    save_grid(result.before, path / "samples" / "before.png")
    save_grid(result.after, path / "samples" / "after.png")
    atomic_write_json(
        path / "summary.json",
        {
            "snapshot": result.snapshot,
            "keep_sn": result.keep_sn,
            "seed": result.seed,
            "start_step": result.start_step,
            "steps": result.steps,
            "seconds": round(result.seconds, 3),
            "stopped_by": result.stopped_by,
            "max_pixel_change": result.max_pixel_change(),
        },
    )
