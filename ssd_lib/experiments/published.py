"""Published runs: trained networks committed with the project, so that figures need no training.

The paper's budget (20 epochs) costs most of an hour per run on a two-core CPU, so the
notebooks do not train: they read the runs in ``published/``, made once by ``make train``
(this module's ``train`` command) and committed. Training stays one option away
(``make figures RUNS=local``).

    published/
      MANIFEST.json               one entry per run: its files with their SHA-256, the command,
                                  commit, machine, date and wall time that made it
      ssd-seed42/
        config.json status.json history.csv [warnings.json]   copied from the run folder
        generator.safetensors     G's weights in fp16 (or int8 with one fp16 scale per output
                                  slice); what that changes in the samples is measured at
                                  publication and stored in the manifest
        discriminator.safetensors only where a notebook needs D (the exact-SVD check of SN)
        samples/epoch_NNN.png     the top-left 4x4 images of a few per-epoch sample grids,
                                  where a notebook shows the run's progress
      ada_25-seed42/              a run beyond the paper (notebook 07), published without its
        config.json status.json   weights to keep the folder under 80 MB: the generator's
        history.csv               SHA-256 stays in the manifest, the history is thinned to
        samples/final.png         every 20th step and the evaluation points, 16 samples are
                                  kept as one PNG, and what notebook 07 shows of it was
                                  measured when it was published (published/measurements)

Nothing here is ever unpickled (safetensors and JSON only), and every file is checked against
its SHA-256 in the manifest before use: a missing or altered file is one error line naming it
and how to restore it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ssd_lib.models import build_discriminator, build_generator
from ssd_lib.training.checkpoint import load_checkpoint, load_state_strict, split_prefix
from ssd_lib.training.runs import Run, default_runs_root
from ssd_lib.utils.atomic import atomic_write_json, fsync_folder, read_json, sha256_file
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.hardware import cpu_flags, cpu_model, describe_machine
from ssd_lib.utils.locks import locked

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
MANIFEST = "MANIFEST.json"
MEASUREMENTS = "measurements"  # metrics.stored.FOLDER
FORMAT = 1
# The profile every published run was trained under, and the width of the StyleGAN baseline
# on a CPU: the widest whose run costs at most twice an SSD run (measured in
# docs/published_runs.md; the paper's full width is 47.6 M parameters and needs a GPU).
PROFILE = "paper"
CPU_STYLEGAN_WIDTH = 0.0625
WEIGHT_FORMATS = ("fp16", "int8")
GRID_CELLS = 4  # the progression figure shows the top-left 4x4 images of each grid
GRID_PANELS = 7


def default_root() -> Path:
    """``$SSD_PUBLISHED_DIR`` or the repository's ``published/``."""
    env = os.environ.get("SSD_PUBLISHED_DIR")
    return Path(env) if env else REPO / "published"


class PublishedRunError(SSDError, RuntimeError):
    """A published run is missing, incomplete or does not match its manifest."""


@dataclass(frozen=True)
class Planned:
    """One run of the published set: suite run ``name`` trained with ``seed``."""

    name: str
    seed: int = 42
    # int8 (with fp16 scales) moves a pixel by 0.24 of 255 levels on average against fp16's
    # 0.009 (measured on an SSD checkpoint, 256 samples, docs/published_runs.md) and halves
    # the size, which keeps the whole plan well under the folder's 80 MB.
    weights: str = "int8"
    discriminator: bool = False  # publish D too (a notebook needs it)
    grids: bool = False  # publish a few per-epoch sample grids (progression figures)
    # False: publish without the generator's weights (samples, thinned history and the
    # measurements notebook 07 reads instead; see the module docstring)
    generator: bool = True

    @property
    def key(self) -> str:
        return published_key(self.name, self.seed)


def published_key(name: str, seed: int) -> str:
    return f"{name}-seed{seed}"


# The published set, in training order: the runs the paper's claims rest on first, so that a
# training spread over several sittings publishes the most useful runs earliest.
PLAN: tuple[Planned, ...] = (
    Planned("ssd", 42, discriminator=True, grids=True),
    Planned("no_sn", 42, grids=True),
    Planned("ssd_25", 42),
    Planned("ssd_50", 42),
    Planned("dcgan", 42),
    Planned("no_adain", 42),
    Planned("stylegan", 42),
    Planned("ssd_75", 42),  # with the above: every run notebooks 01, 03 and 04 read
    Planned("ssd", 43),
    Planned("no_sn", 43),
    Planned("ssd_25_steps", 42),
    Planned("ssd", 44),
    Planned("no_sn", 44),
)


# The runs beyond the paper (notebook 07, ssd_lib.experiments.suite.BEYOND), published without
# their weights: 25 % of the data first (a quarter of the cost), then all of it, then 25 % for
# the full run's steps. Their baselines with the release's recipe are ssd, ssd_25 and
# ssd_25_steps in PLAN.
BEYOND_PLAN: tuple[Planned, ...] = tuple(
    Planned(f"{option}{suffix}", 42, generator=False)
    for suffix in ("_25", "", "_25_steps")
    for option in ("corrected", "demod", "diffaugment", "ada", "r1_ema", "lapgan")
)
PLANS = {"paper": PLAN, "beyond": BEYOND_PLAN}


