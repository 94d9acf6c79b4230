"""Writing figures and tables into ``figures/`` with a manifest of what made each one.

``figures/MANIFEST.json`` maps every file to the notebook, parameters, dataset, profile,
checkpoint, time and SHA-256 of its content. Notebooks call ``publish_figure`` /
``publish_table`` instead of saving files themselves, so no figure can appear without its
provenance.

Files and manifest never disagree, even when a run is killed half-way. A publish holds the
manifest's lock and (1) writes the new files into ``.staging/``, (2) writes the manifest with
their hashes (the commit point), (3) moves them into place. A crash before (2) leaves the old
files and the old manifest; a crash after it leaves staged files whose hashes the manifest
already records, which the next publish (or ``recover``) moves into place. ``check_manifest``
lists any disagreement; ``mark_run`` records whether the last ``make figures`` finished.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ssd_lib.reporting.plots import save_figure
from ssd_lib.utils.atomic import atomic_write_json, fsync_folder, read_json, sha256_file
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.hardware import describe_machine
from ssd_lib.utils.locks import locked

MANIFEST = "MANIFEST.json"
STAGING = ".staging"


class ManifestError(SSDError, RuntimeError):
    """figures/MANIFEST.json is unreadable."""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return {"files": {}}
    manifest = read_json(path, ManifestError, "delete it and run make figures again")
    if not isinstance(manifest, dict) or not isinstance(manifest.setdefault("files", {}), dict):
        raise ManifestError(f"{path} has no 'files' table; delete it and run make figures again")
    return manifest


def recover(out_dir: str | Path) -> list[str]:
    """Finish a publish that a crash cut short; returns the names it moved into place.

    A staged file whose hash the manifest records was committed: it is moved into place.
    Any other staged file was not: it is deleted. Call with the manifest's lock held."""
    out, moved = Path(out_dir), []
    staging = out / STAGING
    if not staging.is_dir():
        return moved
    files = read_manifest(out)["files"]
    for staged in sorted(staging.iterdir()):
        entry = files.get(staged.name, {})
        if staged.is_file() and entry.get("sha256") == sha256_file(staged):
            moved.append(staged)
        else:
            staged.unlink()
    _move_into_place(moved, out)
    return [p.name for p in moved]


def _move_into_place(staged: list[Path], out: Path) -> None:
    for path in staged:
        os.replace(path, out / path.name)
    fsync_folder(out)


def _publish(
    out_dir: str | Path, write: Callable[[Path], list[Path]], provenance: dict[str, Any]
) -> list[Path]:
    """``write(folder)`` the files into the staging folder, commit them to the manifest,
    then move them into ``out_dir`` (see the module docstring)."""
    out = Path(out_dir)
    with locked(out / MANIFEST):
        recover(out)
        staged = write(out / STAGING)
        manifest = read_manifest(out)
        now = _now()
        for path in staged:
            manifest["files"][path.name] = {
                **provenance,
                "created": now,
                "sha256": sha256_file(path),
            }
        manifest["updated"] = now
        atomic_write_json(out / MANIFEST, manifest)  # the commit point
        _move_into_place(staged, out)
    return [out / p.name for p in staged]


def record(out_dir: str | Path, files: list[str], provenance: dict[str, Any]) -> dict[str, Any]:
    """Add or replace the manifest entries of ``files``, which are already in ``out_dir``
    (names relative to it), with their current hashes."""
    out = Path(out_dir)
    with locked(out / MANIFEST):
        manifest = read_manifest(out)
        entry = {**provenance, "created": _now()}
        for name in files:
            path = out / name
            manifest["files"][name] = {
                **entry,
                "sha256": sha256_file(path) if path.is_file() else None,
            }
        manifest["updated"] = entry["created"]
        atomic_write_json(out / MANIFEST, manifest)
    return manifest


