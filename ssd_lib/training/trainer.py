"""One training loop for every preset.

One iteration, as the release does it (``step_order="g_then_d"``)::

    z ~ N(0, I)
    G step: loss_G = BCE(D(G(z)), 1)                      -> update G
    D step: fake = G(z) again, with the updated G and the same z
            loss_D = scale * (BCE(D(x), 1) + BCE(D(fake), 0))   -> update D

and as most GAN code does it (``"d_then_g"``): fake = G(z) once, the D step on ``fake``
detached, then the G step on the same ``fake`` through the updated D.

Everything random comes from generators owned by the trainer (data order, z) or from the
global torch RNG seeded once (initial weights, StyleGAN noise); all of them are stored in the
checkpoint, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from ssd_lib.config import ConfigError, TrainConfig
from ssd_lib.data.cache import ImageSplit, PreparedDataset
from ssd_lib.generation.sampling import fixed_codes, generate
from ssd_lib.models import build_discriminator, build_generator
from ssd_lib.training.augment import AdaptiveAugment, diff_augment
from ssd_lib.training.devices import (
    AUTOCAST_DTYPES,
    rank_and_world,
    resolve_device,
    resolve_precision,
    stop_on_signals,
)
from ssd_lib.training.ema import ema_beta, make_ema, update_ema
from ssd_lib.training.health import (
    DIVERSITY_KEY,
    FaultPolicy,
    TrainingDiverged,
    g_collapse_warning,
    sample_diversity,
    structural_diversity,
)
from ssd_lib.training.lapgan_step import lapgan_step
from ssd_lib.training.losses import GANLoss, make_loss, r1_penalty
from ssd_lib.training.metric_log import MetricLog
from ssd_lib.training.runs import Run, default_runs_root, run_name
from ssd_lib.training.sigma_tracker import SpectralTracker
from ssd_lib.training.state import TrainerState
from ssd_lib.utils.atomic import atomic_write_json
from ssd_lib.utils.images import save_grid, uint8_to_float
from ssd_lib.utils.locks import locked
from ssd_lib.utils.progress import progress_bar as tqdm
from ssd_lib.utils.validate import check_int

log = logging.getLogger(__name__)


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    """The gradient's global 2-norm, as a tensor on the device (reading it would sync)."""
    norms = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    if not norms:
        return torch.zeros((), device=next(module.parameters()).device)
    return torch.linalg.vector_norm(torch.stack(norms))


