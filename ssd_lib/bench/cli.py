"""``python -m ssd_lib.bench`` (``make bench``): print the tables, rewrite the benchmark's
section of ``docs/benchmarks.md``."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from ssd_lib.bench.compare import bf16_applies, compare_with_release, targets
from ssd_lib.bench.measure import (
    embedded_generation_seconds,
    feature_rates,
    matmul_peak_gflops,
    prepare_seconds,
    profile_step,
    sampling_rate,
    step_gflop,
    train_step_rate,
)
from ssd_lib.bench.precision import precision_check, precision_report
from ssd_lib.training.devices import resolve_device
from ssd_lib.utils.atomic import atomic_write_text
from ssd_lib.utils.hardware import describe_machine


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


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


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
        default=Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md",
        help="file whose 'make bench' section is rewritten (default docs/benchmarks.md)",
    )
    parser.add_argument("--work", type=Path, help="folder for the JPEG folder (default: data/)")
    parser.add_argument(
        "--precision-check",
        action="store_true",
        help="instead: train the paper preset (quick profile) with each seed in fp32 and in "
        "bf16 and compare FD-toy (about 1 minute per run on a 2-core CPU; runs are cached)",
    )
    parser.add_argument(
        "--seeds",
        type=_positive,
        default=3,
        help="seeds for --precision-check: 42, 43, ... (default 3)",
    )
    args = parser.parse_args(argv)
    if args.precision_check:
        device = resolve_device(args.device)
        rows = precision_check(device, seeds=tuple(range(42, 42 + args.seeds)))
        command = f"python -m ssd_lib.bench --precision-check --seeds {args.seeds}"
        text = precision_report(rows, command, device)
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
    if bf16_applies(device):
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
