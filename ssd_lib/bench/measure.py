"""Rates of the single pieces the benchmark reports, on the given device."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ssd_lib.config import make_config
from ssd_lib.data.cache import ImageSplit
from ssd_lib.models import build_generator
from ssd_lib.training.trainer import Trainer
from ssd_lib.utils.images import uint8_to_float


def sync(device: torch.device) -> None:
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
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(real)
    sync(device)
    return steps * batch_size / (time.perf_counter() - t)


@torch.no_grad()
def sampling_rate(device: torch.device, batch_size: int = 256, repeats: int = 5) -> float:
    """Generator images per second at ``batch_size`` (SSD, eval mode)."""
    g = build_generator(make_config("paper")).to(device).eval()
    z = torch.randn(batch_size, 100, device=device)
    g(z)
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        g(z)
    sync(device)
    return repeats * batch_size / (time.perf_counter() - t)


def embedded_generation_seconds() -> float:
    """Seconds to render the whole default embedded dataset (4,739 + 500 images)."""
    from ssd_lib.data.embedded import generate_split

    t = time.perf_counter()
    generate_split(4739, seed=0)
    generate_split(500, seed=1)
    return time.perf_counter() - t


def matmul_peak_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """fp32 matrix-multiply throughput, the machine's practical peak for this kind of work."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def _trainer(device: torch.device, precision: str = "fp32") -> tuple[Trainer, torch.Tensor]:
    cfg = make_config("paper", "paper", precision=precision)
    images = torch.randint(0, 256, (64, 3, 64, 64), dtype=torch.uint8)
    trainer = Trainer(cfg, ImageSplit(images), "/nonexistent", device, show_progress=False)
    return trainer, uint8_to_float(images[:32], cfg.real_range).to(device)


def step_gflop(device: torch.device) -> float:
    """Floating-point work of one paper-preset training iteration at batch 32 (GFLOP)."""
    from torch.utils.flop_counter import FlopCounterMode

    trainer, real = _trainer(device)
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(real)
    return counter.get_total_flops() / 1e9


def profile_step(device: torch.device, steps: int = 3, top: int = 8) -> list[tuple[str, float]]:
    """Where one training iteration's time goes: (operator, share of self time), largest
    first, from torch.profiler over ``steps`` iterations after a warm-up."""
    from torch.profiler import ProfilerActivity, profile

    trainer, real = _trainer(device)
    trainer.train_step(real)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer.train_step(real)
    events = prof.key_averages()
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, attr), reverse=True)[:top]
    return [(e.key, getattr(e, attr) / total) for e in ranked]


def feature_rates(device: torch.device, work: Path, n: int = 256) -> dict[str, float]:
    """Images per second of the metrics' feature networks: the toy factor CNN, and Inception
    (pytorch-fid) with stand-in weights of the same architecture (same speed; no download)."""
    import os
    import tempfile

    from ssd_lib.data.embedded import FACTORS
    from ssd_lib.metrics.export import write_image_folder
    from ssd_lib.metrics.inception import extract_features, list_images
    from ssd_lib.metrics.standin import write_standin_weights
    from ssd_lib.metrics.toy import FactorNet, embed

    images = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8)
    net = FactorNet(list(FACTORS))
    embed(net, images[:32])
    t = time.perf_counter()
    embed(net, images)
    out = {"toy": n / (time.perf_counter() - t)}
    folder = write_image_folder(images[:64], work / "features", show_progress=False)
    names = ("TORCH_HOME", "SSD_CLEANFID_DIR")  # stand-ins must not overwrite real weights
    saved = {k: os.environ.get(k) for k in names}
    with tempfile.TemporaryDirectory() as home:
        os.environ["TORCH_HOME"] = home
        os.environ["SSD_CLEANFID_DIR"] = str(Path(home) / "cleanfid")
        try:
            write_standin_weights(seed=0)
            files = list_images(folder)
            extract_features(files[:8], "pytorch-fid", device, show_progress=False)
            t = time.perf_counter()
            extract_features(files, "pytorch-fid", device, show_progress=False)
            out["inception"] = len(files) / (time.perf_counter() - t)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return out


def prepare_seconds(folder: Path, work: Path) -> float:
    """Seconds to decode the JPEG folder once into our cache (the release decodes every epoch)."""
    import shutil

    from ssd_lib.data.folder import prepare_folder

    root = work / "prepared"
    shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    prepare_folder(folder, root=root)
    return time.perf_counter() - t
