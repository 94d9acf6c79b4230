"""Run directories: one folder per (config, dataset), found again by the config's hash.

    runs/<preset>-<profile>-<dataset>-<hash>/   (<profile>+epochs=80 if an override contradicts it)
        config.json               the TrainConfig
        status.json               state (running / interrupted / complete), step, epoch
        checkpoints/latest.*      safetensors + JSON (see checkpoint.py)
        samples/epoch_001.png     sample grid at fixed z after each epoch
        history.csv               one row per training step
        warnings.json             collapses and roll-backs seen while training (health.py)
        .training.lock            held by the process training it (train(); ssd_lib.utils.locks)

Notebooks never build paths by hand: ``find_run(cfg, dataset)`` returns the ``Run`` if it
exists, and ``train`` reuses a complete one instead of training again.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssd_lib.config import ConfigError, TrainConfig
from ssd_lib.models import build_discriminator, build_generator
from ssd_lib.training.checkpoint import load_checkpoint, load_state_strict, split_prefix
from ssd_lib.utils.atomic import read_json
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.images import GRID_NROW


def default_runs_root() -> Path:
    """``$SSD_RUNS_DIR`` or the repository's ``runs/``."""
    env = os.environ.get("SSD_RUNS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "runs"


def run_name(cfg: TrainConfig, dataset_hash: str) -> str:
    """``<preset>-<profile>-<dataset>-<hash>``, the profile followed by what contradicts it:
    ``paper-quick+epochs=20-embedded-<hash>`` for ``--profile quick --epochs 20``."""
    budget = cfg.profile + "".join(f"+{k}={v:g}" for k, v in cfg.profile_overrides().items())
    return f"{cfg.preset}-{budget}-{cfg.dataset}-{cfg.config_hash(dataset_hash)}"


class RunError(SSDError, RuntimeError):
    """A run folder's config.json or status.json is unreadable."""


def _read_json(path: Path) -> Any:
    advice = f"the run folder {path.parent} was damaged: delete it to train the run again"
    return read_json(path, RunError, advice)


class Run:
    """A run directory, complete or not."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, state={self.status.get('state', 'new')!r})"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "latest"

    @property
    def status(self) -> dict[str, Any]:
        """status.json, read at every access on purpose: it changes while the run trains, and
        a cache keyed on the file's times and size can miss two quick writes of equal size."""
        p = self.path / "status.json"
        return _read_json(p) if p.is_file() else {}

    @property
    def complete(self) -> bool:
        return self.status.get("state") == "complete"

    @functools.cached_property
    def config(self) -> TrainConfig:
        """config.json, read once: a run folder's config never changes."""
        path = self.path / "config.json"
        try:
            return TrainConfig.from_dict(_read_json(path))
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err

    def label(self) -> str:
        """Who made a figure: dataset, preset, profile and checkpoint step, in one line."""
        cfg, st = self.config, self.status
        return (
            f"dataset={cfg.dataset} preset={cfg.preset} profile={cfg.profile} "
            f"checkpoint={self.path.name}@step{st.get('step', '?')}"
        )

    def history(self) -> dict[str, np.ndarray]:
        """Per-step records: column name -> float64 array, all of equal length, NaN where a
        value was not measured (an empty cell, or a cell missing from a short row); ``{}`` for
        an empty file or a header without rows. A missing file raises FileNotFoundError."""
        import pandas as pd

        p = self.path / "history.csv"
        try:
            frame = pd.read_csv(p, dtype=np.float64, index_col=False)
        except pd.errors.EmptyDataError:  # a 0-byte file
            return {}
        if frame.empty:
            return {}
        return {str(k): frame[k].to_numpy(np.float64, copy=True) for k in frame.columns}

    def warnings(self) -> list[dict[str, Any]]:
        """Collapses and roll-backs the trainer reported (see ssd_lib.training.health), oldest
        first."""
        p = self.path / "warnings.json"
        return _read_json(p) if p.is_file() else []

    def sample_grids(self) -> list[Path]:
        return sorted((self.path / "samples").glob("*.png"))

    def grid_layout(self) -> tuple[int, int]:
        """(images, images per row) of each saved sample grid: the trainer's fixed codes."""
        return int(self.config.sample_count), GRID_NROW

    @property
    def work_dir(self) -> Path:
        """Where analyses of this run keep their caches (the run folder itself)."""
        return self.path

    def weights_id(self) -> str | None:
        """The checkpoint's tensor file, named by its content's SHA-256 (None if unreadable)."""
        from ssd_lib.training.checkpoint import CheckpointError, tensor_path

        try:
            return tensor_path(self.checkpoint).name
        except (CheckpointError, OSError, KeyError):
            return None

    def load_generator(self, device: str | torch.device = "cpu", ema: bool = True) -> nn.Module:
        """The generator of the latest checkpoint, in eval mode: its moving average when the
        run kept one (``TrainConfig.ema_half_life_images``) and ``ema``, else G itself."""
        tensors, meta = load_checkpoint(self.checkpoint)
        cfg = TrainConfig.from_dict(meta["config"])
        g = build_generator(cfg)
        prefix = "G_ema" if ema and any(k.startswith("G_ema.") for k in tensors) else "G"
        load_state_strict(g, split_prefix(tensors, prefix), f"{self.checkpoint} [{prefix}]")
        return g.to(device).eval()

    def load_discriminator(self, device: str | torch.device = "cpu") -> nn.Module:
        """The discriminator of the latest checkpoint, in eval mode."""
        tensors, meta = load_checkpoint(self.checkpoint)
        d = build_discriminator(TrainConfig.from_dict(meta["config"]))
        load_state_strict(d, split_prefix(tensors, "D"), f"{self.checkpoint}.safetensors [D]")
        return d.to(device).eval()


def find_run(cfg: TrainConfig, dataset_hash: str, root: str | Path | None = None) -> Run | None:
    """The run for ``cfg`` on the dataset with ``dataset_hash``, if its folder exists."""
    path = Path(root or default_runs_root()) / run_name(cfg, dataset_hash)
    return Run(path) if (path / "config.json").is_file() else None


def list_runs(root: str | Path | None = None) -> list[Run]:
    root = Path(root or default_runs_root())
    return [Run(p.parent) for p in sorted(root.glob("*/config.json"))]
