"""How an exercise check talks to a student: one verdict line, never a traceback wall.

A check calls the student's function on small inputs it builds itself, compares the answer
with the project's own implementation, and, when they differ, recomputes the answer each
typical mistake would give. The first mistake whose answer matches the student's names the
error; the verdict explains it and how to think about it. A check never raises on a student
error: it returns a :class:`CheckResult`, which Jupyter shows as one line when the check is
the last expression of a cell (the library does not print; the notebook displays).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ssd_lib.utils.errors import SSDError

PASS_MARK, FAIL_MARK = "\u2713", "\u2717"  # check mark, ballot x


class ExerciseError(SSDError, AssertionError):
    """Raised by :meth:`CheckResult.raise_if_failed`, for scripts and CI runs of a lesson."""


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check. ``mistake`` names the recognised error (None when passed or
    when no known mistake matched); tests and teachers can group answers by it."""

    exercise: str
    passed: bool
    message: str
    mistake: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return f"{PASS_MARK if self.passed else FAIL_MARK} {self.exercise}: {self.message}"

    __repr__ = __str__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's plain-text display
        printer.text(str(self))

    def raise_if_failed(self) -> CheckResult:
        """Return self when passed, else raise :class:`ExerciseError` with the verdict line."""
        if not self.passed:
            raise ExerciseError(str(self))
        return self


@dataclass(frozen=True)
class Mistake:
    """A typical error: ``compute()`` gives the answer it produces on the check's inputs."""

    name: str
    compute: Callable[[], Any]
    advice: str


class StudentFailed(SSDError):
    """Internal: carries a failing verdict out of the middle of a check."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


def fail(exercise: str, message: str, mistake: str | None = None) -> StudentFailed:
    return StudentFailed(CheckResult(exercise, False, message, mistake))


def run_check(exercise: str, body: Callable[[], str]) -> CheckResult:
    """Run ``body`` (which returns the success message or raises ``StudentFailed``)."""
    try:
        return CheckResult(exercise, True, body())
    except StudentFailed as stop:
        return stop.result


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters: a student's
    error in one line instead of a wall of text."""
    return (str(err).strip().splitlines() or [""])[0][:limit]


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def call_student(
    exercise: str, fn: Any, args: Sequence[Any], error_hint: Callable[[str], str] | None = None
) -> Any:
    """``fn(*args)``; a stub, a non-function or an exception becomes a one-line verdict.

    Tensors and arrays are passed as copies, so a function that edits its input in place
    cannot change the check's reference inputs.
    """
    if not callable(fn):
        raise fail(
            exercise,
            f"pass your function itself, e.g. check(my_function), not a "
            f"{type(fn).__name__} (calling it first passes its result instead)",
            "not_callable",
        )
    copies = [_copy(a) for a in args]
    try:
        return fn(*copies)
    except NotImplementedError as err:
        raise fail(
            exercise,
            f"not written yet: {_name(fn)} still raises NotImplementedError({str(err)!r}). "
            f"Replace that line with your code, run its cell, then run this check again.",
            "not_implemented",
        ) from None
    except Exception as err:  # the student's bug, reported in one line
        first = first_line(err, 300)
        hint = error_hint(first) if error_hint else ""
        if hint and not hint.endswith("."):
            hint += "."
        raise fail(
            exercise,
            f"{_name(fn)} raised {type(err).__name__}: {first}" + (f". {hint}" if hint else ""),
            "raised",
        ) from None


def _copy(a: Any) -> Any:
    if isinstance(a, torch.Tensor):
        return a.clone()
    return np.copy(a) if isinstance(a, np.ndarray) else a