def planned(key: str) -> Planned:
    for p in PLAN + BEYOND_PLAN:
        if p.key == key:
            return p
    known = [p.key for p in PLAN + BEYOND_PLAN]
    raise KeyError(f"{key!r} is not in the published plans; planned: {known}")


# --- weights on disk ----------------------------------------------------------------------


def pack_state(state: dict[str, torch.Tensor], weights: str) -> dict[str, torch.Tensor]:
    """A module's state in the published format: floating tensors in fp16, or (``int8``)
    tensors of two or more dimensions as int8 with one fp16 scale per slice of dim 0."""
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights={weights!r} is unknown; known: {list(WEIGHT_FORMATS)}")
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        t = t.detach().cpu()
        if not t.is_floating_point():
            out[name] = t.contiguous().clone()
        elif weights == "int8" and t.dim() >= 2:
            flat = t.float().reshape(t.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            scale16 = scale.half()
            q = (flat / scale16.float()[:, None]).round().clamp(-127, 127).to(torch.int8)
            out[f"{name}.int8"] = q.reshape(t.shape).contiguous()
            out[f"{name}.scale"] = scale16.contiguous()
        else:
            out[name] = t.half().contiguous().clone()
    return out


def unpack_state(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fp32 state ``pack_state`` stored (integer buffers unchanged)."""
    state: dict[str, torch.Tensor] = {}
    for name, t in packed.items():
        if name.endswith(".scale"):
            continue
        if name.endswith(".int8"):
            base = name[: -len(".int8")]
            scale = packed[f"{base}.scale"].float()
            shape = [-1] + [1] * (t.dim() - 1)
            state[base] = t.float() * scale.reshape(shape)
        elif t.is_floating_point():
            state[name] = t.float()
        else:
            state[name] = t
    return state


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return unpack_state(load_file(str(path)))
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        raise PublishedRunError(f"{path} is not a readable published weight file: {err}") from err


# --- reading ------------------------------------------------------------------------------


def read_manifest(root: str | Path | None = None) -> dict[str, Any]:
    path = Path(root or default_root()) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "runs": {}}
    advice = f"restore it with `git checkout -- {path}`"
    manifest = read_json(path, PublishedRunError, advice)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), dict):
        raise PublishedRunError(f"{path} is not a published-runs manifest; {advice}")
    return manifest


def _restore_advice(path: Path, key: str) -> str:
    return (
        f"restore it with `git checkout -- {path}`, or retrain and republish the run with "
        f"`make train ONLY={key}`"
    )


def verify(path: Path, entry: dict[str, Any]) -> None:
    """Check every file of a published run against its manifest entry; raises
    ``PublishedRunError`` naming the first missing or altered file."""
    key = path.name
    for rel, digest in entry["files"].items():
        f = path / rel
        if not f.is_file():
            raise PublishedRunError(f"published file {f} is missing; {_restore_advice(f, key)}")
        if sha256_file(f) != digest:
            raise PublishedRunError(
                f"published file {f} does not match its SHA-256 in {path.parent / MANIFEST} "
                f"(altered or damaged); {_restore_advice(f, key)}"
            )


def weights_id_of(key: str, entry: dict[str, Any]) -> str:
    """``PublishedRun.weights_id`` from the manifest entry alone, without opening the run."""
    digest = entry["files"].get("generator.safetensors") or entry["generator_sha256"]
    return f"{key}/generator.safetensors@{digest[:16]}"


class PublishedRun(Run):
    """A committed run: read-only files, checked against the manifest when opened.

    It answers like a ``Run`` (config, status, history, warnings, sample grids, the
    generator); caches the analyses write go to ``work_dir`` under the runs folder instead."""

    def __init__(self, path: str | Path, entry: dict[str, Any], runs_root: Path | None = None):
        super().__init__(path)
        self.entry = entry
        verify(self.path, entry)
        self._work = Path(runs_root or default_runs_root()) / "published" / self.path.name

    def __repr__(self) -> str:
        return f"PublishedRun({str(self.path)!r}, step={self.status.get('step')})"

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def work_dir(self) -> Path:
        return self._work

    @property
    def checkpoint(self) -> Path:
        raise PublishedRunError(
            f"{self.path} is a published run: it has no training checkpoint, only "
            "generator.safetensors (load_generator) and, where published, "
            "discriminator.safetensors (load_discriminator)"
        )

    @property
    def has_generator(self) -> bool:
        """False for a run published without its weights (``Planned.generator``)."""
        return "generator.safetensors" in self.entry["files"]

    def weights_id(self) -> str:
        """The published generator file and the start of its SHA-256 (recorded in the
        manifest also when the file itself was not published)."""
        return weights_id_of(self.path.name, self.entry)

    def label(self) -> str:
        cfg, st = self.config, self.status
        return (
            f"dataset={cfg.dataset} preset={cfg.preset} profile={cfg.profile} "
            f"seed={cfg.seed} checkpoint=published/{self.path.name}@step{st.get('step', '?')} "
            f"({self.entry['weights']} weights)"
        )

    def grid_layout(self) -> tuple[int, int]:
        """Published grids keep the top-left GRID_CELLS x GRID_CELLS images (``_grid_crops``)."""
        return GRID_CELLS * GRID_CELLS, GRID_CELLS

    def load_generator(self, device: str | torch.device = "cpu", ema: bool = True) -> nn.Module:
        """The published generator: the moving average for a run that kept one (the only
        weights published for it; ``ema=False`` is refused there), else G."""
        if not ema and self.config.ema_half_life_images:
            raise PublishedRunError(
                f"{self.path.name} kept a moving average of G and only that was published; "
                "G's own weights are in the run's training checkpoint (retrain it with "
                f"`make train ONLY={self.path.name}`)"
            )
        if not self.has_generator:
            raise PublishedRunError(
                f"{self.path.name} was published without its generator's weights (to keep "
                f"published/ under 80 MB): its samples ({self.path / FINAL_SAMPLES}) and the "
                "numbers measured when it was published (published/measurements) are "
                f"committed; for the weights, retrain it with `make train ONLY={self.path.name}`"
            )
        g = build_generator(self.config)
        f = self.path / "generator.safetensors"
        load_state_strict(g, _load_weights(f), str(f))
        return g.to(device).eval()

    def load_discriminator(self, device: str | torch.device = "cpu") -> nn.Module:
        f = self.path / "discriminator.safetensors"
        if "discriminator.safetensors" not in self.entry["files"]:
            runs = read_manifest(self.path.parent)["runs"]
            have = [k for k, e in runs.items() if "discriminator.safetensors" in e["files"]]
            raise PublishedRunError(
                f"{self.path.name} was published without its discriminator; published with "
                f"one: {have}"
            )
        d = build_discriminator(self.config)
        load_state_strict(d, _load_weights(f), str(f))
        return d.to(device).eval()


def trained_on_other_images(run: Any, dataset: Any) -> str:
    """ "" if the published ``run`` was trained on ``dataset``'s images (for a Table 2 run, the
    subset its config selects), else what differs. The images count as the same when their
    hash matches or, with the fingerprint the entry records, when they differ only by the
    rounding of the embedded renderer on another CPU (``ImageSplit.differs_from``)."""
    cfg = run.config
    if cfg.dataset != dataset.name:
        return f"dataset {cfg.dataset!r}, here {dataset.name!r}"
    entry = getattr(run, "entry", {}) or {}
    split = dataset.train.subset(cfg.data_fraction, cfg.subset_mode, seed=cfg.seed)
    return split.differs_from(
        entry.get("train_split_hash", ""), entry.get("train_split_fingerprint")
    )


def check_trained_on(run: Any, dataset: Any, advice: str = "use run_source='local'") -> None:
    """Refuse a published run trained on other images than ``dataset``'s."""
    differs = trained_on_other_images(run, dataset)
    if differs:
        raise PublishedRunError(
            f"the published run {run.path.name} was trained on other images than the "
            f"dataset {dataset.name!r} here ({differs}); {advice} to train on this one"
        )


def load_published(
    name: str, seed: int = 42, root: str | Path | None = None, runs_root: Path | None = None
) -> PublishedRun:
    """The published run of suite run ``name`` trained with ``seed`` (hash-checked)."""
    root = Path(root or default_root())
    key = published_key(name, seed)
    entry = read_manifest(root)["runs"].get(key)
    if entry is None:
        raise PublishedRunError(
            f"no published run {key!r} in {root / MANIFEST}; train and publish it with "
            f"`make train ONLY={key}` (published: {sorted(read_manifest(root)['runs'])})"
        )
    return PublishedRun(root / key, entry, runs_root)


def load_key(key: str, root: str | Path | None = None) -> PublishedRun:
    """Any published entry by its key (e.g. the lesson's snapshot ``ssd-seed42-step447``)."""
    root = Path(root or default_root())
    entry = read_manifest(root)["runs"].get(key)
    if entry is None:
        raise PublishedRunError(
            f"no published entry {key!r} in {root / MANIFEST}; known: "
            f"{sorted(read_manifest(root)['runs'])}"
        )
    return PublishedRun(root / key, entry)


def published_seeds(name: str, root: str | Path | None = None) -> dict[int, PublishedRun]:
    """Every published seed of suite run ``name``: seed -> run (hash-checked)."""
    root = Path(root or default_root())
    out = {}
    for key, entry in sorted(read_manifest(root)["runs"].items()):
        if entry.get("run") == name:
            out[int(entry["train_seed"])] = PublishedRun(root / key, entry)
    return dict(sorted(out.items()))


def check_all(root: str | Path | None = None) -> list[str]:
    """Every problem with the published folder, one line each (empty when all is well)."""
    root = Path(root or default_root())
    problems = []
    manifest = read_manifest(root)
    for key, entry in sorted(manifest["runs"].items()):
        try:
            verify(root / key, entry)
        except PublishedRunError as err:
            problems.append(str(err))
    # measurements/: numbers measured on the runs (ssd_lib.metrics.stored), not a run
    listed = set(manifest["runs"]) | {MEASUREMENTS}
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.is_dir() and not p.name.startswith(".") and p.name not in listed:
            problems.append(f"{p} is not in {root / MANIFEST}; remove it or publish it again")
    return problems


FACTOR_NET_RUN = "toy-factor-net"
# What a run published without its weights keeps of its samples: LIGHT_SAMPLES images at the
# codes ``sample_z(LIGHT_SAMPLES, z_dim, 0)``, tiled 4 x 4 without padding.
FINAL_SAMPLES = "samples/final.png"
LIGHT_SAMPLES = 16
LIGHT_HISTORY_EVERY = 20


def read_final_samples(run: PublishedRun) -> torch.Tensor:
    """The samples a run published without weights keeps: uint8 (16, 3, 64, 64)."""
    with Image.open(run.path / FINAL_SAMPLES) as im:
        tiles = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
    rows = tiles.unflatten(1, (-1, 64)).unflatten(3, (-1, 64))  # (3, r, 64, c, 64)
    return rows.permute(1, 3, 0, 2, 4).flatten(0, 1).contiguous()


def factor_net_stem(
    stem_name: str, root: str | Path | None = None
) -> tuple[Path | None, dict[str, Any] | None]:
    """The published copy of the toy factor net cached as ``stem_name`` (e.g.
    ``factor_net_s0``), hash-checked, and the fingerprint of the dataset it was made for;
    ``(None, None)`` when none is published. ``metrics.toy`` loads it only if it was made for
    the dataset (up to another CPU's rounding) and recipe at hand."""
    root = Path(root or default_root())
    key = f"{FACTOR_NET_RUN}-{stem_name.removeprefix('factor_net_')}"
    manifest = read_manifest(root) if (root / MANIFEST).is_file() else {"runs": {}}
    entry = manifest["runs"].get(key)
    if entry is None:
        return None, None
    verify(root / key, entry)
    return root / key / stem_name, entry.get("dataset_fingerprint")


# --- writing ------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "ssd_lib"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted ssd_lib changes" if dirty else "")


def machine_record() -> dict[str, Any]:
    """What ``lscpu`` says about this CPU (model and flags), with the rest of
    ``describe_machine``."""
    return {**describe_machine(), "cpu": cpu_model(), "flags": " ".join(sorted(cpu_flags()))}


def measure_weight_change(
    original: nn.Module, published: nn.Module, real_range: str, n: int = 256, seed: int = 0
) -> dict[str, Any]:
    """What storing the weights changed in the samples: both generators draw ``n`` images from
    the same codes; the differences are in 8-bit pixel levels (0-255)."""
    from ssd_lib.generation.sampling import generate, sample_z

    z = sample_z(n, original.z_dim, seed)
    a = generate(original.eval(), z, real_range).int()
    b = generate(published.eval(), z, real_range).int()
    diff = (a - b).abs().float()
    return {
        "n_samples": n,
        "z_seed": seed,
        "mean_abs_pixel_levels": round(float(diff.mean()), 4),
        "max_abs_pixel_levels": int(diff.max()),
        "pixels_changed_fraction": round(float((diff > 0).float().mean()), 4),
    }


def _grid_crops(run: Run, out: Path) -> list[str]:
    """Crop the top-left GRID_CELLS x GRID_CELLS images of up to GRID_PANELS evenly spaced
    sample grids (the first and last always) into ``out``."""
    from ssd_lib.analysis.samples import GRID_PAD

    grids = run.sample_grids()
    if not grids:
        return []
    pick = sorted(set(np.linspace(0, len(grids) - 1, GRID_PANELS).round().astype(int)))
    edge = GRID_PAD + GRID_CELLS * (64 + GRID_PAD)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i in pick:
        with Image.open(grids[i]) as im:
            im.convert("RGB").crop((0, 0, edge, edge)).save(out / grids[i].name, optimize=True)
        names.append(f"samples/{grids[i].name}")
    return names


def _stage(root: Path, key: str) -> Path:
    staging = root / f".staging-{key}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def _write_networks(
    staging: Path, cfg: Any, tensors: dict[str, torch.Tensor], weights: str, with_d: bool
) -> dict[str, Any]:
    """Write G (in ``weights``) and, if asked, D (fp16) into ``staging``; return what the
    stored precision changes in G's samples (``measure_weight_change``). A run that kept a
    moving average of G publishes the average, which is what its samples and metrics use."""
    ema = any(k.startswith("G_ema.") for k in tensors)
    g_state = split_prefix(tensors, "G_ema" if ema else "G")
    save_file(pack_state(g_state, weights), str(staging / "generator.safetensors"))
    if with_d:
        d_state = split_prefix(tensors, "D")
        save_file(pack_state(d_state, "fp16"), str(staging / "discriminator.safetensors"))
    original = build_generator(cfg)
    load_state_strict(original, g_state, "checkpoint G")
    stored = build_generator(cfg)
    load_state_strict(stored, _load_weights(staging / "generator.safetensors"), "staged G")
    return measure_weight_change(original, stored, cfg.real_range)


