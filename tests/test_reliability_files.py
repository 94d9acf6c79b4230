"""Untrusted and damaged checkpoint files, and two trainers on one run folder.
Each guarantee here is listed in docs/reliability.md."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssd_lib.config import ConfigError, make_config
from ssd_lib.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ssd_lib.training.trainer import Trainer

# Trains, loads every published run or starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("_train_child.py")


class _Payload:
    """Unpickling this creates ``marker``: proof that a loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", ["model.pt", "model.ckpt", "model.pth", "latest"])
def test_pickle_based_files_are_refused_and_their_payload_never_runs(tmp_path, name):
    marker = tmp_path / "pwned"
    path = tmp_path / name
    if name == "latest":  # no telling suffix: refused by its first bytes
        path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=4))
    else:
        torch.save({"state_dict": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="never unpickles") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "release_import" in str(info.value)
    assert not marker.exists()


def _saved_run(tmp_path: Path, tiny_dataset) -> tuple[Trainer, Path]:
    cfg = make_config("paper", "smoke", dataset="tiny")
    t = Trainer(cfg, tiny_dataset.train, tmp_path / "run", "cpu", False)
    t.fit()
    return t, tmp_path / "run" / "checkpoints" / "latest"


def _rewrite_meta(stem: Path, change) -> None:
    tensors, meta = load_checkpoint(stem)
    change(meta)
    for key in ("format_version", "tensors_file", "tensors_sha256"):
        meta.pop(key)
    save_checkpoint(stem, tensors, meta)


def test_a_checkpoint_missing_an_entry_names_the_file_and_the_entry(tiny_dataset, tmp_path):
    t, stem = _saved_run(tmp_path, tiny_dataset)
    _rewrite_meta(stem, lambda meta: meta.pop("opt_g"))
    with pytest.raises(CheckpointError, match=r"latest.json lacks the entry 'opt_g'"):
        t.load(stem)


def test_a_checkpoint_config_out_of_range_names_the_file_and_field(tiny_dataset, tmp_path):
    t, stem = _saved_run(tmp_path, tiny_dataset)
    _rewrite_meta(stem, lambda meta: meta["config"].update(lr_g=-1.0))
    with pytest.raises(ConfigError, match=r"latest.json: .*lr_g") as info:
        t.load(stem)
    assert len(str(info.value).splitlines()) == 1


def test_a_checkpoint_with_misshapen_tensors_lists_names_and_shapes(tiny_dataset, tmp_path):
    t, stem = _saved_run(tmp_path, tiny_dataset)
    tensors, meta = load_checkpoint(stem)
    name = next(k for k in tensors if k.startswith("G.") and tensors[k].ndim == 4)
    tensors[name] = torch.zeros(2, 2, 2, 2)
    for key in ("format_version", "tensors_file", "tensors_sha256"):
        meta.pop(key)
    save_checkpoint(stem, tensors, meta)
    with pytest.raises(CheckpointError, match="does not fit the model") as info:
        t.load(stem)
    assert name[2:] in str(info.value) and "checkpoint (2, 2, 2, 2)" in str(info.value)


def test_a_truncated_tensor_file_is_detected_by_its_hash(tiny_dataset, tmp_path):
    from ssd_lib.training.checkpoint import tensor_path

    _, stem = _saved_run(tmp_path, tiny_dataset)
    path = tensor_path(stem)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="does not match the hash recorded in"):
        load_checkpoint(stem)


@pytest.mark.slow
def test_two_processes_training_one_run_train_it_once(tiny_dataset, tmp_path):
    """The second process waits for the run folder's lock, then reuses the finished run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(CHILD), str(tmp_path / "data"), str(tmp_path / "runs"), "none"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert outs[0][0].splitlines()[-1] == outs[1][0].splitlines()[-1]  # the same run folder
    assert sum("reusing the complete run" in err for _, err in outs) == 1
    run_dir = Path(outs[0][0].splitlines()[-1])
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "complete" and status["step"] == 15
