"""The spectral tracker agrees with an exact SVD."""

from __future__ import annotations

import torch
from torch.nn.utils import spectral_norm

from ssd_lib.models import Discriminator
from ssd_lib.training.sigma_tracker import SpectralTracker, exact_sigma, weight_matrix


def test_exact_sigma_matches_torch_svd():
    m = torch.randn(20, 50)
    assert abs(exact_sigma(m) - float(torch.linalg.svdvals(m)[0])) < 1e-5
    assert abs(exact_sigma(torch.diag(torch.tensor([3.0, 1.0, 0.5]))) - 3.0) < 1e-9


def test_tracker_matches_exact_sigma_for_every_middle_conv():
    d = Discriminator(spectral_norm=True)
    tracker = SpectralTracker(d.tracked_convs())
    d(torch.randn(4, 3, 64, 64))  # one SN power iteration
    values = tracker.measure()
    for name, conv in d.tracked_convs().items():
        exact = exact_sigma(weight_matrix(conv))
        assert abs(values[f"sigma_raw/{name}"] / exact - 1) < 0.01


def test_effective_sigma_of_sn_layer_is_one_once_its_estimate_converges():
    conv = spectral_norm(torch.nn.Conv2d(8, 16, 3), n_power_iterations=1)
    x = torch.randn(2, 8, 5, 5)
    for _ in range(200):  # each training-mode forward runs one power iteration
        conv(x)
    eff = SpectralTracker({"c": conv}).measure()["sigma_eff/c"]
    assert abs(eff - 1.0) < 1e-3
    # And it is the largest singular value of the weight the layer actually applies.
    assert abs(exact_sigma(conv.weight.detach().reshape(16, -1)) - eff) < 1e-3


def test_tracker_does_not_touch_the_global_rng():
    convs = Discriminator().tracked_convs()
    state = torch.get_rng_state()
    SpectralTracker(convs).measure()
    assert torch.equal(torch.get_rng_state(), state)