def _source_fields(cfg: Any, meta: dict[str, Any], source: Path) -> dict[str, Any]:
    """What identifies the checkpoint a published entry was made from."""
    return {
        "train_seed": cfg.seed,
        "profile": cfg.profile,
        "dataset": cfg.dataset,
        "train_split_hash": meta.get("data", {}).get("content_hash", ""),
        "train_split_fingerprint": meta.get("data", {}).get("fingerprint"),
        "source_run": source.name,
        "checkpoint_sha256": meta["tensors_sha256"],
    }


def _commit(
    root: Path, key: str, staging: Path, manifest: dict[str, Any], entry: dict[str, Any]
) -> Path:
    """Record the staged files' hashes and provenance in ``entry``, move the folder into
    place (replacing an older copy) and write the manifest. Called holding the manifest lock."""
    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    entry.update(
        files={rel: sha256_file(staging / rel) for rel in files},
        bytes=sum((staging / rel).stat().st_size for rel in files),
        commit=git_commit(),
        machine=machine_record(),
        published_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    final = _move_into_place(root, key, staging, manifest, entry)
    log.info("published %s (%.1f MB)", key, entry["bytes"] / 1e6)
    return final


def _move_into_place(
    root: Path, key: str, staging: Path, manifest: dict[str, Any], entry: dict[str, Any]
) -> Path:
    """Replace ``root/key`` by ``staging`` and write ``manifest`` with ``entry`` under
    ``key``. Called holding the manifest lock."""
    final, old = root / key, root / f".old-{key}"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    fsync_folder(root)
    manifest["format"] = FORMAT
    manifest["runs"] = dict(sorted({**manifest["runs"], key: entry}.items()))
    atomic_write_json(root / MANIFEST, manifest)
    shutil.rmtree(old, ignore_errors=True)
    return final


def bring(
    keys: list[str], source: str | Path, root: str | Path | None = None, force: bool = False
) -> list[str]:
    """Copy the published runs ``keys`` from another published folder ``source`` (a second
    checkout or worktree that trained them while this one was busy, or another machine's
    copy) into ``root``: each run's files, checked against ``source``'s manifest before and
    after the copy, its manifest entry as it stands there, and its records in the measurement
    stores (``published/measurements``) for exactly those weights, no others. A key already
    here with another entry is refused unless ``force``. Every run is staged and checked
    before any is moved into place, and the records go in before the runs, so a run never
    sits in the manifest without its measurements. Returns the keys brought."""
    from ssd_lib.metrics.stored import MeasurementStore

    source, root = Path(source), Path(root or default_root())
    if source.resolve() == root.resolve():
        raise PublishedRunError(f"{source} is the folder to bring the runs into")
    theirs = read_manifest(source)["runs"]
    unknown = [k for k in keys if k not in theirs]
    if not keys or unknown:
        raise PublishedRunError(
            f"not published in {source / MANIFEST}: {unknown or 'no keys given'}; "
            f"published there: {sorted(theirs)}"
        )
    for key in keys:
        verify(source / key, theirs[key])
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / MANIFEST):
        manifest = read_manifest(root)
        clash = [k for k in keys if manifest["runs"].get(k, theirs[k]) != theirs[k]]
        if clash and not force:
            raise PublishedRunError(
                f"{clash} already published in {root} with other contents; pass --force to "
                "replace them"
            )
        staged: dict[str, Path] = {}
        try:
            for key in keys:
                staged[key] = staging = _stage(root, key)
                for rel in theirs[key]["files"]:
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source / key / rel, staging / rel)
                verify(staging, theirs[key])
            weights = {weights_id_of(k, theirs[k]) for k in keys}  # verified above
            for store in sorted((source / MEASUREMENTS).glob("*.json")):
                records = MeasurementStore(store.stem, source / MEASUREMENTS).records()
                mine = {d: r for d, r in records.items() if r.get("weights") in weights}
                if mine:
                    MeasurementStore(store.stem, root / MEASUREMENTS).merge(mine)
            for key in keys:
                _move_into_place(root, key, staged.pop(key), manifest, dict(theirs[key]))
                log.info("brought %s from %s", key, source)
        finally:
            for staging in staged.values():  # not moved into place: leave nothing behind
                shutil.rmtree(staging, ignore_errors=True)
    return list(keys)


