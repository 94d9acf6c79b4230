"""The trainer's state on disk and its health checks: checkpoints, history, status, warnings.

``TrainerState`` is the half of ``ssd_lib.training.trainer.Trainer`` that writes and reads
what a run leaves behind (``save``/``load``, ``status.json``, ``history.csv``,
``warnings.json``) and watches the logged values for NaN, infinity and collapse
(``ssd_lib.training.health``) before they can reach a checkpoint. It only works as a base
class of ``Trainer``: the attributes it uses are declared at the top of the class.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ssd_lib import __version__
from ssd_lib.config import ConfigError, TrainConfig
from ssd_lib.training.checkpoint import (
    CheckpointError,
    json_path,
    load_checkpoint,
    load_state_strict,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_checkpoint,
    split_prefix,
)
from ssd_lib.training.health import (
    LOGGED_VALUES,
    TrainingDiverged,
    d_collapse_warning,
    divergence_message,
    first_nonfinite,
    first_nonfinite_weight,
)
from ssd_lib.training.metric_log import MetricLog
from ssd_lib.utils.atomic import atomic_write_json

log = logging.getLogger("ssd_lib.training.trainer")  # messages read as the trainer's


@dataclass
class CheckpointMeta:
    """The JSON half of a checkpoint (the tensors are the other half, ``state_tensors``):
    every value ``TrainerState.save`` writes and ``load`` reads, by name."""

    config: dict[str, Any]  # TrainConfig.to_dict()
    step: int
    epoch: int
    batch_in_epoch: int
    total_steps: int
    elapsed_s: float  # training time so far
    history_columns: list[str]  # MetricLog's column order (its values are tensors)
    opt_g: dict[str, Any]  # optimizer_to_tensors' non-tensor half
    opt_d: dict[str, Any]
    # Written by every version of the trainer since these were added; older checkpoints
    # read with these defaults.
    precision: str | None = None  # what "auto" resolved to on the machine that trained
    versions: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # n, content_hash, fingerprint
    device: str = ""
    grad_scalers: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    ada: dict[str, Any] | None = None  # AdaptiveAugment.state_dict(), when augment="ada"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.ada is None:
            del out["ada"]
        return out

    @classmethod
    def from_json(cls, meta: dict[str, Any], stem: Any) -> CheckpointMeta:
        """The fields of ``meta`` (unknown keys, such as the checkpoint writer's own, are
        ignored); a missing required one raises ``CheckpointError`` naming it."""
        names = [f.name for f in fields(cls)]
        required = [
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [k for k in required if k not in meta]
        if missing:
            raise CheckpointError(
                f"checkpoint {json_path(stem)} lacks the entry {missing[0]!r}: it was not written "
                "by this project's trainer, or was edited; train a new run"
            )
        return cls(**{k: meta[k] for k in names if k in meta})


class TrainerState:
    """Persistence and health checks of ``Trainer`` (see the module docstring).

    What it reads and writes of the trainer, declared here (``Trainer.__init__`` sets each);
    ``save`` writes exactly these, ``load`` restores them."""

    # what the run is: its config, images, folder, device and numeric precision
    cfg: TrainConfig
    data: Any  # ImageSplit
    run_dir: Path
    device: torch.device
    precision: str
    world: int  # processes under torchrun (1 alone)
    main: bool  # this process writes the files
    # the networks and their optimisers, loss scalers and augmentation
    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module | None  # the moving average of G (training.ema), when configured
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scalers: dict[str, torch.amp.GradScaler]
    loss: Any  # losses.GANLoss
    ada: Any  # augment.AdaptiveAugment or None
    augment: Any  # images -> images, or None
    augment_gen: torch.Generator
    tracker: Any  # spectral.SpectralTracker or None
    faults: Any  # faults.FaultPolicy
    # where training stands
    step: int
    epoch: int
    batch_in_epoch: int
    steps_per_epoch: int
    total_steps: int
    elapsed: float
    epoch_start_state: torch.Tensor  # the epoch's shuffle generator state
    noise_gen: torch.Generator
    log: MetricLog
    warnings: list[dict[str, Any]]
    rollbacks: list[dict[str, Any]]
    _saved_step: int | None
    _finite_at: int | None
    data_hash: str  # Trainer: a cached property
    data_fingerprint: dict[str, Any]  # Trainer: a cached property

    # ---- health (ssd_lib.training.health) --------------------------------------------------------
    @property
    def checkpoint_stem(self) -> Path:
        return self.run_dir / "checkpoints" / "latest"

    def _check_finite(self) -> None:
        """Sync the log and raise ``TrainingDiverged`` if a logged loss or gradient norm since
        the last check, or any weight, buffer or optimiser moment now, is NaN or infinite.

        Under torchrun every rank calls this at the same steps and all of them raise when any
        one finds something (BatchNorm statistics may differ between ranks)."""
        self.log.sync()
        if self._finite_at == self.step and self.log.checked == self.log.synced:
            return  # checked at this step already (sync point, evaluation point, save)
        # Under fp16 an overflowing gradient is routine: the scaler skips that step.
        keys = ("loss_g", "loss_d") if self.precision == "fp16" else LOGGED_VALUES
        found = first_nonfinite(self.log.rows[self.log.checked : self.log.synced], keys)
        weight = first_nonfinite_weight(
            {"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d}
        )
        bad = found is not None or weight is not None
        if self.world > 1:
            anywhere = self._any_rank(bad)
            if anywhere and not bad:
                weight = "(found by another process)"
            bad = anywhere
        if not bad:
            self.log.checked, self._finite_at = self.log.synced, self.step
            return
        parts = []
        if found is not None:
            step, key, value = found
            parts.append(f"{key} = {value}")
        else:
            step = self.step
        if weight is not None:
            parts.append(f"weight {weight} is not finite")
        message = divergence_message(
            step,
            ", ".join(parts),
            self._saved_step,
            str(json_path(self.checkpoint_stem)),
            self.precision,
        )
        raise TrainingDiverged(message, step)

    def _any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process (one all-reduce; every rank must call)."""
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def _warn(self, warning: dict[str, Any] | None) -> None:
        if warning is not None:
            self.warnings.append(warning)
            log.warning("%s (step %d, %s)", warning["message"], warning["step"], self.run_dir)

    def _check_collapse(self) -> None:
        """Discriminator collapse in the rows synced since the last check."""
        if self.loss.watches_d_collapse:  # a WGAN critic has no accuracy or loss floor
            rows = self.log.rows[: self.log.synced]
            self._warn(d_collapse_warning(rows, self.warnings, self.log.collapse_checked))
        self.log.collapse_checked = self.log.synced

    def _roll_back(self, err: TrainingDiverged) -> None:
        """Reload the last checkpoint and go on with both learning rates times the factor."""
        lrs = [g["lr"] * self.faults.lr_factor for g in self.opt_g.param_groups]
        lrs += [g["lr"] * self.faults.lr_factor for g in self.opt_d.param_groups]
        earlier, noted = list(self.rollbacks), [w for w in self.warnings if w["kind"] == "rollback"]
        self.load(self.checkpoint_stem)
        # The checkpoint may predate earlier roll-backs to it: keep their records.
        self.warnings += [w for w in noted if w not in self.warnings]
        for group, lr in zip(self.opt_g.param_groups + self.opt_d.param_groups, lrs, strict=True):
            group["lr"] = lr
        entry = {
            "diverged_at": err.step,
            "resumed_from": self.step,
            "lr_g": self.opt_g.param_groups[0]["lr"],
            "lr_d": self.opt_d.param_groups[0]["lr"],
        }
        self.rollbacks = earlier + [entry]
        self._warn(
            {
                "kind": "rollback",
                "step": err.step,
                "message": (
                    f"non-finite values at step {err.step}: rolled back to the checkpoint of "
                    f"step {self.step}; learning rates now G {entry['lr_g']:.3g}, "
                    f"D {entry['lr_d']:.3g}"
                ),
            }
        )

    # ---- persistence ---------------------------------------------------------------------
    def _write_status(self, state: str, error: str | None = None, quiet: bool = False) -> None:
        """status.json; ``quiet`` (while already failing) ignores an error writing it."""
        if not self.main:
            return
        status = {
            "state": state,
            "step": self.step,
            "total_steps": self.total_steps,
            "epoch": self.epoch,
            "elapsed_s": round(self.elapsed, 3),
            "steps_per_epoch": self.steps_per_epoch,
            "processes": self.world,
            "precision": self.precision,
            "device": str(self.device),
        }
        if error is not None:
            status["error"] = error
        try:
            atomic_write_json(self.run_dir / "status.json", status)
        except OSError:
            if not quiet:
                raise

    def state_tensors(self) -> dict[str, torch.Tensor]:
        t = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        t.update({f"D.{k}": v for k, v in self.D.state_dict().items()})
        if self.G_ema is not None:
            t.update({f"G_ema.{k}": v for k, v in self.G_ema.state_dict().items()})
        t.update(optimizer_to_tensors(self.opt_g, "opt_g")[0])
        t.update(optimizer_to_tensors(self.opt_d, "opt_d")[0])
        t["rng.epoch_start"] = self.epoch_start_state
        t["rng.noise"] = self.noise_gen.get_state()
        t["rng.torch_cpu"] = torch.get_rng_state()
        if self.augment is not None:
            t["rng.augment"] = self.augment_gen.get_state()
        if self.device.type == "cuda":
            t["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        if self.tracker:
            t.update({f"tracker.{k}": v for k, v in self.tracker.v.items()})
        t.update(self.log.to_tensors())
        return t

    def state_digest(self) -> str:
        """SHA-256 of everything a checkpoint holds (weights, optimiser state, RNGs, history):
        two runs with equal digests have trained bit-identically."""
        self.log.sync()
        h = hashlib.sha256()
        for key, value in sorted(self.state_tensors().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def save(self) -> Path | None:
        """Write the checkpoint and history (the main process only; None elsewhere).

        Raises ``TrainingDiverged`` instead of saving a state with NaN or infinity in it, so
        the checkpoint on disk is always the last good one."""
        self._check_finite()
        self._saved_step = self.step
        if not self.main:
            return None
        meta = CheckpointMeta(
            config=self.cfg.to_dict(),
            step=self.step,
            epoch=self.epoch,
            batch_in_epoch=self.batch_in_epoch,
            total_steps=self.total_steps,
            elapsed_s=self.elapsed,
            history_columns=self.log.columns(),
            opt_g=optimizer_to_tensors(self.opt_g, "opt_g")[1],
            opt_d=optimizer_to_tensors(self.opt_d, "opt_d")[1],
            precision=self.precision,
            versions={"ssd_lib": __version__, "torch": torch.__version__},
            data={
                "n": len(self.data),
                "content_hash": self.data_hash,
                "fingerprint": self.data_fingerprint,
            },
            device=str(self.device),
            grad_scalers={k: v.state_dict() for k, v in self.scalers.items()},
            warnings=self.warnings,
            rollbacks=self.rollbacks,
            ada=self.ada.state_dict() if self.ada is not None else None,
        ).to_json()
        path = save_checkpoint(self.checkpoint_stem, self.state_tensors(), meta)
        self.log.write_csv(self.run_dir / "history.csv")
        atomic_write_json(self.run_dir / "warnings.json", self.warnings)
        return path

    def load(self, stem: str | Path) -> None:
        """Restore everything ``save`` wrote; training then continues bit-identically on CPU."""
        tensors, raw = load_checkpoint(stem)
        meta = CheckpointMeta.from_json(raw, stem)
        try:
            self._restore(tensors, meta, stem)
        except KeyError as err:  # a tensor the checkpoint should hold
            raise CheckpointError(
                f"checkpoint {json_path(stem)} lacks the entry {err}: it was not written by "
                "this project's trainer, or was edited; train a new run"
            ) from err

    def _restore(self, tensors: dict[str, torch.Tensor], meta: CheckpointMeta, stem: Any) -> None:
        try:
            saved = TrainConfig.from_dict(meta.config)
        except ConfigError as err:
            raise ConfigError(f"checkpoint {json_path(stem)}: {err}") from err
        if saved != self.cfg:
            raise ConfigError(
                f"checkpoint {stem} was made with a different config; "
                "start a new run directory or load it with its own config"
            )
        data = meta.data
        if data.get("content_hash") != self.data_hash:
            raise ConfigError(
                f"checkpoint {stem} was trained on other images ({data.get('n')} "
                f"images, hash {str(data.get('content_hash'))[:12]}) than the "
                f"{len(self.data)} given now; resume it with its own data"
            )
        if (meta.precision or self.precision) != self.precision:
            log.warning(
                "checkpoint %s was trained in %s; this machine continues in %s (precision=%r "
                "resolves differently here), so the run mixes the two",
                stem,
                meta.precision,
                self.precision,
                self.cfg.precision,
            )
        load_state_strict(self.G, split_prefix(tensors, "G"), f"{stem} [G]")
        load_state_strict(self.D, split_prefix(tensors, "D"), f"{stem} [D]")
        if self.G_ema is not None:
            load_state_strict(self.G_ema, split_prefix(tensors, "G_ema"), f"{stem} [G_ema]")
        optimizer_from_tensors(self.opt_g, tensors, meta.opt_g, "opt_g")
        optimizer_from_tensors(self.opt_d, tensors, meta.opt_d, "opt_d")
        self.epoch_start_state = tensors["rng.epoch_start"]
        self.noise_gen.set_state(tensors["rng.noise"])
        torch.set_rng_state(tensors["rng.torch_cpu"])
        if self.augment is not None:
            self.augment_gen.set_state(tensors["rng.augment"])
        if self.ada is not None:
            if meta.ada is None:
                raise CheckpointError(f"checkpoint {json_path(stem)} lacks the entry 'ada'")
            self.ada.load_state_dict(meta.ada)
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        for name, state in meta.grad_scalers.items():
            if state:  # empty when the run did not use fp16
                self.scalers[name].load_state_dict(state)
        if self.tracker:
            self.tracker.v = split_prefix(tensors, "tracker")
        self.step, self.epoch = meta.step, meta.epoch
        self.batch_in_epoch, self.elapsed = meta.batch_in_epoch, meta.elapsed_s
        self.log = MetricLog.from_tensors(tensors, meta.history_columns, self.step)
        self._saved_step, self._finite_at = self.step, None
        self.warnings = list(meta.warnings)
        self.rollbacks = list(meta.rollbacks)
