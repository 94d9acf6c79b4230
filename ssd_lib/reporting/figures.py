"""``make figures``: regenerate every figure and table into ``figures/``.

Executes the numbered notebooks (00 data, 01 training, 02 spectral norm, 03 disentanglement,
04 FID tables, 05 latent explorer, 06 claim ledger) in order with papermill, each overwritten
by its executed copy. Every notebook writes its figures and tables through
``ssd_lib.reporting.publish``, which records their provenance in ``figures/MANIFEST.json``.
By default the notebooks read the published runs; with local runs, training is cached by
config hash under ``runs/``, so a second call only redraws.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from ssd_lib.config import PROFILES
from ssd_lib.reporting.notebooks import NOTEBOOK_DIR, list_notebooks, run_notebooks
from ssd_lib.reporting.publish import mark_run, prune_missing
from ssd_lib.utils.hardware import describe_machine

log = logging.getLogger("ssd_lib.reporting.figures")


def regenerate(
    dataset: str = "embedded",
    profile: str = "quick",
    device: str = "auto",
    out: str | Path = "figures",
    names: list[str] | None = None,
    run_source: str | None = None,
    train_seed: int | None = None,
) -> list[Path]:
    """Run the notebooks ``names`` (default: all, in order) with these parameters.

    ``run_source`` "published" reads the committed paper-budget runs, "local" trains under
    ``profile``; None leaves each notebook's own default (its parameters cell says which).

    The manifest's ``last_run`` says "running" meanwhile, then "complete", or "failed" with
    the cause; every figure matches its own manifest entry in all three cases."""
    out = Path(out).resolve()
    # Relative to notebooks/ (papermill's working folder), so that the parameters the
    # committed notebooks show hold no machine-specific absolute path.
    rel = os.path.relpath(out, NOTEBOOK_DIR)
    params = {"dataset": dataset, "profile": profile, "device": device, "out_dir": rel}
    if run_source is not None:
        params["run_source"] = run_source
    if train_seed is not None:
        params["train_seed"] = train_seed
    mark_run(out, "running", parameters=params, notebooks=names or "all")
    try:
        paths = run_notebooks(
            params,
            names=names,
            folder=NOTEBOOK_DIR,
            stream_output=True,  # training progress shows in the terminal, not only in 01
        )
    except BaseException as err:
        cause = str(err).strip().splitlines()[0] if str(err).strip() else ""
        mark_run(out, "failed", parameters=params, error=f"{type(err).__name__}: {cause}")
        raise
    gone = prune_missing(out)  # only after a complete run: every current figure is there
    if gone:
        log.info("dropped manifest entries of files no notebook makes any more: %s", gone)
    mark_run(out, "complete", parameters=params, notebooks=[p.name for p in paths])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssd_lib.reporting.figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", default="embedded", help="embedded, afhq, or a folder")
    parser.add_argument("--profile", default="quick", choices=list(PROFILES))
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--runs",
        choices=["published", "local"],
        default=None,
        help="published: the committed paper-budget runs; local: train under --profile "
        "(default: each notebook's own setting)",
    )
    parser.add_argument("--train-seed", type=int, default=None, help="training seed of the runs")
    parser.add_argument("--out", default="figures")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NOTEBOOK",
        choices=[p.name for p in list_notebooks()],
        help="run only these notebooks (e.g. 02_spectral_norm.ipynb)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    try:
        regenerate(
            args.dataset,
            args.profile,
            args.device,
            args.out,
            args.only,
            run_source=args.runs,
            train_seed=args.train_seed,
        )
    except KeyboardInterrupt:
        print(
            "make figures: interrupted; training checkpoints are saved and every figure in "
            f"{args.out} still matches its MANIFEST.json entry. Run it again to resume",
            file=sys.stderr,
        )
        return 130
    log.info(
        "figures and MANIFEST.json written to %s in %.0f s on %s",
        Path(args.out).resolve(),
        time.perf_counter() - start,
        describe_machine(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
