"""Does bf16 change what training reaches? FD-toy after the same short run in fp32 and bf16,
for several seeds, so the difference can be set against the spread between seeds."""

from __future__ import annotations

import datetime as dt

import torch

from ssd_lib.config import make_config
from ssd_lib.utils.hardware import describe_machine


def precision_check(
    device: torch.device,
    profile: str = "quick",
    seeds: tuple[int, ...] = (42, 43, 44),
    toy_n: int = 1000,
) -> list[tuple[str, int, float]]:
    """(precision, seed, FD-toy) for the paper preset on the embedded data, in fp32 and in
    bf16 for each seed, trained with the same recipe and budget. If bf16 only adds rounding
    noise, its FD-toy values spread like the fp32 ones around a similar mean."""
    from ssd_lib.data import prepare_dataset
    from ssd_lib.metrics.toy import evaluate_generator_toy, load_or_train_factor_net
    from ssd_lib.training.trainer import train

    ds = prepare_dataset("embedded")
    net = load_or_train_factor_net(ds)
    out = []
    for precision, seed in [(p, s) for p in ("fp32", "bf16") for s in seeds]:
        cfg = make_config("paper", profile, dataset=ds.name, precision=precision, seed=seed)
        run = train(cfg, ds, device=device, show_progress=False)
        res = evaluate_generator_toy(run.load_generator(), cfg.real_range, ds, n=toy_n, net=net)
        out.append((precision, seed, res["FD-toy"].value))
    return out


def precision_report(rows: list[tuple[str, int, float]], command: str, device: torch.device) -> str:
    """Markdown: the FD-toy table, each precision's range and mean over seeds, and the
    per-seed difference bf16 - fp32."""
    by = {p: {seed: v for q, seed, v in rows if q == p} for p in ("fp32", "bf16")}
    lines = [
        f"`{command}`, {dt.date.today()}, {describe_machine()['cpu']}, device={device}: "
        "paper preset, quick profile (1 epoch), embedded data, FD-toy at n=1000",
        "",
        "| seed | fp32 | bf16 | bf16 - fp32 |",
        "|---|---|---|---|",
    ]
    for seed, a in by["fp32"].items():
        b = by["bf16"].get(seed, float("nan"))
        lines.append(f"| {seed} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    lines.append("")
    stats = {}
    for p, values in by.items():
        v = torch.tensor(list(values.values()), dtype=torch.float64)
        sd = float(v.std()) if len(v) > 1 else float("nan")
        stats[p] = (float(v.mean()), sd, len(v))
        lines.append(
            f"- {p} across {len(v)} seeds: {float(v.min()):.1f} to {float(v.max()):.1f}, "
            f"mean {stats[p][0]:.1f}, standard deviation {sd:.1f}"
        )
    (m32, s32, n32), (m16, s16, n16) = stats["fp32"], stats["bf16"]
    se = (s32**2 / n32 + s16**2 / n16) ** 0.5
    lines.append(
        f"- mean bf16 - mean fp32: {m16 - m32:+.1f}, standard error {se:.1f} "
        f"({abs(m16 - m32) / se:.1f} standard errors)"
    )
    return "\n".join(lines)
