"""ssd: prepare data, train, sample and evaluate from the command line.

    ssd prepare --data embedded|afhq|folder:PATH [--out DIR]
    ssd train   --preset paper --data SOURCE [--profile quick] [--epochs N] [--out runs/] [--resume]
    ssd sample  --checkpoint RUN_OR_CHECKPOINT --n N --out DIR
    ssd eval    --run DIR [--protocol paper|matched] [--metrics inception|toy]

"python -m ssd_lib ..." is the same program. Exit codes: 0 success; 2 a bad argument (the
message names the option and what it accepts); 1 a failure while running (one line saying why;
--verbose shows the traceback); 130 interrupted (a training run keeps its checkpoint).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from ssd_lib.config import PRECISIONS, PRESETS, PROFILES, ConfigError
from ssd_lib.utils.errors import SSDError

log = logging.getLogger("ssd_lib.cli")

DATA_HELP = "embedded (offline, generated), afhq (downloads once), or folder:PATH (your images)"


class UsageError(SSDError):
    """A bad argument found after parsing (exit code 2)."""


def _data_source(text: str) -> str:
    """--data value -> what ``prepare_dataset`` takes."""
    if text in ("embedded", "afhq"):
        return text
    if text.startswith("folder:"):
        path = Path(text.split(":", 1)[1]).expanduser()
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"folder {str(path)!r} does not exist or is no folder")
        return str(path.resolve())  # absolute: a folder named "afhq" is not the AFHQ download
    raise argparse.ArgumentTypeError(f"{text!r}; allowed: {DATA_HELP}")


DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def _device(text: str) -> str:
    """--device value, checked here so that a typo exits with 2 and the allowed values."""
    kind, _, index = text.partition(":")
    if text in ("auto", "cpu", "cuda", "mps") or (kind == "cuda" and index.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}; allowed: {DEVICE_HELP}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ssd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--verbose", action="store_true", help="log more, and show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prep = sub.add_parser("prepare", help="decode a dataset once into the 64x64 uint8 cache")
    prep.add_argument("--data", required=True, type=_data_source, help=DATA_HELP)
    prep.add_argument(
        "--data-root",
        "--out",  # its first name; kept so that older commands still work
        dest="data_root",
        type=Path,
        help="folder for prepared datasets (default: $SSD_DATA_DIR or data/)",
    )

    tr = sub.add_parser("train", help="train one run (cached by config hash; resumable)")
    tr.add_argument("--preset", default="paper", choices=list(PRESETS), help="the recipe")
    tr.add_argument("--profile", default="paper", choices=list(PROFILES), help="the budget")
    tr.add_argument("--data", default="embedded", type=_data_source, help=DATA_HELP)
    tr.add_argument("--data-root", type=Path, help="where prepared datasets live (see prepare)")
    tr.add_argument("--epochs", type=_positive_int, help="override the profile's epochs")
    tr.add_argument("--fraction", type=float, help="train on the first FRACTION of the images")
    tr.add_argument("--seed", type=int, help="override the recipe's seed (42)")
    tr.add_argument("--precision", choices=list(PRECISIONS), help="default: fp32")
    tr.add_argument("--device", default="auto", type=_device, help=DEVICE_HELP)
    tr.add_argument(
        "--runs-dir",
        "--out",  # its first name; kept so that older commands still work
        dest="runs_dir",
        type=Path,
        help="runs folder (default: $SSD_RUNS_DIR or runs/)",
    )
    tr.add_argument(
        "--on-nonfinite",
        default="stop",
        choices=["stop", "rollback"],
        help="when a loss, gradient or weight turns NaN/inf: stop (the last good checkpoint "
        "stays), or roll back to that checkpoint and go on with half the learning rates",
    )
    tr.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run, or reuse a finished one, of the same config "
        "(without it an existing run is left alone and the command fails)",
    )

    sa = sub.add_parser("sample", help="write generated images as PNGs")
    sa.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="a run folder, or a checkpoint (its stem or its .json)",
    )
    sa.add_argument("--n", type=_positive_int, default=64, help="how many images (default 64)")
    sa.add_argument("--out", type=Path, required=True, help="folder to write 000000.png ... into")
    sa.add_argument("--seed", type=int, default=0, help="seed of the latent codes (default 0)")
    sa.add_argument("--device", default="auto", type=_device, help=DEVICE_HELP)

    ev = sub.add_parser("eval", help="FID / clean-FID / clean-KID, or the offline toy metrics")
    ev.add_argument("--run", required=True, type=Path, help="a run folder (from ssd train)")
    ev.add_argument("--protocol", default="matched", choices=["paper", "matched"])
    ev.add_argument(
        "--metrics",
        default="inception",
        choices=["inception", "toy"],
        help="inception: needs the Inception weights; toy: embedded data only, offline",
    )
    ev.add_argument("--n", type=_positive_int, help="generated images (default: as the protocol)")
    ev.add_argument("--data-root", type=Path, help="where the run's prepared dataset lives")
    ev.add_argument("--device", default="auto", type=_device, help=DEVICE_HELP)
    return p


def _prepare(args: argparse.Namespace) -> int:
    from ssd_lib.data import prepare_dataset

    ds = prepare_dataset(args.data, root=args.data_root)
    print(ds.describe())
    print(f"prepared: {ds.path}")
    return 0


def _start_processes(device: str) -> tuple[int, int, str]:
    """Under torchrun (WORLD_SIZE > 1): join the process group (NCCL on CUDA, gloo on CPU)
    and pick this process's GPU; returns (rank, world size, device)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), world, device


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _train(args: argparse.Namespace) -> int:
    rank, world, device = _start_processes(args.device)
    try:
        return _train_in_process(args, rank, world, device)
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train_in_process(args: argparse.Namespace, rank: int, world: int, device: str) -> int:
    from ssd_lib.config import make_config
    from ssd_lib.data import prepare_dataset
    from ssd_lib.training.runs import default_runs_root, run_name
    from ssd_lib.training.trainer import train

    if rank == 0:  # one process decodes the data; the others then read its cache
        ds = prepare_dataset(args.data, root=args.data_root)
    _barrier(world)
    if rank != 0:
        ds = prepare_dataset(args.data, root=args.data_root)
    overrides: dict[str, Any] = {"dataset": ds.name}
    for name, field in (
        ("epochs", "epochs"),
        ("fraction", "data_fraction"),
        ("seed", "seed"),
        ("precision", "precision"),
    ):
        if getattr(args, name) is not None:
            overrides[field] = getattr(args, name)
    try:
        cfg = make_config(args.preset, args.profile, **overrides)
    except ConfigError as err:
        raise UsageError(str(err)) from err
    folder = Path(args.runs_dir or default_runs_root()) / run_name(cfg, ds.content_hash)
    if (folder / "config.json").is_file() and not args.resume:
        raise RuntimeError(
            f"{folder} already holds this run; pass --resume to continue or reuse it, or "
            f"--out another folder"
        )
    _barrier(world)  # every process has checked before the main one writes the folder
    run = train(
        cfg,
        ds,
        runs_root=args.runs_dir,
        device=device,
        resume=args.resume,
        on_nonfinite=args.on_nonfinite,
    )
    _barrier(world)  # the main process has written the final checkpoint and status
    st = run.status
    if rank == 0:
        procs = f", {world} processes" if world > 1 else ""
        print(
            f"{st.get('state')}: {run.path} (step {st.get('step')} of {st.get('total_steps')}"
            f"{procs})"
            + ("" if run.complete else "; run the same command with --resume to continue")
        )
    return 0 if run.complete else 130


