"""Largest singular values of discriminator weights, cheap enough to record every step.

Spectral normalisation divides a weight W by an estimate of its largest singular value
sigma(W). To show what SN does during training we record, for each tracked convolution:

- ``sigma_raw``: sigma of the stored weight (``weight_orig`` under SN, ``weight`` without);
- ``sigma_eff``: sigma of the weight the layer actually applies. Under SN that is
  ``sigma_raw / sigma_hat``, where ``sigma_hat = u^T W v`` is torch's own estimate from its
  ``weight_u``/``weight_v`` buffers; it sits near 1. Without SN it equals ``sigma_raw``.

The convolution kernel (C_out, C_in, k, k) is read as a (C_out, C_in * k * k) matrix, the
same reshaping torch's ``spectral_norm`` uses. An exact SVD of the largest layer costs most of
a second on two cores, so ``SpectralTracker`` runs a few power iterations per measurement,
warm-started from the previous vector; ``exact_sigma`` is the reference it is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def weight_matrix(conv: nn.Module) -> torch.Tensor:
    """The stored weight of ``conv`` as (C_out, C_in * k * k); ``weight_orig`` under SN."""
    w = conv.weight_orig if hasattr(conv, "weight_orig") else conv.weight
    return w.detach().reshape(w.shape[0], -1)


def exact_sigma(matrix: torch.Tensor) -> float:
    """Largest singular value, exactly (float64 eigenvalues of W W^T)."""
    m = matrix.detach().double()
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    return float(torch.linalg.eigvalsh(gram)[-1].clamp_min(0).sqrt())


class SpectralTracker:
    """Records sigma_raw (and sigma_eff under SN) for a dict of named convolutions."""

    def __init__(
        self, convs: dict[str, nn.Module], iters: int = 4, warmup_iters: int = 300
    ) -> None:
        self.convs = convs
        self.iters = iters
        g = torch.Generator().manual_seed(0)  # private: never touches the training RNG
        self.v = {}
        for name, conv in convs.items():
            w = weight_matrix(conv)
            self.v[name] = F.normalize(torch.randn(w.shape[1], generator=g, dtype=w.dtype), dim=0)
        self._power(warmup_iters)

    def _power(self, iters: int) -> dict[str, torch.Tensor]:
        sigmas = {}
        for name, conv in self.convs.items():
            w = weight_matrix(conv)
            v = self.v[name].to(w.device, w.dtype)
            for _ in range(iters):
                u = F.normalize(w @ v, dim=0)
                v = F.normalize(w.T @ u, dim=0)
            self.v[name] = v
            sigmas[name] = torch.linalg.vector_norm(w @ v)
        return sigmas

    def measure(self) -> dict[str, torch.Tensor]:
        """{"sigma_raw/<name>": ..., "sigma_eff/<name>": ...} for every tracked layer, as
        0-d float64 tensors on the weights' device (so that measuring never waits for a GPU;
        ``float()`` reads one)."""
        out = {}
        for name, sigma32 in self._power(self.iters).items():
            sigma = sigma32.double()
            out[f"sigma_raw/{name}"] = sigma
            conv = self.convs[name]
            if hasattr(conv, "weight_u"):
                w = weight_matrix(conv)
                sigma_hat = (conv.weight_u @ (w @ conv.weight_v)).double()
                out[f"sigma_eff/{name}"] = sigma / sigma_hat
            else:
                out[f"sigma_eff/{name}"] = sigma
        return out
