"""Importing the authors' released PyTorch Lightning checkpoint (a ``.ckpt`` file).

Why ``weights_only=True`` and nothing else: a ``.ckpt`` file is a pickle, and unpickling runs
whatever Python call the file names (``os.system`` included). A fully unpickled checkpoint from
the internet is therefore a program, not data. ``torch.load(..., weights_only=True)`` uses a
restricted unpickler that rebuilds only tensors and plain containers (dict, list, tuple, str,
numbers) and refuses any other object before calling anything. This module loads that way
only, so a file holding other Python objects is refused with a one-line error, never trusted.
That includes harmless-looking ones (an ``argparse.Namespace`` or NumPy array among the
hyper-parameters); the error says how to re-save just the tensors. Code elsewhere in the
process can widen the allowlist with ``torch.serialization.add_safe_globals``; this project
never does. (Our own checkpoints avoid pickle altogether: safetensors + JSON, see
``ssd_lib.training.checkpoint``.)

What the file holds: ``torch.save`` of a dict whose ``"state_dict"`` maps
``<attribute>.<parameter name>`` to tensors, ``<attribute>`` being the LightningModule
attribute that holds a network (e.g. ``generator.`` and ``discriminator.``), next to Lightning's
bookkeeping (epoch, global_step, optimizer_states, hyper_parameters, ...), which is ignored.
A bare state dict (the same keys, no bookkeeping) is accepted too.

The release does not document its attribute or layer names, so tensors are matched by
structure, against networks built from ``cfg`` (``make_config("paper")`` by default):

1. the keys are grouped by their first component (the attribute). The generator's group is the
   one whose tensors fit the generator (step 2), the discriminator's likewise;
   ``generator_prefix`` / ``discriminator_prefix`` name them where that is ambiguous.
2. inside a group, a tensor named exactly as one of ours (after the prefix) with our shape is
   matched by name; the others by order and shape: the k-th remaining file tensor of a shape
   and kind (float or integer) goes to our k-th remaining tensor of that shape and kind. State
   dicts list tensors in module-definition order, so this holds for any naming as long as
   same-shaped tensors are defined in the same order (e.g. AdaIN's scale before its bias;
   a release that defines them the other way round would import with the two swapped, and
   nothing in the file can tell).
   A tied layer saved under several names (one storage) counts once.

A file that does not fit fails with the unmatched names and shapes on both sides. The release
has no ``w_avg`` (the centre truncation pulls towards): it is estimated as the mean of
``mapping(z)`` over ``w_avg_samples`` codes from seed 0.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssd_lib.config import TrainConfig, make_config
from ssd_lib.generation.sampling import sample_z
from ssd_lib.models import build_discriminator, build_generator
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.validate import check_int

log = logging.getLogger(__name__)

ZIP_MAGIC = b"PK\x03\x04"  # torch.save since PyTorch 1.6 writes a zip archive
PICKLE_PROTO = 0x80  # a pickle of protocol >= 2 (older torch.save files, plain pickles) starts so
OURS_ONLY = ("w_avg",)  # buffers the release does not have: matched by name or not at all
MAY_BE_ABSENT = ("num_batches_tracked",)  # BatchNorm counters older files lack
SHOW = 12  # unmatched entries listed in an error


class ReleaseImportError(SSDError, ValueError):
    """The release checkpoint cannot be read, is refused, or does not fit the networks."""


def load_release_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a Lightning ``.ckpt`` (its ``"state_dict"``) or of a bare state dict file,
    read with ``torch.load(weights_only=True)`` only; every error names the file."""
    path = Path(path)
    if not path.is_file():
        raise ReleaseImportError(f"release checkpoint {path} does not exist (or is not a file)")
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        raise ReleaseImportError(f"release checkpoint {path} is empty")
    if not head.startswith(ZIP_MAGIC) and head[0] != PICKLE_PROTO:
        raise ReleaseImportError(
            f"{path} is not a PyTorch checkpoint: it starts with {head!r}, not with a zip "
            "archive (torch.save) or a pickle"
        )
    try:
        with warnings.catch_warnings():  # plain pickles: torch warns, then refuses (below)
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only runs no code from the file: any error is the file's
        raise _load_error(path, err) from None
    if not isinstance(obj, dict):
        raise ReleaseImportError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict):
        state = {"state_dict": state}
    bad = [k for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise ReleaseImportError(
            f"{path} has no 'state_dict' of tensors (top-level keys: {_short(list(obj))}; "
            f"non-tensor entries: {_short(bad)})"
        )
    return state


def import_release_checkpoint(
    path: str | Path,
    cfg: TrainConfig | None = None,
    generator_prefix: str | None = None,
    discriminator_prefix: str | None = None,
    w_avg_samples: int = 10_000,
) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) built from ``cfg`` (default ``make_config("paper")``) with
    the weights of the release checkpoint ``path``, both in eval mode on the CPU.

    The generator reads codes (N, nz) and returns images in [-1, 1] (tanh), to be read in
    ``cfg.real_range`` as usual. See the module docstring for how tensors are matched.
    """
    cfg = make_config("paper") if cfg is None else cfg
    if not isinstance(cfg, TrainConfig):
        raise ReleaseImportError(f"cfg={cfg!r} is invalid; allowed: a TrainConfig or None")
    w_avg_samples = check_int("w_avg_samples", w_avg_samples, 0)
    path = Path(path)
    groups = _group(load_release_state_dict(path))
    g, d = build_generator(cfg), build_discriminator(cfg)
    g_prefix, g_match = _pick(path, groups, g, "generator", generator_prefix, exclude=None)
    d_prefix, d_match = _pick(path, groups, d, "discriminator", discriminator_prefix, g_prefix)
    _copy(g, groups[g_prefix], g_match)
    _copy(d, groups[d_prefix], d_match)
    if hasattr(g, "w_avg") and hasattr(g, "mapping") and "w_avg" not in g_match and w_avg_samples:
        with torch.no_grad():
            g.w_avg.copy_(g.mapping(sample_z(w_avg_samples, g.z_dim, 0)).mean(0))
    for prefix, match in ((g_prefix, g_match), (d_prefix, d_match)):
        by_name = sum(1 for ours, theirs in match.items() if ours == theirs)
        log.info(
            "%s: %r -> %d tensors (%d by name, %d by order and shape)",
            path.name,
            prefix,
            len(match),
            by_name,
            len(match) - by_name,
        )
    return g.eval(), d.eval()


def _load_error(path: Path, err: Exception) -> ReleaseImportError:
    text = str(err)
    if "Weights only load failed" in text:
        found = re.search(
            r"Unsupported global: GLOBAL [\w.]+|unsupported GLOBAL [\w.]+|Unsupported operand \d+",
            text,
        )
        detail = found.group(0) if found else "see torch.load's weights_only documentation"
        return ReleaseImportError(
            f"{path}: refused: it contains Python objects other than tensors, or pickle code "
            f"the safe loader cannot check ({detail}); it is read with torch.load(weights_only="
            "True) only, because full unpickling can run arbitrary code. If you trust the "
            "file, re-save just its tensors in a throw-away environment "
            "(torch.save(torch.load(f, weights_only=False)['state_dict'], 'weights.pt')) and "
            "import that file"
        )
    first_line = text.strip().splitlines()[0] if text.strip() else "no details"
    return ReleaseImportError(
        f"{path} cannot be read as a PyTorch checkpoint (truncated or damaged?): "
        f"{type(err).__name__}: {first_line}"
    )


def _short(names: list[Any]) -> str:
    more = f" ... and {len(names) - SHOW} more" if len(names) > SHOW else ""
    return f"{names[:SHOW]}{more}"


def _describe(tensors: dict[str, torch.Tensor], names: list[str]) -> str:
    return _short([f"{n} {tuple(tensors[n].shape)}" for n in names])


def _group(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """prefix -> {rest of the name: tensor}, with aliases of one storage kept once."""
    groups: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    seen: set[tuple] = set()
    for name, t in state.items():
        prefix, _, rest = name.partition(".")
        if not rest:
            continue  # a top-level buffer of the LightningModule, not part of a network
        alias = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())
        if t.numel() and alias in seen:
            continue  # a tied layer saved under several names
        seen.add(alias)
        groups[prefix][rest] = t
    return dict(groups)


def _kind(t: torch.Tensor) -> tuple[tuple[int, ...], bool]:
    return tuple(t.shape), t.is_floating_point()


def _match(
    theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]
) -> tuple[dict[str, str], list[str], list[str]]:
    """(our name -> their name, their unmatched names, our unmatched required names)."""
    pairs = {n: n for n, t in ours.items() if n in theirs and _kind(theirs[n]) == _kind(t)}
    used = set(pairs.values())
    queues: dict[tuple, list[str]] = defaultdict(list)
    for n, t in theirs.items():
        if n not in used:
            queues[_kind(t)].append(n)
    missing = []
    for n, t in ours.items():
        if n in pairs or n.rpartition(".")[2] in OURS_ONLY:
            continue
        if queues[_kind(t)]:
            pairs[n] = queues[_kind(t)].pop(0)
        elif n.rpartition(".")[2] not in MAY_BE_ABSENT:
            missing.append(n)
    extra = [n for q in queues.values() for n in q]
    return pairs, extra, missing


def _pick(
    path: Path,
    groups: dict[str, dict[str, torch.Tensor]],
    net: nn.Module,
    role: str,
    prefix: str | None,
    exclude: str | None,
) -> tuple[str, dict[str, str]]:
    """The group holding ``net`` and how its tensors map onto ours."""
    ours = net.state_dict()
    sizes = {p: len(t) for p, t in groups.items()}
    if prefix is not None:
        if prefix not in groups:
            raise ReleaseImportError(
                f"{role}_prefix={prefix!r} is invalid; allowed: a prefix in {path} with its "
                f"tensor count: {sizes}"
            )
        candidates = [prefix]
    else:
        candidates = [p for p in groups if p != exclude]
    results = {p: _match(groups[p], ours) for p in candidates}
    fits = [p for p, (_, extra, missing) in results.items() if not extra and not missing]
    if len(fits) > 1:
        raise ReleaseImportError(
            f"{path}: several prefixes fit the {role} ({fits}); pass {role}_prefix= one of them"
        )
    if not fits:
        if not results:
            raise ReleaseImportError(f"{path} has no tensors left for the {role}: {sizes}")
        best = min(results, key=lambda p: len(results[p][1]) + len(results[p][2]))
        _, extra, missing = results[best]
        raise ReleaseImportError(
            f"{path}: no prefix fits the {role} {type(net).__name__} built from the config "
            f"(prefixes and tensor counts: {sizes}); closest {best!r}: unmatched in the file "
            f"{_describe(groups[best], extra)}, unmatched in the model {_describe(ours, missing)}"
        )
    return fits[0], results[fits[0]][0]


def _copy(net: nn.Module, theirs: dict[str, torch.Tensor], match: dict[str, str]) -> None:
    state = net.state_dict()  # keeps the metadata spectral_norm's load hook reads
    for ours, name in match.items():
        state[ours] = theirs[name].to(state[ours].dtype).clone()
    net.load_state_dict(state, strict=True)