class Trainer(TrainerState):
    """Holds the networks, optimisers, RNGs and history of one run; ``fit`` trains it.

    How it runs: logged scalars stay on the device and are read in one transfer every
    ``sync_every`` steps (a read per scalar and step would stall a GPU; the log is the same
    for any value); ``channels_last`` (default: on CUDA) stores images and convolution weights
    channels-last, the layout GPU convolution kernels prefer (other kernels, so other
    rounding); on CUDA the prepared uint8
    images are copied to the GPU once when they fit (``_images_for_training``), so a step
    moves only its codes z (drawn on the CPU, so that every device draws the same ones).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        data: ImageSplit,
        run_dir: str | Path,
        device: str | torch.device = "cpu",
        show_progress: bool = True,
        val: ImageSplit | None = None,
        sync_every: int = 10,
        channels_last: bool | None = None,
        on_nonfinite: str = "stop",
        rollback_lr_factor: float = 0.5,
        max_rollbacks: int = 3,
    ) -> None:
        self.cfg, self.data, self.run_dir = cfg, data, Path(run_dir)
        self.val = val  # held-out reals, for D's overfitting gap at each epoch end
        self.device = resolve_device(device)
        self.show_progress = show_progress
        self.sync_every = check_int("sync_every", sync_every, 1)
        self.faults = FaultPolicy(on_nonfinite, rollback_lr_factor, max_rollbacks)
        self.loss: GANLoss = make_loss(cfg)  # the GAN maths of a step (ssd_lib.training.losses)
        self.channels_last = self.device.type == "cuda" if channels_last is None else channels_last
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        torch.manual_seed(cfg.seed)  # initial weights (and StyleGAN's noise afterwards)
        self.G = build_generator(cfg).to(self.device, memory_format=self.memory_format).train()
        self.D = build_discriminator(cfg).to(self.device, memory_format=self.memory_format).train()
        # StyleGAN2's moving average of G (ssd_lib.training.ema), when asked for.
        self.G_ema = make_ema(self.G) if cfg.ema_half_life_images else None
        self.rank, self.world = rank_and_world()
        self.main = self.rank == 0  # only the main process writes files
        if self.world > 1:
            self._setup_ddp(cfg)
        else:
            self._G_run, self._D_run = self.G, self.D
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.epoch_start_state = torch.Generator().manual_seed(cfg.seed).get_state()
        self.fixed_z = fixed_codes(cfg)
        self._set_augmentation(cfg)
        convs = self.D.tracked_convs() if hasattr(self.D, "tracked_convs") else {}
        self.tracker = SpectralTracker(convs) if convs else None
        # What generator collapse is measured against (see ssd_lib.training.health).
        self.real_diversity = structural_diversity(data.images[:256]) if len(data) > 1 else 0.0
        self.step = self.epoch = self.batch_in_epoch = 0
        self.log = MetricLog()  # one row per step (ssd_lib.training.metric_log)
        self._saved_step: int | None = None  # the step of this run's checkpoint on disk
        self._finite_at: int | None = None  # the step whose weights were last found finite
        self.warnings: list[
            dict[str, Any]
        ] = []  # collapses and roll-backs (ssd_lib.training.health)
        self.rollbacks: list[dict[str, Any]] = []
        self.elapsed = 0.0
        n, b = len(data), cfg.batch_size
        if n < b and cfg.drop_last:
            raise ConfigError(
                f"TrainConfig.batch_size={b} exceeds the {n} training images "
                "while drop_last=True; lower batch_size"
            )
        # Several processes drop the last partial batch: every rank needs a full share.
        self.steps_per_epoch = n // b if cfg.drop_last or self.world > 1 else math.ceil(n / b)
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total
        self.precision = resolve_precision(cfg.precision, self.device)
        self.autocast = torch.autocast(
            self.device.type,
            dtype=AUTOCAST_DTYPES.get(self.precision, torch.bfloat16),
            enabled=self.precision in AUTOCAST_DTYPES,
        )
        # fp16 needs its loss scaled so small gradients do not underflow; one scaler per
        # network, since G and D step one after the other on separate losses.
        self.scalers = {
            name: torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
            for name in ("G", "D")
        }

    # The training images' identity, for the checkpoint: computed when first saved or checked
    # (about 2 s for 4,739 images), not at every construction.
    @functools.cached_property
    def data_hash(self) -> str:
        return self.data.content_hash()

    @functools.cached_property
    def data_fingerprint(self) -> dict[str, Any]:
        return self.data.fingerprint()  # the same images on another CPU

    def _set_augmentation(self, cfg: TrainConfig) -> None:
        """``self.augment``: what every image D sees goes through (None: nothing); ``self.ada``
        the adaptive controller of p when cfg.augment is "ada". Its own random stream, so
        turning augmentation on changes no other draw."""
        self.augment_gen = torch.Generator().manual_seed(cfg.seed + 3)
        self.ada = None
        self.augment = None
        if cfg.augment == "ada":
            self.ada = AdaptiveAugment(
                cfg.ada_target,
                cfg.ada_interval,
                cfg.ada_speed_images,
                policy=cfg.augment_policy,
                threshold=self.loss.threshold,
            )
            self.augment = lambda x: self.ada(x, self.augment_gen)
        elif cfg.augment == "diffaugment":
            self.augment = lambda x: diff_augment(
                x, cfg.augment_p, self.augment_gen, cfg.augment_policy
            )

    def _setup_ddp(self, cfg: TrainConfig) -> None:
        """DistributedDataParallel over ``self.world`` processes (torchrun); see ssd_lib.cli."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        if cfg.generator == "lapgan":
            raise ConfigError(
                "generator='lapgan' trains in one process only (its three discriminators are "
                "called level by level, outside DistributedDataParallel); run it without torchrun"
            )
        if not self.loss.supports_ddp:
            raise ConfigError(
                f"loss={cfg.loss!r} cannot train in several processes: its gradient penalty "
                "needs a double backward, which DistributedDataParallel does not support; "
                "train the stylegan preset in one process"
            )
        if cfg.batch_size % self.world:
            raise ConfigError(
                f"TrainConfig.batch_size={cfg.batch_size} must divide evenly among the "
                f"{self.world} processes"
            )
        if self.device.type == "cuda":  # batch statistics over the global batch
            self.G = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            self.D = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
        ids = [self.device.index] if self.device.type == "cuda" else None
        self._G_run, self._D_run = DDP(self.G, device_ids=ids), DDP(self.D, device_ids=ids)

    def _shard(self, x: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch (all of it in one process)."""
        return x if self.world == 1 else x.tensor_split(self.world)[self.rank]

    # ---- one iteration -------------------------------------------------------------------
    def _D(self, x: torch.Tensor, synced: bool = True) -> torch.Tensor:
        with self.autocast:
            return (self._D_run if synced else self.D)(x).float()

    def _G(self, z: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            return self._G_run(z)

    def _update(
        self, opt: torch.optim.Optimizer, loss: torch.Tensor, module: torch.nn.Module, net: str
    ) -> torch.Tensor:
        scaler = self.scalers[net]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # the logged norm is the true gradient's (a no-op unless fp16)
        norm = _grad_norm(module)
        scaler.step(opt)  # skipped (fp16 only) when the scaled gradient overflowed
        scaler.update()
        return norm

    def _g_step(self, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        self.D.requires_grad_(False)  # G's loss needs no gradients for D's weights
        try:
            # D's gradients are not needed here, so D runs without DDP's gradient sync. An
            # augmentation is differentiable: G learns through it, not to produce it.
            seen = fake if self.augment is None else self.augment(fake)
            loss = self.loss.generator(self._D(seen, synced=False))
            norm = self._update(self.opt_g, loss, self.G, "G")
        finally:
            self.D.requires_grad_(True)
        return {"loss_g": loss.detach(), "grad_norm_g": norm}

    def _d_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        r1_now = cfg.r1_gamma > 0 and self.step % cfg.r1_every == 0
        if r1_now:  # the gradient at the images as loaded, through any augmentation
            real = real.detach().requires_grad_(True)
        real_seen = real
        if self.augment is not None:  # reals and fakes alike (and WGAN-GP mixes those)
            real_seen, fake = self.augment(real), self.augment(fake)
        d_real, d_fake = self._D(real_seen), self._D(fake)
        if self.ada is not None:
            self.ada.observe(d_real)
        loss = self.loss.discriminator(d_real, d_fake, real_seen, fake, critic=self._D)
        extra = {}
        if r1_now:  # lazy R1: every r1_every steps, weighted by r1_every (StyleGAN2)
            r1 = r1_penalty(d_real, real)
            loss = loss + (cfg.r1_gamma / 2) * cfg.r1_every * r1
            extra["r1"] = r1.detach()
        norm = self._update(self.opt_d, loss, self.D, "D")
        threshold = self.loss.threshold
        d_real, d_fake = d_real.detach(), d_fake.detach()
        acc = 0.5 * ((d_real > threshold).float().mean() + (d_fake < threshold).float().mean())
        return {
            "loss_d": loss.detach(),
            "grad_norm_d": norm,
            "d_real": d_real.mean(),
            "d_fake": d_fake.mean(),
            "d_acc": acc,
            **extra,
        }

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One G update and one D update on a batch of reals in ``cfg.real_range``.

        Returns the logged statistics as 0-d tensors on the device (``float()`` reads one)."""
        real = real.contiguous(memory_format=self.memory_format)
        n = real.shape[0] * self.world  # draw the global batch's codes, keep this rank's
        z = self._shard(torch.randn(n, self.cfg.nz, generator=self.noise_gen)).to(self.device)
        if self.cfg.generator == "lapgan":  # three GANs, one per pyramid level
            stats = lapgan_step(self, real, z)
        elif self.cfg.step_order == "g_then_d":
            stats = self._g_step(self._G(z))
            # The release regenerates the fakes with the updated G, in train mode: G's
            # BatchNorm statistics advance a second time in this step, as in the release (kept
            # for fidelity). w_avg is ours (the release has none), so it advances once.
            tracks = getattr(self.G, "track_w", None)
            if tracks is not None:
                self.G.track_w = False
            try:
                with torch.no_grad():
                    fake = self._G(z)
            finally:
                if tracks is not None:
                    self.G.track_w = tracks
            stats.update(self._d_step(real, fake))
        else:
            fake = self._G(z)
            stats = self._d_step(real, fake.detach())
            stats.update(self._g_step(fake))
        if self.G_ema is not None:
            update_ema(
                self.G_ema, self.G, ema_beta(self.cfg.batch_size, self.cfg.ema_half_life_images)
            )
        if self.ada is not None:  # every process adapts p from its own share of the batch
            stats["augment_p"] = torch.tensor(self.ada.step(), dtype=torch.float64)
            if self.ada.log and self.ada.log[-1][0] == self.ada.steps:  # p was updated now
                # from the overfitting signal r_t of the steps since the last update
                stats["augment_rt"] = torch.tensor(self.ada.log[-1][2], dtype=torch.float64)
        if self.world > 1:  # log the mean over processes, as one process would see it
            import torch.distributed as dist

            keys = sorted(stats)
            values = torch.stack([stats[k].to(self.device, torch.float64) for k in keys])
            dist.all_reduce(values)  # on the device: NCCL reduces CUDA tensors only
            stats = dict(zip(keys, (values / self.world).unbind(), strict=True))
        return stats

    def _should_stop(self, flag: dict[str, Any]) -> bool:
        """Whether a signal asks to stop after this step.

        In several processes the signal may reach the ranks at different steps, and a rank
        that stops alone leaves the others waiting in a collective for ever; so the ranks
        agree, with one all-reduce every ``sync_every`` steps, and all stop at the same step.
        """
        if self.world == 1:
            return bool(flag.get("stop"))
        if self.step % self.sync_every:
            return False
        import torch.distributed as dist

        mine = torch.tensor([1.0 if flag.get("stop") else 0.0], device=self.device)
        dist.all_reduce(mine, op=dist.ReduceOp.MAX)
        if mine.item() and not flag.get("stop"):
            flag["stop"] = "a signal to another process"
        return bool(mine.item())

    def _images_for_training(self) -> torch.Tensor:
        """The uint8 training images where batches are cut from: on a CUDA device when they
        fit comfortably (a quarter of its free memory), else in host memory."""
        images = self.data.images
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if images.numel() * images.element_size() < free // 4:
                return images.to(self.device)
            log.info(
                "the training images do not fit on %s; batches are copied per step", self.device
            )
        return images

    # ---- the loop ------------------------------------------------------------------------
    def fit(self) -> str:
        """Train until ``total_steps``; returns "complete" or "interrupted" (Ctrl-C, SIGTERM).

        A NaN or infinity in a loss, gradient or weight raises ``TrainingDiverged`` (status
        "diverged"; the last good checkpoint stays), or with ``on_nonfinite="rollback"``
        reloads that checkpoint and continues with lower learning rates, up to
        ``max_rollbacks`` times. Any other error leaves status "failed" with its message.
        """
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._remove_leftovers()
            atomic_write_json(self.run_dir / "config.json", self.cfg.to_dict())
        flag: dict[str, Any] = {}
        # Ctrl-C and SIGTERM only set the flag, from here until the final status is written:
        # a second Ctrl-C cannot cut a checkpoint or a roll-back in half.
        with stop_on_signals(flag):
            try:
                if self.faults.rolls_back and self._saved_step is None:
                    self.save()  # a point to roll back to before the first regular checkpoint
                return self._fit_with_rollbacks(flag)
            except TrainingDiverged as err:
                self._write_status("diverged", error=str(err), quiet=True)
                raise
            except BaseException as err:
                self._write_status("failed", error=f"{type(err).__name__}: {err}", quiet=True)
                raise

    def _fit_with_rollbacks(self, flag: dict[str, Any]) -> str:
        while True:
            try:
                return self._fit_once(flag)
            except TrainingDiverged as err:
                if not self.faults.rolls_back:
                    raise
                if len(self.rollbacks) >= self.faults.max_rollbacks:  # over the whole run
                    err.args = (f"{err} ({len(self.rollbacks)} roll-backs did not help)",)
                    raise
                self._roll_back(err)

    def _remove_leftovers(self) -> None:
        """Temporary files of writes a killed process left in the run folder (nothing reads
        them; this process holds the run's lock, so no other writer is at work)."""
        for folder in (self.run_dir, self.run_dir / "samples"):
            for leftover in folder.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)

    def _fit_once(self, flag: dict[str, Any]) -> str:
        self._write_status("running")
        images = self._images_for_training()
        stopping = False
        self._clock = time.perf_counter()
        with self._progress_bar() as bar:
            while self.step < self.total_steps and not stopping:
                # ---- an epoch: the data order comes from the epoch's own generator state
                epoch_gen = torch.Generator()
                epoch_gen.set_state(self.epoch_start_state)
                perm = torch.randperm(len(self.data), generator=epoch_gen).to(images.device)
                while self.batch_in_epoch < self.steps_per_epoch and self.step < self.total_steps:
                    b, bs = self.batch_in_epoch, self.cfg.batch_size
                    batch = images[self._shard(perm[b * bs : (b + 1) * bs])].to(self.device)
                    self._one_step(batch, bar)
                    # A stop still completes this step's evaluation point, so that a resumed
                    # run logs exactly what an uninterrupted one does.
                    stopping = self._should_stop(flag)
                    if self.cfg.checkpoint_every and self.step % self.cfg.checkpoint_every == 0:
                        if self.batch_in_epoch < self.steps_per_epoch:
                            self._evaluation_point(f"step_{self.step:06d}.png")
                        else:  # the epoch's end is the evaluation point, below
                            self._check_finite()
                        self._checkpoint()
                    if stopping:
                        break
                # ---- the epoch's end: its evaluation point and a checkpoint
                if self.batch_in_epoch == self.steps_per_epoch:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    self.epoch_start_state = epoch_gen.get_state()
                    self._evaluation_point(f"epoch_{self.epoch:03d}.png")
                self._checkpoint()
            # ---- the end of this call: complete, or stopped by a signal
            state = "complete" if self.step >= self.total_steps else "interrupted"
            if self._saved_step == self.step:  # saved at this step already (epoch end)
                self._tick()
            else:
                self._checkpoint()
            final_grid = self.run_dir / "samples" / f"epoch_{self.epoch:03d}.png"
            if state == "complete" and not (self.batch_in_epoch == 0 and final_grid.exists()):
                self.save_samples(self.run_dir / "samples" / f"step_{self.step:06d}.png")
            self._write_status(state)
        if state == "interrupted":
            log.warning(
                "stopped by %s at step %d of %d; checkpoint saved in %s. To resume, run the "
                "same `ssd train ...` command with --resume, or call train() with the same config",
                flag["stop"],
                self.step,
                self.total_steps,
                self.run_dir,
            )
        return state

    def _one_step(self, batch: torch.Tensor, bar: Any) -> None:
        """Train on one batch of uint8 reals, log the step, and every ``sync_every`` steps
        read the log once: NaN and infinity, discriminator collapse, the progress bar."""
        stats = self.train_step(uint8_to_float(batch, self.cfg.real_range))
        self.step += 1
        self.batch_in_epoch += 1
        if self.tracker and self.step % self.cfg.spectral_every == 0:
            stats.update(self.tracker.measure())
        self.log.append({"step": self.step, "epoch": self.epoch, **stats})
        bar.update(1)
        if self.step % self.sync_every == 0 or self.step == self.total_steps:
            self._check_finite()
            self._check_collapse()
            row = self.log.last
            rate = bar.format_dict.get("rate")  # steps/s, tqdm's smoothed value
            bar.set_postfix(
                img_s=f"{rate * self.cfg.batch_size:.0f}" if rate else "?",
                loss_g=f"{row['loss_g']:.3f}",
                loss_d=f"{row['loss_d']:.3f}",
                refresh=False,
            )

    def _evaluation_point(self, grid_name: str) -> None:
        """D's train/val gap and a sample grid, logged on the last history row. Neither changes
        any training state, so a resumed run stays bit-identical."""
        self._check_finite()  # no sample grid from a diverged G
        self.log.add_to_last(self.discriminator_gap())
        self._sample_point(self.run_dir / "samples" / grid_name)

    def _tick(self) -> None:
        """Add the time since the last tick to ``elapsed`` (the run's training time)."""
        now = time.perf_counter()
        self.elapsed += now - self._clock
        self._clock = now

    def _checkpoint(self) -> None:
        self._tick()
        self.save()

    def _progress_bar(self) -> Any:
        return tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not (self.show_progress and self.main),
            desc=f"{self.cfg.preset}/{self.cfg.profile}",
            unit="step",
            dynamic_ncols=True,
        )

    @torch.no_grad()
    def discriminator_gap(self, n: int = 256) -> dict[str, float]:
        """Mean D output on the first ``n`` training reals and the first ``n`` held-out reals.

        D runs in eval mode (BatchNorm on running statistics, SN without a power iteration),
        so measuring changes no state; a D that memorises the training set scores training
        reals higher than held-out ones. Empty without a val split.
        """
        if self.val is None or len(self.val) == 0:
            return {}
        out = {}
        self.D.eval()
        try:
            for name, split in (("d_train_eval", self.data), ("d_val_eval", self.val)):
                x = uint8_to_float(split.images[:n], self.cfg.real_range).to(self.device)
                out[name] = float(self._D(x, synced=False).mean())
        finally:
            self.D.train()
        return out

    def save_samples(self, path: Path) -> Path | None:
        self._last_samples = None
        if not self.main:
            return None
        images = generate(self.G, self.fixed_z, self.cfg.real_range, device=self.device)
        self._last_samples = images
        return save_grid(images, path)  # GRID_NROW per row

    def _sample_point(self, path: Path) -> None:
        """A sample grid, with the samples' diversity logged and watched for collapse."""
        self.save_samples(path)
        if self._last_samples is None or len(self._last_samples) < 2:  # not the main process
            return
        value = structural_diversity(self._last_samples)
        self._warn(g_collapse_warning(self.log.rows, value, self.step, self.real_diversity))
        # The per-pixel spread too: runs trained before the check moved to the structural
        # spread logged only that, and notebook 01 compares like with like.
        per_pixel = sample_diversity(self._last_samples)
        self.log.add_to_last({DIVERSITY_KEY: value, "sample_diversity": per_pixel})


