"""Checkpoints as safetensors (tensors) + JSON (everything else); loading never unpickles.

A checkpoint is a JSON file and the tensor file it names::

    latest.json                     config, step counters, optimiser hyper-parameters, and
                                    the name and SHA-256 of its tensor file
    latest-<sha256[:16]>.safetensors  model weights, optimiser moments, RNG states, history

The tensor file is named by its content and written first; the JSON is renamed over the old
one second; only then are tensor files no JSON names any more deleted. A crash at any point
therefore leaves the previous checkpoint loadable, and a damaged tensor file is detected by
its hash instead of being trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ssd_lib.utils.atomic import atomic_write, atomic_write_json, read_json, sha256_file
from ssd_lib.utils.errors import SSDError

FORMAT_VERSION = 2  # 2: content-named tensor file; 1 (still read): <stem>.safetensors


class CheckpointError(SSDError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not fit the model it is loaded into."""


# Formats that need unpickling to read: opening one can run arbitrary code.
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a pickle protocol >= 2; torch.save's zip


def refuse_pickles(path: str | Path) -> None:
    """Raise ``CheckpointError`` if ``path`` is a pickle, a ``torch.save`` or a Lightning file."""
    path = Path(path)
    head = b""
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(4)
    if path.suffix.lower() in PICKLE_SUFFIXES or head.startswith(PICKLE_MAGIC):
        raise CheckpointError(
            f"{path} is a pickle-based file (torch.save / Lightning); loading checkpoints here "
            "never unpickles, because unpickling can run code hidden in the file. Load a "
            "checkpoint written by this project (its .json), or import the authors' Lightning "
            "checkpoint with ssd_lib.training.release_import"
        )


def json_path(stem: str | Path) -> Path:
    return Path(stem).with_suffix(".json")


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    meta = read_json(path, CheckpointError, "the checkpoint was damaged or edited")
    if not isinstance(meta, dict) or "tensors_sha256" not in meta:
        raise CheckpointError(f"{path} is not a checkpoint description (no 'tensors_sha256')")
    if meta.get("format_version") == 1:  # version 1 kept the tensors in <stem>.safetensors
        meta.setdefault("tensors_file", path.with_suffix(".safetensors").name)
    if "tensors_file" not in meta:
        raise CheckpointError(f"{path} is not a checkpoint description (no 'tensors_file')")
    return meta


def tensor_path(stem: str | Path) -> Path:
    """The tensor file the checkpoint ``stem`` currently names."""
    return json_path(stem).parent / _read_meta(json_path(stem))["tensors_file"]


def save_checkpoint(
    stem: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` and ``meta`` as the checkpoint ``stem``; returns the JSON path.

    One writer per ``stem`` at a time (the trainer holds its run folder's lock). A failure
    (disk full, read-only folder) raises ``CheckpointError`` naming the folder and the cause;
    the previous checkpoint is then still the one on disk.
    """
    stem = Path(stem)
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(stem)
        staged = stem.parent / f".{stem.name}-staged.safetensors"
        atomic_write(staged, lambda tmp: save_file(flat, str(tmp)))
        digest = sha256_file(staged)
        final = stem.parent / f"{stem.name}-{digest[:16]}.safetensors"
        staged.replace(final)
        meta = {
            **meta,
            "format_version": FORMAT_VERSION,
            "tensors_file": final.name,
            "tensors_sha256": digest,
        }
        atomic_write_json(json_path(stem), meta)
    except (OSError, SafetensorError) as err:
        where = getattr(err, "filename", None) or stem.parent
        previous = (
            f"the previous checkpoint {json_path(stem)} is unchanged"
            if json_path(stem).is_file()
            else "no earlier checkpoint exists"
        )
        raise CheckpointError(
            f"could not write checkpoint {stem.name} to {where}: {err}; {previous}. "
            "Free disk space or make the folder writable, then resume"
        ) from err
    # Only now that the JSON names the new file may the old one go.
    for old in stem.parent.glob(f"{stem.name}-*.safetensors"):
        if old != final:
            old.unlink(missing_ok=True)
    return json_path(stem)


def _remove_leftovers(stem: Path) -> None:
    """Delete what a save killed half-way (kill -9, power loss) left: temporary files that no
    checkpoint JSON names, so nothing ever reads them."""
    name = stem.name
    for pattern in (f".{name}-staged.safetensors", f"*.{name}-staged.*.tmp", f".{name}.json.*.tmp"):
        for leftover in stem.parent.glob(pattern):
            leftover.unlink(missing_ok=True)


def load_checkpoint(stem: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint; raises ``CheckpointError`` naming the file and the problem."""
    refuse_pickles(stem)
    meta_path = json_path(stem)
    meta = _read_meta(meta_path)
    tensor_path = meta_path.parent / meta["tensors_file"]
    if not tensor_path.is_file():
        raise CheckpointError(
            f"checkpoint tensor file {tensor_path} (named in {meta_path}) does not exist"
        )
    if meta.get("tensors_sha256") != sha256_file(tensor_path):
        raise CheckpointError(
            f"{tensor_path} does not match the hash recorded in {meta_path}; the file was "
            "damaged or replaced"
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
