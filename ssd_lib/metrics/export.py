"""Image folders for the FID libraries: generated samples and real splits as PNG files.

Both libraries read images from files, so samples must be written as files; that is where
value ranges go wrong. ``export_generated`` always converts through ``sampling.generate``
with the range the run's config declares (``cfg.real_range``): the release's recipe teaches
its tanh generator to produce [0, 1] content, the other presets [-1, 1].

A folder is written under a temporary name, gets a completion marker last, and is renamed
into place; an old folder of the same name is first renamed out of the way, so the target is
never a mix of old and new files. ``is_complete`` checks the marker and the file names, so a
half-written or half-deleted export is never mistaken for a finished one. Writers of one
folder hold its lock (``ssd_lib.utils.locks``), so two processes never interleave.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ssd_lib.generation.sampling import generate, sample_z
from ssd_lib.utils.atomic import atomic_write_text
from ssd_lib.utils.locks import locked
from ssd_lib.utils.progress import progress_bar as tqdm

DONE_MARKER = ".complete"


def _png_name(i: int) -> str:
    return f"{i:06d}.png"


def _write_pngs(images: torch.Tensor, folder: Path, show_progress: bool, desc: str) -> None:
    arr = images.permute(0, 2, 3, 1).numpy()
    for i in tqdm(range(len(arr)), desc=desc, disable=not show_progress, unit="img"):
        Image.fromarray(np.ascontiguousarray(arr[i])).save(folder / _png_name(i))


def _swap_in(new: Path, folder: Path) -> None:
    """Rename ``new`` to ``folder``; an old ``folder`` is renamed away first and then deleted,
    so a crash leaves the old folder, no folder, or the new one, never a mix."""
    trash = None
    if folder.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        folder.rename(trash / folder.name)
    new.rename(folder)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def write_image_folder(
    images: torch.Tensor, folder: str | Path, show_progress: bool = True, desc: str = "writing PNGs"
) -> Path:
    """Write uint8 images (N, 3, H, W) as ``000000.png ...`` into ``folder``, atomically."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with locked(folder):
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            _write_pngs(images, tmp, show_progress, desc)
            atomic_write_text(tmp / DONE_MARKER, f"{len(images)}\n")  # last: the folder is done
            _swap_in(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder


def is_complete(folder: str | Path, n: int) -> bool:
    """Whether ``folder`` is a finished export of ``n`` images: its completion marker says
    ``n`` and it holds exactly the PNGs ``000000.png`` ... for them."""
    folder = Path(folder)
    marker = folder / DONE_MARKER
    if not marker.is_file() or marker.read_text().strip() != str(n):
        return False
    return {p.name for p in folder.glob("*.png")} == {_png_name(i) for i in range(n)}


def export_generated(
    generator: nn.Module,
    value_range: str,
    n: int,
    folder: str | Path,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    show_progress: bool = True,
) -> Path:
    """Draw ``n`` samples with codes from ``seed`` and write them as PNGs into ``folder``.

    ``value_range`` is the range the generator was trained to imitate (``cfg.real_range``).
    """
    z = sample_z(n, generator.z_dim, seed)
    images = generate(generator, z, value_range, batch_size=batch_size, device=device)
    return write_image_folder(images, folder, show_progress, desc=f"writing {n} samples")


def export_split(images: torch.Tensor, folder: str | Path, show_progress: bool = True) -> Path:
    """Write a real split once; an existing complete folder of the same size is reused.

    The check and the write happen under the folder's lock, so a second process waits and
    then reuses the first one's folder."""
    with locked(folder):
        if is_complete(folder, len(images)):
            return Path(folder)
        desc = f"writing {len(images)} reals"
        return write_image_folder(images, folder, show_progress, desc=desc)