def publish_run(
    run: Run,
    plan: Planned,
    root: str | Path | None = None,
    command: str = "",
    force: bool = False,
    measure: Callable[[Any], Any] | None = None,
) -> Path:
    """Copy what the notebooks need of the complete ``run`` into ``root/<key>`` and record it
    in the manifest. Refuses an incomplete run, and an existing entry unless ``force``. A plan
    without the generator ends with ``strip_generator`` (``measure``: see there)."""
    root = Path(root or default_root())
    if not run.complete:
        raise PublishedRunError(f"{run.path} is not complete (state {run.status.get('state')!r})")
    cfg = run.config
    key = plan.key
    if cfg.seed != plan.seed:
        raise PublishedRunError(f"{run.path} was trained with seed {cfg.seed}, not {plan.seed}")
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / MANIFEST):
        manifest = read_manifest(root)
        if key in manifest["runs"] and not force:
            raise PublishedRunError(f"{key} is already published; pass force=True to replace it")
        staging = _stage(root, key)
        for name in ("config.json", "status.json", "history.csv", "warnings.json"):
            if (run.path / name).is_file():
                shutil.copyfile(run.path / name, staging / name)
        if not plan.generator:
            _thin_history(run.path / "history.csv", staging / "history.csv", LIGHT_HISTORY_EVERY)
        tensors, meta = load_checkpoint(run.checkpoint)
        change = _write_networks(staging, cfg, tensors, plan.weights, plan.discriminator)
        status = run.status
        entry = {
            "run": plan.name,
            "title": _title(plan.name),
            **_source_fields(cfg, meta, run.path),
            "step": status.get("step"),
            "train_wall_s": round(float(status.get("elapsed_s", 0.0)), 1),
            "weights": plan.weights,
            "discriminator": "fp16" if plan.discriminator else None,
            "weight_change": change,
            "grids": _grid_crops(run, staging / "samples") if plan.grids else [],
            "command": command or f"python -m ssd_lib.experiments.published train --only {key}",
        }
        path = _commit(root, key, staging, manifest, entry)
    if not plan.generator:
        strip_generator(key, root, measure)
    return path


