"""``make figures``: regenerate every figure and table into ``figures/``.

Runs the numbered notebooks in order with papermill (each writes its figures and tables
through ``ssd_lib.publish``, which records their provenance in ``figures/MANIFEST.json``),
then, until the training notebook exists, trains the ``paper`` preset on the chosen profile
and writes its sample grid and loss curves the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ssd_lib.config import PROFILES, make_config
from ssd_lib.data import prepare_dataset
from ssd_lib.data.summary import not_afhq_note
from ssd_lib.notebooks import NOTEBOOK_DIR, list_notebooks, run_notebooks
from ssd_lib.plots import grid_figure, loss_figure
from ssd_lib.publish import provenance, publish_figure
from ssd_lib.sampling import generate, sample_z
from ssd_lib.train import train

log = logging.getLogger("ssd_lib.figures")


def training_figures(
    dataset: str, profile: str, device: str, out: Path, runs_root: str | Path | None = None
) -> list[Path]:
    """Train (or reuse) the paper preset's run; write its samples and loss curves."""
    ds = prepare_dataset(dataset)
    cfg = make_config("paper", profile, dataset=ds.name)
    run = train(cfg, ds, runs_root=runs_root, device=device)
    label = f"{run.label()}, data hash {ds.content_hash[:12]}{not_afhq_note(ds)}"
    params = {"dataset": dataset, "profile": profile, "device": device}
    prov = provenance("python -m ssd_lib.figures", params, ds, {"SSD": run})
    samples = generate(run.load_generator(), sample_z(64, cfg.nz, seed=0), cfg.real_range)
    return [
        publish_figure(
            grid_figure(samples, "SSD samples (paper recipe), z seed 0", label),
            "ssd_samples",
            out,
            prov,
        ),
        publish_figure(loss_figure(run.history(), label), "ssd_losses", out, prov),
    ]


def regenerate(
    dataset: str = "embedded",
    profile: str = "quick",
    device: str = "auto",
    out: str | Path = "figures",
    notebooks: bool = True,
) -> None:
    out = Path(out).resolve()
    if notebooks and list_notebooks():
        # Relative to notebooks/ (papermill's working folder), so that the parameters the
        # committed notebooks show hold no machine-specific absolute path.
        rel = os.path.relpath(out, NOTEBOOK_DIR)
        run_notebooks(
            {"dataset": dataset, "profile": profile, "device": device, "out_dir": rel},
            folder=NOTEBOOK_DIR,
        )
    training_figures(dataset, profile, device, out)


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
    parser.add_argument(
        "--no-notebooks",
        action="store_true",
        help="only the training figures (skip executing the notebooks)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    regenerate(args.dataset, args.profile, args.device, args.out, not args.no_notebooks)
    log.info("figures and MANIFEST.json written to %s", Path(args.out).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
