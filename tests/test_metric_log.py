"""The per-step log (ssd_lib.training.metric_log): one device read, checkpoint round trip,
and a history.csv written whole each time while only new rows are formatted."""

from __future__ import annotations

import csv
import math

import torch

from ssd_lib.training.metric_log import MetricLog
from ssd_lib.utils.atomic import atomic_write_csv


def _row(step, **extra):
    return {"step": step, "epoch": 0, "loss_g": torch.tensor(0.5 + step), **extra}


def _log_and_write(log, path, *rows):
    """Append ``rows`` to ``log``, sync and write ``path`` as a save does."""
    for row in rows:
        log.append(row)
    log.sync()
    log.write_csv(path)
    return log


def _rewritten(log, tmp_path):
    """history.csv as a single full write of the same rows would be."""
    ref = tmp_path / "reference.csv"
    atomic_write_csv(ref, log.rows[: log.synced], log.columns())
    return ref.read_text()


def test_sync_turns_tensors_into_floats_once():
    log = MetricLog()
    log.append(_row(1))
    log.append(_row(2))
    assert isinstance(log.last["loss_g"], torch.Tensor)
    log.sync()
    assert log.synced == 2 and [r["loss_g"] for r in log.rows] == [1.5, 2.5]
    assert all(type(r["loss_g"]) is float for r in log.rows)


def test_csv_formats_only_new_rows_and_matches_a_full_rewrite(tmp_path, monkeypatch):
    path = tmp_path / "history.csv"
    log = _log_and_write(MetricLog(), path, _row(1), _row(2))
    formatted = []
    original = csv.DictWriter.writerows
    monkeypatch.setattr(
        csv.DictWriter,
        "writerows",
        lambda self, rows: formatted.extend(rows) or original(self, rows),
    )
    _log_and_write(log, path, _row(3), _row(4), _row(5))
    assert [r["step"] for r in formatted] == [3, 4, 5]
    assert path.read_text() == _rewritten(log, tmp_path)
    assert path.read_text().count("\n") == 6  # header and five rows


def test_csv_starts_again_when_a_column_appears_or_a_written_row_changes(tmp_path):
    path = tmp_path / "history.csv"
    log = _log_and_write(MetricLog(), path, _row(1))
    _log_and_write(log, path, _row(2, sigma=torch.tensor(3.0)))  # a new column
    assert path.read_text() == _rewritten(log, tmp_path)
    assert path.read_text().splitlines()[0] == "step,epoch,loss_g,sigma"
    log.add_to_last({"d_val_eval": 0.25})  # the written last row gains a value
    log.write_csv(path)
    assert path.read_text() == _rewritten(log, tmp_path)
    assert path.read_text().splitlines()[-1].endswith(",0.25")


def test_csv_replaces_a_file_someone_else_changed(tmp_path):
    path = tmp_path / "history.csv"
    log = _log_and_write(MetricLog(), path, _row(1))
    path.write_text("garbage\n")
    _log_and_write(log, path, _row(2))
    assert path.read_text() == _rewritten(log, tmp_path)


def test_checkpoint_round_trip_keeps_gaps_and_logged_nans():
    log = MetricLog(
        [
            {"step": 1, "epoch": 0, "loss_g": 0.5, "grad_norm_g": math.nan},
            {"step": 2, "epoch": 1, "loss_g": 0.25, "d_val_eval": 0.75},
        ]
    )
    again = MetricLog.from_tensors(log.to_tensors(), log.columns(), 2)
    assert again.columns() == log.columns()
    assert math.isnan(again.rows[0]["grad_norm_g"]) and "grad_norm_g" not in again.rows[1]
    assert "d_val_eval" not in again.rows[0] and again.rows[1] == log.rows[1]
    assert type(again.rows[1]["epoch"]) is int
    assert again.synced == again.checked == again.collapse_checked == 2
