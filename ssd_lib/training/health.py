"""Training health: non-finite values and the two classic GAN collapses.

The trainer calls these on the statistics it already logs, so watching costs nothing extra:

- **non-finite values**: a loss or gradient norm that is NaN or infinite in the log, or a
  weight that is, stops the run (``TrainingDiverged``) before it can overwrite the last good
  checkpoint. Under fp16 an infinite gradient is normal (the grad scaler skips that step), so
  there only losses and weights count.
- **discriminator collapse**: D classifies every real and fake correctly (accuracy 100 %) or
  its BCE loss stays under ``D_COLLAPSE_LOSS`` for ``D_COLLAPSE_STEPS`` steps in a row. G then
  gets almost no gradient. Reported once per streak.
- **generator collapse**: the coarse spread of the samples at the fixed codes
  (``structural_diversity``, measured at every sample grid) falls below ``G_COLLAPSE_RATIO``
  of the largest spread seen so far in the run *and* below ``G_COLLAPSE_FLOOR`` of the
  training images' own: G maps many codes to the same few layouts. (The second condition
  keeps the noisy, very varied samples of the first steps from making every later drop look
  like a collapse.) Runs trained before this check moved to the coarse spread logged and
  watched the per-pixel ``sample_diversity``, which counts pixel noise as variety; the trainer
  still logs it, for comparison with those runs.

Collapses are warnings (logged, kept in the checkpoint and in ``warnings.json`` next to it),
not errors: a short streak early in training often recovers.

**A verdict on a generator's samples** (``sample_verdict``, ``generator_verdict``):
"collapsed", "partially collapsed", "noise" or "healthy", from measurements made to agree
with what a person sees in a sample grid. ``sample_diversity`` alone does not: it is a
per-pixel spread, so 32 copies of one blob with independent pixel noise on each (the StyleGAN
baseline after one epoch) score as varied as real dogs, eight images repeated score as varied
as the data, and a generator that was narrow from its first step never "falls" far enough to
trip ``g_collapse_warning``. The verdict instead compares the samples' *structure*: each
image is averaged over ``LOWPASS`` x ``LOWPASS`` pixel blocks (which removes pixel noise) and
normalised to zero mean per channel and unit spread (which removes brightness and colour
casts), and two samples are near-duplicates when they are closer than ``DUPLICATE_FRACTION``
of the median nearest-neighbour distance among as many real images. Thresholds, in the order
they are checked:

1. "noise": the median ``roughness`` (pixel-to-pixel variance against the image's variance:
   about 1 for independent noise, 0.15 for the embedded dogs, 0.2 for SSD after 3 epochs) is
   at least ``NOISE_ROUGHNESS`` = 0.5;
2. one shape: the largest group of near-duplicates (linked pairwise) holds at least
   ``COLLAPSED_GROUP_SHARE`` = 50 % of the samples, or the samples' ``structural_diversity``
   is under ``COLLAPSED_SPREAD`` = 25 % of the real images' (noisy copies differ by more than
   the near-duplicate distance, but their layout does not vary). Then "collapsed" if their
   overall hue varies less than ``COLLAPSED_CHROMA`` = 25 % as much as the real images' (one
   image, give or take brightness and noise), else "partially collapsed" (one face in
   several colours: SSD's paper recipe after 20 epochs);
3. "partially collapsed": otherwise, at least ``PARTIAL_DUPLICATE_SHARE`` = 25 % of the
   samples have a near-duplicate (500 real dogs: none): a few images, each drawn many times;
4. "healthy" otherwise. The verdict is about variety, not realism: smooth colour blobs that
   all differ are "healthy" here; realism is what ``realness-toy`` and FD measure
   (``ssd_lib.metrics.ladder`` tests both).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.validate import check_int, check_real, fail

D_COLLAPSE_STEPS = 100
D_COLLAPSE_LOSS = 0.01
G_COLLAPSE_RATIO = 0.5
G_COLLAPSE_FLOOR = 0.25
LOGGED_VALUES = ("loss_g", "loss_d", "grad_norm_g", "grad_norm_d")
# the sample verdict (see the module docstring)
VERDICTS = ("collapsed", "partially collapsed", "noise", "healthy")
LOWPASS = 4
NOISE_ROUGHNESS = 0.5
DUPLICATE_FRACTION = 0.25
COLLAPSED_GROUP_SHARE = 0.5
COLLAPSED_SPREAD = 0.25
COLLAPSED_CHROMA = 0.25
PARTIAL_DUPLICATE_SHARE = 0.25
MIN_VERDICT_SAMPLES = 16
NONFINITE_ACTIONS = ("stop", "rollback")


@dataclass(frozen=True)
class FaultPolicy:
    """What training does when a NaN or infinity appears in a loss, gradient or weight.

    ``action`` "stop": the run's status becomes "diverged" and the last good checkpoint stays;
    "rollback": reload that checkpoint and go on with both learning rates times ``lr_factor``,
    at most ``max_rollbacks`` times over the whole run."""

    action: str = "stop"
    lr_factor: float = 0.5
    max_rollbacks: int = 3

    def __post_init__(self) -> None:
        if self.action not in NONFINITE_ACTIONS:
            fail("on_nonfinite", self.action, f"one of {list(NONFINITE_ACTIONS)}")
        check_real("rollback_lr_factor", self.lr_factor, 0, 1, low_open=True, high_open=True)
        check_int("max_rollbacks", self.max_rollbacks, 1)

    @property
    def rolls_back(self) -> bool:
        return self.action == "rollback"


class TrainingDiverged(SSDError, RuntimeError):
    """A loss, gradient or weight became NaN or infinite; ``step`` is where it was seen."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def first_nonfinite(
    rows: Iterable[dict[str, Any]], keys: Sequence[str]
) -> tuple[int, str, float] | None:
    """(step, key, value) of the first logged value in ``keys`` that is not finite."""
    for row in rows:
        for key in keys:
            value = row.get(key)
            if value is not None and not math.isfinite(value):
                return int(row["step"]), key, float(value)
    return None


