"""Training health: non-finite values and the two classic GAN collapses.

The trainer calls these on the statistics it already logs, so watching costs nothing extra:

- **non-finite values**: a loss or gradient norm that is NaN or infinite in the log, or a
  weight that is, stops the run (``TrainingDiverged``) before it can overwrite the last good
  checkpoint. Under fp16 an infinite gradient is normal (the grad scaler skips that step), so
  there only losses and weights count.
- **discriminator collapse**: D classifies every real and fake correctly (accuracy 100 %) or
  its BCE loss stays under ``D_COLLAPSE_LOSS`` for ``D_COLLAPSE_STEPS`` steps in a row. G then
  gets almost no gradient. Reported once per streak.
- **generator collapse**: the spread of the samples at the fixed codes (``sample_diversity``,
  measured at every sample grid) falls below ``G_COLLAPSE_RATIO`` of the largest spread seen
  so far in the run *and* below ``G_COLLAPSE_FLOOR`` of the training images' own spread: G
  maps many codes to the same few images. (The second condition keeps the noisy, very varied
  samples of the first steps from making every later drop look like a collapse.)

Collapses are warnings (logged, kept in the checkpoint and in ``warnings.json`` next to it),
not errors: a short streak early in training often recovers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

D_COLLAPSE_STEPS = 100
D_COLLAPSE_LOSS = 0.01
G_COLLAPSE_RATIO = 0.5
G_COLLAPSE_FLOOR = 0.25
LOGGED_VALUES = ("loss_g", "loss_d", "grad_norm_g", "grad_norm_d")
NONFINITE_ACTIONS = ("stop", "rollback")


class TrainingDiverged(RuntimeError):
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
    e.g. "D.4.weight" or "opt_d.state[3].exp_avg_sq"."""
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
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return f"{prefix}.{name}"
    return None


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


def sample_diversity(images: torch.Tensor) -> float:
    """Mean per-pixel standard deviation across a batch of uint8 samples (N, C, H, W), on
    the [0, 1] scale: 0 when every code gives the same image, about 0.2 for varied images."""
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) < 2:
        raise ValueError(
            f"sample_diversity needs at least 2 uint8 images (N, C, H, W), got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    return float((images.float() / 255.0).std(dim=0).mean())


def g_collapse_warning(
    history: Sequence[dict[str, Any]], value: float, step: int, real: float
) -> dict[str, Any] | None:
    """A warning when ``value`` (this step's sample diversity) is under ``G_COLLAPSE_RATIO``
    of the largest diversity logged earlier in ``history`` and under ``G_COLLAPSE_FLOOR`` of
    ``real``, the diversity of the training images."""
    earlier = [
        r["sample_diversity"] for r in history if "sample_diversity" in r and r["step"] < step
    ]
    if not earlier or value >= G_COLLAPSE_RATIO * max(earlier) or value >= G_COLLAPSE_FLOOR * real:
        return None
    return {
        "kind": "g_collapse",
        "step": step,
        "message": (
            f"generator collapse: the samples' diversity fell to {value:.4f}, under "
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
