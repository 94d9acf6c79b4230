"""Any folder of the user's own images, decoded once into the prepared-dataset cache.

``load_folder`` scans a folder recursively, decodes every image it can, converts it to RGB,
crops it to a centred square and resizes it; ``prepare_folder`` writes the result to the cache
(``ssd_lib.data.cache``) together with a ``report.json`` that lists every file used or skipped.

Nothing is dropped silently: a file that cannot be used (wrong extension, empty, truncated,
not an image, a broken link) is skipped and named in the ``IngestReport`` with the reason.

Resizing, and why it is an argument: the paper's FID discussion turns on aliased resizing.

- ``antialias=True`` (default) is the authors' release: torchvision ``transforms.Resize`` with
  bilinear interpolation on the PIL image. PIL widens its bilinear filter when it shrinks an
  image, so this path is antialiased.
- ``antialias=False`` is ``torch.nn.functional.interpolate(mode="bilinear", antialias=False,
  align_corners=False)`` on the float tensor: it samples 2x2 neighbourhoods only, so fine
  detail (fur, textures) aliases into moire when shrinking 512 -> 64.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, ImageOps
from torchvision import transforms

from ssd_lib.data.cache import (
    CacheError,
    ImageSplit,
    PreparedDataset,
    dataset_lock,
    dataset_path,
    is_prepared,
    load_if_intact,
    load_prepared,
    read_manifest,
    write_prepared,
)
from ssd_lib.utils.atomic import atomic_write_json
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.progress import progress_bar as tqdm
from ssd_lib.utils.validate import check_int, check_seed

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Output sizes: powers of two, as the models' stride-2 layers need; they train at 64.
SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)
REPORT = "report.json"
_ORIENTATION = 0x0112  # EXIF tag
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Source keys that describe the outcome of a scan rather than its inputs; they are not
# compared when deciding whether a cached dataset is still valid.
_OUTCOME_KEYS = ("n_files_used", "n_skipped")


class FolderError(SSDError, ValueError):
    """A folder cannot be used as a dataset (missing, not a folder, too few usable images)."""


@dataclass
class IngestReport:
    """What happened to every file under a folder.

    used: relative paths (POSIX style) of the images in the output, in output order.
    skipped: (relative path, reason) for every file that was not used.
    converted: source mode -> count, for images that were not already RGB ("L", "RGBA", ...).
    """

    used: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    converted: dict[str, int] = field(default_factory=dict)
    folder: str = ""
    cropped: int = 0  # non-square images centre-cropped
    rotated: int = 0  # images whose EXIF orientation was applied

    def summary(self) -> str:
        """A few lines for a log or a notebook."""
        lines = [f"{self.folder or 'folder'}: {len(self.used)} used, {len(self.skipped)} skipped"]
        if self.converted:
            modes = ", ".join(f"{m}: {n}" for m, n in sorted(self.converted.items()))
            lines.append(f"converted to RGB from {modes}")
        if self.cropped or self.rotated:
            lines.append(f"centre-cropped {self.cropped}, EXIF-rotated {self.rotated}")
        for path, reason in self.skipped[:10]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more (see report.json)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skipped"] = [list(item) for item in self.skipped]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestReport:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["skipped"] = [tuple(item) for item in fields.get("skipped", [])]
        return cls(**fields)


def _check_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in SIZES:
        error = ValueError if isinstance(value, int) and not isinstance(value, bool) else TypeError
        raise error(
            f"size={value!r} is not allowed; use one of {list(SIZES)} (output images are "
            f"size x size pixels; the models train at 64)"
        )
    return value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}={value!r} is not allowed; use True or False")
    return value


def _check_folder(path: str | Path) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FolderError(f"image folder {str(folder)!r} does not exist; pass a folder of images")
    if not folder.is_dir():
        raise FolderError(
            f"{str(folder)!r} is a file, not a folder; pass the folder that contains the images"
        )
    return folder.resolve()


def scan_folder(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """All files under ``folder``: (image candidates, skipped non-image files), sorted by
    relative path so that the output order does not depend on the file system."""
    candidates: list[Path] = []
    skipped: list[tuple[str, str]] = []
    # a link whose target is gone is not a file, but it is still named in the report
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() or (p.is_symlink() and not p.exists())),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    for p in files:
        rel = p.relative_to(folder).as_posix()
        if not p.exists():
            skipped.append((rel, "broken symbolic link (its target does not exist)"))
        elif p.suffix.lower() in IMAGE_EXTENSIONS:
            candidates.append(p)
        else:
            skipped.append((rel, "not an image extension"))
    return candidates, skipped


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB.

    Transparency is composited on white: transparent pixels often hold arbitrary (usually
    black) colour values, and dropping alpha would expose them as dark blotches.
    16-bit greyscale is scaled to 8 bits (65535 -> 255, 32768 -> 128), not clipped.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode == "I":
        # "I" is 32-bit signed; PNG and TIFF put 16-bit samples into it, so treat it as 16-bit.
        v = np.asarray(img).astype(np.int64).clip(0, 65535)
        v8 = ((v * 255 + 32767) // 65535).astype(np.uint8)  # rounds half up
        return Image.fromarray(v8, mode="L").convert("RGB")
    if "A" in mode or "a" in mode or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _centre_square(img: Image.Image) -> Image.Image:
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def _resize(img: Image.Image, size: int, antialias: bool) -> torch.Tensor:
    """Square RGB PIL image -> uint8 (3, size, size)."""
    if antialias:
        out = transforms.Resize(size, interpolation=transforms.InterpolationMode.BILINEAR)(img)
        return torch.from_numpy(np.array(out, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    # float conversion in numpy, before the permute: torch's uint8->float copy of a permuted
    # (non-contiguous) view is about 20x slower on CPU for 512x512 inputs
    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=False, align_corners=False)
    return y[0].round().clamp(0, 255).to(torch.uint8)


def _decode(path: Path) -> tuple[Image.Image | None, str, bool]:
    """(image, source mode, EXIF-rotated) or (None, reason, False)."""
    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)", False
        with Image.open(path) as im:
            im.load()  # decodes now, so a truncated file raises here rather than later
            mode = im.mode
            rotated = im.getexif().get(_ORIENTATION, 1) not in (0, 1)
            oriented = ImageOps.exif_transpose(im)
        return oriented, mode, rotated
    except PermissionError as err:
        return None, f"cannot read ({err})", False
    except Image.UnidentifiedImageError:
        return None, "not a readable image (PIL cannot identify the format)", False
    except Image.DecompressionBombError as err:
        return None, f"too large to decode safely ({err})", False
    except (OSError, SyntaxError, ValueError) as err:
        # PIL reports truncated and corrupt data as OSError (sometimes SyntaxError/ValueError).
        return None, f"truncated or corrupt ({type(err).__name__}: {err})", False
    except Exception as err:  # noqa: BLE001 - a decoder failing another way is still a bad file
        return None, f"cannot decode ({type(err).__name__}: {err})", False


def load_folder(
    path: str | Path, size: int = 64, antialias: bool = True, show_progress: bool = True
) -> tuple[torch.Tensor, IngestReport]:
    """Decode every image under ``path`` into uint8 (N, 3, size, size), values in [0, 255].

    Order is the sorted relative path. Non-square images are centre-cropped to a square, then
    resized (see the module docstring for ``antialias``). Returns the images and the report;
    N may be 0. ``size`` is one of ``SIZES``.
    """
    folder = _check_folder(path)
    size = _check_size(size)
    antialias = _check_bool("antialias", antialias)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        log.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; truncated images "
            "will be decoded with grey filler instead of being skipped"
        )
    candidates, skipped = scan_folder(folder)
    report = IngestReport(skipped=skipped, folder=str(folder))
    images: list[torch.Tensor] = []
    for p in tqdm(
        candidates, desc=f"decoding {folder.name}", unit="img", disable=not show_progress
    ):
        rel = p.relative_to(folder).as_posix()
        img, info, rotated = _decode(p)
        if img is None:
            report.skipped.append((rel, info))
            continue
        try:
            rgb = _to_rgb(img)
            square = _centre_square(rgb) if rgb.width != rgb.height else rgb
            images.append(_resize(square, size, antialias))
        except Exception as err:  # noqa: BLE001 - a mode PIL cannot convert is still a bad file
            report.skipped.append((rel, f"cannot convert mode {info} to RGB ({err})"))
            continue
        # counted only for images that made it into the output
        if img.mode != "RGB":
            report.converted[info] = report.converted.get(info, 0) + 1
        report.cropped += square is not rgb
        report.rotated += rotated
        report.used.append(rel)
    report.skipped.sort()
    # one message, not one per file: a folder may hold thousands of non-image files
    log.log(logging.WARNING if report.skipped else logging.INFO, "%s", report.summary())
    out = torch.stack(images) if images else torch.empty(0, 3, size, size, dtype=torch.uint8)
    return out, report


def default_folder_name(folder: str | Path) -> str:
    """``folder-<sanitised folder name>-<8 hex digits of the absolute path's SHA-256>``."""
    folder = Path(folder).expanduser().resolve()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.").lower()[:40] or "root"
    digest = hashlib.sha256(str(folder).encode("utf-8")).hexdigest()[:8]
    return f"folder-{stem}-{digest}"


