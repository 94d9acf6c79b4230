"""Atomic file writes: a reader never sees a half-written file.

Every file the project writes goes through these helpers: the bytes go to a temporary
file in the same folder, are flushed to disk, and the temporary file is renamed over the
target, and the folder is flushed too, so the rename itself survives a power cut. A rename
within one folder is atomic on POSIX and Windows, so a crash leaves either the old file or the
new one, never a mix. A process killed mid-write can leave its ``.<name>.*.tmp`` file behind;
nothing reads those, and writers that own a folder (checkpoints) delete them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _default_mode() -> int:
    """0o666 minus the process umask: the mode ``open()`` would have given a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and then rename ``tmp_path`` over ``path``.

    ``write`` receives a path in the same folder as ``path``; it may write it with any
    library (PIL, safetensors, matplotlib). On error the temporary file is removed and the
    old ``path`` (if any) is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())  # mkstemp creates 0600; give readers the usual mode
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def fsync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename) to disk, where the OS allows it (not Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems (network mounts) refuse to fsync a folder
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_csv(
    path: str | os.PathLike, rows: list[dict[str, Any]], columns: list[str] | None = None
) -> Path:
    """Write ``rows`` (dicts) as CSV atomically: ``columns`` (default: every key, in order of
    first appearance) as the header, an empty cell where a row lacks a column."""
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    return atomic_write_text(path, csv_text(rows, columns))


def csv_text(rows: list[dict[str, Any]], columns: list[str], header: bool = True) -> str:
    """``rows`` as CSV text under ``columns`` (the header line first unless ``header=False``,
    to append to text written before), an empty cell where a row lacks a column."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def read_json(path: str | os.PathLike, error: type[Exception], advice: str) -> Any:
    """The JSON in ``path``; an undecodable file raises ``error`` with one line naming the
    file, the decoder's complaint and ``advice`` (what the user should do)."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path} is not valid JSON ({err}); {advice}") from err


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