def _thin_history(src: Path, dst: Path, every: int) -> None:
    """The rows of every ``every``-th step, the last row, and every row with a value logged
    only at evaluation points (D's train/val gap, the sample diversity)."""
    import csv

    with open(src, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    evaluated = [i for i, h in enumerate(header) if h in EVALUATION_COLUMNS]
    kept = [
        r
        for j, r in enumerate(body)
        if int(float(r[0])) % every == 0
        or j == len(body) - 1
        or any(i < len(r) and r[i] != "" for i in evaluated)
    ]
    with open(dst, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *kept])


EVALUATION_COLUMNS = ("d_train_eval", "d_val_eval", "sample_diversity", "structural_diversity")


def strip_generator(
    key: str, root: str | Path | None = None, measure: Callable[[Any], Any] | None = None
) -> None:
    """Turn the published run ``key`` into one without its generator's weights: first measure
    what notebook 07 shows of it (``analysis.beyond.measure_for_publication``, into the
    committed ``published/measurements``) and keep LIGHT_SAMPLES samples as
    ``samples/final.png``, then delete ``generator.safetensors``, keeping its SHA-256 in the
    manifest (the measurements are keyed by it). ``measure(run)``: what to measure instead
    (tests). Safe to call again after an interruption."""
    from ssd_lib.analysis.beyond import measure_for_publication
    from ssd_lib.generation.sampling import generate, sample_z
    from ssd_lib.metrics.stored import publish_local

    root = Path(root or default_root())
    run = load_key(key, root)
    if not run.has_generator:
        return
    (measure or measure_for_publication)(run)
    publish_local(run_key=key, into=root / MEASUREMENTS)
    g = run.load_generator()
    images = generate(g, sample_z(LIGHT_SAMPLES, g.z_dim, 0), run.config.real_range)
    side = int(LIGHT_SAMPLES**0.5)
    tiles = images.unflatten(0, (side, side)).permute(2, 0, 3, 1, 4).flatten(3, 4).flatten(1, 2)
    with locked(root / MANIFEST):
        manifest = read_manifest(root)
        entry = manifest["runs"][key]
        path = root / key
        (path / FINAL_SAMPLES).parent.mkdir(exist_ok=True)
        tmp = path / "samples" / ".final.png.tmp"
        Image.fromarray(tiles.permute(1, 2, 0).numpy()).save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path / FINAL_SAMPLES)
        entry["files"][FINAL_SAMPLES] = sha256_file(path / FINAL_SAMPLES)
        entry["generator_sha256"] = entry["files"].pop("generator.safetensors")
        entry["files"] = dict(sorted(entry["files"].items()))
        entry["bytes"] = sum((path / rel).stat().st_size for rel in entry["files"])
        atomic_write_json(root / MANIFEST, manifest)
        (path / "generator.safetensors").unlink()