def first_nonfinite_weight(
    owners: dict[str, torch.nn.Module | torch.optim.Optimizer],
) -> str | None:
    """The name of the first parameter, buffer or optimiser moment holding a NaN or infinity,
    e.g. "D.4.weight" or "opt_d.state[3].exp_avg_sq".

    One flag per tensor is computed on its device and the flags are read in one transfer per
    device (a read per tensor would be about a hundred host syncs on a GPU)."""
    names: list[str] = []
    flags: list[torch.Tensor] = []
    for prefix, owner in owners.items():
        if isinstance(owner, torch.optim.Optimizer):
            named = (
                (f"state[{i}].{key}", t)
                for i, state in enumerate(owner.state.values())
                for key, t in state.items()
                if torch.is_tensor(t)
            )
        else:
            named = owner.state_dict().items()
        for name, t in named:
            if t.is_floating_point():
                names.append(f"{prefix}.{name}")
                flags.append(torch.isfinite(t).all())
    by_device: dict[torch.device, list[int]] = {}
    for i, flag in enumerate(flags):
        by_device.setdefault(flag.device, []).append(i)
    bad = [
        i
        for where in by_device.values()
        for i, ok in zip(where, torch.stack([flags[i] for i in where]).tolist(), strict=True)
        if not ok
    ]
    return names[min(bad)] if bad else None


def _collapsed_d(row: dict[str, Any]) -> bool:
    return row.get("d_acc", 0.0) >= 1.0 or row.get("loss_d", math.inf) < D_COLLAPSE_LOSS


def d_collapse_warning(
    history: Sequence[dict[str, Any]], warnings: Sequence[dict[str, Any]], since: int = 0
) -> dict[str, Any] | None:
    """A warning for the first streak of rows showing a collapsed D that reaches
    ``D_COLLAPSE_STEPS`` rows at row ``since`` or later and has not been reported yet; None
    otherwise (BCE loss only). Each streak is reported once, at the step it reaches that
    length, however long it lasts."""
    n = D_COLLAPSE_STEPS
    streak = 0
    for i in range(max(0, since - n), len(history)):
        streak = streak + 1 if _collapsed_d(history[i]) else 0
        if streak != n or i < since:  # a streak is reported where it reaches n steps
            continue
        start, step = int(history[i - n + 1]["step"]), int(history[i]["step"])
        if any(w["kind"] == "d_collapse" and w["step"] == step for w in warnings):
            continue
        return {
            "kind": "d_collapse",
            "step": step,
            "message": (
                f"discriminator collapse: D accuracy 100 % or D loss < {D_COLLAPSE_LOSS} for "
                f"the {n} steps {start}-{step}; G gets almost no gradient. If it persists, try "
                "spectral normalisation (preset 'paper'), a lower D learning rate, or more data"
            ),
        }
    return None


