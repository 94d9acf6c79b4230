"""The per-step history of a run: what the trainer logs, from the device to history.csv.

Each training step appends one row (``step``, ``epoch``, the losses, gradient norms, D's
accuracy, spectral norms ...). The values stay tensors on the device until :meth:`sync` reads
all new ones in a single transfer, so a CUDA step never waits for the host. The log also
remembers how far the health checks have read (``checked``, ``collapse_checked``), turns
itself into tensors for the checkpoint and back, and writes ``history.csv`` (atomically, as
every file of a run; formatting only the rows logged since the last save).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ssd_lib.utils.atomic import atomic_write_text, csv_text

# Columns that hold counts; every other column is a float.
INTEGER_COLUMNS = ("step", "epoch")


class MetricLog:
    """Rows of logged values, oldest first; a row lacks the columns not measured at its step."""

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows: list[dict[str, Any]] = list(rows or [])
        n = len(self.rows)
        self.synced = n  # rows before this one hold plain floats
        self.checked = n  # ... and were checked for NaN and infinity
        self.collapse_checked = n  # ... and for discriminator collapse
        # history.csv as last written: its columns, number of rows and text
        self._csv: tuple[list[str], int, str] | None = None
        # every column seen in rows[: self._scanned], in order of first appearance
        self._columns: dict[str, None] = {}
        self._scanned = 0

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        """A new step's row; its values may be tensors on any device."""
        self.rows.append(row)

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1]

    def add_to_last(self, values: dict[str, Any]) -> None:
        """Values measured after the step's row was logged (an evaluation point)."""
        self.rows[-1].update(values)
        if self._scanned == len(self.rows):  # that row was scanned for columns already
            self._columns.update(dict.fromkeys(values))
        if self._csv is not None and self._csv[1] >= len(self.rows):
            self._csv = None  # that row is in history.csv already: rewrite the file

    def sync(self) -> None:
        """Turn the tensors logged since the last call into floats with one device read."""
        pending = [
            (row, key)
            for row in self.rows[self.synced :]
            for key, value in row.items()
            if isinstance(value, torch.Tensor)
        ]
        if pending:
            values = torch.stack([row[key].to(torch.float64) for row, key in pending]).tolist()
            for (row, key), value in zip(pending, values, strict=True):
                row[key] = value
        self.synced = len(self.rows)

    def columns(self) -> list[str]:
        """Every column, in order of first appearance (only rows new since the last call
        are read: a save asks three times)."""
        for row in self.rows[self._scanned :]:
            self._columns.update(dict.fromkeys(row))
        self._scanned = len(self.rows)
        return list(self._columns)

    # ---- the checkpoint ------------------------------------------------------------------
    def to_tensors(self) -> dict[str, torch.Tensor]:
        """``history.<column>`` (float64, NaN where not measured) and ``history_logged.<column>``
        (which rows measured it: a logged NaN, an fp16 overflow, is not a missing value)."""
        t = {}
        for col in self.columns():
            t[f"history.{col}"] = torch.tensor(
                [r.get(col, math.nan) for r in self.rows], dtype=torch.float64
            )
            t[f"history_logged.{col}"] = torch.tensor([col in r for r in self.rows])
        return t

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, torch.Tensor], columns: list[str], n_rows: int
    ) -> MetricLog:
        """The log :meth:`to_tensors` saved (``n_rows`` rows with these ``columns``)."""
        values = {c: tensors[f"history.{c}"].tolist() for c in columns}
        logged = {  # checkpoints written before the mask existed: NaN meant "not measured"
            c: tensors[f"history_logged.{c}"].tolist()
            if f"history_logged.{c}" in tensors
            else [not math.isnan(v) for v in values[c]]
            for c in columns
        }
        return cls(
            [
                {
                    c: (int(values[c][i]) if c in INTEGER_COLUMNS else values[c][i])
                    for c in columns
                    if logged[c][i]
                }
                for i in range(n_rows)
            ]
        )

    # ---- history.csv ---------------------------------------------------------------------
    def write_csv(self, path: Path) -> None:
        """Write the synced rows to ``path`` atomically (a reader never sees half a row).

        The text of the rows written before is kept, so a save formats only the rows logged
        since the last one; it starts again from the header when a new column appears or a
        written row changed."""
        columns = self.columns()
        rows = self.rows[: self.synced]
        if self._csv is None or self._csv[0] != columns or self._csv[1] > len(rows):
            done, text = 0, ""
        else:
            _, done, text = self._csv
        text += csv_text(rows[done:], columns, header=not text)
        atomic_write_text(path, text)
        self._csv = (columns, len(rows), text)