def as_scalar_tensor(exercise: str, got: Any, what: str = "the loss") -> torch.Tensor:
    """Require a 0-d (or one-element) floating tensor, for losses."""
    if isinstance(got, (float, int, np.floating)):
        raise fail(
            exercise,
            f"{what} is a Python/NumPy number ({float(got):.4g}), not a tensor: .item(), "
            f"float() or NumPy cut the autograd graph, so no gradient would reach the network. "
            f"Keep it a torch tensor built from the inputs with torch operations.",
            "not_a_tensor",
        )
    if not isinstance(got, torch.Tensor):
        raise fail(exercise, f"{what} must be a torch tensor, got {type(got).__name__}", "type")
    if got.numel() != 1:
        raise fail(
            exercise,
            f"{what} has shape {tuple(got.shape)}; it must be one number (shape ()). "
            f"You computed one value per sample: average them over the batch with .mean().",
            "not_scalar",
        )
    return got.reshape(())


def as_number(exercise: str, got: Any, what: str) -> float:
    """A float from a Python/NumPy number, a one-element array or a one-element tensor."""
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    arr = np.asarray(got)
    if arr.size != 1:
        raise fail(
            exercise,
            f"{what} must be one number, got an array of shape {arr.shape}: reduce it (a trace "
            f"or a sum) to a scalar",
            "not_scalar",
        )
    value = arr.reshape(())[()]
    if np.iscomplexobj(arr):
        raise fail(
            exercise,
            f"{what} is complex ({complex(value):.4g}). scipy.linalg.sqrtm returns complex "
            f"numbers when rounding makes tiny negative eigenvalues; the imaginary parts are "
            f"noise, so keep the real part (covmean.real) before taking the trace.",
            "complex",
        )
    try:
        return float(value)
    except (TypeError, ValueError):
        raise fail(exercise, f"{what} must be a number, got {type(got).__name__}", "type") from None


def require_tensor(exercise: str, got: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """Require a floating tensor of exactly ``shape``."""
    if not isinstance(got, torch.Tensor):
        raise fail(exercise, f"{what} must be a torch tensor, got {type(got).__name__}", "type")
    if tuple(got.shape) != shape:
        raise fail(
            exercise,
            f"{what} has shape {tuple(got.shape)}; expected {shape}. {shape_advice(got, shape)}",
            "wrong_shape",
        )
    if not got.is_floating_point():
        raise fail(exercise, f"{what} has dtype {got.dtype}; expected a float tensor", "type")
    return got


def shape_advice(got: torch.Tensor, shape: tuple[int, ...]) -> str:
    if got.ndim < len(shape):
        return "A dimension went missing: a reduction (mean, sum, var) without keepdim=True?"
    if got.ndim > len(shape):
        return "Extra dimensions: an unintended broadcast, e.g. (N, C) against (N, C, H, W)?"
    return "Check which dimensions each operation reduces or broadcasts over."


def _float64(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double()
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def close(a: Any, b: Any, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and equal to float32 tolerance (NaNs never match)."""
    a, b = _float64(a), _float64(b)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def diagnose(
    exercise: str,
    got: Any,
    mistakes: Sequence[Mistake],
    otherwise: str,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> StudentFailed:
    """The verdict for a wrong answer: the first matching mistake, else ``otherwise``."""
    for m in mistakes:
        try:
            candidate = m.compute()
        except Exception:  # a mistake that cannot even be computed on these inputs
            continue
        if close(got, candidate, rtol, atol):
            return fail(exercise, m.advice, m.name)
    return fail(exercise, otherwise, None)


def nan_verdict(exercise: str, got: Any, advice: str) -> None:
    """Raise a verdict when the student's answer contains NaN or infinity."""
    values = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    if not np.all(np.isfinite(values)):
        raise fail(exercise, f"the result contains NaN or infinity. {advice}", "not_finite")


def fmt(x: Any) -> str:
    """A number or tensor in four significant digits, for messages."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.numel() == 1:
            return f"{float(x):.4g}"
        return "[" + ", ".join(f"{float(v):.4g}" for v in x.flatten()[:4]) + ", ...]"
    return f"{float(x):.4g}"
