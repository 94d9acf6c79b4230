"""Writing figures and tables into ``figures/`` with a manifest of what made each one.

``figures/MANIFEST.json`` maps every file to the notebook, parameters, dataset, profile,
checkpoint and time that produced it. Notebooks call ``publish_figure``/``publish_table``
instead of saving files themselves, so no figure can appear without its provenance.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ssd_lib.atomic import atomic_write_json
from ssd_lib.hardware import describe_machine
from ssd_lib.plots import save_figure

MANIFEST = "MANIFEST.json"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_manifest(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return {"files": {}}
    manifest = json.loads(path.read_text())
    manifest.setdefault("files", {})
    return manifest


def record(out_dir: str | Path, files: list[str], provenance: dict[str, Any]) -> dict[str, Any]:
    """Add or replace the manifest entries of ``files`` (names relative to ``out_dir``)."""
    manifest = read_manifest(out_dir)
    entry = {**provenance, "created": _now()}
    for name in files:
        manifest["files"][name] = entry
    manifest["updated"] = entry["created"]
    atomic_write_json(Path(out_dir) / MANIFEST, manifest)
    return manifest


def published(out_dir: str | Path, notebook: str) -> list[str]:
    """The files in ``out_dir`` that ``notebook`` published, sorted (from the manifest)."""
    files = read_manifest(out_dir)["files"]
    return sorted(name for name, entry in files.items() if entry.get("notebook") == notebook)


def publish_figure(fig: Figure, name: str, out_dir: str | Path, provenance: dict[str, Any]) -> Path:
    """Save ``fig`` as ``<out_dir>/<name>.png`` and record where it came from."""
    path = save_figure(fig, Path(out_dir) / f"{name}.png")
    record(out_dir, [path.name], provenance)
    return path


def publish_table(
    table: Any, name: str, out_dir: str | Path, provenance: dict[str, Any]
) -> list[Path]:
    """Save a ``Table`` (or a pandas DataFrame) as CSV, Markdown and JSON, and record it."""
    from ssd_lib.metrics.tables import Table

    if not hasattr(table, "save"):  # a bare DataFrame: give it a title and its provenance
        table = Table(name, table, {k: v for k, v in provenance.items() if k != "parameters"})
    paths = list(table.save(Path(out_dir), name).values())
    record(out_dir, [p.name for p in paths], provenance)
    return paths


def provenance(
    notebook: str,
    parameters: dict[str, Any],
    dataset: Any = None,
    runs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest entry for files a notebook writes: notebook, parameters, dataset (name and
    content hash), profile, and the checkpoints (run folder @ step) they came from."""
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
        entry["checkpoints"] = {
            k: f"{r.path.name}@step{r.status.get('step')}" for k, r in runs.items()
        }
        # The tensor files are named by their content's SHA-256: the checkpoint hash.
        entry["checkpoint_files"] = {k: _tensor_file(r) for k, r in runs.items()}
    return entry


def _tensor_file(run: Any) -> str | None:
    from ssd_lib.checkpoint import CheckpointError, tensor_path

    try:
        return tensor_path(run.checkpoint).name
    except (CheckpointError, OSError, KeyError):
        return None
