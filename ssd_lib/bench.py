"""``make bench``: training and sampling speed of the paper's networks on this machine.

Prints one table with the machine next to the numbers. This is a measurement, not a test:
nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import torch

from ssd_lib.atomic import atomic_write_text
from ssd_lib.config import make_config
from ssd_lib.data.cache import ImageSplit
from ssd_lib.hardware import describe_machine
from ssd_lib.images import uint8_to_float
from ssd_lib.models import build_generator
from ssd_lib.train import Trainer, resolve_device, resolve_precision


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
    from ssd_lib import bench_reference as ref

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
    from ssd_lib import bench_reference as ref
    from ssd_lib.data.embedded import generate_split

    folder = ref.make_jpeg_folder(
        generate_split(images, seed=0).images, data_dir / f"jpeg512-{images}"
    )
    batches = max(1, images // 32)
    rel = _in_child(_reference_child, str(folder), str(device), steps, batches)
    precisions = ["fp32"] + (["bf16"] if _bf16_applies(device) else [])
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


def matmul_peak_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """fp32 matrix-multiply throughput, the machine's practical peak for this kind of work."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
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


def write_section(path: Path, text: str, name: str = "make bench") -> None:
    """Replace the section ``name`` of ``path`` (between its markers) with ``text``."""
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    old = path.read_text() if path.is_file() else "# Benchmarks\n"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(path, new)


def precision_check(
    device: torch.device,
    profile: str = "quick",
    seeds: tuple[int, ...] = (42, 43, 44),
    toy_n: int = 1000,
) -> list[tuple[str, int, float]]:
    """(precision, seed, FD-toy) for the paper preset on the embedded data: fp32 for each seed
    and bf16 for the first, trained with the same recipe and budget. If bf16 only adds
    rounding noise, its FD-toy falls inside the spread of the fp32 seeds."""
    from ssd_lib.data import prepare_dataset
    from ssd_lib.metrics.toy import evaluate_generator_toy, load_or_train_factor_net
    from ssd_lib.train import train

    ds = prepare_dataset("embedded")
    net = load_or_train_factor_net(ds)
    out = []
    for precision, seed in [("fp32", s) for s in seeds] + [("bf16", seeds[0])]:
        cfg = make_config("paper", profile, dataset=ds.name, precision=precision, seed=seed)
        run = train(cfg, ds, device=device, show_progress=False)
        res = evaluate_generator_toy(run.load_generator(), cfg.real_range, ds, n=toy_n, net=net)
        out.append((precision, seed, res["FD-toy"].value))
    return out


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


def _bf16_applies(device: torch.device) -> bool:
    """Whether bf16 is worth measuring: the device computes it natively."""
    return resolve_precision("auto", device) == "bf16"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssd_lib.bench", description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--steps", type=_positive, default=20, help="timed train steps per row (default 20)"
    )
    parser.add_argument(
        "--images",
        type=int,
        default=1024,
        help="512px JPEGs in the release's folder (default 1024)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md",
        help="file whose 'make bench' section is rewritten (default docs/benchmarks.md)",
    )
    parser.add_argument("--work", type=Path, help="folder for the JPEG folder (default: data/)")
    parser.add_argument(
        "--precision-check",
        action="store_true",
        help="instead: train the paper preset (quick profile) in fp32 with three seeds and in "
        "bf16 with one, and compare FD-toy (about 5 minutes on a 2-core CPU)",
    )
    args = parser.parse_args(argv)
    if args.precision_check:
        device = resolve_device(args.device)
        rows = precision_check(device)
        fp32 = [v for p, _, v in rows if p == "fp32"]
        text = "\n".join(
            [
                f"`python -m ssd_lib.bench --precision-check`, {dt.date.today()}, "
                f"{describe_machine()['cpu']}, device={device}: paper preset, quick profile "
                "(1 epoch), "
                "embedded data, FD-toy at n=1000",
                "",
                "| precision | seed | FD-toy |",
                "|---|---|---|",
                *[f"| {p} | {seed} | {v:.1f} |" for p, seed, v in rows],
                "",
                f"fp32 across seeds: {min(fp32):.1f} to {max(fp32):.1f}.",
            ]
        )
        print(text)
        write_section(args.docs, text, "precision check")
        return 0
    device = resolve_device(args.device)
    machine = describe_machine()
    lines = [
        f"`make bench`, {dt.date.today()}, device={device}, command: "
        f"`python -m ssd_lib.bench --steps {args.steps} --images {args.images}`",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in machine.items()]
    rows = []
    precisions = ["fp32"]
    if _bf16_applies(device):
        precisions.append("bf16")
    for preset in ("paper", "dcgan"):
        for precision in precisions:
            rate = train_step_rate(preset, precision, device, args.steps)
            rows.append(
                (f"train step, {preset} preset, {precision}, batch 32", f"{rate:.1f} img/s")
            )
    rows.append(("SSD sampling, batch 256, fp32", f"{sampling_rate(device):.1f} img/s"))
    rows.append(("embedded dataset, 5,239 images", f"{embedded_generation_seconds():.1f} s"))
    lines += ["", "| measurement | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    from ssd_lib.data.cache import default_data_root

    work = args.work or default_data_root() / "bench"
    compare = compare_with_release(device, args.steps, args.images, work)
    lines += [
        "",
        f"The release's pipeline (ImageFolder of {args.images} 512x512 JPEGs, decoded and resized "
        "every epoch, num_workers=0, fp32) against ours (the prepared uint8 cache and the "
        "project's trainer), each in its own process, batch 32:",
        "",
        "| measurement | release | ours | ours / release |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in compare]
    lines += ["", "Targets:", ""] + [f"- {t}" for t in targets(compare)]
    folder = work / f"jpeg512-{args.images}"
    rates = feature_rates(device, work)
    peak, gflop = matmul_peak_gflops(device), step_gflop(device)
    step_rate = next(float(r[2]) for r in compare if r[0].startswith("train step alone"))
    achieved = gflop * step_rate / 32
    lines += [
        "",
        "| more measurements | value |",
        "|---|---|",
        f"| decoding the {args.images} JPEGs once into our cache | "
        f"{prepare_seconds(folder, work):.1f} s |",
        f"| toy factor CNN features | {rates['toy']:.0f} img/s |",
        f"| Inception features (pytorch-fid, stand-in weights, same network) | "
        f"{rates['inception']:.1f} img/s |",
        f"| fp32 matrix multiply, 2048 x 2048 | {peak:.0f} GFLOP/s |",
        f"| one training iteration, batch 32 (FlopCounterMode) | {gflop:.1f} GFLOP |",
        f"| achieved by the fp32 step (counted work / time) | {achieved:.0f} GFLOP/s = "
        f"{achieved / peak:.2f}x the matrix-multiply rate |",
        "",
        "Where the fp32 step's time goes (torch.profiler, self time, 3 iterations):",
        "",
        "| operator | share |",
        "|---|---|",
    ]
    lines += [f"| `{op}` | {share:.1%} |" for op, share in profile_step(device)]
    if "bf16" not in precisions:
        lines.append("- bf16 skipped: this CPU has no native bf16 (it would be emulated and slow).")
    text = "\n".join(lines)
    print(text)
    write_section(args.docs, text)
    print(f"\nwritten to {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
