"""Checkpoints: safetensors + JSON, hash-paired, strict loading, never a pickle."""

from __future__ import annotations

import json

import pytest
import torch

from ssd_lib.models import DCGANGenerator, SSDGenerator
from ssd_lib.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_strict,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
    tensor_path,
)


def test_round_trip_preserves_tensors_and_meta(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    save_checkpoint(tmp_path / "ck", tensors, {"step": 5})
    loaded, meta = load_checkpoint(tmp_path / "ck")
    assert meta["step"] == 5 and set(loaded) == {"a", "b"}
    assert torch.equal(loaded["a"], tensors["a"]) and loaded["b"].dtype == torch.int64
    # Nothing pickled: the files are a safetensors header and plain JSON.
    assert tensor_path(tmp_path / "ck").read_bytes()[8:9] == b"{"
    json.loads((tmp_path / "ck.json").read_text())


def test_crash_between_the_two_writes_leaves_the_previous_checkpoint_loadable(
    tmp_path, monkeypatch
):
    save_checkpoint(tmp_path / "ck", {"a": torch.zeros(3)}, {"step": 1})
    import ssd_lib.training.checkpoint as ck

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. a second Ctrl-C, or the process killed here

    monkeypatch.setattr(ck, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "ck", {"a": torch.ones(3)}, {"step": 2})
    monkeypatch.undo()
    tensors, meta = load_checkpoint(tmp_path / "ck")
    assert meta["step"] == 1 and torch.equal(tensors["a"], torch.zeros(3))
    save_checkpoint(tmp_path / "ck", {"a": torch.ones(3)}, {"step": 3})
    assert len(list(tmp_path.glob("ck-*.safetensors"))) == 1  # orphans are cleaned up


def test_mismatched_pair_and_truncated_file_are_detected(tmp_path):
    save_checkpoint(tmp_path / "one", {"a": torch.zeros(3)}, {"step": 1})
    save_checkpoint(tmp_path / "two", {"a": torch.ones(3)}, {"step": 2})
    one, two = tensor_path(tmp_path / "one"), tensor_path(tmp_path / "two")
    one.write_bytes(two.read_bytes())
    with pytest.raises(CheckpointError, match="does not match the hash"):
        load_checkpoint(tmp_path / "one")
    data = two.read_bytes()
    two.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=two.name):
        load_checkpoint(tmp_path / "two")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "three")


def test_strict_loading_lists_missing_unexpected_and_misshapen(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_state_strict(SSDGenerator(), DCGANGenerator().state_dict(), "ck.safetensors")
    msg = str(err.value)
    assert "ck.safetensors does not fit the model" in msg
    assert "missing ['const'" in msg and "unexpected ['net.0.weight'" in msg
    bad = SSDGenerator().state_dict()
    bad["const"] = torch.zeros(1, 5, 1, 1)
    with pytest.raises(
        CheckpointError, match=r"const: checkpoint \(1, 5, 1, 1\) vs model \(1, 100, 1, 1\)"
    ):
        load_state_strict(SSDGenerator(), bad, "ck")


def test_adam_state_round_trips_exactly():
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).sum().backward()
        opt.step()
    tensors, meta = optimizer_to_tensors(opt, "opt")
    fresh = torch.optim.Adam(model.parameters(), lr=1.0)
    optimizer_from_tensors(fresh, tensors, json.loads(json.dumps(meta)), "opt")
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k in a["state"][i]:
            assert torch.equal(torch.as_tensor(a["state"][i][k]), torch.as_tensor(b["state"][i][k]))


def test_version_1_checkpoints_are_still_read(tmp_path):
    from safetensors.torch import save_file

    from ssd_lib.utils.atomic import sha256_file

    save_file({"a": torch.arange(3.0)}, str(tmp_path / "old.safetensors"))
    meta = {
        "format_version": 1,
        "step": 7,
        "tensors_sha256": sha256_file(tmp_path / "old.safetensors"),
    }
    (tmp_path / "old.json").write_text(json.dumps(meta))
    tensors, loaded = load_checkpoint(tmp_path / "old")
    assert loaded["step"] == 7 and torch.equal(tensors["a"], torch.arange(3.0))
