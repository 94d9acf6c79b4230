"""What the class notebook (``lessons/gan_class.py``) calls, so that its cells stay short.

Everything here that runs a student's function reports a function that is not written yet
(``NotImplementedError``, the student notebook's stubs) in one line instead of raising, so
that the student notebook runs from top to bottom before any exercise is done.

- :func:`published_runs` / :func:`missing_note`: the published runs the lesson can use now,
  and one line naming those not published yet;
- :func:`quiz_pool`: real held-out images and samples of each published run for the
  real-or-fake warm-up (:mod:`ssd_lib.teach.quiz`);
- :func:`assemble`: the students' AdaIN (and mapping) inside the published SSD generator,
  drawing the same dogs as the library's modules, with the largest pixel difference;
- :func:`power_iteration_table`: the students' power iteration on a published
  discriminator's SN layers, against the exact SVD;
- :func:`by_hand_vs_library`: the students' FD and KID beside ``ssd_lib.metrics.features``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ssd_lib.teach.feedback import FAIL_MARK, PASS_MARK, first_line

log = logging.getLogger(__name__)


# ----- published runs ---------------------------------------------------------------------


def published_runs(names: Iterable[str], seed: int = 42, root: Any = None) -> dict[str, Any]:
    """{name: PublishedRun} for each suite run in ``names`` published with ``seed``; the
    others are left out (see :func:`missing_note`). A published run whose files do not match
    the manifest still raises, naming the file."""
    from ssd_lib.experiments.published import (
        PublishedRunError,
        load_published,
        published_key,
        read_manifest,
    )

    have = read_manifest(root)["runs"]
    out = {}
    for name in names:
        if published_key(name, seed) not in have:
            continue
        try:
            out[name] = load_published(name, seed, root)
        except PublishedRunError as err:
            if "no published run" in str(err):
                continue
            raise
    return out


def missing_note(names: Iterable[str], runs: dict[str, Any], seed: int = 42) -> str:
    """One line naming the runs of ``names`` not in ``runs`` ("" when none is missing)."""
    from ssd_lib.experiments.published import published_key

    missing = [published_key(n, seed) for n in names if n not in runs]
    if not missing:
        return ""
    return (
        f"not published yet: {', '.join(missing)}; this part uses it once it is (update the "
        f"repository, then rerun the cell)"
    )


# ----- the quiz -----------------------------------------------------------------------------


def quiz_pool(dataset: Any, runs: dict[str, Any], n_per_source: int = 12, seed: int = 0) -> list:
    """Quiz items: ``n_per_source`` held-out real images (the validation split; the training
    split if there is none) and as many samples of each run's generator (codes from
    ``seed``, no truncation), in the order :func:`ssd_lib.teach.quiz.make_pool` draws."""
    from ssd_lib.generation.sampling import generate, sample_z
    from ssd_lib.teach.quiz import make_pool

    real = dataset.val if dataset.val is not None and len(dataset.val) >= n_per_source else None
    real_images = (real or dataset.train).images
    fakes = {}
    for name, run in runs.items():
        g = run.load_generator()
        z = sample_z(n_per_source, g.z_dim, seed)
        fakes[name] = generate(g, z, run.config.real_range)
    return make_pool(real_images, fakes, n_per_source=n_per_source, seed=seed)


# ----- part 2: the students' AdaIN and mapping inside the published generator -------------


class StudentSSD(nn.Module):
    """An SSD generator's forward pass with the student's ``adain(x, scale, bias)`` and,
    optionally, ``mapping(z, weight, bias, n_layers)`` in place of the library's modules.

    Every weight (the mapping layer, the constant, the convolutions, each AdaIN's scale and
    bias layers, the output convolution) is the wrapped generator's own; only the two
    computations are the student's."""

    def __init__(
        self, generator: nn.Module, adain: Callable[..., Any], mapping: Callable[..., Any] | None
    ) -> None:
        super().__init__()
        for part in ("mapping", "const", "convs", "norms", "to_rgb"):
            if not hasattr(generator, part):
                raise ValueError(
                    f"{type(generator).__name__} is not an SSD generator (it has no {part!r}); "
                    "load the published SSD run's generator"
                )
        if mapping is not None and not generator.mapping.tied:
            raise ValueError("the student's mapping_forward is the tied mapping (one layer)")
        self.g = generator
        self.adain = adain
        self.student_mapping = mapping
        self.z_dim = generator.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        g = self.g
        if self.student_mapping is None:
            w = g.mapping(z)
        else:
            layer = g.mapping.layers[0]
            w = self.student_mapping(z, layer.weight, layer.bias, g.mapping.n_layers)
        x = g.const.expand(len(z), -1, -1, -1)  # one constant for every sample
        for conv, norm in zip(g.convs, g.norms, strict=True):
            x = torch.relu(self.adain(conv(x), norm.scale(w), norm.bias(w)))
        return torch.tanh(g.to_rgb(x))


