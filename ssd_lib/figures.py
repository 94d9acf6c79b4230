"""``make figures``: regenerate the project's figures into ``figures/``.

Until the notebooks exist (a later issue), this trains the ``paper`` preset on the chosen
dataset and profile and writes its sample grid and loss curves, each stamped with the
dataset, preset, profile and checkpoint that made it, plus ``figures/MANIFEST.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from ssd_lib.atomic import atomic_write_json
from ssd_lib.config import PROFILES, make_config
from ssd_lib.data import prepare_dataset
from ssd_lib.plots import grid_figure, loss_figure, save_figure
from ssd_lib.sampling import generate, sample_z
from ssd_lib.train import train

log = logging.getLogger("ssd_lib.figures")


def regenerate(
    dataset: str = "embedded",
    profile: str = "quick",
    device: str = "auto",
    out: str | Path = "figures",
    runs_root: str | Path | None = None,
) -> dict:
    """Train (or reuse) the paper preset's run and write its figures; returns the manifest."""
    out = Path(out)
    ds = prepare_dataset(dataset)
    cfg = make_config("paper", profile, dataset=ds.name)
    run = train(cfg, ds, runs_root=runs_root, device=device)
    label = run.label()
    if ds.name.startswith("embedded"):
        label += "  (embedded procedural data, not AFHQ)"
    g = run.load_generator()
    samples = generate(g, sample_z(64, cfg.nz, seed=0), cfg.real_range)
    figures = {
        "ssd_samples.png": grid_figure(samples, "SSD samples (paper recipe), z seed 0", label),
        "ssd_losses.png": loss_figure(run.history(), label),
    }
    for name, fig in figures.items():
        save_figure(fig, out / name)
    manifest = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python -m ssd_lib.figures", f"--dataset {dataset}", f"--profile {profile}"]
        ),
        "figures": {
            name: {
                "dataset": ds.name,
                "preset": cfg.preset,
                "profile": profile,
                "run": run.path.name,
                "step": run.status.get("step"),
            }
            for name in figures
        },
    }
    atomic_write_json(out / "MANIFEST.json", manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssd_lib.figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", default="embedded", help="embedded, afhq, or a folder")
    parser.add_argument("--profile", default="quick", choices=list(PROFILES))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = regenerate(args.dataset, args.profile, args.device, args.out)
    for name in manifest["figures"]:
        log.info("wrote %s", Path(args.out) / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
