"""Measurements of published runs, stored with them: numbers too slow to recompute in every
``make figures`` (Inception on a CPU: about 6-9 images/s), read back when nothing that
changes them has changed.

One JSON file per kind of measurement, ``published/measurements/<kind>.json``, small enough
to commit (a few hundred bytes per number, never features or covariances):

    {"format": 1, "kind": "inception", "records": {"<digest>": {
        "run": "ssd-seed42", "weights": "ssd-seed42/generator.safetensors@<sha256[:16]>",
        "params": {...everything else that changes the numbers...},
        "dataset": {"name": "embedded", "hash": ..., "fingerprint": {...}},
        "results": [MetricResult.to_dict(), ...]   (FID/KID: evaluate_run)
        or "values": ...                           (anything JSON-able: ``remember``),
        "provenance": {"command": ..., "machine": ..., "created": ..., "seconds": ...}}}}

A record is found by the digest of (run, weights, params): other generator weights, another
Inception file, sample count, seed or protocol give another digest, so a stale number is never
read. The real images are checked when read: the record keeps the dataset's content hash and
fingerprint, and a dataset whose images differ (beyond the embedded renderer's rounding on
another CPU, ``PreparedDataset.differs_from``) does not use it.

Kinds: ``inception`` (FID, clean-FID, clean-KID; ``inception_stats store-published``),
``toy`` (the tables' toy columns), ``probes`` and ``ppl`` (notebook 03), ``claims`` (the
ledger's rows, notebook 06), ``beyond`` (notebook 07's measures; its sample verdicts are also
notebook 01's health table), ``fig7`` and ``memorization``. All but the first are filled by
``remember``: a notebook run on the
published runs measures what is not stored and keeps it under the runs folder
(``runs/published/measurements``); ``python -m ssd_lib.metrics.stored publish`` moves those
records into ``published/measurements`` to be committed. ``SSD_RECOMPUTE=1`` measures
everything again.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ssd_lib.metrics.features import MetricResult
from ssd_lib.utils.atomic import atomic_write_json
from ssd_lib.utils.locks import locked

log = logging.getLogger(__name__)

FORMAT = 1
FOLDER = "measurements"  # published.MEASUREMENTS: check_all skips it
RECOMPUTE_ENV = "SSD_RECOMPUTE"  # set to 1: measure again, whatever is stored


def default_folder() -> Path:
    from ssd_lib.experiments.published import default_root

    return default_root() / FOLDER


def record_digest(run_key: str, weights: str, params: dict[str, Any]) -> str:
    blob = json.dumps(
        {"run": run_key, "weights": weights, "params": params}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# path -> ((inode, mtime, size), parsed records) of the version of each file read last
_PARSED: dict[str, tuple[tuple[int, int, int], dict[str, dict[str, Any]]]] = {}


class MeasurementStore:
    """``<folder>/<kind>.json``: stored results of published runs (module docstring)."""

    def __init__(self, kind: str, folder: str | Path | None = None) -> None:
        self.kind = kind
        self.path = Path(folder or default_folder()) / f"{kind}.json"

    def __repr__(self) -> str:
        return f"MeasurementStore({str(self.path)!r})"

    def records(self) -> dict[str, dict[str, Any]]:
        """Every record (digest -> record). The file is parsed again only when it was
        replaced: writes are atomic renames, so a new file has a new inode."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = _PARSED.get(str(self.path))
        if cached is None or cached[0] != stamp:
            cached = _PARSED[str(self.path)] = (stamp, self._parse())
        return copy.deepcopy(cached[1])  # callers may change what they get

    def _parse(self) -> dict[str, dict[str, Any]]:
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

    def get_record(
        self, run: Any, params: dict[str, Any], dataset: Any = None
    ) -> dict[str, Any] | None:
        """The record of ``run`` (a published run: it has ``key`` and ``weights_id``) for
        ``params``, or None. ``dataset``: the ``PreparedDataset`` the numbers were measured
        on; a record made on other images is ignored, with a warning."""
        weights = _weights(run)
        if weights is None:
            return None
        record = self.records().get(record_digest(run.key, weights, _plain(params)))
        if record is None or dataset is None:
            return record
        differs = _dataset_differs(dataset, record.get("dataset", {}))
        if differs:
            log.warning(
                "stored %s numbers of %s were measured on other real images (%s); not using them",
                self.kind,
                run.key,
                differs,
            )
            return None
        return record

    def get(
        self, run: Any, params: dict[str, Any], dataset: Any = None
    ) -> list[MetricResult] | None:
        """The stored ``MetricResult``s of ``run`` for ``params`` (``get_record``), or None."""
        record = self.get_record(run, params, dataset)
        if record is None or "results" not in record:
            return None
        plain = ("name", "value", "n_real", "n_fake")
        return [
            MetricResult(
                *(d[k] for k in plain),
                {k: v for k, v in d.items() if k not in plain} | {"stored_in": str(self.path)},
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
        """Store ``MetricResult``s (``put_record``)."""
        payload = {"results": [r.to_dict() for r in results]}
        return self.put_record(run, params, payload, provenance, dataset)

    def put_record(
        self,
        run: Any,
        params: dict[str, Any],
        payload: dict[str, Any],
        provenance: dict[str, Any],
        dataset: Any = None,
    ) -> str:
        """Store ``payload`` (``{"results": [...]}`` or ``{"values": ...}``) for ``run`` and
        ``params``, replacing a record with the same digest, atomically and under the file's
        lock; returns the digest."""
        weights = _weights(run)
        if weights is None:
            raise ValueError(f"{run!r} is not a published run: only those are stored")
        params = _plain(params)
        digest = record_digest(run.key, weights, params)
        record = {
            "run": run.key,
            "weights": weights,
            "params": params,
            **_plain(payload),
            "provenance": _plain(provenance),
        }
        if dataset is not None:
            record["dataset"] = {
                "name": dataset.name,
                "hash": dataset.content_hash,
                "fingerprint": _plain(dataset.fingerprint()),
            }
        self.merge({digest: record})
        return digest

    def merge(self, records: dict[str, dict[str, Any]]) -> int:
        """Add ``records`` (digest -> record), replacing those with the same digest; returns
        how many were new or changed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            mine = self.records()
            changed = sum(1 for k, v in records.items() if mine.get(k) != v)
            mine.update(records)
            atomic_write_json(
                self.path,
                {"format": FORMAT, "kind": self.kind, "records": dict(sorted(mine.items()))},
            )
        return changed


def local_folder() -> Path:
    """Where measurements of published runs made here are kept until published: the runs
    folder (``$SSD_RUNS_DIR`` or ``runs/``), never the committed ``published/``."""
    from ssd_lib.training.runs import default_runs_root

    return default_runs_root() / "published" / FOLDER


def remember(
    kind: str, run: Any, params: dict[str, Any], compute: Callable[[], Any], dataset: Any = None
) -> Any:
    """``compute()`` (JSON-able values) for a published ``run``, measured once: from the
    committed store (``published/measurements/<kind>.json``), else from the local one
    (``local_folder``), else computed and kept in the local one with its provenance.
    ``publish_local`` moves local records into the committed files. A local run is computed
    every time (its checkpoint changes as it trains), and so is everything when the
    environment sets ``SSD_RECOMPUTE=1`` (the result still replaces the local record). The
    values come back as JSON gives them (tuples as lists, NaN kept)."""
    if _weights(run) is None:
        return compute()
    committed, local = MeasurementStore(kind), MeasurementStore(kind, local_folder())
    if os.environ.get(RECOMPUTE_ENV, "") not in ("", "0"):
        return _compute_and_keep(local, run, params, compute, dataset)
    for store in (committed, local):
        record = store.get_record(run, params, dataset)
        if record is not None and "values" in record:
            return record["values"]
    return _compute_and_keep(local, run, params, compute, dataset)


def _compute_and_keep(
    local: MeasurementStore,
    run: Any,
    params: dict[str, Any],
    compute: Callable[[], Any],
    dataset: Any,
) -> Any:
    start = time.perf_counter()
    values = _plain(compute())
    provenance = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - start, 1),
        "machine": _machine(),
        "argv": sys.argv,
    }
    local.put_record(run, params, {"values": values}, provenance, dataset)
    return values


def remember_frame(
    kind: str,
    run: Any,
    params: dict[str, Any],
    compute: Callable[[], pd.DataFrame],
    dataset: Any = None,
) -> pd.DataFrame:
    """``remember`` for a table: its rows and its column order survive the round trip."""

    def as_json() -> dict[str, Any]:
        frame = compute()
        return {"columns": list(frame.columns), "rows": frame.to_dict("records")}

    values = remember(kind, run, params, as_json, dataset)
    return pd.DataFrame(values["rows"], columns=values["columns"])


def publish_local(
    kinds: list[str] | None = None, run_key: str | None = None, into: str | Path | None = None
) -> dict[str, int]:
    """Merge the local records (``local_folder``) into the committed files (in ``into``,
    default ``published/measurements``), those of the published run ``run_key`` only if
    given; returns the number of new or changed records
    per kind. Run it after regenerating the figures from retrained published runs, and commit
    ``published/measurements``."""
    out = {}
    for path in sorted(local_folder().glob("*.json")):
        if kinds and path.stem not in kinds:
            continue
        records = MeasurementStore(path.stem, local_folder()).records()
        if run_key is not None:
            records = {k: r for k, r in records.items() if r.get("run") == run_key}
        out[path.stem] = MeasurementStore(path.stem, into).merge(records)
    return out


def _machine() -> dict[str, Any]:
    from ssd_lib.experiments.published import machine_record

    return machine_record()


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
    return json.loads(json.dumps(value, sort_keys=True, default=_default))


def _default(value: Any) -> Any:
    """NumPy scalars and arrays as numbers and lists; anything else as its text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ssd_lib.metrics.stored",
        description="Measurements of published runs: list them, or publish the local ones.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", help="merge runs/published/measurements into published/")
    pub.add_argument("--kinds", nargs="*", default=None)
    sub.add_parser("list", help="how many records of each kind, committed and local")
    args = parser.parse_args(argv)
    if args.command == "publish":
        for kind, changed in publish_local(args.kinds).items():
            print(f"{kind}: {changed} new or changed record(s) -> {MeasurementStore(kind).path}")
        return 0
    kinds = sorted({p.stem for f in (default_folder(), local_folder()) for p in f.glob("*.json")})
    for kind in kinds:
        committed = len(MeasurementStore(kind).records())
        local = len(MeasurementStore(kind, local_folder()).records())
        print(f"{kind:12s} committed {committed:4d}   local {local:4d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