def _load_generator(path: Path, device: Any) -> tuple[Any, str]:
    """(generator, value range) from a run folder or a checkpoint stem / .json."""
    from ssd_lib.config import TrainConfig
    from ssd_lib.models import build_generator
    from ssd_lib.training.checkpoint import (
        load_checkpoint,
        load_state_strict,
        refuse_pickles,
        split_prefix,
    )
    from ssd_lib.training.runs import Run

    if path.is_dir():
        run = Run(path)
        if not (path / "config.json").is_file():
            raise UsageError(f"--checkpoint {str(path)!r} is a folder but not a run folder")
        return run.load_generator(device), run.config.real_range
    refuse_pickles(path)  # its refusal says why, and what to load instead
    stem = path.with_suffix("") if path.suffix == ".json" else path
    if not stem.with_suffix(".json").is_file():
        raise UsageError(f"--checkpoint {str(path)!r}: no run folder or checkpoint there")
    tensors, meta = load_checkpoint(stem)
    cfg = TrainConfig.from_dict(meta["config"])
    g = build_generator(cfg)
    load_state_strict(g, split_prefix(tensors, "G"), f"{stem} [G]")
    return g.to(device).eval(), cfg.real_range


def _sample(args: argparse.Namespace) -> int:
    from ssd_lib.metrics.export import export_generated
    from ssd_lib.training.devices import resolve_device

    device = resolve_device(args.device)
    g, value_range = _load_generator(args.checkpoint, device)
    folder = export_generated(g, value_range, args.n, args.out, seed=args.seed, device=device)
    print(f"wrote {args.n} images to {folder}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ssd_lib.data import prepare_dataset
    from ssd_lib.training.devices import resolve_device
    from ssd_lib.training.runs import Run

    if not (args.run / "config.json").is_file():
        raise UsageError(f"--run {str(args.run)!r} is not a run folder (no config.json)")
    run = Run(args.run)
    ds = prepare_dataset(run.config.dataset, root=args.data_root)
    device = resolve_device(args.device)
    if args.metrics == "toy":
        from ssd_lib.metrics.toy import evaluate_generator_toy

        n = args.n or 5000
        g = run.load_generator(device)
        results = evaluate_generator_toy(g, run.config.real_range, ds, n=n)
    else:
        from ssd_lib.metrics.evaluate import evaluate_run

        results = evaluate_run(run, ds, args.protocol, n=args.n, device=device)
        results = {r.name: r for r in results}
    for name, r in results.items():
        print(f"{name}: {r.value:.6g} (n_fake={r.n_fake}, n_real={r.n_real})")
    return 0


COMMANDS = {"prepare": _prepare, "train": _train, "sample": _sample, "eval": _eval}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits with 2 and a message on a bad argument
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return COMMANDS[args.command](args)
    except UsageError as err:
        parser.exit(2, f"ssd {args.command}: error: {err}\n")
    except KeyboardInterrupt:
        resume = (
            " (run the same command with --resume to continue)" if args.command == "train" else ""
        )
        print(f"ssd {args.command}: interrupted{resume}", file=sys.stderr)
        return 130
    except Exception as err:  # one line for the user; the traceback with --verbose
        if args.verbose:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"ssd {args.command}: error: {type(err).__name__}: {first}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
