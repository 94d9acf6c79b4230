"""Teaching material for a 90-minute class: auto-checked exercises, a one-source lesson
builder (student and teacher notebooks), a timed real-or-fake quiz, and training on from a
published snapshot for a few minutes (``continue_training``, with or without spectral norm).

In a lesson notebook::

    import ssd_lib.teach as teach
    def my_adain(x, scale, bias, eps=1e-5): ...
    teach.check_adain(my_adain)      # one line: what is right, or what is wrong and why

See docs/teaching.md for the class plan and ``lessons/gan_class.py`` for the lesson. The
quiz lives in :mod:`ssd_lib.teach.quiz` (imported on use, as it needs pandas and, for its
widget, ipywidgets); the helpers the lesson's cells call in :mod:`ssd_lib.teach.lesson`.
"""

from __future__ import annotations

from typing import Any

# Loaded on first use (PEP 562), so that importing ssd_lib.teach.quiz or .build does not pull
# in torch and the metrics through the checks.
_EXPORTS = {
    "CHECKS": "ssd_lib.teach.checks",
    "check_adain": "ssd_lib.teach.checks",
    "check_d_loss": "ssd_lib.teach.checks",
    "check_frechet_distance": "ssd_lib.teach.checks",
    "check_g_loss": "ssd_lib.teach.checks",
    "check_kid": "ssd_lib.teach.checks",
    "check_mapping": "ssd_lib.teach.checks",
    "check_power_iteration": "ssd_lib.teach.checks",
    "CheckResult": "ssd_lib.teach.feedback",
    "ExerciseError": "ssd_lib.teach.feedback",
    "TrainOnResult": "ssd_lib.teach.train_on",
    "comparison_figure": "ssd_lib.teach.train_on",
    "continue_training": "ssd_lib.teach.train_on",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ssd_lib.teach' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
