"""``SSDError``: the base class of every exception this project raises on purpose.

``except SSDError`` catches any of them (a bad config, a missing checkpoint, a published run
that fails its check, ...) and nothing else. Each subclass also derives from the built-in
exception its callers knew before (``ValueError``, ``RuntimeError``, ...), so existing
``except ValueError`` code keeps working. One exception stands outside on purpose:
``experiments.suite.TrainingInterrupted`` is a ``KeyboardInterrupt`` (a stop the user asked
for, not an error), so that ``except SSDError`` or ``except Exception`` never swallows Ctrl-C.
"""

from __future__ import annotations


class SSDError(Exception):
    """An error ssd-companion raises on purpose, with a message that says what to do."""


class InvalidValueError(SSDError, ValueError):
    """An argument outside what is allowed (``ssd_lib.utils.validate``'s default error): the
    message names the argument, the value and what is allowed."""
