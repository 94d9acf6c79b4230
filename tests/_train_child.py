"""A training process for the interruption tests: it trains the 'tiny' dataset and can be
told to die at a chosen point (run as a script by tests/test_reliability_train.py).

    python tests/_train_child.py DATA_ROOT RUNS_ROOT FAULT

FAULT is one of:
    none                     train to the end
    kill_at_step:K           SIGKILL itself during step K
    signal_at_step:NAME:K    send itself SIGNAME (SIGINT, SIGTERM) after step K
    kill_in_tensors:N        SIGKILL half-way through writing the Nth checkpoint's tensors
    kill_before_json:N       SIGKILL after the Nth checkpoint's tensor file is in place,
                             before its JSON is written
    kill_in_json:N           SIGKILL half-way through writing the Nth checkpoint's JSON
Prints the run folder on the last line when it returns.

    python tests/_train_child.py --cli FAULT ARGS...   runs `ssd ARGS...` with FAULT installed
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def config():
    from ssd_lib.config import make_config

    # 40 images, batch 8: 5 steps per epoch, 15 steps; a checkpoint every 2 steps and at
    # every epoch end (steps 2, 4, 5, 6, 8, 10, 12, 14, 15).
    return make_config("paper", "smoke", dataset="tiny", epochs=3, max_steps=0, checkpoint_every=2)


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(fault: str) -> None:
    import ssd_lib.training.checkpoint as ck
    from ssd_lib.training.trainer import Trainer
    from ssd_lib.utils.atomic import atomic_write

    kind, _, arg = fault.partition(":")
    saves = {"n": 0}
    if kind in ("kill_at_step", "signal_at_step"):
        name, _, k = arg.rpartition(":")
        step_train = Trainer.train_step

        def train_step(self, real):
            if kind == "kill_at_step" and self.step == int(k) - 1:
                _die()  # inside step K, before its update
            stats = step_train(self, real)
            if kind == "signal_at_step" and self.step == int(k) - 1:  # step K ends next
                os.kill(os.getpid(), getattr(signal, name))
            return stats

        Trainer.train_step = train_step
    elif kind == "kill_in_tensors":
        real_save = ck.save_file

        def save_file(tensors, filename, *a, **kw):
            saves["n"] += 1
            real_save(tensors, filename, *a, **kw)
            if saves["n"] == int(arg):
                data = Path(filename).read_bytes()
                Path(filename).write_bytes(data[: len(data) // 2])
                _die()

        ck.save_file = save_file
    elif kind in ("kill_before_json", "kill_in_json"):
        real_json = ck.atomic_write_json

        def atomic_write_json(path, obj):
            saves["n"] += 1
            if saves["n"] == int(arg):
                if kind == "kill_before_json":
                    _die()
                atomic_write(path, lambda tmp: (tmp.write_text('{"tensors_file": "lat'), _die()))
            return real_json(path, obj)

        ck.atomic_write_json = atomic_write_json
    elif kind != "none":
        raise SystemExit(f"unknown fault {fault!r}")


def main() -> None:
    if sys.argv[1] == "--cli":  # _train_child.py --cli FAULT ssd-arguments...
        from ssd_lib.cli import main as cli_main

        install(sys.argv[2])
        raise SystemExit(cli_main(sys.argv[3:]))
    data_root, runs_root, fault = sys.argv[1:4]
    import logging

    from ssd_lib.data.cache import load_prepared

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ssd_lib.training.trainer import train

    install(fault)
    run = train(
        config(),
        load_prepared("tiny", root=data_root),
        runs_root=runs_root,
        device="cpu",
        show_progress=False,
    )
    print(run.path)


if __name__ == "__main__":
    main()
