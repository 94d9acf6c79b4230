"""The release's training pipeline, transcribed for the benchmark (``make bench``).

The authors' notebook reads an ImageFolder of 512x512 JPEGs, decodes and resizes every image
to 64x64 on every epoch (``transforms.Resize(64)`` + ``ToTensor``, so reals are in [0, 1]) in
a ``DataLoader`` with ``num_workers=0``, and trains in fp32: a generator step on
BCE(D(G(z)), 1), then a discriminator step that regenerates G(z) with the same z and halves
BCE(D(x), 1) + BCE(D(G(z)), 0). This module rebuilds that path with the project's networks
(which are the release's) so that the benchmark can compare it with the project's trainer.
Nothing here is used for training.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from ssd_lib.config import make_config
from ssd_lib.models import build_discriminator, build_generator


def make_jpeg_folder(images: torch.Tensor, folder: str | Path, size: int = 512) -> Path:
    """Write uint8 images (N, 3, h, w) upscaled to ``size`` as JPEGs in ImageFolder layout
    (``folder/dog/000000.jpg``), the form of the AFHQ download. Reused if already complete:
    a marker naming the count and size is written after the last JPEG, each JPEG atomically."""
    from ssd_lib.utils.atomic import atomic_write, atomic_write_text
    from ssd_lib.utils.locks import locked

    folder = Path(folder)
    target, marker = folder / "dog", folder / ".complete"
    expected = f"{len(images)} {size}\n"
    with locked(folder):
        if marker.is_file() and marker.read_text() == expected:
            return folder
        marker.unlink(missing_ok=True)
        target.mkdir(parents=True, exist_ok=True)
        keep = {f"{i:06d}.jpg" for i in range(len(images))}
        for stale in target.iterdir():  # a larger earlier folder, or a killed write's temp
            if stale.name not in keep:
                stale.unlink()
        for i, img in enumerate(images):
            pil = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((size, size), Image.BICUBIC)
            atomic_write(
                target / f"{i:06d}.jpg", lambda tmp, p=pil: p.save(tmp, "JPEG", quality=95)
            )
        atomic_write_text(marker, expected)
    return folder


def release_loader(folder: str | Path, batch_size: int = 32, seed: int = 0):
    """The release's data path: ImageFolder, Resize(64), ToTensor, shuffled, no workers."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize(64), transforms.ToTensor()])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=True, num_workers=0, generator=g
    )


class ReleaseStep:
    """One iteration of the release's recipe, written the way its notebook writes it."""

    def __init__(self, device: torch.device) -> None:
        cfg = make_config("paper")
        self.device = device
        self.G = build_generator(cfg).to(device)
        self.D = build_discriminator(cfg).to(device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.loss = nn.BCELoss()
        self.nz = cfg.nz

    def __call__(self, real: torch.Tensor) -> tuple[float, float]:
        real = real.to(self.device)
        z = torch.randn(real.shape[0], self.nz, device=self.device)
        pred = self.D(self.G(z))
        loss_g = self.loss(pred, torch.ones_like(pred))
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        fake = self.G(z).detach()
        d_real, d_fake = self.D(real), self.D(fake)
        loss_d = (
            self.loss(d_real, torch.ones_like(d_real)) + self.loss(d_fake, torch.zeros_like(d_fake))
        ) / 2
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        return loss_g.item(), loss_d.item()  # the release logs both every step


def _batches(loader, n: int):
    """``n`` batches, starting a new epoch (re-decoding everything) when one runs out."""
    done = 0
    while done < n:
        for real, _ in loader:
            yield real
            done += 1
            if done == n:
                return


def pipeline_rate(loader, batches: int) -> float:
    """Images per second of the data path alone."""
    t, count = time.perf_counter(), 0
    for real in _batches(loader, batches):
        count += len(real)
    return count / (time.perf_counter() - t)


def step_rate(step: ReleaseStep, batch: torch.Tensor, steps: int, warmup: int = 3) -> float:
    """Images per second of the release's step alone, on one fixed batch."""
    for _ in range(warmup):
        step(batch)
    t = time.perf_counter()
    for _ in range(steps):
        step(batch)
    return steps * len(batch) / (time.perf_counter() - t)


def end_to_end_rate(step: ReleaseStep, loader, steps: int, warmup: int = 3) -> float:
    """Images per second of data path + step, as the release trains."""
    for real in _batches(loader, warmup):
        step(real)
    t, count = time.perf_counter(), 0
    for real in _batches(loader, steps):
        step(real)
        count += len(real)
    return count / (time.perf_counter() - t)