def sample_diversity(images: torch.Tensor, lowpass: int = 1) -> float:
    """Mean per-pixel standard deviation across a batch of uint8 samples (N, C, H, W), on
    the [0, 1] scale: 0 when every code gives the same image, about 0.2 for varied images.

    With ``lowpass`` > 1 each image is first averaged over ``lowpass`` x ``lowpass`` blocks
    (``structural_diversity``, what the trainer warns on). The default, 1, counts independent
    pixel noise as variety (see the module docstring); the trainer logs it beside the
    structural one for comparison with runs trained before the change."""
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) < 2:
        raise ValueError(
            f"sample_diversity needs at least 2 uint8 images (N, C, H, W), got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    x = images.float() / 255.0
    k = min(int(lowpass), x.shape[-1], x.shape[-2])
    if k > 1:
        x = F.avg_pool2d(x, k)
    return float(x.std(dim=0).mean())


DIVERSITY_KEY = "structural_diversity"  # what the trainer watches (and logs) for G collapse


def g_collapse_warning(
    history: Sequence[dict[str, Any]],
    value: float,
    step: int,
    real: float,
    key: str = DIVERSITY_KEY,
) -> dict[str, Any] | None:
    """A warning when ``value`` (this step's ``key``, by default the samples' structural
    diversity) is under ``G_COLLAPSE_RATIO`` of the largest ``key`` logged earlier in
    ``history`` and under ``G_COLLAPSE_FLOOR`` of ``real``, the training images' own."""
    earlier = [r[key] for r in history if key in r and r["step"] < step]
    if not earlier or value >= G_COLLAPSE_RATIO * max(earlier) or value >= G_COLLAPSE_FLOOR * real:
        return None
    what = "structural diversity" if key == DIVERSITY_KEY else key.replace("_", " ")
    return {
        "kind": "g_collapse",
        "step": step,
        "message": (
            f"generator collapse: the samples' {what} fell to {value:.4f}, under "
            f"{G_COLLAPSE_RATIO:.0%} of its best ({max(earlier):.4f}) and under "
            f"{G_COLLAPSE_FLOOR:.0%} of the training images' ({real:.4f}); G maps many codes "
            "to few images. Look at the sample grids; try spectral normalisation, a lower G "
            "learning rate, or an earlier checkpoint"
        ),
    }


def divergence_message(
    step: int, what: str, checkpoint_step: int | None, checkpoint: str, precision: str
) -> str:
    """One paragraph: where it went non-finite, what is kept, and what to try."""
    kept = (
        f"the last good checkpoint ({checkpoint}, step {checkpoint_step}) is kept"
        if checkpoint_step is not None
        else "no checkpoint had been written yet"
    )
    hints = [
        "resume from it with a lower learning rate: on_nonfinite='rollback' "
        "(ssd train --on-nonfinite rollback)"
    ]
    if precision != "fp32":
        hints.append(f"precision='fp32' instead of {precision!r}")
    hints.append("another seed")
    return f"training diverged at step {step}: {what}; {kept}. Try: " + "; or ".join(hints)


def _check_images(images: torch.Tensor, what: str, minimum: int = 2) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) < minimum:
        raise ValueError(
            f"{what} needs at least {minimum} uint8 images (N, C, H, W), got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    return images


def _lowpass(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, C, H/LOWPASS, W/LOWPASS) on the [0, 1] scale."""
    x = images.float() / 255.0
    k = min(LOWPASS, x.shape[-1], x.shape[-2])
    return F.avg_pool2d(x, k) if k > 1 else x


def structural_diversity(images: torch.Tensor) -> float:
    """``sample_diversity(images, lowpass=LOWPASS)``: the per-pixel spread of the samples'
    layout and colours, blind to pixel noise. One image repeated with independent pixel
    noise (SD 0.1) scores about 0.1 of real dogs here, but 0.4 on ``sample_diversity``."""
    return sample_diversity(images, LOWPASS)


def roughness(images: torch.Tensor) -> np.ndarray:
    """Per image (N,): the mean squared difference between neighbouring pixels (across and
    down) divided by twice the variance of the image's pixels, per channel, averaged over
    channels. Independent noise: about 1; smooth images: near 0; a flat image: 0."""
    _check_images(images, "roughness", 1)
    x = images.float() / 255.0
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean(dim=(2, 3))
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean(dim=(2, 3))
    var = x.var(dim=(2, 3))
    r = torch.where(var > 1e-8, (dx + dy) / 2 / (2 * var.clamp_min(1e-8)), torch.zeros_like(var))
    return r.mean(dim=1).double().numpy()


def _structure(images: torch.Tensor) -> torch.Tensor:
    """Low-passed images, each normalised to zero mean per channel and unit RMS, flattened."""
    x = _lowpass(images)
    x = x - x.mean(dim=(2, 3), keepdim=True)
    rms = x.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
    x = torch.where(rms > 1e-4, x / rms.clamp_min(1e-4), torch.zeros_like(x))
    return x.flatten(1).double()


def _chroma_spread(images: torch.Tensor) -> float:
    """How much the images' overall hue varies: each image's mean colour divided by the sum
    of its channels (so brightness drops out), its standard deviation across the images,
    averaged over the channels."""
    m = (images.float() / 255.0).mean(dim=(2, 3))
    return float((m / m.sum(dim=1, keepdim=True).clamp_min(1e-3)).std(dim=0).mean())


def _pairwise(x: torch.Tensor) -> torch.Tensor:
    """RMS distances (N, N) between the rows of ``x``, the diagonal set to infinity."""
    d = torch.cdist(x, x) / math.sqrt(x.shape[1])
    d.fill_diagonal_(math.inf)
    return d


def _groups(close: np.ndarray) -> np.ndarray:
    """Group label (N,) of each sample: connected groups of the boolean adjacency ``close``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    return connected_components(csr_matrix(close), directed=False)[1]


@dataclass
class SampleVerdict:
    """What ``sample_verdict`` decided, why, and every number it used."""

    verdict: str
    reason: str
    measures: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.verdict}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, **self.measures}