def _listing_hash(folder: Path) -> str:
    """SHA-256 of every file's relative path, size and modification time: cheap to compute,
    and it changes when files are added, removed or rewritten."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(
                f"{p.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()
            )
    return h.hexdigest()


def _too_few_message(folder: Path, report: IngestReport, min_images: int) -> str:
    if report.skipped:
        reasons = "; ".join(f"{p}: {r}" for p, r in report.skipped[:5])
        found = f"{len(report.skipped)} files were skipped (first reasons: {reasons})"
    else:
        found = "no other files were found in it"
    return (
        f"folder {str(folder)!r} has {len(report.used)} usable images, fewer than "
        f"min_images={min_images}; {found}. Add more images ({', '.join(IMAGE_EXTENSIONS)}, "
        f"searched recursively), fix or remove the broken files, or lower min_images."
    )


def _check_options(
    size: Any, antialias: Any, val_fraction: Any, min_images: Any, seed: Any, force: Any
) -> tuple[int, bool, float, int, int, bool]:
    """``prepare_folder``'s options, validated; errors name the option and what is allowed."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(f"val_fraction={val_fraction!r} is not allowed; use a float in [0, 1)")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} is not allowed; use a float in [0, 1)")
    return (
        _check_size(size),
        _check_bool("antialias", antialias),
        float(val_fraction),
        check_int("min_images", min_images, 1),
        check_seed("seed", seed),
        _check_bool("force", force),
    )


