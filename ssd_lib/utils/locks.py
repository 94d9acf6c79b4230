"""Inter-process locks around shared caches and run folders.

Two notebooks (or a notebook and ``make figures``) that prepare the same dataset cache,
compute the same statistics, or train into the same run folder at once would otherwise
interleave their writes. Each such writer holds ``locked(target)`` while it checks and
builds ``target``: the second process waits, then finds the first one's finished result.

The lock is an OS file lock (``filelock``) on a hidden ``.<name>.lock`` file next to the
target; the OS releases it when the holding process dies, even by ``kill -9``, so a crashed
writer never leaves a cache locked for ever.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ssd_lib.utils.errors import SSDError

log = logging.getLogger(__name__)


class LockTimeout(SSDError, RuntimeError):
    """Another process held a lock for longer than the caller was willing to wait."""


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file guarding ``target`` (a file or a folder)."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


@contextmanager
def locked(target: str | os.PathLike, timeout: float | None = None) -> Iterator[Path]:
    """Hold the lock on ``target`` for the ``with`` block; waits for other holders.

    ``timeout`` (seconds; None waits for ever) raises ``LockTimeout`` naming the lock file.
    The lock is re-entrant within one process, so a locked helper may call another one.
    """
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), is_singleton=True)  # one object per file: re-entrant
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process that is writing %s (lock %s)", target, path)
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout as err:
            raise LockTimeout(
                f"{target} has been locked by another process for over {timeout:g} s "
                f"(lock file {path}); wait for it to finish, or delete the lock file if no "
                "other process is running"
            ) from err
    try:
        yield path
    finally:
        lock.release()