def publish_snapshot(
    run_dir: str | Path, of: str, root: str | Path | None = None, command: str = ""
) -> Path:
    """Publish the checkpoint in ``run_dir`` (a copy of a run folder taken while it trained)
    as ``<of>-step<N>``: generator (int8) and discriminator (fp16), config, the history up to
    that step. The lesson notebooks train on from it for a few minutes."""
    import csv

    from ssd_lib.config import TrainConfig

    run_dir, root = Path(run_dir), Path(root or default_root())
    tensors, meta = load_checkpoint(run_dir / "checkpoints" / "latest")
    cfg = TrainConfig.from_dict(meta["config"])
    step = int(meta["step"])
    key = f"{of}-step{step}"
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / MANIFEST):
        manifest = read_manifest(root)
        if key in manifest["runs"]:
            raise PublishedRunError(f"{key} is already published")
        staging = _stage(root, key)
        atomic_write_json(staging / "config.json", cfg.to_dict())
        status = {
            "state": "snapshot",
            "step": step,
            "epoch": meta["epoch"],
            "elapsed_s": round(float(meta["elapsed_s"]), 3),
            "total_steps": meta.get("total_steps"),
            "steps_per_epoch": meta.get("total_steps", 0) // max(1, cfg.epochs),
        }
        atomic_write_json(staging / "status.json", status)
        with open(run_dir / "history.csv", newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if int(float(r[0])) <= step]
        with open(staging / "history.csv", "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(kept)
        entry = {
            "run": f"{of}-snapshot",
            "snapshot_of": of,
            "title": f"{_title(of.split('-seed')[0])}, snapshot at step {step}",
            **_source_fields(cfg, meta, run_dir),
            "step": step,
            "train_wall_s": status["elapsed_s"],
            "weights": "int8",
            "discriminator": "fp16",
            "weight_change": _write_networks(staging, cfg, tensors, "int8", True),
            "grids": [],
            "command": command or "ssd_lib.experiments.published.publish_snapshot",
        }
        return _commit(root, key, staging, manifest, entry)


def publish_factor_net(result: Any, root: str | Path | None = None, command: str = "") -> Path:
    """Publish the toy factor net ``result`` (a ``metrics.toy.FactorNetResult`` loaded from or
    saved to its cache) beside the runs, so that every machine measures the toy metrics with
    the same weights and none spends minutes training it."""
    root = Path(root or default_root())
    stem = Path(result.path)
    key = f"{FACTOR_NET_RUN}-{stem.name.removeprefix('factor_net_')}"
    meta = json.loads(stem.with_suffix(".json").read_text())
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / MANIFEST):
        manifest = read_manifest(root)
        staging = _stage(root, key)
        for f in (stem.with_suffix(".json"), stem.parent / meta["tensors_file"]):
            shutil.copyfile(f, staging / f.name)
        entry = {
            "run": FACTOR_NET_RUN,
            "title": "toy factor net of the toy metrics (FD-toy, factor coverage, probes)",
            "dataset": meta["dataset_name"],
            "dataset_hash": meta["dataset_hash"],
            "dataset_fingerprint": meta.get("dataset_fingerprint"),
            "train_seed": meta["seed"],
            "train_config": meta["train_config"],
            "train_wall_s": round(float(meta["train_seconds"]), 1),
            "scores": meta["scores"],
            "command": command or "ssd_lib.experiments.published.publish_factor_net",
        }
        return _commit(root, key, staging, manifest, entry)