def _cached(name: str, root: str | Path | None, inputs: dict[str, Any]) -> PreparedDataset | None:
    """The cached dataset when it was prepared from ``inputs`` and is intact, else None."""
    if not is_prepared(name, root):
        return None
    try:
        cached = read_manifest(name, root).get("source", {})
    except CacheError as err:
        log.warning("dataset %s has a damaged manifest (%s); preparing it again", name, err)
        return None
    if {k: v for k, v in cached.items() if k not in _OUTCOME_KEYS} != inputs:
        log.info("dataset %s was prepared from different inputs; preparing it again", name)
        return None
    dataset = load_if_intact(name, root)  # a damaged cache is decoded again from the folder
    if dataset is not None:
        log.info("dataset %s is already prepared; loading it from the cache", name)
    return dataset


def _val_split(n: int, val_fraction: float, seed: int, folder: Path) -> tuple[torch.Tensor, ...]:
    """(train indices, val indices), each sorted: val is the last part of a seeded shuffle."""
    n_val = round(n * val_fraction)
    if val_fraction > 0 and not 1 <= n_val < n:
        raise FolderError(
            f"val_fraction={val_fraction!r} of {n} usable images in {str(folder)!r} gives "
            f"{n_val} val images; use a val_fraction that leaves at least one image per split"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n - n_val].sort().values, perm[n - n_val :].sort().values


def _ingest(
    folder: Path,
    name: str,
    root: str | Path | None,
    inputs: dict[str, Any],
    min_images: int,
    show_progress: bool,
) -> PreparedDataset:
    """Decode ``folder`` and write it, with its report, as the dataset ``name``."""
    images, report = load_folder(
        folder, size=inputs["size"], antialias=inputs["antialias"], show_progress=show_progress
    )
    n = len(report.used)
    if n < min_images:
        raise FolderError(_too_few_message(folder, report, min_images))
    train_idx, val_idx = _val_split(n, inputs["val_fraction"], inputs["seed"], folder)
    splits = {"train": ImageSplit(images[train_idx])}
    if len(val_idx):
        splits["val"] = ImageSplit(images[val_idx])
    report_data = report.to_dict()
    report_data["splits"] = {
        "train": [report.used[i] for i in train_idx.tolist()],
        "val": [report.used[i] for i in val_idx.tolist()],
    }
    atomic_write_json(dataset_path(name, root) / REPORT, report_data)
    source = {**inputs, "n_files_used": n, "n_skipped": len(report.skipped)}
    write_prepared(name, splits, source, root=root)
    return load_prepared(name, root)


def prepare_folder(
    path: str | Path,
    name: str | None = None,
    root: str | Path | None = None,
    size: int = 64,
    antialias: bool = True,
    val_fraction: float = 0.0,
    min_images: int = 16,
    seed: int = 0,
    force: bool = False,
    show_progress: bool = True,
) -> PreparedDataset:
    """Decode ``path`` once into the cache as dataset ``name`` and load it.

    ``size`` (one of ``SIZES``) is the output side in pixels. The val split is the last
    ``val_fraction`` of a shuffle seeded with ``seed`` (none when 0); within each split images
    keep the sorted-file order. ``report.json`` next to the manifest lists every file used
    (with its split) or skipped. A dataset prepared from the same folder contents with the
    same arguments is loaded from the cache unless ``force``; one whose files no longer match
    their hashes is decoded again (with a warning). Two processes preparing the same dataset
    at once decode it once.
    """
    folder = _check_folder(path)
    size, antialias, val_fraction, min_images, seed, force = _check_options(
        size, antialias, val_fraction, min_images, seed, force
    )
    if name is None:
        name = default_folder_name(folder)
    elif not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"name={name!r} is not allowed; use letters, digits, '.', '_' and '-' only, "
            f"starting with a letter or digit"
        )
    inputs = {
        "kind": "folder",
        "path": str(folder),
        "size": size,
        "antialias": antialias,
        "val_fraction": val_fraction,
        "seed": seed,
        "listing_sha256": _listing_hash(folder),
    }
    with dataset_lock(name, root):  # a second process waits, then loads this one's result
        cached = None if force else _cached(name, root, inputs)
        if cached is not None:
            return cached
        return _ingest(folder, name, root, inputs, min_images, show_progress)


def read_report(dataset: PreparedDataset) -> IngestReport:
    """The ``IngestReport`` stored with a dataset prepared by ``prepare_folder``."""
    return IngestReport.from_dict(json.loads((dataset.path / REPORT).read_text()))