@dataclass
class Assembly:
    """The result of :func:`assemble`: one verdict line (``str``), both image batches and
    the largest difference between them in pixel levels (0-255)."""

    passed: bool
    message: str
    library: torch.Tensor
    student: torch.Tensor | None = None
    max_diff: int | None = None
    label: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return f"{PASS_MARK if self.passed else FAIL_MARK} assembled generator: {self.message}"

    __repr__ = __str__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def figure(self) -> Any:
        """The library's samples (top row) above the student's (bottom row), same codes."""
        from ssd_lib.reporting.plots import strips_figure

        rows = [("the library's AdaIN and mapping", self.library)]
        if self.student is not None:
            rows.append((f"yours (largest pixel difference: {self.max_diff})", self.student))
        return strips_figure(rows, "The same codes through both generators", self.label)


def assemble(
    generator: nn.Module,
    adain: Callable[..., Any],
    mapping: Callable[..., Any] | None = None,
    value_range: str = "[0, 1]",
    n: int = 8,
    seed: int = 0,
    label: str = "",
) -> Assembly:
    """Draw ``n`` samples (codes ``sample_z(n, z_dim, seed)``) with the library's generator
    and with :class:`StudentSSD` built on the same weights; compare them pixel by pixel.

    Passes when no pixel differs by more than one level of 255 (float rounding in another
    but correct formula can move a value across a rounding boundary). A ``mapping`` that is
    not written yet (the optional exercise) is replaced by the library's mapping, and the
    message says so."""
    from ssd_lib.generation.sampling import generate, sample_z

    z = sample_z(n, generator.z_dim, seed)
    library = generate(generator, z, value_range)
    note = ""
    parts = {"adain": adain, "mapping": mapping}
    for attempt in range(2):
        try:
            student = generate(StudentSSD(generator, adain, mapping), z, value_range)
            break
        except NotImplementedError as err:
            if mapping is not None and attempt == 0 and _raises_not_implemented(mapping):
                mapping = None
                note = " (your mapping is not written yet: the library's mapping was used)"
                continue
            name = "adain" if _raises_not_implemented(adain) else "a function"
            return Assembly(
                False,
                f"not written yet: {name} raises NotImplementedError({str(err)!r}); write it, "
                f"run its check, then this cell again",
                library,
                label=label,
            )
        except Exception as err:  # the student's bug, in one line
            first = first_line(err)
            who = ", ".join(k for k, f in parts.items() if f is not None)
            return Assembly(
                False,
                f"the generator with your {who} raised {type(err).__name__}: {first}. Run the "
                f"exercise checks first: they name the usual mistakes",
                library,
                label=label,
            )
    diff = int((student.int() - library.int()).abs().max())
    n_diff, n_all = int((student != library).sum()), student.numel()
    if diff <= 1:
        message = (
            f"{'your AdaIN and mapping draw' if mapping is not None else 'your AdaIN draws'} "
            f"the same dogs as "
            f"the library: largest pixel difference {diff} of 255 ({n_diff} of {n_all} values "
            f"differ at all){note}"
        )
        return Assembly(True, message, library, student, diff, label)
    message = (
        f"the images differ by up to {diff} of 255 levels ({n_diff} of {n_all} values){note}. "
        f"Run the exercise checks: a function can pass on small inputs and still differ here "
        f"only if it treats a shape differently (e.g. a batch of one)"
    )
    return Assembly(False, message, library, student, diff, label)


