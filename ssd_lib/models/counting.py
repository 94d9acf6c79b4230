"""Parameter counts: the true count, and the count the paper's layer-summary tool printed.

The paper reports 3,809,104 parameters for the SSD generator and 6.574 M in total. The
release's generator really has 3,778,904. The difference comes from how a per-layer summary
tool counts: it hooks every leaf module, adds that module's own parameters each time the
module is *called*, and never sees a parameter that belongs to no leaf module. So the mapping
layer, called four times, is counted four times, and the learned constant (a bare
``nn.Parameter`` on the generator) is not counted at all:

    3,778,904 - 100 + 3 x 10,100 = 3,809,104

``summary_tool_count`` reproduces that behaviour by running a forward pass with hooks; it is
a measurement of the tool's arithmetic, not a hard-coded number.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def count_parameters(module: nn.Module) -> int:
    """The true number of parameters (each shared tensor once)."""
    return sum(p.numel() for p in module.parameters())


def summary_tool_count(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Parameters as a per-call layer-summary tool counts them (see module docstring)."""
    total = 0

    def hook(mod: nn.Module, args: object, out: object) -> None:
        nonlocal total
        total += sum(p.numel() for p in mod.parameters(recurse=False))

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(*inputs)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return total


def format_millions(n: int) -> str:
    """Millions with three decimals, truncated as the paper's numbers are (6,574,672 -> 6.574)."""
    return f"{math.floor(n / 1_000) / 1_000:.3f}"
