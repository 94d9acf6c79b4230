"""A validity ladder for the metrics of a generator's latent space: linear probes and PPL-toy.

The sample ladder (``metrics.ladder``) checks metrics of a set of images. Probes and path
lengths need codes and a generator, so their ladder is made of *generators* whose latent
structure is known by construction. Each answers a code z with real embedded images, so the
toy CNN sees real faces and only the way z chooses them differs:

============  ==============================================================================
generator     how z picks the image
============  ==============================================================================
coded         the factors are written in z: left ear up iff z[0] > 0, right ear up iff
              z[1] > 0, fur colour = argmax z[2:8]; among the images with those factors,
              argmax z[8:16] picks one. Every factor a probe reads is a simple function of z,
              and the image changes only where z crosses one of those boundaries.
hashed        a hash of z's digits to the 6th decimal picks any image: the factors have
              nothing to do with z, and the image changes under any change of z.
blend         a softmax over z @ U (U a fixed random (z_dim, 16) matrix, temperature 0.5)
              mixes 16 real images: the image moves smoothly and everywhere with z.
one_image     one image for every z (total collapse).
============  ==============================================================================

What each metric must say (``EXPECTATIONS``, checked by ``check`` and in the tests):

- linear probes from z: ``coded`` far above chance on the ear and fur-colour factors,
  ``hashed`` at chance (its factors are not a function of z that any probe can read);
  ``one_image`` has one class per factor, so the probes are skipped (nothing to predict).
- PPL-toy in z: ``blend`` (smooth, moving) below ``hashed`` (a jump under every step).
  ``coded`` and ``one_image`` come out near 0: piecewise constant codes change the image only
  at boundaries, which a pair of codes 1e-4 apart almost never crosses, and the trimmed mean
  (1-99 %) drops those few. So PPL measures local smoothness, not whether z controls
  anything; that is why it is read only next to a healthy sample verdict and the probes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ssd_lib.data.cache import PreparedDataset

Z_DIM = 16
BLEND_IMAGES, BLEND_TEMPERATURE = 16, 0.5
GENERATORS = ("coded", "hashed", "blend", "one_image")
CODED_FACTORS = ("left_ear_up", "right_ear_up", "fur_colour")


class ImageBankGenerator(nn.Module):
    """A stand-in generator that answers codes z (N, ``Z_DIM``) with real images in [-1, 1]
    (module docstring). It has no W space, like DCGAN."""

    def __init__(self, dataset: PreparedDataset, mode: str, seed: int = 0) -> None:
        super().__init__()
        if mode not in GENERATORS:
            raise ValueError(f"mode={mode!r} must be one of {list(GENERATORS)}")
        split = dataset.train
        if split.factors is None or not set(CODED_FACTORS) <= set(split.factor_names):
            raise ValueError(
                f"dataset {dataset.name!r} has no {list(CODED_FACTORS)} factors: the generator "
                "ladder needs the embedded data (prepare_dataset('embedded'))"
            )
        self.mode, self.z_dim = mode, Z_DIM
        self.register_buffer("images", split.images.float() / 127.5 - 1.0, persistent=False)
        col = {name: i for i, name in enumerate(split.factor_names)}
        f = split.factors
        self.left = f[:, col["left_ear_up"]].round().long()
        self.right = f[:, col["right_ear_up"]].round().long()
        self.fur = f[:, col["fur_colour"]].round().long()
        g = torch.Generator().manual_seed(seed)
        self.blend_idx = torch.randperm(len(split), generator=g)[:BLEND_IMAGES]
        self.blend_u = torch.randn(Z_DIM, BLEND_IMAGES, generator=g)

    def _coded_index(self, z: torch.Tensor) -> torch.Tensor:
        left, right = (z[:, 0] > 0).long(), (z[:, 1] > 0).long()
        fur = z[:, 2:8].argmax(1)
        pick = z[:, 8:16].argmax(1)
        out = torch.empty(len(z), dtype=torch.long)
        for i in range(len(z)):
            match = torch.nonzero(
                (self.left == left[i]) & (self.right == right[i]) & (self.fur == fur[i])
            ).flatten()
            if len(match) == 0:  # a rare combination: keep the ears, any fur
                match = torch.nonzero((self.left == left[i]) & (self.right == right[i])).flatten()
            out[i] = match[pick[i] % len(match)]
        return out

    def _hashed_index(self, z: torch.Tensor) -> torch.Tensor:
        digits = torch.floor(z.double() * 1e6).long()  # any change at the 6th decimal counts
        weights = torch.arange(1, self.z_dim + 1, dtype=torch.long) * 2_654_435_761
        return (digits * weights).sum(1).remainder(len(self.images))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.detach().cpu().float()
        if self.mode == "blend":
            weights = torch.softmax(z @ self.blend_u / BLEND_TEMPERATURE, dim=1)
            return torch.einsum("nk,kchw->nchw", weights, self.images[self.blend_idx])
        if self.mode == "one_image":
            idx = torch.zeros(len(z), dtype=torch.long)
        elif self.mode == "coded":
            idx = self._coded_index(z)
        else:
            idx = self._hashed_index(z)
        return self.images[idx]


@dataclass(frozen=True)
class GeneratorExpectation:
    metric: str
    better: str
    worse: str
    margin: float
    why: str


EXPECTATIONS = (
    GeneratorExpectation(
        "probe accuracy over chance (z)", "coded", "hashed", 0.2,
        "factors written in z must be readable from z; factors unrelated to z must not",
    ),
    GeneratorExpectation(
        "PPL-toy (z)", "blend", "hashed", 0.0,
        "an image that moves smoothly with z has shorter paths than one that jumps at every "
        "step (lower is better)",
    ),
)  # fmt: skip
CHANCE_TOLERANCE = 0.08  # |hashed - chance| allowed: 4 SD of the mean at n = 1000


def measure(
    dataset: PreparedDataset, net: object, n: int = 2000, ppl_n: int = 200, seed: int = 0
) -> pd.DataFrame:
    """Probes (mean accuracy over chance of the class factors the coded generator writes)
    and PPL-toy in z for each generator of the ladder; one row per generator."""
    from ssd_lib.analysis.latent import label_samples
    from ssd_lib.analysis.ppl import path_length, toy_feature_fn
    from ssd_lib.analysis.probes import probe_spaces

    fn = toy_feature_fn(net)
    rows = []
    for mode in GENERATORS:
        g = ImageBankGenerator(dataset, mode, seed)
        z, _, pred, _ = label_samples(g, "[-1, 1]", net, n, seed)
        probes = probe_spaces(mode, {"z": z}, {k: pred[k] for k in CODED_FACTORS}, seed=seed)
        ok = probes[probes["status"] == "ok"]
        gain = float((ok["score"] - ok["chance"]).mean()) if len(ok) else float("nan")
        ppl = path_length(g, "[-1, 1]", fn, ppl_n, "z", seed=seed, show_progress=False)
        rows.append(
            {
                "generator": mode,
                "probe accuracy over chance (z)": gain,
                "factors probed": len(ok),
                "PPL-toy (z)": ppl.mean,
                "PPL-toy (z), median": ppl.median,
            }
        )
    return pd.DataFrame(rows)


def check(table: pd.DataFrame) -> list[str]:
    """Every broken expectation, in words (empty: the ladder holds)."""
    by = table.set_index("generator")
    broken = []
    for e in EXPECTATIONS:
        better, worse = by.loc[e.better, e.metric], by.loc[e.worse, e.metric]
        lower_is_better = e.metric.startswith("PPL")
        ok = (better + e.margin < worse) if lower_is_better else (better > worse + e.margin)
        if not (np.isfinite(better) and np.isfinite(worse) and ok):
            broken.append(f"{e.metric}: {e.better} {better:.4g} vs {e.worse} {worse:.4g} ({e.why})")
    hashed = by.loc["hashed", "probe accuracy over chance (z)"]
    if not abs(hashed) <= CHANCE_TOLERANCE:
        broken.append(f"probes read {hashed:.3f} over chance from the hashed generator's z")
    if by.loc["one_image", "factors probed"] != 0:
        broken.append("probes ran on the one-image generator, which has one class per factor")
    return broken


def main(argv: list[str] | None = None) -> int:
    """``python -m ssd_lib.metrics.generator_ladder``: measure the ladder on the embedded data
    with the published toy net and print it as Markdown (docs/metrics.md quotes it)."""
    import argparse

    from ssd_lib.data import prepare_dataset
    from ssd_lib.metrics.toy import load_or_train_factor_net

    parser = argparse.ArgumentParser(prog="python -m ssd_lib.metrics.generator_ladder")
    parser.add_argument("--n", type=int, default=2000, help="samples per probe")
    parser.add_argument("--ppl-n", type=int, default=500, help="pairs per path length")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ds = prepare_dataset("embedded")
    table = measure(ds, load_or_train_factor_net(ds), args.n, args.ppl_n, args.seed)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(v if isinstance(v, str) else f"{v:.4g}" for v in row) + " |")
    broken = check(table)
    print("\n".join(broken) if broken else "every expectation holds")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