def train(
    cfg: TrainConfig,
    dataset: PreparedDataset | None = None,
    runs_root: str | Path | None = None,
    device: str | torch.device = "auto",
    resume: bool = True,
    show_progress: bool = True,
    on_nonfinite: str = "stop",
) -> Run:
    """Train ``cfg`` (or reuse its complete run) and return the ``Run``.

    ``dataset`` defaults to preparing ``cfg.dataset``; its name must match ``cfg.dataset``.
    An interrupted or unfinished run in the same folder is resumed unless ``resume=False``.
    The run folder is locked meanwhile: a second process asking for the same run waits, then
    reuses (or resumes) it. ``on_nonfinite``: see ``Trainer.fit``.
    """
    from ssd_lib.data import dataset_for

    dataset = dataset_for(cfg.dataset, dataset, f"TrainConfig(dataset={cfg.dataset!r})")
    run = Run(Path(runs_root or default_runs_root()) / run_name(cfg, dataset.content_hash))
    rank, world = rank_and_world()
    # Rank 0 alone locks (the other ranks of a torchrun job train the same run with it), and
    # they wait for it to hold the lock before they look at the folder, so that all ranks see
    # the same state. The lock file lives inside the run folder (.training.lock).
    with locked(run.path / "training") if rank == 0 else contextlib.nullcontext():
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        return _train_locked(cfg, dataset, run, device, resume, show_progress, on_nonfinite)


def _train_locked(
    cfg: TrainConfig,
    dataset: PreparedDataset,
    run: Run,
    device: str | torch.device,
    resume: bool,
    show_progress: bool,
    on_nonfinite: str,
) -> Run:
    if run.complete and resume:
        log.info("reusing the complete run %s", run.path)
        return run
    split = dataset.train.subset(cfg.data_fraction, cfg.subset_mode, seed=cfg.seed)
    trainer = Trainer(
        cfg,
        split,
        run.path,
        device=device,
        show_progress=show_progress,
        val=dataset.val,
        on_nonfinite=on_nonfinite,
    )
    if resume and run.checkpoint.with_suffix(".json").is_file():
        trainer.load(run.checkpoint)
        log.info("resuming %s at step %d", run.path, trainer.step)
    trainer.fit()
    return run