def _title(name: str) -> str:
    from ssd_lib.experiments.suite import ALL_RUNS

    title = ALL_RUNS[name].title
    if name == "stylegan":
        title += f" (1/{round(1 / CPU_STYLEGAN_WIDTH)} width)"
    return title


def folder_size(root: str | Path | None = None) -> int:
    root = Path(root or default_root())
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# --- the train command --------------------------------------------------------------------


def train_and_publish(
    plans: list[Planned],
    device: str = "auto",
    runs_root: str | Path | None = None,
    root: str | Path | None = None,
    command: str = "",
    show_progress: bool = True,
) -> list[str]:
    """Train each planned run at the paper's budget on the embedded data (resuming an
    interrupted one) and publish it as soon as it is complete. Already published runs are
    skipped. Returns the keys published now."""
    from ssd_lib.data import prepare_dataset
    from ssd_lib.experiments.suite import train_suite

    root = Path(root or default_root())
    done = []
    ds = prepare_dataset("embedded")
    for i, plan in enumerate(plans, 1):
        if plan.key in read_manifest(root)["runs"]:
            if not plan.generator:  # finish a strip an interruption cut short (a no-op if done)
                strip_generator(plan.key, root)
            print(f"[{i}/{len(plans)}] {plan.key}: published already, skipped", flush=True)
            continue
        print(f"[{i}/{len(plans)}] {plan.key}: training (resumes if interrupted)", flush=True)
        t = time.perf_counter()
        runs = train_suite(
            ds,
            PROFILE,
            device,
            names=[plan.name],
            runs_root=runs_root,
            show_progress=show_progress,
            train_seed=plan.seed,
            stylegan_width=CPU_STYLEGAN_WIDTH,
        )
        run = runs[plan.name]
        if plan.key in read_manifest(root)["runs"]:  # another process published it meanwhile
            print(f"[{i}/{len(plans)}] {plan.key}: published by another process", flush=True)
            continue
        publish_run(run, plan, root, command=command)
        entry = read_manifest(root)["runs"][plan.key]
        print(
            f"[{i}/{len(plans)}] {plan.key}: published to {root / plan.key} "
            f"({entry['bytes'] / 1e6:.1f} MB; trained {entry['train_wall_s'] / 60:.1f} min in "
            f"all, {(time.perf_counter() - t) / 60:.1f} min in this call). Commit it: "
            f"git add {root / plan.key} {root / MANIFEST}",
            flush=True,
        )
        done.append(plan.key)
    print(f"published folder: {folder_size(root) / 1e6:.1f} MB", flush=True)
    return done


