"""Measurements of published runs, stored with them: numbers too slow to recompute in every
``make figures`` (Inception on a CPU: about 6-9 images/s), read back when nothing that
changes them has changed.

One JSON file per kind of measurement, ``published/measurements/<kind>.json``, small enough
to commit (a few hundred bytes per number, never features or covariances):

    {"format": 1, "kind": "inception", "records": {"<digest>": {
        "run": "ssd-seed42", "weights": "ssd-seed42/generator.safetensors@<sha256[:16]>",
        "params": {...everything else that changes the numbers...},
        "dataset": {"name": "embedded", "hash": ..., "fingerprint": {...}},
        "results": [MetricResult.to_dict(), ...],
        "provenance": {"command": ..., "machine": ..., "created": ..., "seconds": ...}}}}

A record is found by the digest of (run, weights, params): other generator weights, another
Inception file, sample count, seed or protocol give another digest, so a stale number is never
read. The real images are checked when read: the record keeps the dataset's content hash and
fingerprint, and a dataset whose images differ (beyond the embedded renderer's rounding on
another CPU, ``PreparedDataset.differs_from``) does not use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from ssd_lib.metrics.features import MetricResult
from ssd_lib.utils.atomic import atomic_write_json
from ssd_lib.utils.locks import locked

log = logging.getLogger(__name__)

FORMAT = 1
FOLDER = "measurements"


def default_folder() -> Path:
    from ssd_lib.experiments.published import default_root

    return default_root() / FOLDER


def record_digest(run_key: str, weights: str, params: dict[str, Any]) -> str:
    blob = json.dumps(
        {"run": run_key, "weights": weights, "params": params}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class MeasurementStore:
    """``<folder>/<kind>.json``: stored results of published runs (module docstring)."""

    def __init__(self, kind: str, folder: str | Path | None = None) -> None:
        self.kind = kind
        self.path = Path(folder or default_folder()) / f"{kind}.json"

    def __repr__(self) -> str:
        return f"MeasurementStore({str(self.path)!r})"

    def records(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except json.JSONDecodeError as err:
            log.warning("%s is not valid JSON (%s); ignoring its stored numbers", self.path, err)
            return {}
        if data.get("format") != FORMAT or data.get("kind") != self.kind:
            log.warning(
                "%s has format %r, kind %r; ignoring it",
                self.path,
                data.get("format"),
                data.get("kind"),
            )
            return {}
        return data.get("records", {})

    def get(
        self, run: Any, params: dict[str, Any], dataset: Any = None
    ) -> list[MetricResult] | None:
        """The stored results of ``run`` (a published run: it has ``key`` and ``weights_id``)
        for ``params``, or None. ``dataset``: the ``PreparedDataset`` the numbers were
        measured on; a record made on other images is ignored, with a warning."""
        weights = _weights(run)
        if weights is None:
            return None
        record = self.records().get(record_digest(run.key, weights, _plain(params)))
        if record is None:
            return None
        if dataset is not None:
            differs = _dataset_differs(dataset, record.get("dataset", {}))
            if differs:
                log.warning(
                    "stored %s numbers of %s were measured on other real images (%s); "
                    "not using them",
                    self.kind,
                    run.key,
                    differs,
                )
                return None
        return [
            MetricResult(
                d["name"],
                d["value"],
                d["n_real"],
                d["n_fake"],
                {k: v for k, v in d.items() if k not in ("name", "value", "n_real", "n_fake")}
                | {"stored_in": str(self.path)},
            )
            for d in record["results"]
        ]

    def put(
        self,
        run: Any,
        params: dict[str, Any],
        results: list[MetricResult],
        provenance: dict[str, Any],
        dataset: Any = None,
    ) -> str:
        """Store ``results`` for ``run`` and ``params`` (replacing a record with the same
        digest), atomically and under the file's lock; returns the digest."""
        weights = _weights(run)
        if weights is None:
            raise ValueError(f"{run!r} is not a published run: only those are stored")
        params = _plain(params)
        digest = record_digest(run.key, weights, params)
        record = {
            "run": run.key,
            "weights": weights,
            "params": params,
            "results": [_plain(r.to_dict()) for r in results],
            "provenance": _plain(provenance),
        }
        if dataset is not None:
            record["dataset"] = {
                "name": dataset.name,
                "hash": dataset.content_hash,
                "fingerprint": _plain(dataset.fingerprint()),
            }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            records = self.records()
            records[digest] = record
            atomic_write_json(
                self.path,
                {"format": FORMAT, "kind": self.kind, "records": dict(sorted(records.items()))},
            )
        return digest


_DIFFERS: dict[tuple[str, str], str] = {}


def _dataset_differs(dataset: Any, recorded: dict[str, Any]) -> str:
    """``PreparedDataset.differs_from``, remembered per (this dataset's hash, recorded hash):
    the fingerprint takes seconds, and a table asks once per run and protocol."""
    if recorded.get("name") != dataset.name:
        return f"dataset {recorded.get('name')!r}, here {dataset.name!r}"
    key = (dataset.content_hash, recorded.get("hash", ""))
    if key not in _DIFFERS:
        _DIFFERS[key] = dataset.differs_from(key[1], recorded.get("fingerprint"))
    return _DIFFERS[key]


def _weights(run: Any) -> str | None:
    if not (hasattr(run, "key") and hasattr(run, "entry")):
        return None  # a local run: its checkpoint changes as it trains; nothing is stored
    return run.weights_id()


def _plain(value: Any) -> Any:
    """JSON's view of ``value`` (tuples become lists, paths strings), so that a record
    compares equal to itself after a round trip."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))
