"""Checkpoints as safetensors (tensors) + JSON (everything else); loading never unpickles.

A checkpoint is a pair of files with one stem::

    latest.safetensors   model weights, optimiser moments, RNG states, loss history
    latest.json          config, step counters, optimiser hyper-parameters, the SHA-256 of
                         the .safetensors file

Both are written atomically, the tensors first. The JSON names the hash of the tensor file it
belongs to, so a pair from two different saves (a crash between the two renames) is detected
on load instead of being trusted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ssd_lib.atomic import atomic_write, atomic_write_json

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_paths(stem: str | Path) -> tuple[Path, Path]:
    stem = Path(stem)
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(
    stem: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` and ``meta`` under ``stem`` (no suffix); returns the JSON path."""
    tensor_path, json_path = checkpoint_paths(stem)
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write(tensor_path, lambda tmp: save_file(flat, str(tmp)))
    meta = {**meta, "format_version": FORMAT_VERSION, "tensors_sha256": _sha256(tensor_path)}
    atomic_write_json(json_path, meta)
    return json_path


def load_checkpoint(stem: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint pair; raises ``CheckpointError`` naming the file and the problem."""
    tensor_path, json_path = checkpoint_paths(stem)
    for p in (tensor_path, json_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {p} does not exist")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{json_path} is not valid JSON: {err}") from err
    if meta.get("tensors_sha256") != _sha256(tensor_path):
        raise CheckpointError(
            f"{tensor_path} does not match the hash recorded in {json_path}; the pair comes from "
            "two different saves or the file was damaged"
        )
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{tensor_path} is not a readable safetensors file: {err}") from err
    return tensors, meta


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.``, with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict``, with an error listing every missing, unexpected or misshapen tensor."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes))
        raise CheckpointError(f"{source} does not fit the model: " + ", ".join(parts))
    module.load_state_dict(state)


def optimizer_to_tensors(
    opt: torch.optim.Optimizer, prefix: str
) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state into tensors (moments, step) and JSON (hyper-parameters)."""
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{idx}.{key}"] = t
    return tensors, {"param_groups": sd["param_groups"]}


def optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict, prefix: str
) -> None:
    """Inverse of ``optimizer_to_tensors``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in split_prefix(tensors, prefix).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    # JSON has no tuples; Adam's betas go back to the type torch gave them.
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]
    ]
    opt.load_state_dict({"state": state, "param_groups": groups})