def add_fingerprints(root: str | Path | None = None) -> list[str]:
    """Give every run entry that lacks one the ``train_split_fingerprint`` of its training
    images as rendered on this machine (entries published before the trainer recorded it).
    The fingerprint tolerates the rounding differences between CPUs, so one computed here
    identifies the images another CPU rendered for the run; the entry says where it was
    computed. Returns the keys it filled."""
    from ssd_lib.data import prepare_dataset

    root = Path(root or default_root())
    filled = []
    datasets: dict[str, Any] = {}  # each dataset prepared (or loaded) once

    def dataset(name: str) -> Any:
        if name not in datasets:
            datasets[name] = prepare_dataset(name)
        return datasets[name]

    with locked(root / MANIFEST):
        manifest = read_manifest(root)
        for key, entry in manifest["runs"].items():
            if entry.get("run") == FACTOR_NET_RUN and not entry.get("dataset_fingerprint"):
                ds = dataset(entry["dataset"])
                entry["dataset_fingerprint"] = ds.fingerprint()
                entry["fingerprint_added"] = {
                    "date": dt.date.today().isoformat(),
                    "cpu": cpu_model(),
                    "content_hash_here": ds.content_hash,
                }
                filled.append(key)
                continue
            if "train_split_hash" not in entry or entry.get("train_split_fingerprint"):
                continue
            cfg = PublishedRun(root / key, entry).config
            split = dataset(cfg.dataset).train.subset(
                cfg.data_fraction, cfg.subset_mode, seed=cfg.seed
            )
            entry["train_split_fingerprint"] = split.fingerprint()
            entry["fingerprint_added"] = {
                "date": dt.date.today().isoformat(),
                "cpu": cpu_model(),
                "content_hash_here": split.content_hash(),
            }
            filled.append(key)
        if filled:
            atomic_write_json(root / MANIFEST, manifest)
    return filled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssd_lib.experiments.published",
        description="Train and publish the paper-budget runs the notebooks read, or check them.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the planned runs in order, publishing each")
    t.add_argument("--only", nargs="*", default=None, help="keys such as ssd-seed42")
    t.add_argument(
        "--plan",
        choices=list(PLANS),
        default="paper",
        help="paper: the runs notebooks 01-06 read; beyond: notebook 07's (default: paper)",
    )
    t.add_argument("--device", default="auto")
    t.add_argument("--runs-dir", default=None, help="where run folders go (default: runs/)")
    t.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (default: torch's choice); 1 keeps a CPU run steady while the "
        "machine does other work",
    )
    b = sub.add_parser(
        "bring",
        help="copy published runs (files, manifest entries, measurement records) from another "
        "published folder, such as a worktree that trained them",
    )
    b.add_argument("keys", nargs="+", help="keys such as ada_25_steps-seed42")
    b.add_argument("--from", dest="source", required=True, help="the other published/ folder")
    b.add_argument(
        "--force", action="store_true", help="replace runs published here with other contents"
    )
    sub.add_parser("check", help="verify every published file against the manifest")
    sub.add_parser("list", help="the plan and what is published")
    sub.add_parser(
        "fingerprint",
        help="record the training images' fingerprint in entries published without one",
    )
    args = parser.parse_args(argv)
    if args.command == "train":
        plans = list(PLANS[args.plan]) if not args.only else [planned(k) for k in args.only]
        if args.threads:
            torch.set_num_threads(args.threads)
        cmd = "python -m ssd_lib.experiments.published train" + (
            f" --only {' '.join(args.only)}" if args.only else ""
        )
        try:
            train_and_publish(plans, args.device, args.runs_dir, command=cmd)
        except KeyboardInterrupt:
            print("interrupted: run the same command again to resume", file=sys.stderr)
            return 130
        return 0
    if args.command == "bring":
        try:
            brought = bring(args.keys, args.source, force=args.force)
        except PublishedRunError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"brought {', '.join(brought)} into {default_root()}; `git add` it and commit")
        return 0
    if args.command == "check":
        problems = check_all()
        for p in problems:
            print(p)
        print("published runs: OK" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    if args.command == "fingerprint":
        filled = add_fingerprints()
        print("fingerprinted: " + (", ".join(filled) if filled else "none needed"))
        return 0
    manifest = read_manifest()["runs"]
    for name, plan in PLANS.items():
        print(f"plan {name}:")
        for p in plan:
            e = manifest.get(p.key)
            state = (
                f"published, {e['bytes'] / 1e6:.1f} MB, trained {e['train_wall_s'] / 60:.0f} "
                f"min on {e['machine']['cpu']} ({e['machine']['simd']})"
                if e
                else "not yet published"
            )
            weights = "" if p.generator else " (no weights)"
            print(f"  {p.key:28s} {state}{weights}")
    planned_keys = {p.key for p in PLAN + BEYOND_PLAN}
    print("other entries:")
    for key, e in manifest.items():
        if key not in planned_keys:
            print(f"  {key:28s} {e['title']}, {e['bytes'] / 1e6:.1f} MB")
    print(f"published folder: {folder_size() / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
