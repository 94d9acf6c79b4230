"""The release's pipeline against the project's, each measured in a fresh process so that
its peak memory is its own, and the issue's speed targets read off the result."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ssd_lib.bench import reference as ref
from ssd_lib.bench.measure import train_step_rate
from ssd_lib.config import make_config
from ssd_lib.training.devices import resolve_precision
from ssd_lib.training.trainer import Trainer
from ssd_lib.utils.images import uint8_to_float


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike getrusage's ru_maxrss it does not
    carry over the parent's peak into a spawned child). NaN where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return float("nan")


def _reference_child(folder: str, device: str, steps: int, batches: int) -> dict[str, float]:
    """The release's pipeline, measured in a fresh process (so its peak memory is its own)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    loader = ref.release_loader(folder)
    out = {"pipeline": ref.pipeline_rate(loader, batches)}
    step = ref.ReleaseStep(dev)
    batch = next(iter(loader))[0]
    out["step"] = ref.step_rate(step, batch, steps)
    out["end_to_end"] = ref.end_to_end_rate(step, loader, steps)
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _ours_child(device: str, steps: int, precision: str) -> dict[str, float]:
    """The project's trainer on the prepared embedded cache, in a fresh process."""
    import tempfile

    from ssd_lib.data.embedded import generate_split

    dev = torch.device(device)
    split = generate_split(4739, seed=0)
    out = {"step": train_step_rate("paper", precision, dev, steps)}
    cfg = make_config("paper", "paper", precision=precision, max_steps=steps)
    t = time.perf_counter()
    for i in range(steps):  # the data path alone: index the uint8 cache, convert to float
        idx = torch.randint(
            0, len(split), (cfg.batch_size,), generator=torch.Generator().manual_seed(i)
        )
        uint8_to_float(split.images[idx], cfg.real_range).to(dev)
    out["pipeline"] = steps * cfg.batch_size / (time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, split, tmp, dev, show_progress=False)
        for _ in range(3):  # warm-up, as for the other rates (train_step does not count steps)
            trainer.train_step(
                uint8_to_float(split.images[: cfg.batch_size], cfg.real_range).to(dev)
            )
        t = time.perf_counter()
        trainer.fit()
        total = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(2):  # fit ends with two saves (loop end, final) and one sample grid
            trainer.save()
        trainer.save_samples(Path(tmp) / "x.png")
        total -= time.perf_counter() - t
    out["end_to_end"] = steps * cfg.batch_size / total
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _in_child(fn, *args):
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def compare_with_release(
    device: torch.device, steps: int, images: int, data_dir: Path
) -> list[tuple[str, str, str, str]]:
    """Rows (what, release, ours, ours / release) for the release's pipeline vs ours."""
    from ssd_lib.data.embedded import generate_split

    folder = ref.make_jpeg_folder(
        generate_split(images, seed=0).images, data_dir / f"jpeg512-{images}"
    )
    batches = max(1, images // 32)
    rel = _in_child(_reference_child, str(folder), str(device), steps, batches)
    precisions = ["fp32"] + (["bf16"] if bf16_applies(device) else [])
    rows = []
    for precision in precisions:
        ours = _in_child(_ours_child, str(device), steps, precision)
        for key, what in (
            ("step", "train step alone"),
            ("pipeline", "data path alone"),
            ("end_to_end", "end to end"),
        ):
            rows.append(
                (
                    f"{what}, img/s (ours {precision})",
                    f"{rel[key]:.1f}",
                    f"{ours[key]:.1f}",
                    f"{ours[key] / rel[key]:.2f}x",
                )
            )
        rows.append(
            (
                f"peak resident memory, MB (ours {precision})",
                f"{rel['peak_rss_mb']:.0f}",
                f"{ours['peak_rss_mb']:.0f}",
                f"{ours['peak_rss_mb'] / rel['peak_rss_mb']:.2f}x",
            )
        )
    return rows


def bf16_applies(device: torch.device) -> bool:
    """Whether bf16 is worth measuring: the device computes it natively."""
    return resolve_precision("auto", device) == "bf16"


def targets(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """The issue's targets, read off the comparison rows: one line each, met or not."""
    val = {r[0]: (float(r[1]), float(r[2])) for r in rows if "img/s" in r[0]}
    out = []
    step_rel, step_ours = val["train step alone, img/s (ours fp32)"]
    e2e_rel, e2e_ours = val["end to end, img/s (ours fp32)"]
    ok = e2e_ours >= 0.95 * step_ours
    out.append(
        f"(a) fp32 end to end within 5 % of the step alone: {e2e_ours:.1f} vs {step_ours:.1f} "
        f"img/s ({e2e_ours / step_ours:.1%}): {'met' if ok else 'NOT met'}"
    )
    ok = step_ours >= step_rel
    out.append(
        f"(a) fp32 step at least as fast as the release's: {step_ours:.1f} vs {step_rel:.1f} "
        f"img/s: {'met' if ok else 'NOT met'}"
    )
    key = "end to end, img/s (ours bf16)"
    if key in val:
        ratio = val[key][1] / e2e_rel
        out.append(
            f"(b) bf16 end to end at least 1.6x the release's: {ratio:.2f}x: "
            f"{'met' if ratio >= 1.6 else 'NOT met'}"
        )
    else:
        out.append("(b) bf16: does not apply (no GPU, and no native bf16 on this CPU)")
    return out
