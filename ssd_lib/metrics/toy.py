"""Offline metrics for the embedded dogs, from a small factor-prediction CNN ("toy" metrics).

The embedded dataset knows every image's factors (fur colour, ear states, ...). A small CNN
trained once to predict them gives two things, with no download:

1. features (its penultimate layer) for a Frechet distance and a KID, named "FD-toy" and
   "KID-toy": they are not FID/KID, which are defined on Inception features.
2. factor predictions, which turn mode collapse into numbers: per-factor distances (how far
   the generated distribution of each predicted factor is from the real one) and combination
   coverage (how many of e.g. the 2 x 2 x 6 ear/ear/fur combinations the generator makes).
3. a realness score (since net version 2): a separate branch trained to tell the clean
   training faces from procedurally broken copies of them (patches shuffled, colour channels
   swapped, smooth colour fields, noise, spliced faces; ``ssd_lib.metrics.degrade``). The
   factor features barely see global structure, which factor labels never asked for: with
   them alone a face cut into shuffled 16 x 16 patches scored *better* on FD-toy than a
   mildly blurred one, kept precision-toy 1.00 and all 24 ear/ear/fur combinations. The
   branch's features (from its whole last map, so where a part sits counts) are appended to
   the factor features for FD, KID and the k-NN metrics; combination coverage counts only
   samples the branch takes for faces, and "realness-toy" reports that share.
   ``docs/metrics.md`` ("Validity ladder") has the numbers before and after.

Real and generated images go through the same predictor, so its errors affect both sides
alike. The net has seen the train images, though, so even unseen real dogs sit a little away
from them: ``toy_metrics(net, dataset.train.images, dataset.val.images)`` is the floor a
perfect generator would reach, not 0. The trained net is cached next to the dataset.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssd_lib.data.cache import PreparedDataset
from ssd_lib.data.embedded import FACTORS
from ssd_lib.metrics import features
from ssd_lib.metrics.features import MetricResult
from ssd_lib.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.images import uint8_to_float
from ssd_lib.utils.locks import locked
from ssd_lib.utils.progress import progress_bar as tqdm
from ssd_lib.utils.validate import check_int, check_seed

log = logging.getLogger(__name__)

# bump when the architecture or the training recipe changes. 2: a realness branch trained on
# broken faces, its features appended to the factor features.
NET_VERSION = 2
DEFAULT_COMBO = ("left_ear_up", "right_ear_up", "fur_colour")  # 2 x 2 x 6 = 24 combinations
DEFAULT_EPOCHS, DEFAULT_BATCH_SIZE, DEFAULT_LR = 12, 64, 2e-3
DEFAULT_WIDTHS, DEFAULT_FEATURE_DIM = (32, 64, 128, 256), 128
DEFAULT_REALNESS_WIDTHS, DEFAULT_REALNESS_DIM = (32, 64, 64), 32
# the realness branch sees each image averaged over 2 x 2 pixel blocks (32 px for 64 px
# images): it is to judge structure (is the face whole?), not grain, JPEG blocks or a
# generator's checkerboard, which it would otherwise learn to reject as "not a render"
REALNESS_POOL = 2
DEFAULT_REALNESS_WEIGHT = 1.0  # the realness BCE's weight in the loss; 0: no realness branch
REALNESS_THRESHOLD = 0.5  # a sample counts as a face when the head's probability is above
# the realness branch's clean examples are jittered half of the time: Gaussian pixel noise of
# SD up to POSITIVE_NOISE (on the [0, 1] scale) and a gain per colour channel within
# 1 +- POSITIVE_GAIN, so that a generator's grain or colour cast alone does not make a face
# "broken"; the factor trunk always sees the clean images
POSITIVE_NOISE, POSITIVE_GAIN = 0.08, 0.15
CACHE_FOLDER = "factor_net"
# Weight of each continuous factor's MSE (targets in [0, 1]) against the cross-entropies. At
# 12 (= 1 / variance of a uniform target) the regression gradients swamp the shared layers
# early and eye colour stalls near chance; at 1 the continuous factors learn slowly.
_MSE_WEIGHT = 4.0


class MissingFactorsError(SSDError, ValueError):
    """The dataset has no ground-truth factors (or unknown ones), so no toy metrics."""


def _spec(name: str) -> dict[str, Any]:
    """What a head needs to know about one factor: kind, and n_classes or range."""
    desc = FACTORS[name]
    if desc["kind"] == "continuous":
        return {"kind": "continuous", "range": [float(v) for v in desc["range"]]}
    return {"kind": desc["kind"], "n_classes": int(desc["n_classes"])}


def _check_factor_data(dataset: PreparedDataset) -> list[str]:
    names = list(dataset.train.factor_names)
    if dataset.train.factors is None or not names:
        raise MissingFactorsError(
            f"dataset {dataset.name!r} has no ground-truth factors; the toy metrics (FD-toy, "
            "KID-toy, factor distances, combination coverage) need the embedded data's factors. "
            "Use ssd_lib.data.embedded.prepare_embedded(), or Inception metrics for this data."
        )
    unknown = [n for n in names if n not in FACTORS]
    if unknown:
        raise MissingFactorsError(
            f"dataset {dataset.name!r} has factors {unknown} that the embedded data does not "
            f"define; the toy metrics know only {list(FACTORS)}"
        )
    return names


class FactorNet(nn.Module):
    """A factor trunk (stride-2 conv blocks, spatial mean, a feature layer, one head per
    factor) and, with ``realness=True``, a separate realness branch.

    Input: float (N, 3, H, W) in [-1, 1], or uint8 in [0, 255] (converted). Factor heads:
    logits over n_classes for binary/categorical factors (binary: 2 classes); for continuous
    ones a single value, the factor rescaled to [0, 1] over its range in ``FACTORS``.

    The realness branch sees the image averaged over ``realness_pool`` x ``realness_pool``
    blocks (structure, not grain), has its own conv blocks (``realness_widths``, GroupNorm,
    so a sample's score never depends on the rest of its batch), reads its last map *whole*
    (flattened: 4 x 4 positions for 64 px images, so where a part sits counts), and ends in
    ``realness_dim`` features and one logit, "a whole face" against "a broken image". The two
    share no weights: the factor trunk trains exactly as in version 1 (one shared trunk
    trained on both tasks learned the factors far worse: ears at chance after 3 epochs).
    ``features`` are the factor features followed by the realness features.
    """

    def __init__(
        self,
        factor_names: list[str] | tuple[str, ...],
        feature_dim: int = DEFAULT_FEATURE_DIM,
        widths: tuple[int, ...] = DEFAULT_WIDTHS,
        image_size: int = 64,
        realness: bool = True,
        realness_widths: tuple[int, ...] = DEFAULT_REALNESS_WIDTHS,
        realness_dim: int = DEFAULT_REALNESS_DIM,
        realness_pool: int = REALNESS_POOL,
    ) -> None:
        super().__init__()
        if not factor_names or any(n not in FACTORS for n in factor_names):
            raise ValueError(f"factor_names={list(factor_names)!r}; allowed: {list(FACTORS)}")
        self.factor_names = list(factor_names)
        self.specs = {name: _spec(name) for name in self.factor_names}
        self.config: dict[str, Any] = {
            "factor_names": self.factor_names,
            "feature_dim": int(feature_dim),
            "widths": [int(w) for w in widths],
            "image_size": int(image_size),
            "realness": bool(realness),
        }
        blocks, c_in = [], 3
        for c in widths:  # 64 -> 32 -> 16 -> 8 -> 4 pixels
            blocks += [nn.Conv2d(c_in, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.body = nn.Sequential(*blocks)
        self.feature = nn.Sequential(nn.Linear(c_in, feature_dim), nn.ReLU())
        self.heads = nn.ModuleDict(
            {name: nn.Linear(feature_dim, s.get("n_classes", 1)) for name, s in self.specs.items()}
        )
        self.realness_body: nn.Module | None = None
        self.realness_head: nn.Module | None = None
        if realness:  # built after the factor trunk, so that trunk's initial weights are v1's
            self.config["realness_widths"] = [int(w) for w in realness_widths]
            self.config["realness_dim"] = int(realness_dim)
            self.config["realness_pool"] = int(realness_pool)
            blocks, c_in, side = [], 3, int(image_size) // int(realness_pool)
            for c in realness_widths:
                blocks += [nn.Conv2d(c_in, c, 3, 2, 1), nn.GroupNorm(min(4, c), c), nn.ReLU()]
                c_in, side = c, (side + 1) // 2
            blocks += [nn.Flatten(), nn.Linear(c_in * side * side, realness_dim), nn.ReLU()]
            self.realness_body = nn.Sequential(*blocks)
            self.realness_head = nn.Linear(realness_dim, 1)

    @property
    def has_realness(self) -> bool:
        return self.realness_head is not None

    @staticmethod
    def _input(x: torch.Tensor) -> torch.Tensor:
        return uint8_to_float(x, "[-1, 1]") if x.dtype == torch.uint8 else x.float()

    def _realness_input(self, x: torch.Tensor) -> torch.Tensor:
        k = self.config["realness_pool"]
        x = self._input(x)
        return F.avg_pool2d(x, k) if k > 1 else x

    def factor_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the factor trunk's features (N, feature_dim), non-negative."""
        return self.feature(self.body(self._input(x)).mean(dim=(2, 3)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) -> features (N, feature_dim [+ realness_dim]), non-negative:
        the factor features, then the realness branch's (if any)."""
        return self.forward_all(x)[2]

    def _factor_outputs(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            name: head(h).squeeze(1) if self.specs[name]["kind"] == "continuous" else head(h)
            for name, head in self.heads.items()
        }

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs per factor: logits (N, n_classes) or normalised values (N,)."""
        return self._factor_outputs(self.factor_features(x))

    def realness_logit(self, x: torch.Tensor) -> torch.Tensor:
        """The realness branch's logit (N,)."""
        if self.realness_body is None or self.realness_head is None:
            raise ValueError("this FactorNet was built without a realness head (realness=False)")
        return self.realness_head(self.realness_body(self._realness_input(x))).squeeze(1)

    def forward_all(
        self, x: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, torch.Tensor]:
        """(factor outputs as ``forward``, realness logits (N,) or None, ``features``)."""
        x = self._input(x)
        h = self.factor_features(x)
        if self.realness_body is None or self.realness_head is None:
            return self._factor_outputs(h), None, h
        r = self.realness_body(self._realness_input(x))
        return self._factor_outputs(h), self.realness_head(r).squeeze(1), torch.cat([h, r], 1)

    def realness(self, x: torch.Tensor) -> torch.Tensor:
        """Probability (N,) that each image is a clean face like the training images."""
        return torch.sigmoid(self.realness_logit(x))

    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per factor: class index (N,) int64, or value (N,) float in natural units clipped to
        the factor's range (e.g. degrees in [-20, 20] for head_rotation_deg)."""
        return self.to_predictions(self.forward(x))

    def to_predictions(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``predict`` from the raw outputs of ``forward``."""
        out = {}
        for name, y in outputs.items():
            if self.specs[name]["kind"] == "continuous":
                lo, hi = self.specs[name]["range"]
                out[name] = lo + (hi - lo) * y.clamp(0.0, 1.0)
            else:
                out[name] = y.argmax(dim=1)
        return out


@dataclass
class FactorNetResult:
    """A trained FactorNet (in eval mode), where it came from, and how well it predicts.

    scores: per factor on the val split, {"accuracy", "majority"} (the share of the most
    common class, i.e. the accuracy of always guessing it) or {"r2", "mae"} (natural units).
    train_seconds: wall-clock training time of the run that made the net (also when cached).
    """

    net: FactorNet
    seed: int
    dataset_hash: str
    scores: dict[str, dict[str, float]]
    train_seconds: float
    train_config: dict[str, Any]
    from_cache: bool = False
    path: Path | None = None
    _weights_sha256: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def feature_network(self) -> str:
        return f"toy factor CNN, seed {self.seed}, dataset hash {self.dataset_hash[:12]}"

    def identity(self) -> dict[str, Any]:
        """What identifies this net's numbers on every machine: the version, seed and recipe,
        and the SHA-256 of its weights (the dataset hash is left out: the embedded renderer
        rounds differently on different CPUs, while the published net's weights are the
        same file everywhere). The weights' hash is computed once per net (the net is not
        trained after it is made)."""
        if self._weights_sha256 is None:
            h = hashlib.sha256()
            for name, tensor in sorted(self.net.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._weights_sha256 = h.hexdigest()[:32]
        return {
            "version": NET_VERSION,
            "seed": self.seed,
            "recipe": self.train_config,
            "weights_sha256": self._weights_sha256,
        }


@torch.no_grad()
def embed(
    net: FactorNet, images: torch.Tensor, batch_size: int = 256
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """uint8 images (N, 3, S, S) -> features float64 (N, D) and predictions per factor (N,)."""
    feats, preds, _ = embed_all(net, images, batch_size)
    return feats, preds


@torch.no_grad()
def embed_all(
    net: FactorNet, images: torch.Tensor, batch_size: int = 256
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """As ``embed``, plus the realness probability (N,) float64 (None without the head)."""
    size = net.config["image_size"]
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1:] != (3, size, size):
        raise ValueError(
            f"images must be uint8 (N, 3, {size}, {size}) like the net's training "
            f"data, got {images.dtype} {tuple(images.shape)}"
        )
    was_training, device = net.training, next(net.parameters()).device
    net.eval()
    feats, preds, real = [], {name: [] for name in net.factor_names}, []
    has_head = getattr(net, "realness_head", None) is not None
    try:
        for chunk in images.split(batch_size):
            outputs, logit, h = net.forward_all(chunk.to(device))
            feats.append(h.double().cpu())
            for name, p in net.to_predictions(outputs).items():
                preds[name].append(p.cpu())
            if has_head:
                real.append(torch.sigmoid(logit).double().cpu())
    finally:
        net.train(was_training)
    return (
        torch.cat(feats).numpy(),
        {k: torch.cat(v).numpy() for k, v in preds.items()},
        torch.cat(real).numpy() if has_head else None,
    )


def _loss(net: FactorNet, outputs: dict, targets: torch.Tensor) -> torch.Tensor:
    """Mean over factors of cross-entropy, or weighted MSE on targets rescaled to [0, 1]."""
    terms = []
    for i, (name, y) in enumerate(outputs.items()):
        s, t = net.specs[name], targets[:, i]
        if s["kind"] == "continuous":
            lo, hi = s["range"]
            terms.append(F.mse_loss(y, (t - lo) / (hi - lo)) * _MSE_WEIGHT)
        else:
            terms.append(F.cross_entropy(y, t.long()))
    return torch.stack(terms).mean()


def held_out_scores(
    net: FactorNet, images: torch.Tensor, factors: torch.Tensor
) -> dict[str, dict[str, float]]:
    """Per-factor scores as in ``FactorNetResult``; factors float (N, F), net's column order.
    R² is ``sklearn.metrics.r2_score``: NaN for fewer than 2 images, and for a constant truth
    1.0 if predicted exactly, else 0.0."""
    from sklearn.metrics import r2_score

    _, preds = embed(net, images)
    scores = {}
    for i, name in enumerate(net.factor_names):
        truth, p = factors[:, i].double().numpy(), preds[name]
        if net.specs[name]["kind"] == "continuous":
            r2 = r2_score(truth, p)  # 1 - SS_res / SS_tot
            scores[name] = {"r2": float(r2), "mae": float(np.abs(p - truth).mean())}
        else:
            counts = np.bincount(truth.astype(np.int64), minlength=net.specs[name]["n_classes"])
            scores[name] = {
                "accuracy": float((p == truth).mean()),
                "majority": float(counts.max() / len(truth)),
            }
    return scores


def _jitter(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Half of ``images`` (at random) with Gaussian pixel noise of a random SD up to
    ``POSITIVE_NOISE`` and a random gain per colour channel within 1 +- ``POSITIVE_GAIN``;
    the rest unchanged."""
    n = len(images)
    on = (torch.rand(n, 1, 1, 1, generator=generator) < 0.5).float()
    sd = on * POSITIVE_NOISE * torch.rand(n, 1, 1, 1, generator=generator)
    gain = 1.0 + on * POSITIVE_GAIN * (2 * torch.rand(n, 3, 1, 1, generator=generator) - 1)
    x = images.float() / 255.0 * gain + sd * torch.randn(images.shape, generator=generator)
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def realness_score(net: FactorNet, images: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """The realness head's accuracy on ``images`` (clean: should say "face") and on one
    degraded copy of each (``degrade.training_negatives`` drawn with ``seed``: should say
    "broken"), and on both together."""
    from ssd_lib.metrics.degrade import training_negatives

    neg = training_negatives(images, torch.Generator().manual_seed(seed))
    p_clean = embed_all(net, images)[2]
    p_neg = embed_all(net, neg)[2]
    clean = float((p_clean > REALNESS_THRESHOLD).mean())
    broken = float((p_neg <= REALNESS_THRESHOLD).mean())
    return {"accuracy": (clean + broken) / 2, "clean": clean, "broken": broken, "majority": 0.5}


def _recipe(
    epochs: int,
    batch_size: int,
    lr: float,
    feature_dim: int,
    widths: tuple[int, ...],
    realness_weight: float = DEFAULT_REALNESS_WEIGHT,
) -> dict[str, Any]:
    """What a trained FactorNet depends on besides data and seed (also its cache key): any
    change here, including the realness head's negatives, gives a new key."""
    from ssd_lib.metrics.degrade import NEGATIVE_KINDS

    recipe: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "feature_dim": feature_dim,
        "widths": [int(w) for w in widths],
        "net_version": NET_VERSION,
        "realness_weight": float(realness_weight),
    }
    if realness_weight > 0:
        recipe["realness_negatives"] = list(NEGATIVE_KINDS)
        recipe["realness_widths"] = list(DEFAULT_REALNESS_WIDTHS)
        recipe["realness_dim"] = DEFAULT_REALNESS_DIM
        recipe["realness_pool"] = REALNESS_POOL
        recipe["positive_jitter"] = [POSITIVE_NOISE, POSITIVE_GAIN]
    return recipe


def train_factor_net(
    dataset: PreparedDataset,
    seed: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LR,
    feature_dim: int = DEFAULT_FEATURE_DIM,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    show_progress: bool = True,
    realness_weight: float = DEFAULT_REALNESS_WEIGHT,
) -> FactorNetResult:
    """Train a FactorNet on ``dataset.train`` (CPU) and score it on ``dataset.val`` (if any).

    Adam with a cosine-decayed learning rate and no augmentation (a flip would swap the left
    and right ears, a rotation would change head_rotation_deg). With ``realness_weight`` > 0
    the realness branch learns, in the same steps, each batch's images (half of them with
    pixel noise and a colour cast, ``POSITIVE_NOISE`` and ``POSITIVE_GAIN``) as clean (1)
    against one broken copy of each (``degrade.training_negatives``) as broken (0), that
    weight on its BCE. The factor trunk sees only the clean images and shares no weight with
    the branch, so it ends exactly as with ``realness_weight=0`` (version 1's net). Initial
    weights come from ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``, shuffling
    and degradations from private generators, so the global RNG is left as it was.
    """
    from ssd_lib.metrics.degrade import training_negatives

    names = _check_factor_data(dataset)
    seed, epochs = check_seed("seed", seed), check_int("epochs", epochs, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    if not realness_weight >= 0:
        raise ValueError(f"realness_weight={realness_weight!r} must be >= 0")
    images, factors = dataset.train.images, dataset.train.factors
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FactorNet(names, feature_dim, widths, dataset.image_size, realness_weight > 0)
    shuffle = torch.Generator().manual_seed(seed)
    degrade = torch.Generator().manual_seed(seed + 1_000_003)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * math.ceil(len(images) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    start = time.perf_counter()
    net.train()
    bar = tqdm(range(epochs), desc="training factor net", unit="epoch", disable=not show_progress)
    for epoch in bar:
        total = 0.0
        for idx in torch.randperm(len(images), generator=shuffle).split(batch_size):
            x = images[idx]
            loss = _loss(net, net(x), factors[idx])
            if net.has_realness:
                both = torch.cat([_jitter(x, degrade), training_negatives(x, degrade)])
                target = torch.cat([torch.ones(len(x)), torch.zeros(len(x))])
                logit = net.realness_logit(both)
                loss = loss + realness_weight * F.binary_cross_entropy_with_logits(logit, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        bar.set_postfix(loss=f"{total / len(images):.3f}")
        log.debug("factor net epoch %d: loss %.4f", epoch, total / len(images))
    seconds = time.perf_counter() - start
    net.eval()
    scores: dict[str, dict[str, float]] = {}
    if dataset.val is None or dataset.val.factors is None:
        log.warning("dataset %s has no val split with factors: no held-out scores", dataset.name)
    else:
        scores = held_out_scores(net, dataset.val.images, dataset.val.factors)
        if net.has_realness:
            scores["realness"] = realness_score(net, dataset.val.images, seed)
    log.info("trained factor net in %.1f s; held-out scores %s", seconds, scores)
    recipe = _recipe(epochs, batch_size, lr, feature_dim, widths, realness_weight)
    return FactorNetResult(net, seed, dataset.content_hash, scores, seconds, recipe)


def _load_cached_net(
    stem: Path,
    key: dict[str, Any],
    dataset: PreparedDataset,
    seed: int,
    recipe: dict[str, Any],
    fingerprint: dict[str, Any] | None = None,
) -> FactorNetResult | None:
    """The net cached at ``stem`` if it was made for ``key``; None (with a warning) if not.
    A net made for the same images rendered on another CPU (another dataset hash, the same
    ``fingerprint``: the cache's own, or the one given) counts as made for this dataset."""
    if not stem.with_suffix(".json").is_file():
        return None
    try:
        tensors, meta = load_checkpoint(stem)
        stale = [k for k, v in key.items() if meta.get(k) != v]
        recorded = fingerprint or meta.get("dataset_fingerprint")
        if stale == ["dataset_hash"] and recorded:
            if not dataset.differs_from(meta["dataset_hash"], recorded):
                stale = []
        if stale:
            log.warning("factor net cache %s differs in %s; training a new one", stem, stale)
            return None
        with torch.random.fork_rng(devices=[]):  # init is overwritten; keep RNG intact
            net = FactorNet(**meta["net_config"])
        load_state_strict(net, tensors, str(stem))
        scores, seconds = meta["scores"], meta["train_seconds"]
    except (CheckpointError, KeyError, TypeError, ValueError) as err:
        log.warning("factor net cache %s is unusable (%s); training a new one", stem, err)
        return None
    log.info("loaded factor net from %s", stem)
    return FactorNetResult(
        net.eval(), seed, dataset.content_hash, scores, seconds, recipe, True, stem
    )


def load_or_train_factor_net(
    dataset: PreparedDataset,
    seed: int = 0,
    root: str | Path | None = None,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    feature_dim: int = DEFAULT_FEATURE_DIM,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    force: bool = False,
    show_progress: bool = True,
    realness_weight: float = DEFAULT_REALNESS_WEIGHT,
) -> FactorNetResult:
    """The cached FactorNet for (dataset hash, seed, recipe); trains and saves it if needed.

    Cache: the checkpoint ``<root>/factor_net_s<seed>`` (JSON + safetensors), ``root``
    defaulting to ``<dataset.path>/factor_net``. A cache made for another dataset hash, recipe
    (``_recipe``: also the net version and the realness branch's settings) or factor set, or
    one that fails to load, is trained over (with a warning). Two processes that need the
    same net at once train it once (the second waits on the cache's lock).
    """
    names = _check_factor_data(dataset)
    seed = check_seed("seed", seed)
    suffix = "" if epochs == DEFAULT_EPOCHS else f"_e{epochs}"  # a short net keeps its own file
    stem = Path(root or Path(dataset.path) / CACHE_FOLDER) / f"factor_net_s{seed}{suffix}"
    recipe = _recipe(epochs, batch_size, DEFAULT_LR, feature_dim, widths, realness_weight)
    key = {
        "dataset_hash": dataset.content_hash,
        "seed": seed,
        "train_config": recipe,
        "specs": {n: _spec(n) for n in names},
    }
    with locked(stem):  # a second process waits, then loads this one's net
        if not force:
            cached = _load_cached_net(stem, key, dataset, seed, recipe)
            if cached is not None:
                return cached
            # The net published with the paper-budget runs (published/toy-factor-net-s0),
            # hash-checked, when it was made for this dataset and recipe: the same weights on
            # every machine, and no training.
            from ssd_lib.experiments.published import factor_net_stem

            shipped, fingerprint = factor_net_stem(stem.name)
            if shipped is not None:
                cached = _load_cached_net(shipped, key, dataset, seed, recipe, fingerprint)
                if cached is not None:
                    return cached
        result = train_factor_net(
            dataset,
            seed,
            epochs,
            batch_size,
            DEFAULT_LR,
            feature_dim,
            widths,
            show_progress,
            realness_weight,
        )
        meta = {
            **key,
            "net_config": result.net.config,
            "scores": result.scores,
            "train_seconds": result.train_seconds,
            "dataset_name": dataset.name,
            "dataset_fingerprint": dataset.fingerprint(),
        }
        save_checkpoint(stem, result.net.state_dict(), meta)
    result.path = stem
    return result


def wasserstein_1d(u: Any, v: Any) -> float:
    """Wasserstein-1 distance between two 1-D samples: the area between their empirical
    CDFs, in the samples' units (``scipy.stats.wasserstein_distance``)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(u, v))


def _entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy (bits) of a histogram (``scipy.stats.entropy``); 0 for an empty one
    (scipy gives NaN), e.g. when no fake passes the realness gate."""
    from scipy.stats import entropy

    if counts.sum() == 0:
        return 0.0
    return float(entropy(counts, base=2))


def toy_metrics(
    net: FactorNetResult,
    real_images: torch.Tensor | tuple,
    fake_images: torch.Tensor | tuple,
    combo_factors: tuple[str, ...] = DEFAULT_COMBO,
    min_count: int = 1,
    k: int = 5,
    batch_size: int = 256,
    min_samples: int | None = None,
) -> dict[str, MetricResult]:
    """All toy metrics between real and generated uint8 images (N, 3, 64, 64) in [0, 255]
    (either may also be given as its ``embed_all`` output, to embed a set only once).

    Keys (each result's ``name`` is its key): "FD-toy", "KID-toy"; "precision-toy",
    "recall-toy", "density-toy", "coverage-toy" (k-NN balls on the toy features);
    "factor-distance-toy/<factor>": total variation between the predicted class distributions
    (0 = equal, 1 = disjoint; class shares in details) or W1 between predicted values divided
    by the factor's range (0..1); "combo-coverage-toy": share of the ``combo_factors``
    combinations predicted at least ``min_count`` times among the fakes (details: the same
    share among the reals, the missing combinations); "combo-entropy-toy": entropy (bits) of
    the fakes' combination histogram (details: the reals', the maximum log2(#combinations)).

    With a realness head (net version 2): "realness-toy", the share of fakes the head takes
    for clean faces (probability > ``REALNESS_THRESHOLD``; details: the reals' share, the mean
    probabilities), and both combination metrics count only those samples (details:
    ``n_counted``), so a combination "occurs" only on something that looks like a dog face:
    noise or a shuffled face whose ears the classifier guesses at covers nothing.
    """
    specs = net.net.specs
    bad = [f for f in combo_factors if f not in specs or specs[f]["kind"] == "continuous"]
    if bad or not combo_factors:
        allowed = [n for n, s in specs.items() if s["kind"] != "continuous"]
        raise ValueError(
            f"combo_factors={combo_factors!r}: {bad} not allowed; use binary or "
            f"categorical factors from {allowed}"
        )
    check_int("min_count", min_count, 1)
    feat_r, pred_r, real_r = (
        real_images
        if isinstance(real_images, tuple)
        else embed_all(net.net, real_images, batch_size)
    )
    feat_f, pred_f, real_f = (
        fake_images
        if isinstance(fake_images, tuple)
        else embed_all(net.net, fake_images, batch_size)
    )
    tag = {"feature_network": net.feature_network}

    def result(name: str, value: float, **details: Any) -> MetricResult:
        return MetricResult(name, float(value), len(feat_r), len(feat_f), {**details, **tag})

    out = {
        "FD-toy": features.frechet_distance(feat_r, feat_f, "FD-toy", min_samples),
        "KID-toy": features.kernel_distance(feat_r, feat_f, "KID-toy", min_samples=min_samples),
    }
    for key, r in features.precision_recall(feat_r, feat_f, k, min_samples).items():
        out[f"{key}-toy"] = MetricResult(f"{key}-toy", r.value, r.n_real, r.n_fake, r.details)
    for r in out.values():
        r.details.update(tag)
    for name, s in specs.items():
        a, b, key = pred_r[name], pred_f[name], f"factor-distance-toy/{name}"
        if s["kind"] == "continuous":
            lo, hi = s["range"]
            out[key] = result(
                key,
                wasserstein_1d(a, b) / (hi - lo),
                distance="W1 / range",
                range=[lo, hi],
                real_mean=float(a.mean()),
                fake_mean=float(b.mean()),
            )
        else:
            p = np.bincount(a, minlength=s["n_classes"]) / len(a)
            q = np.bincount(b, minlength=s["n_classes"]) / len(b)
            out[key] = result(
                key,
                0.5 * np.abs(p - q).sum(),
                distance="total variation",
                classes=FACTORS[name].get("values", list(range(s["n_classes"]))),
                real_share=p.round(4).tolist(),
                fake_share=q.round(4).tolist(),
            )

    sizes = [specs[f]["n_classes"] for f in combo_factors]
    n_combos = math.prod(sizes)
    gated = real_r is not None and real_f is not None
    keep_r = real_r > REALNESS_THRESHOLD if gated else np.ones(len(feat_r), bool)
    keep_f = real_f > REALNESS_THRESHOLD if gated else np.ones(len(feat_f), bool)
    h_r, h_f = (
        np.bincount(
            np.ravel_multi_index([pred[f][keep] for f in combo_factors], sizes),
            minlength=n_combos,
        )
        for pred, keep in ((pred_r, keep_r), (pred_f, keep_f))
    )
    missing = [
        dict(zip(combo_factors, map(int, np.unravel_index(i, sizes)), strict=True))
        for i in np.flatnonzero(h_f < min_count)
    ]
    common = {
        "factors": list(combo_factors),
        "n_combinations": n_combos,
        "counted": "samples the realness head takes for faces" if gated else "all samples",
        "n_counted": int(keep_f.sum()),
        "real_n_counted": int(keep_r.sum()),
    }
    if gated:
        out["realness-toy"] = result(
            "realness-toy",
            keep_f.mean(),
            real_value=float(keep_r.mean()),
            threshold=REALNESS_THRESHOLD,
            mean_probability=float(real_f.mean()),
            real_mean_probability=float(real_r.mean()),
        )
    out["combo-coverage-toy"] = result(
        "combo-coverage-toy",
        (h_f >= min_count).mean(),
        real_value=float((h_r >= min_count).mean()),
        min_count=min_count,
        missing=missing[:50],
        n_missing=len(missing),
        **common,
    )
    out["combo-entropy-toy"] = result(
        "combo-entropy-toy",
        _entropy_bits(h_f),
        real_value=_entropy_bits(h_r),
        max_value=math.log2(n_combos),
        unit="bits",
        **common,
    )
    return out


def draw_train(dataset: PreparedDataset, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` train images (all if fewer), drawn without replacement with ``seed``, in order."""
    real = dataset.train.images
    if len(real) > n:
        idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n]
        real = real[idx.sort().values]
    return real


def real_floor(
    net: FactorNetResult, dataset: PreparedDataset, n: int, seed: int = 0, **metric_kwargs: Any
) -> dict[str, MetricResult]:
    """The toy metrics of ``n`` real *held-out* (val) images against ``n`` train images: what
    an ideal generator that does not copy its training set would score at that count. FD and
    KD depend on n, so compare generators with this only at the same n."""
    if dataset.val is None:
        raise ValueError(f"dataset {dataset.name!r} has no val split to measure a floor with")
    n = min(n, len(dataset.val))
    return toy_metrics(net, draw_train(dataset, n, seed), dataset.val.images[:n], **metric_kwargs)


def evaluate_generator_toy(
    generator: nn.Module,
    value_range: str,
    dataset: PreparedDataset,
    n: int = 5000,
    seed: int = 0,
    net: FactorNetResult | None = None,
    batch_size: int = 256,
    **metric_kwargs: Any,
) -> dict[str, MetricResult]:
    """Toy metrics of ``n`` samples (codes ``sample_z(n, generator.z_dim, seed)``) against
    ``n`` train images: all of them if there are fewer, else drawn without replacement with
    ``seed``. Each result's n_real says how many real images were used.

    ``value_range`` is the range the generator imitates (see
    ``ssd_lib.generation.sampling.generate``);
    ``net`` defaults to ``load_or_train_factor_net(dataset)``; ``metric_kwargs`` go to
    ``toy_metrics``.
    """
    from ssd_lib.generation.sampling import generate, sample_z

    n = check_int("n", n, 1)
    if net is None:
        net = load_or_train_factor_net(dataset)
    if net.dataset_hash != dataset.content_hash:
        log.warning(
            "factor net was trained on dataset hash %s, evaluating on %s",
            net.dataset_hash[:12],
            dataset.content_hash[:12],
        )
    fake = generate(generator, sample_z(n, generator.z_dim, seed), value_range, batch_size)
    real = draw_train(dataset, n, seed)
    log.info("toy metrics: %d generated vs %d real images", len(fake), len(real))
    return toy_metrics(net, real, fake, batch_size=batch_size, **metric_kwargs)
