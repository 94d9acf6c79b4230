"""Stand-in Inception weights, for running both FID libraries' real code paths offline in tests.

Each stand-in is a randomly initialised network of the right architecture, saved where the
library looks (see ``weights.py``): pytorch-fid's FID-Inception state dict, and a TorchScript
Inception trunk shaped like clean-fid's file. Numbers computed with them mean nothing; their
hashes are not the published ones, so every result made with them is marked unverified and
never named FID. Call these only with ``TORCH_HOME`` / ``SSD_CLEANFID_DIR`` pointing at a
temporary folder.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ssd_lib.metrics.weights import CLEAN_FID, PYTORCH_FID, weights_path
from ssd_lib.utils.atomic import atomic_write


def _fid_inception(seed: int) -> nn.Module:
    """pytorch-fid's FID-Inception architecture with random weights, built from its classes."""
    from pytorch_fid import inception as pfi

    torch.manual_seed(seed)
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    # He initialisation keeps activations at unit scale through the ReLU stack, so stand-in
    # features are well conditioned (torchvision's init shrinks them to ~1e-8).
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return net


class _TorchScriptInception(nn.Module):
    """The interface clean-fid uses: ``.layers`` maps (N, 3, 299, 299) to (N, 2048, 1, 1)."""

    def __init__(self, layers: nn.Module) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x).flatten(1)


def write_standin_weights(seed: int = 0) -> dict[str, Path]:
    """Write both stand-ins to the paths ``weights_path`` gives now; returns those paths."""
    torch_state = torch.get_rng_state()
    try:
        net = _fid_inception(seed).eval()
        pf_path = weights_path(PYTORCH_FID)
        state = {k: v.clone() for k, v in net.state_dict().items()}
        atomic_write(pf_path, lambda tmp: torch.save(state, tmp))

        names = [
            "Conv2d_1a_3x3",
            "Conv2d_2a_3x3",
            "Conv2d_2b_3x3",
            "maxpool1",
            "Conv2d_3b_1x1",
            "Conv2d_4a_3x3",
            "maxpool2",
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
            "avgpool",
        ]
        trunk = nn.Sequential(*[getattr(net, n) for n in names])
        with warnings.catch_warnings():
            # clean-fid's file format is TorchScript, deprecated in torch but what it loads.
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.script(_TorchScriptInception(trunk).eval())
            cf_path = weights_path(CLEAN_FID)
            atomic_write(cf_path, lambda tmp: torch.jit.save(scripted, str(tmp)))
    finally:
        torch.set_rng_state(torch_state)
    return {PYTORCH_FID: pf_path, CLEAN_FID: cf_path}
