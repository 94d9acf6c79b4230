"""The prepared-dataset cache: every data source is decoded once into this format.

Layout of one prepared dataset ``<root>/<name>/``::

    manifest.json        source, counts, image size, factor names, content hash per split
    train.safetensors    images: uint8 (N, 3, H, W); factors: float32 (N, F) if known
    val.safetensors      the same for the held-out split (optional)

Training reads the uint8 tensor into memory once; nothing is decoded per epoch. The content
hash (SHA-256 of the raw image and factor bytes) is recomputed on load, so a cache that was
edited or half-copied is detected instead of trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ssd_lib.atomic import atomic_write, atomic_write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
SUBSET_MODES = ("first", "random")


def default_data_root() -> Path:
    """Folder holding prepared datasets: ``$SSD_DATA_DIR`` or the repository's ``data/``."""
    env = os.environ.get("SSD_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


class CacheError(RuntimeError):
    """A prepared dataset is missing, incomplete or does not match its manifest."""


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


def write_prepared(
    name: str,
    splits: dict[str, ImageSplit],
    source: dict[str, Any],
    root: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``splits`` (keys "train" and optionally "val") as the dataset ``name``.

    ``source`` describes where the images came from (kind, url/path, seed, ...) and is
    stored verbatim in the manifest. The manifest is written last, so a dataset without a
    manifest is an interrupted write and is never loaded.
    """
    if "train" not in splits:
        raise ValueError(f"splits must contain 'train', got {sorted(splits)}")
    unknown = set(splits) - {"train", "val"}
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; allowed: 'train', 'val'")
    path = Path(root or default_data_root()) / name
    path.mkdir(parents=True, exist_ok=True)
    (path / MANIFEST).unlink(missing_ok=True)
    split_info = {}
    for split_name, split in splits.items():
        tensors = _split_tensors(split)
        atomic_write(
            path / f"{split_name}.safetensors", lambda tmp, t=tensors: save_file(t, str(tmp))
        )
        split_info[split_name] = {
            "count": len(split),
            "shape": list(split.images.shape),
            "content_hash": split.content_hash(),
        }
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
    log.info("wrote prepared dataset %s to %s", name, path)
    return path


def is_prepared(name: str, root: str | Path | None = None) -> bool:
    """True when ``<root>/<name>/manifest.json`` exists (the last file a write makes)."""
    return (Path(root or default_data_root()) / name / MANIFEST).is_file()


def read_manifest(name: str, root: str | Path | None = None) -> dict[str, Any]:
    path = Path(root or default_data_root()) / name / MANIFEST
    if not path.is_file():
        raise CacheError(
            f"dataset {name!r} is not prepared: {path} does not exist. "
            f"Prepare it first, e.g. ssd_lib.data.prepare_dataset({name!r})."
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CacheError(
            f"{path} is not valid JSON ({err}); delete the folder and prepare again"
        ) from err


def load_prepared(
    name: str, root: str | Path | None = None, verify: bool = True
) -> PreparedDataset:
    """Load a prepared dataset into memory; with ``verify`` check every split's hash."""
    manifest = read_manifest(name, root)
    path = Path(root or default_data_root()) / name
    loaded: dict[str, ImageSplit] = {}
    for split_name, info in manifest["splits"].items():
        file = path / f"{split_name}.safetensors"
        try:
            tensors = load_file(str(file))
        except Exception as err:  # safetensors raises several types for bad files
            raise CacheError(f"cannot read {file}: {err}; delete {path} and prepare again") from err
        split = ImageSplit(
            tensors["images"],
            tensors.get("factors"),
            list(manifest.get("factor_names", [])) if "factors" in tensors else [],
        )
        if verify and split.content_hash() != info["content_hash"]:
            raise CacheError(
                f"{file} does not match the content hash in {path / MANIFEST}; "
                f"the cache was modified or partly written. Delete {path} and prepare again."
            )
        loaded[split_name] = split
    return PreparedDataset(name, path, manifest, loaded["train"], loaded.get("val"))
