"""The prepared-dataset cache: every data source is decoded once into this format.

Layout of one prepared dataset ``<root>/<name>/``::

    manifest.json                      source, counts, image size, factor names, and per
                                       split its file name, file SHA-256 and content hash
    train-<sha256[:16]>.safetensors    images: uint8 (N, 3, H, W); factors: float32 (N, F)
    val-<sha256[:16]>.safetensors      the same for the held-out split (optional)

Training reads the uint8 tensor into memory once; nothing is decoded per epoch. On load the
file's SHA-256 and the content hash (SHA-256 of the raw image and factor bytes) are
recomputed, so a cache that was edited, damaged or half-copied is detected instead of trusted.

Crash safety: split files are named by their content and written first, the manifest is
renamed over the old one second, and only then are split files no manifest names deleted. A
crash at any point leaves either the old dataset or the new one, each complete.

Concurrency: ``prepare_*`` functions hold ``dataset_lock(name, root)`` while they check and
build a dataset, so a second process waits and then loads the first one's result.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as serialize

from ssd_lib.utils.atomic import atomic_write_bytes, atomic_write_json, read_json, sha256_file
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.locks import locked

# ImageSplit.fingerprint: how many seeded pixel sums, their seed, and the share of pixel values
# that may be one level off (rounding on another CPU) for two renders to count as one image set.
FINGERPRINT_PROJECTIONS = 8
FINGERPRINT_SEED = 20261201
FINGERPRINT_TOLERANCE = 1e-5

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: content-named split files; 1 (still read): <split>.safetensors
SUBSET_MODES = ("first", "random")
SPLIT_NAMES = ("train", "val")
_SPLIT_FILE_RE = re.compile(r"^(train|val)(-[0-9a-f]{16})?\.safetensors$")


def default_data_root() -> Path:
    """Folder holding prepared datasets: ``$SSD_DATA_DIR`` or the repository's ``data/``."""
    env = os.environ.get("SSD_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


class CacheError(SSDError, RuntimeError):
    """A prepared dataset is missing, incomplete or does not match its manifest."""


def dataset_path(name: str, root: str | Path | None = None) -> Path:
    """The folder of the prepared dataset ``name``: ``<root>/<name>``."""
    return Path(root or default_data_root()) / name


def dataset_lock(name: str, root: str | Path | None = None) -> AbstractContextManager[Path]:
    """The inter-process lock a writer holds while it checks and builds dataset ``name``."""
    return locked(dataset_path(name, root))


@dataclass
class ImageSplit:
    """One split of a prepared dataset, held in memory.

    images: uint8 (N, 3, H, W), values in [0, 255].
    factors: float32 (N, F) ground-truth factors, or None when the source has none.
    """

    images: torch.Tensor
    factors: torch.Tensor | None = None
    factor_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 of shape (N, 3, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.factors is not None:
            if self.factors.ndim != 2 or self.factors.shape[0] != self.images.shape[0]:
                raise ValueError(
                    f"factors must be (N, F) with N={self.images.shape[0]}, "
                    f"got {tuple(self.factors.shape)}"
                )
            if len(self.factor_names) != self.factors.shape[1]:
                raise ValueError(
                    f"{self.factors.shape[1]} factor columns but {len(self.factor_names)} names"
                )

    def __len__(self) -> int:
        return self.images.shape[0]

    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(self.images.contiguous().numpy().tobytes())
        if self.factors is not None:
            h.update(self.factors.contiguous().numpy().tobytes())
        return h.hexdigest()

    def fingerprint(self) -> dict[str, Any]:
        """What identifies these images across machines: ``content_hash`` changes when one
        pixel of one image moves by one level, and the embedded renderer's float arithmetic
        rounds a handful of its 58 million pixel values differently on different CPUs. The
        fingerprint keeps the exact hash of the factors (pure random draws, the same on every
        machine), the count, and ``FINGERPRINT_PROJECTIONS`` integer sums of the pixels under
        seeded +-1 weights (per position and per image): one level at k pixels moves each sum
        by at most k, another image set moves them by hundreds of thousands. Integer
        arithmetic, so the fingerprint itself is exact on every machine."""
        n = len(self)
        flat = self.images.reshape(n, -1)
        g = torch.Generator().manual_seed(FINGERPRINT_SEED)
        k = FINGERPRINT_PROJECTIONS
        per_pixel = torch.randint(0, 2, (flat.shape[1], k), generator=g).to(torch.float64) * 2 - 1
        per_image = torch.randint(0, 2, (n, k), generator=g).to(torch.float64) * 2 - 1
        # Every partial sum is an integer below 2**53: exact in float64 in any summation order.
        sums = torch.zeros(k, dtype=torch.float64)
        for start in range(0, n, 512):
            rows = flat[start : start + 512].to(torch.float64)
            sums += ((rows @ per_pixel) * per_image[start : start + 512]).sum(0)
        factors = None
        if self.factors is not None:
            factors = hashlib.sha256(self.factors.contiguous().numpy().tobytes()).hexdigest()
        return {
            "n": n,
            "shape": list(self.images.shape[1:]),
            "factors_sha256": factors,
            "projections": [int(v) for v in sums.tolist()],
        }

    def differs_from(self, content_hash: str, fingerprint: dict[str, Any] | None = None) -> str:
        """ "" if these are the images recorded as ``content_hash`` (exactly, or, with their
        recorded ``fingerprint``, up to rounding: at most ``FINGERPRINT_TOLERANCE`` of the pixel
        values one level off), else what differs, in words."""
        if not content_hash or content_hash == self.content_hash():
            return ""
        if not fingerprint:
            return f"training images' hash {content_hash[:12]}, here {self.content_hash()[:12]}"
        return self.differs_from_fingerprint(fingerprint)

    def differs_from_fingerprint(self, fingerprint: dict[str, Any]) -> str:
        """ "" if these images match the recorded ``fingerprint`` up to rounding, else what
        differs (``differs_from`` without a hash to try first)."""
        mine = self.fingerprint()
        for field_ in ("n", "shape", "factors_sha256"):
            if fingerprint.get(field_) != mine[field_]:
                return f"{field_} {fingerprint.get(field_)!r}, here {mine[field_]!r}"
        values = mine["n"] * math.prod(mine["shape"])
        limit = max(16, int(FINGERPRINT_TOLERANCE * values))
        theirs = fingerprint.get("projections", [])
        if len(theirs) != len(mine["projections"]):
            return f"{len(theirs)} pixel sums recorded, {len(mine['projections'])} made here"
        off = max(abs(a - b) for a, b in zip(theirs, mine["projections"], strict=True))
        if off > limit:
            return f"pixel sums differ by {off} (rounding allows {limit})"
        return ""

    def subset(self, fraction: float, mode: str = "first", seed: int = 0) -> ImageSplit:
        """The paper's Table 2 subsets: the first ``fraction`` of the split (mode="first",
        as the release did with the folder listing) or a seeded random sample."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction={fraction!r} must be in (0, 1]")
        if mode not in SUBSET_MODES:
            raise ValueError(f"mode={mode!r} must be one of {list(SUBSET_MODES)}")
        n = len(self)
        # floor(n * fraction), robust to binary rounding (int(100 * 0.29) would give 28).
        k = max(1, math.floor(n * fraction + 1e-9))
        if k == n:
            return self
        if mode == "first":
            idx = torch.arange(k)
        else:
            g = torch.Generator().manual_seed(seed)
            idx = torch.randperm(n, generator=g)[:k].sort().values
        factors = None if self.factors is None else self.factors[idx]
        return ImageSplit(self.images[idx], factors, list(self.factor_names))


@dataclass
class PreparedDataset:
    """A prepared dataset loaded from the cache."""

    name: str
    path: Path
    manifest: dict[str, Any]
    train: ImageSplit
    val: ImageSplit | None

    @property
    def content_hash(self) -> str:
        """One hash for the whole dataset (used to key training runs)."""
        return self.manifest["content_hash"]

    def fingerprint(self) -> dict[str, Any]:
        """``ImageSplit.fingerprint`` of each split: the dataset across CPUs."""
        val = None if self.val is None else self.val.fingerprint()
        return {"train": self.train.fingerprint(), "val": val}

    def differs_from(self, content_hash: str, fingerprint: dict[str, Any] | None = None) -> str:
        """ "" if this is the dataset recorded as ``content_hash`` (exactly, or up to another
        CPU's rounding, per its recorded ``fingerprint``), else what differs."""
        if not content_hash or content_hash == self.content_hash:
            return ""
        if not fingerprint:
            return f"dataset hash {content_hash[:12]}, here {self.content_hash[:12]}"
        for name, split in (("train", self.train), ("val", self.val)):
            recorded = fingerprint.get(name)
            if (recorded is None) != (split is None):
                return f"{name} split {'missing' if split is None else 'not recorded'}"
            if split is not None:
                differs = split.differs_from_fingerprint(recorded)
                if differs:
                    return f"{name} split: {differs}"
        return ""

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    def describe(self) -> str:
        val = 0 if self.val is None else len(self.val)
        return f"{self.name}: {len(self.train)} train / {val} val, {self.image_size}px"


def _split_tensors(split: ImageSplit) -> dict[str, torch.Tensor]:
    out = {"images": split.images.contiguous()}
    if split.factors is not None:
        out["factors"] = split.factors.float().contiguous()
    return out


def _write_split(path: Path, split_name: str, split: ImageSplit) -> dict[str, Any]:
    """Write one split under a name made from its SHA-256; returns its manifest entry."""
    data = serialize(_split_tensors(split))
    digest = hashlib.sha256(data).hexdigest()
    file = path / f"{split_name}-{digest[:16]}.safetensors"
    atomic_write_bytes(file, data)
    return {
        "file": file.name,
        "file_sha256": digest,
        "count": len(split),
        "shape": list(split.images.shape),
        "content_hash": split.content_hash(),
    }


def _remove_unnamed_splits(path: Path, keep: set[str]) -> None:
    """Delete split files (either format) that the manifest no longer names."""
    for old in path.glob("*.safetensors"):
        if _SPLIT_FILE_RE.match(old.name) and old.name not in keep:
            try:
                old.unlink(missing_ok=True)
            except OSError as err:  # e.g. Windows, while another process has it mapped
                log.info("could not delete the old split file %s yet (%s)", old, err)


def write_prepared(
    name: str,
    splits: dict[str, ImageSplit],
    source: dict[str, Any],
    root: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``splits`` (keys "train" and optionally "val") as the dataset ``name``.

    ``source`` describes where the images came from (kind, url/path, seed, ...) and is
    stored verbatim in the manifest. Crash-safe (see the module docstring): readers see the
    old dataset until the new manifest replaces the old one in one rename.
    """
    if "train" not in splits:
        raise ValueError(f"splits must contain 'train', got {sorted(splits)}")
    unknown = set(splits) - set(SPLIT_NAMES)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; allowed: 'train', 'val'")
    path = dataset_path(name, root)
    path.mkdir(parents=True, exist_ok=True)
    split_info = {s: _write_split(path, s, split) for s, split in splits.items()}
    whole = hashlib.sha256(
        "".join(split_info[s]["content_hash"] for s in sorted(split_info)).encode()
    )
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "source": source,
        "image_size": int(splits["train"].images.shape[-1]),
        "factor_names": list(splits["train"].factor_names),
        "splits": split_info,
        "content_hash": whole.hexdigest(),
        **(extra or {}),
    }
    atomic_write_json(path / MANIFEST, manifest)
    # Only now that the manifest names the new files may the old ones go.
    _remove_unnamed_splits(path, {info["file"] for info in split_info.values()})
    log.info("wrote prepared dataset %s to %s", name, path)
    return path


def is_prepared(name: str, root: str | Path | None = None) -> bool:
    """True when ``<root>/<name>/manifest.json`` exists (the last file a write makes)."""
    return (dataset_path(name, root) / MANIFEST).is_file()


def read_manifest(name: str, root: str | Path | None = None) -> dict[str, Any]:
    path = dataset_path(name, root) / MANIFEST
    if not path.is_file():
        raise CacheError(
            f"dataset {name!r} is not prepared: {path} does not exist. "
            f"Prepare it first, e.g. ssd_lib.data.prepare_dataset({name!r})."
        )
    manifest = read_json(path, CacheError, "delete the folder and prepare again")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise CacheError(f"{path} is not a dataset manifest (no 'splits'); prepare again")
    return manifest


def _check_file_hash(file: Path, expected: str, manifest: Path) -> None:
    actual = sha256_file(file)
    if actual != expected:
        raise CacheError(
            f"{file} has SHA-256 {actual} but {manifest} records {expected}; the file was "
            f"damaged or replaced. Prepare the dataset again to rebuild it."
        )


def _load_split(
    path: Path, split_name: str, info: dict[str, Any], factor_names: list[str], verify: bool
) -> ImageSplit:
    """One split of the dataset at ``path``; raises ``CacheError`` naming the file."""
    file_name = info.get("file", f"{split_name}.safetensors")  # version 1: fixed names
    if not _SPLIT_FILE_RE.match(str(file_name)):
        raise CacheError(f"{path / MANIFEST} names {file_name!r}, not a split file; prepare again")
    file = path / file_name
    if not file.is_file():
        raise CacheError(
            f"{file}, named in {path / MANIFEST}, does not exist; the cache is incomplete. "
            f"Prepare the dataset again."
        )
    if verify and "file_sha256" in info:
        _check_file_hash(file, info["file_sha256"], path / MANIFEST)
    try:
        tensors = load_file(str(file))
        split = ImageSplit(
            tensors["images"],
            tensors.get("factors"),
            list(factor_names) if "factors" in tensors else [],
        )
    except Exception as err:  # safetensors raises several types for bad files
        raise CacheError(
            f"cannot read {file} ({err}); prepare the dataset again to rebuild it"
        ) from err
    if verify:
        actual = split.content_hash()
        if actual != info.get("content_hash"):
            raise CacheError(
                f"{file} does not match the content hash in {path / MANIFEST} (computed "
                f"{actual}, recorded {info.get('content_hash')}); the cache was modified or "
                f"partly written. Prepare the dataset again to rebuild it."
            )
    return split


def load_prepared(
    name: str, root: str | Path | None = None, verify: bool = True
) -> PreparedDataset:
    """Load a prepared dataset into memory; with ``verify`` check every split's hashes."""
    manifest = read_manifest(name, root)
    path = dataset_path(name, root)
    factor_names = manifest.get("factor_names", [])
    loaded = {
        s: _load_split(path, s, info, factor_names, verify)
        for s, info in manifest["splits"].items()
    }
    if "train" not in loaded:
        raise CacheError(f"{path / MANIFEST} names no train split; prepare the dataset again")
    return PreparedDataset(name, path, manifest, loaded["train"], loaded.get("val"))


def load_if_intact(name: str, root: str | Path | None = None) -> PreparedDataset | None:
    """The prepared dataset ``name``, or None with a warning when it is damaged.

    For ``prepare_*`` functions, which then build it again; the warning names the file and
    both hashes when a hash does not match.
    """
    try:
        return load_prepared(name, root)
    except CacheError as err:
        log.warning("prepared dataset %s is damaged: %s", name, err)
        return None