def verdict_thresholds() -> dict[str, float]:
    return {
        "lowpass": LOWPASS,
        "noise_roughness": NOISE_ROUGHNESS,
        "duplicate_fraction": DUPLICATE_FRACTION,
        "collapsed_group_share": COLLAPSED_GROUP_SHARE,
        "collapsed_spread": COLLAPSED_SPREAD,
        "collapsed_chroma": COLLAPSED_CHROMA,
        "partial_duplicate_share": PARTIAL_DUPLICATE_SHARE,
    }


def sample_verdict(samples: torch.Tensor, reference: torch.Tensor) -> SampleVerdict:
    """The verdict ("collapsed", "partially collapsed", "noise" or "healthy") on uint8
    ``samples`` (N, C, H, W; N >= 16, 64 or more advised), judged against ``reference``:
    real training images of the same size (the first N are used, or all if fewer; shuffle
    them first). The thresholds and the order they are checked in are in the module
    docstring.

    measures: ``roughness`` (median over samples; reals' in ``real_roughness``),
    ``duplicate_share`` (share of samples with a near-duplicate; ``real_duplicate_share``),
    ``largest_group_share``, ``distinct_groups``, ``structural_diversity``,
    ``sample_diversity`` and ``chroma_spread`` (how much the images' overall hue varies; each
    also as ``real_...``), ``duplicate_distance`` (the threshold in structure units) and
    ``n``.
    """
    _check_images(samples, "sample_verdict", MIN_VERDICT_SAMPLES)
    _check_images(reference, "sample_verdict's reference", MIN_VERDICT_SAMPLES)
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"samples {tuple(samples.shape[1:])} and reference {tuple(reference.shape[1:])} "
            "must have the same image shape"
        )
    n = len(samples)
    ref = reference[:n]
    d_fake = _pairwise(_structure(samples))
    d_real = _pairwise(_structure(ref))
    median_nn = float(d_real.min(dim=1).values.median())
    tau = DUPLICATE_FRACTION * median_nn
    close = (d_fake < tau).numpy()
    has_dup = close.any(axis=1)
    labels = _groups(close)
    largest, n_groups = int(np.bincount(labels).max()), int(labels.max()) + 1
    real_dup = float((d_real < tau).any(dim=1).double().mean())
    rough, real_rough = float(np.median(roughness(samples))), float(np.median(roughness(ref)))
    spread, real_spread = structural_diversity(samples), structural_diversity(ref)
    chroma, real_chroma = _chroma_spread(samples), _chroma_spread(ref)
    m = {
        "n": float(n),
        "roughness": rough,
        "real_roughness": real_rough,
        "duplicate_share": float(has_dup.mean()),
        "real_duplicate_share": real_dup,
        "largest_group_share": largest / n,
        "distinct_groups": float(n_groups),
        "duplicate_distance": tau,
        "structural_diversity": spread,
        "real_structural_diversity": real_spread,
        "sample_diversity": sample_diversity(samples),
        "real_sample_diversity": sample_diversity(ref),
        "chroma_spread": chroma,
        "real_chroma_spread": real_chroma,
    }
    dup = float(has_dup.mean())
    one_shape, shape_why = False, ""
    if largest / n >= COLLAPSED_GROUP_SHARE:
        one_shape = True
        shape_why = (
            f"{largest} of {n} samples ({largest / n:.0%}; threshold "
            f"{COLLAPSED_GROUP_SHARE:.0%}) are near-duplicates of one another in structure"
        )
    elif spread < COLLAPSED_SPREAD * real_spread:
        one_shape = True
        shape_why = (
            f"the samples' layout varies {spread / max(real_spread, 1e-12):.0%} as much as the "
            f"real images' (structural diversity {spread:.4f} against {real_spread:.4f}; "
            f"threshold {COLLAPSED_SPREAD:.0%}), pixel noise aside"
        )
    hue_ratio = chroma / max(real_chroma, 1e-12)
    if rough >= NOISE_ROUGHNESS:
        verdict = "noise"
        reason = (
            f"median roughness {rough:.2f} >= {NOISE_ROUGHNESS} (real images {real_rough:.2f}):"
            " neighbouring pixels barely agree, the samples have no smooth structure"
        )
    elif one_shape and hue_ratio < COLLAPSED_CHROMA:
        verdict = "collapsed"
        reason = (
            f"{shape_why}, and their colours vary {hue_ratio:.0%} as much in hue as the real "
            f"images' (threshold {COLLAPSED_CHROMA:.0%}): one image, give or take brightness "
            "and noise"
        )
    elif one_shape:
        verdict = "partially collapsed"
        reason = (
            f"{shape_why}, but their colours vary {hue_ratio:.0%} as much in hue as the real "
            f"images' (collapsed under {COLLAPSED_CHROMA:.0%}): one face in several colours"
        )
    elif dup >= PARTIAL_DUPLICATE_SHARE:
        verdict = "partially collapsed"
        reason = (
            f"{dup:.0%} of the samples have a near-duplicate (threshold "
            f"{PARTIAL_DUPLICATE_SHARE:.0%}; real images {real_dup:.0%}), in {n_groups} "
            "distinct groups: a few images, each drawn many times"
        )
    else:
        verdict = "healthy"
        reason = (
            f"{dup:.0%} of the samples have a near-duplicate (real images {real_dup:.0%}), "
            f"median roughness {rough:.2f}: varied, structured samples (this says nothing "
            "about realism)"
        )
    return SampleVerdict(verdict, reason, m, verdict_thresholds())


def reference_images(images: torch.Tensor, n: int = 256, seed: int = 0) -> torch.Tensor:
    """The ``n`` real images a collapse verdict compares samples with: a fixed random draw
    (``seed``) from ``images``, the same in every notebook that judges the same runs."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[order[:n]]


def generator_verdict(
    generator: torch.nn.Module,
    value_range: str,
    reference: torch.Tensor,
    n: int = 256,
    seed: int = 0,
) -> SampleVerdict:
    """``sample_verdict`` of ``n`` samples at the codes ``sample_z(n, generator.z_dim, seed)``
    (``ssd_lib.generation.sampling.generate`` with ``value_range``, the range the generator
    imitates)."""
    from ssd_lib.generation.sampling import generate, sample_z

    samples = generate(generator, sample_z(n, generator.z_dim, seed), value_range)
    return sample_verdict(samples, reference)
