"""Input checks shared by every module: integers, real numbers, seeds, the truncation psi.

Each check returns the value converted (``int``/``float``) or raises ``error``
(``InvalidValueError``, an ``SSDError`` and a ``ValueError``, unless the caller asks for its
own class) with one message format::

    seed=-1 is invalid; allowed: an integer in [0, 2**32 - 1]

One seed range holds everywhere (training configs, sampling codes, the explorer):
``[0, MAX_SEED]`` with ``MAX_SEED = 2**32 - 1``. It fits the explorer's widgets (JavaScript
numbers are exact only up to 2**53), NumPy's legacy seeding, and the trainer's derived seeds
(seed + 1, + 2, + 3 for its separate random streams stay below torch's 2**64 limit).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ssd_lib.utils.errors import InvalidValueError

MAX_SEED = 2**32 - 1
# The value ranges images are fed in: "[0, 1]" (the release) or "[-1, 1]" (the usual GAN recipe).
VALUE_RANGES = ("[0, 1]", "[-1, 1]")
# The truncation psi: 1 = no truncation, 0 = the average w, above 1 = exaggerated.
PSI_RANGE = (0.0, 2.0)


def fail(
    name: str, value: Any, allowed: str, *, error: type[Exception] = InvalidValueError
) -> None:
    """Raise ``error`` in the one message format: ``name=value is invalid; allowed: ...``."""
    raise error(f"{name}={value!r} is invalid; allowed: {allowed}")


def _describe_top(high: int) -> str:
    # 4294967295 reads better as 2**32 - 1
    if high > 2**20 and (high + 1).bit_count() == 1:
        return f"2**{high.bit_length()} - 1"
    return str(high)


def check_int(
    name: str,
    value: Any,
    low: int = 1,
    high: int | None = None,
    *,
    optional: bool = False,
    error: type[Exception] = InvalidValueError,
) -> int | None:
    """``value`` as an int if it is an integer (Python or NumPy, not bool) in [low, high].

    ``optional``: None is allowed too (it means "off") and comes back as None."""
    if value is None and optional:
        return None
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        if high is None:
            allowed = f"an integer >= {low}"
        else:
            allowed = f"an integer in [{low}, {_describe_top(high)}]"
        fail(name, value, allowed + (" or None (off)" if optional else ""), error=error)
    return int(value)


def check_seed(
    name: str,
    value: Any,
    *,
    optional: bool = False,
    error: type[Exception] = InvalidValueError,
) -> int | None:
    """A seed: an integer in [0, MAX_SEED] (or None where ``optional``)."""
    return check_int(name, value, 0, MAX_SEED, optional=optional, error=error)


def check_real(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    error: type[Exception] = InvalidValueError,
) -> float:
    """``value`` as a float if it is a finite real number (not bool) in [low, high].

    ``low_open``/``high_open`` leave that end out: (low, high], [low, high) or (low, high)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    # value - value == 0 is False for NaN and the infinities; plain arithmetic (not
    # math.isfinite) so that torch.compile traces a model's own check without a graph break.
    if ok:
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        ok = above and below and value - value == 0
    if not ok:
        if math.isinf(low) and math.isinf(high):
            allowed = "a finite number"
        else:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            allowed = f"a number in {left}{low:g}, {high:g}{right}"
        fail(name, value, allowed, error=error)
    return float(value)


def check_psi(
    value: Any, name: str = "truncation_psi", *, error: type[Exception] = InvalidValueError
) -> float:
    """The truncation psi: a number in [0, 2] (1 = no truncation; 0 = the average w)."""
    return check_real(name, value, *PSI_RANGE, error=error)
