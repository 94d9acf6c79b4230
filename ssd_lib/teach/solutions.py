"""Reference solutions to the lesson's exercises, written the way a student would.

Each function is what the teacher's notebook shows and what the tests feed the checks in
:mod:`ssd_lib.teach.checks`. They are deliberately plain (no helpers from ``ssd_lib``), and
they agree with the project's own modules to float tolerance:

- ``g_loss`` / ``d_loss``: the trainer's BCE losses (``ssd_lib.training.trainer``,
  ``loss="bce"``) on
  the discriminator's outputs, which are probabilities (its last layer is a sigmoid);
- ``adain``: ``ssd_lib.models.layers.AdaIN`` given the style's scale and bias;
- ``power_iteration``: torch's ``spectral_norm`` estimate, and the exact largest singular
  value after enough iterations;
- ``mapping_forward``: ``ssd_lib.models.layers.MappingNetwork(tied=True)``;
- ``frechet_distance`` / ``kid``: ``ssd_lib.metrics.features`` (pytorch-fid and clean-fid).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F


def g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: mean of -log D(G(z)); ``d_fake`` (N,) in (0, 1)."""
    return -torch.log(d_fake).mean()


def d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator BCE: -mean log D(x) - mean log(1 - D(G(z))); inputs (N,) in (0, 1)."""
    return -torch.log(d_real).mean() - torch.log(1 - d_fake).mean()


def adain(
    x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """x (N, C, H, W); scale, bias (N, C) -> scale * instance_norm(x) + bias, (N, C, H, W)."""
    mean = x.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1): one mean per sample and channel
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)  # biased, as InstanceNorm2d
    x_hat = (x - mean) / torch.sqrt(var + eps)
    return scale[:, :, None, None] * x_hat + bias[:, :, None, None]


def power_iteration(
    weight: torch.Tensor, u: torch.Tensor, n_iters: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate the largest singular value of ``weight`` (m, n) from a unit vector ``u`` (m,).

    Each round: v = normalise(W^T u), u = normalise(W v); then sigma = u^T W v. Returns
    (sigma as a 0-d tensor, the new u) so the next call can start where this one stopped.
    """
    v = None
    for _ in range(n_iters):
        v = F.normalize(weight.T @ u, dim=0)  # (n,)
        u = F.normalize(weight @ v, dim=0)  # (m,)
    if v is None:  # no iteration asked for: v from the given u, as torch's own v would be
        v = F.normalize(weight.T @ u, dim=0)
    sigma = u @ (weight @ v)
    return sigma, u


def mapping_forward(
    z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, n_layers: int = 4
) -> torch.Tensor:
    """z (N, D) -> w (N, D): L2-normalise each z, then apply ONE Linear + LeakyReLU(0.2)
    ``n_layers`` times (the release's tied mapping). weight (D, D), bias (D,)."""
    x = z / z.norm(dim=1, keepdim=True)
    for _ in range(n_layers):
        x = F.leaky_relu(x @ weight.T + bias, negative_slope=0.2)
    return x


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to (N, D) and (M, D) feature sets:
    |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))."""
    mu_r, mu_f = real.mean(axis=0), fake.mean(axis=0)
    s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)  # (D, D), divide by N-1
    covmean = scipy.linalg.sqrtm(s_r @ s_f)  # the matrix square root, not np.sqrt
    covmean = np.real(covmean)  # rounding can leave tiny imaginary parts
    diff = mu_r - mu_f
    return float(diff @ diff + np.trace(s_r) + np.trace(s_f) - 2 * np.trace(covmean))


def kid(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD^2 between (N, D) and (M, D) features with the kernel (x.y / D + 1)^3."""
    d = real.shape[1]
    k_rr = (real @ real.T / d + 1) ** 3  # (N, N)
    k_ff = (fake @ fake.T / d + 1) ** 3  # (M, M)
    k_rf = (real @ fake.T / d + 1) ** 3  # (N, M)
    n, m = len(real), len(fake)
    # Within a set, leave out k(x, x): comparing a sample with itself biases MMD upwards.
    within_r = (k_rr.sum() - np.trace(k_rr)) / (n * (n - 1))
    within_f = (k_ff.sum() - np.trace(k_ff)) / (m * (m - 1))
    return float(within_r + within_f - 2 * k_rf.mean())
