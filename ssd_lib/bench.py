"""``make bench``: training and sampling speed of the paper's networks on this machine.

Prints one table with the machine next to the numbers. This is a measurement, not a test:
nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

import torch

from ssd_lib.config import make_config
from ssd_lib.data.cache import ImageSplit
from ssd_lib.hardware import describe_machine, has_native_bf16
from ssd_lib.images import uint8_to_float
from ssd_lib.models import build_generator
from ssd_lib.train import Trainer, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_rate(
    preset: str,
    precision: str,
    device: torch.device,
    steps: int,
    batch_size: int = 32,
    warmup: int = 3,
) -> float:
    """Images per second through ``Trainer.train_step`` (G and D update) at ``batch_size``."""
    cfg = make_config(preset, "quick", precision=precision, batch_size=batch_size)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size * 4, 3, 64, 64), dtype=torch.uint8, generator=g)
    trainer = Trainer(cfg, ImageSplit(images), "/nonexistent", device, show_progress=False)
    real = uint8_to_float(images[:batch_size], cfg.real_range).to(device)
    for _ in range(warmup):
        trainer.train_step(real)
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(real)
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t)


@torch.no_grad()
def sampling_rate(device: torch.device, batch_size: int = 256, repeats: int = 5) -> float:
    """Generator images per second at ``batch_size`` (SSD, eval mode)."""
    g = build_generator(make_config("paper")).to(device).eval()
    z = torch.randn(batch_size, 100, device=device)
    g(z)
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        g(z)
    _sync(device)
    return repeats * batch_size / (time.perf_counter() - t)


def embedded_generation_seconds() -> float:
    """Seconds to render the whole default embedded dataset (4,739 + 500 images)."""
    from ssd_lib.data.embedded import generate_split

    t = time.perf_counter()
    generate_split(4739, seed=0)
    generate_split(500, seed=1)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssd_lib.bench", description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="timed train steps per row")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    machine = describe_machine()
    print(f"ssd-companion benchmark, {dt.date.today()}, device={device}")
    for key, value in machine.items():
        print(f"  {key:14s} {value}")
    rows = []
    precisions = ["fp32"]
    if device.type == "cuda" or has_native_bf16():
        precisions.append("bf16")
    for preset in ("paper", "dcgan"):
        for precision in precisions:
            rate = train_step_rate(preset, precision, device, args.steps)
            rows.append(
                (f"train step, {preset} preset, {precision}, batch 32", f"{rate:8.1f} img/s")
            )
    rows.append(("SSD sampling, batch 256, fp32", f"{sampling_rate(device):8.1f} img/s"))
    rows.append(("embedded dataset, 5,239 images", f"{embedded_generation_seconds():8.1f} s"))
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"  {name:{width}s}  {value}")
    if "bf16" not in precisions:
        print("\n  bf16 skipped: this CPU has no native bf16 (it would be emulated and slow).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