def _raises_not_implemented(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is a stub: calling it with placeholder arguments raises
    NotImplementedError before doing anything else."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    try:
        fn(*([None] * code.co_argcount))
    except NotImplementedError:
        return True
    except Exception:
        return False
    return False


# ----- part 2: power iteration on a published discriminator -------------------------------


def power_iteration_table(
    discriminator: nn.Module, power_iteration: Callable[..., Any] | None = None
) -> Any:
    """One row per SN layer of ``discriminator``: the largest singular value of the stored
    weight (exact, by SVD), SN's own estimate from its stored vectors (u^T W v), the
    student's estimate after 1 and 50 rounds from the stored u, and the largest singular
    value of the weight the layer applies (stored / estimate; close to 1).

    A ``power_iteration`` that is not written yet leaves its columns out, with a warning."""
    import pandas as pd

    from ssd_lib.training.sigma_tracker import exact_sigma, weight_matrix

    rows, yours_ok = [], power_iteration is not None
    convs = discriminator.tracked_convs() if hasattr(discriminator, "tracked_convs") else {}
    for name, conv in convs.items():
        if not hasattr(conv, "weight_orig"):
            continue
        with torch.no_grad():
            w = weight_matrix(conv).detach().double()
            u, v = conv.weight_u.detach().double(), conv.weight_v.detach().double()
            estimate = float(u @ (w @ v))
            exact = exact_sigma(w)
            row = {
                "layer": name,
                "shape": f"{tuple(w.shape)}",
                "stored sigma (SVD)": exact,
                "SN's estimate": estimate,
                "applied sigma": exact_sigma(w / estimate),
            }
            if yours_ok:
                try:
                    one = float(power_iteration(w.clone(), u.clone(), 1)[0])
                    fifty = float(power_iteration(w.clone(), u.clone(), 50)[0])
                    row.update({"yours, 1 round": one, "yours, 50 rounds": fifty})
                except Exception as err:  # a stub, or the student's bug: one line
                    yours_ok = False
                    warnings.warn(
                        f"power_iteration: {_why(err)}; the table shows the library's numbers only",
                        stacklevel=2,
                    )
        rows.append(row)
    if not rows:
        raise ValueError(f"{type(discriminator).__name__} has no spectrally normalised layer")
    table = pd.DataFrame(rows)
    if not yours_ok:
        table = table.drop(columns=["yours, 1 round", "yours, 50 rounds"], errors="ignore")
    return table


# ----- part 5: FD and KID by hand against the library -------------------------------------


def by_hand_vs_library(
    frechet_distance: Callable[..., Any] | None,
    kid: Callable[..., Any] | None,
    real: np.ndarray,
    others: dict[str, np.ndarray],
) -> Any:
    """One row per feature set in ``others``, compared with ``real``: the student's FD and
    KID beside ``ssd_lib.metrics.features`` (pytorch-fid's FD; clean-fid's KID with one
    subset of every sample, so that it is exact rather than averaged over random subsets).
    Use feature sets of equal size. A function not written yet gives NaN, with a warning."""
    import pandas as pd

    from ssd_lib.metrics import features

    status = {"FD": frechet_distance, "KID": kid}
    rows = []
    for name, fake in others.items():
        m = min(len(real), len(fake))
        library = {
            "FD": features.frechet_distance(real, fake, min_samples=2).value,
            "KID": features.kernel_distance(
                real, fake, num_subsets=1, max_subset_size=m, min_samples=2
            ).value,
        }
        row: dict[str, Any] = {"real against": name, "n": m}
        for metric, fn in (("FD", frechet_distance), ("KID", kid)):
            yours = np.nan
            if status[metric] is not None:
                try:
                    yours = float(fn(np.copy(real), np.copy(fake)))
                except Exception as err:  # a stub, or the student's bug: one line
                    status[metric] = None
                    name_ = getattr(fn, "__name__", metric)
                    warnings.warn(f"{name_}: {_why(err)}; its column is NaN", stacklevel=2)
            row[f"{metric}, yours"] = yours
            row[f"{metric}, library"] = library[metric]
        rows.append(row)
    return pd.DataFrame(rows)


def _why(err: Exception) -> str:
    """One line for an exception of a student's function."""
    if isinstance(err, NotImplementedError):
        return "not written yet"
    first = first_line(err)
    return f"raised {type(err).__name__}: {first}"
