"""Where and how a run computes: device, precision, process rank, and signals.

``resolve_device("auto")`` picks CUDA, then MPS, then the CPU; ``resolve_precision`` turns a
config's precision (with "auto") into the one this machine runs; ``stop_on_signals`` turns
Ctrl-C and SIGTERM into a flag the training loop reads between steps.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch

log = logging.getLogger("ssd_lib.training.trainer")  # messages read as the trainer's


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" picks CUDA, then Apple's MPS, then the CPU."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run computes in. "auto" is bf16 on CUDA GPUs that support it and on
    CPUs with native bf16 (avx512_bf16 or AMX), fp32 everywhere else: emulated bf16 on an
    AVX2-only CPU is many times slower than fp32. An explicit "bf16" is honoured, with a
    warning where it is emulated."""
    from ssd_lib.utils.hardware import has_native_bf16

    if device.type == "cuda":  # Ampere (8.x) and newer; older GPUs emulate bf16
        native = torch.cuda.get_device_properties(device).major >= 8
    elif device.type == "cpu":
        native = has_native_bf16()
    else:
        native = False
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        log.warning(
            "precision='bf16' on %s without native bf16: it is emulated and slow; "
            "use 'auto' or 'fp32'",
            device,
        )
    if precision == "fp16" and device.type != "cuda":
        log.warning(
            "precision='fp16' on %s: fp16 with loss scaling is meant for CUDA GPUs and is "
            "slow here; use 'auto', 'bf16' or 'fp32'",
            device,
        )
    return precision


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def rank_and_world() -> tuple[int, int]:
    """(rank, number of processes) under torch.distributed; (0, 1) otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextlib.contextmanager
def stop_on_signals(flag: dict[str, Any]) -> Iterator[None]:
    """Turn Ctrl-C / SIGTERM into a flag the loop checks between steps (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        flag["stop"] = signal.Signals(signum).name

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            # A handler installed from C reads back as None and cannot be re-installed.
            signal.signal(s, h if h is not None else signal.SIG_DFL)