def check_manifest(out_dir: str | Path) -> list[str]:
    """Every disagreement between ``out_dir`` and its manifest, one line each (empty: none):
    listed files that are missing or whose content changed, and files nobody listed."""
    out = Path(out_dir)
    files = read_manifest(out)["files"]
    problems = []
    for name, entry in sorted(files.items()):
        path = out / name
        if not path.is_file():
            problems.append(f"{name}: listed in {MANIFEST} but missing")
        elif "sha256" in entry and entry["sha256"] != sha256_file(path):
            problems.append(f"{name}: content differs from its {MANIFEST} entry")
    for path in sorted(out.iterdir()) if out.is_dir() else []:
        if path.is_file() and not path.name.startswith(".") and path.name != MANIFEST:
            if path.name not in files:
                problems.append(f"{path.name}: not listed in {MANIFEST}")
    return problems


def prune_missing(out_dir: str | Path) -> list[str]:
    """Drop the manifest entries whose files are gone (figures an older version of a notebook
    made and the current one no longer does); returns their names."""
    out = Path(out_dir)
    with locked(out / MANIFEST):
        manifest = read_manifest(out)
        gone = sorted(name for name in manifest["files"] if not (out / name).is_file())
        if gone:
            for name in gone:
                del manifest["files"][name]
            atomic_write_json(out / MANIFEST, manifest)
    return gone


def mark_run(out_dir: str | Path, state: str, **info: Any) -> None:
    """Record in the manifest how the latest ``make figures`` went: "running" when it
    starts, then "complete" or "failed" (with ``info`` such as the notebook that failed)."""
    out = Path(out_dir)
    with locked(out / MANIFEST):
        recover(out)  # a publish the interruption cut short is finished first
        manifest = read_manifest(out)
        manifest["last_run"] = {"state": state, "time": _now(), **info}
        atomic_write_json(out / MANIFEST, manifest)


def published(out_dir: str | Path, notebook: str) -> list[str]:
    """The files in ``out_dir`` that ``notebook`` published, sorted (from the manifest)."""
    files = read_manifest(out_dir)["files"]
    return sorted(name for name, entry in files.items() if entry.get("notebook") == notebook)


def publish_figure(fig: Figure, name: str, out_dir: str | Path, provenance: dict[str, Any]) -> Path:
    """Save ``fig`` as ``<out_dir>/<name>.png`` and record where it came from."""
    return _publish(out_dir, lambda d: [save_figure(fig, d / f"{name}.png")], provenance)[0]


def publish_table(
    table: Any, name: str, out_dir: str | Path, provenance: dict[str, Any]
) -> list[Path]:
    """Save a ``Table`` (or a pandas DataFrame) as CSV, Markdown and JSON, and record it."""
    from ssd_lib.metrics.tables import Table

    if not hasattr(table, "save"):  # a bare DataFrame: give it a title and its provenance
        table = Table(name, table, {k: v for k, v in provenance.items() if k != "parameters"})
    return _publish(out_dir, lambda d: list(table.save(d, name).values()), provenance)


def provenance(
    notebook: str,
    parameters: dict[str, Any],
    dataset: Any = None,
    runs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest entry for files a notebook writes: notebook, parameters, dataset (name and
    content hash), the profile the runs were trained under, where the runs came from, and the
    checkpoints (run folder @ step) they came from."""
    entry: dict[str, Any] = {
        "notebook": notebook,
        "parameters": dict(parameters),
        "profile": parameters.get("profile"),
    }
    entry["machine"] = describe_machine()  # timings and numbers depend on it
    if dataset is not None:
        entry["dataset"] = dataset.name
        entry["dataset_hash"] = dataset.content_hash[:12]
    if runs:
        # The profile the runs were trained under (published runs: "paper", whatever the
        # notebook's ``profile`` parameter says), and where they came from.
        profiles = sorted({r.config.profile for r in runs.values()})
        entry["profile"] = profiles[0] if len(profiles) == 1 else profiles
        entry["run_source"] = parameters.get("run_source", "local")
        entry["checkpoints"] = {
            k: f"{r.path.name}@step{r.status.get('step')}" for k, r in runs.items()
        }
        # The tensor files are named by their content's SHA-256: the checkpoint hash.
        entry["checkpoint_files"] = {k: _tensor_file(r) for k, r in runs.items()}
    return entry


def _tensor_file(run: Any) -> str | None:
    return run.weights_id() if hasattr(run, "weights_id") else None
