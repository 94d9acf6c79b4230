"""``python -m ssd_lib.metrics.toy_report RUN_DIR``: the toy metrics of one run, with their floor.

Prints FD-toy, KID-toy, precision/recall/density/coverage, factor-combination coverage, the
share of samples the toy net's realness head takes for faces and the left-ear share for 5,000
samples of the run's latest checkpoint against as many embedded train images; then the same
for as many samples as the val split holds, beside what the real held-out val images score at
that count (FD and KD depend on n). Embedded data only.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ssd_lib.data import prepare_dataset
from ssd_lib.metrics.toy import evaluate_generator_toy, load_or_train_factor_net, real_floor
from ssd_lib.training.runs import Run
from ssd_lib.utils.hardware import describe_machine

KEYS = (
    "FD-toy",
    "KID-toy",
    "precision-toy",
    "recall-toy",
    "density-toy",
    "coverage-toy",
    "combo-coverage-toy",
    "combo-entropy-toy",
    "realness-toy",
    "factor-distance-toy/left_ear_up",
    "factor-distance-toy/fur_colour",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssd_lib.metrics.toy_report", description=__doc__
    )
    parser.add_argument("run", help="a run directory under runs/")
    parser.add_argument("-n", type=int, default=5000, help="generated samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run = Run(args.run)
    if not (run.path / "config.json").is_file():
        parser.error(f"{run.path} is not a run directory (no config.json)")
    ds = prepare_dataset(run.config.dataset, show_progress=False)
    net = load_or_train_factor_net(ds, seed=args.seed, show_progress=False)
    res = evaluate_generator_toy(
        run.load_generator(), run.config.real_range, ds, n=args.n, seed=args.seed, net=net
    )
    # FD and KD depend on the sample count: compare the run with real held-out images at
    # the val split's size as well as at the requested n.
    m = len(ds.val) if ds.val is not None else 0
    small = (
        evaluate_generator_toy(
            run.load_generator(), run.config.real_range, ds, n=m, seed=args.seed, net=net
        )
        if m
        else {}
    )
    floor = real_floor(net, ds, m, args.seed) if m else {}
    print(run.label())
    print("machine:", ", ".join(f"{k}={v}" for k, v in describe_machine().items()))
    head = f"run n={args.n}"
    print(f"{'metric':34s} {head:>12s} {f'run n={m}':>10s} {f'real val n={m}':>14s}")
    for key in KEYS:
        if key not in res:  # e.g. realness-toy with a net that has no realness head
            continue
        cells = [small.get(key), floor.get(key)]
        rest = " ".join(
            f"{c.value:>{w}.4f}" if c else f"{'-':>{w}s}"
            for c, w in zip(cells, (10, 14), strict=True)
        )
        print(f"{key:34s} {res[key].value:12.4f} {rest}")
    r = res["factor-distance-toy/left_ear_up"].details
    print(f"left ear up share: real {r['real_share'][1]:.3f}, generated {r['fake_share'][1]:.3f}")
    print(
        f"counts: n_real={res['FD-toy'].n_real} n_fake={res['FD-toy'].n_fake}; "
        f"feature network: {net.feature_network}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
