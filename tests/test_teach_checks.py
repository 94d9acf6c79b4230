"""Exercise checks: each accepts the reference solution and names typical mistakes.

The wrong solutions below are written the way a student would write them (torch.var's
default, np.sqrt on a matrix, ...), independently of the fingerprints inside the checks.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from ssd_lib.metrics import features
from ssd_lib.models.layers import AdaIN, MappingNetwork
from ssd_lib.teach import (
    CheckResult,
    ExerciseError,
    check_adain,
    check_d_loss,
    check_frechet_distance,
    check_g_loss,
    check_kid,
    check_mapping,
    check_power_iteration,
    solutions,
)
from ssd_lib.training.sigma_tracker import exact_sigma


def rejected(result: CheckResult, mistake: str | None, *fragments: str) -> None:
    assert not result.passed, result
    assert result.mistake == mistake, result
    text = str(result)
    assert text.startswith("\u2717 ") and "\n" not in text
    for fragment in fragments:
        assert fragment in text, text


def test_every_check_accepts_its_reference_solution():
    checks = {
        "g_loss": check_g_loss,
        "d_loss": check_d_loss,
        "adain": check_adain,
        "power_iteration": check_power_iteration,
        "mapping_forward": check_mapping,
        "frechet_distance": check_frechet_distance,
        "kid": check_kid,
    }
    for name, check in checks.items():
        result = check(getattr(solutions, name))
        assert result.passed and bool(result), result
        assert str(result).startswith("\u2713 ") and result.mistake is None
        assert result.raise_if_failed() is result


# ----- the reference solutions agree with the project's own modules -------------------------


def test_reference_losses_equal_the_trainers_bce():
    d_real, d_fake = torch.tensor([0.9, 0.6, 0.3]), torch.tensor([0.2, 0.5, 0.7])
    ones, zeros = torch.ones(3), torch.zeros(3)
    assert torch.allclose(solutions.g_loss(d_fake), F.binary_cross_entropy(d_fake, ones))
    expected = F.binary_cross_entropy(d_real, ones) + F.binary_cross_entropy(d_fake, zeros)
    assert torch.allclose(solutions.d_loss(d_real, d_fake), expected)
    # by hand: -log 0.5 for a D that cannot tell
    assert solutions.g_loss(torch.full((4,), 0.5)).item() == pytest.approx(np.log(2), rel=1e-6)


def test_reference_adain_and_mapping_equal_the_project_modules():
    torch.manual_seed(0)
    m = AdaIN(16, w_dim=100)
    x, w = torch.randn(2, 16, 8, 8), torch.randn(2, 100)
    with torch.no_grad():
        ours = solutions.adain(x, m.scale(w), m.bias(w))
        assert torch.allclose(ours, m(x, w), atol=1e-5)
        net = MappingNetwork(100, 4, tied=True)
        z = torch.randn(3, 100)
        w_ours = solutions.mapping_forward(z, net.layers[0].weight, net.layers[0].bias, 4)
        assert torch.allclose(w_ours, net(z), atol=1e-6)


def test_reference_power_iteration_converges_to_the_exact_sigma_of_a_conv_weight():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 128, 4, 2, 1, bias=False)
    weight = conv.weight.detach().reshape(128, -1)  # (C_out, C_in * k * k), as SN reads it
    u = F.normalize(torch.randn(128), dim=0)
    for _ in range(10):  # warm-started calls, as SN does across training steps
        sigma, u = solutions.power_iteration(weight, u, 20)
    assert float(sigma) == pytest.approx(exact_sigma(weight), rel=1e-3)


def test_reference_fd_and_kid_equal_the_library_on_small_sets():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(120, 6)), rng.normal(size=(120, 6)) * 1.3 + 0.2
    assert solutions.frechet_distance(a, b) == pytest.approx(
        features.frechet_distance(a, b).value, rel=1e-7
    )
    assert solutions.kid(a, b) == pytest.approx(
        features.kernel_distance(a, b, num_subsets=1, max_subset_size=120).value, rel=1e-9
    )
    assert solutions.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


# ----- stubs, non-functions, exceptions -------------------------------------------------------


def test_a_stub_is_reported_as_not_written_yet_in_one_line():
    def my_adain(x, scale, bias, eps=1e-5):
        raise NotImplementedError("write this: instance norm, then scale and shift")

    result = check_adain(my_adain)
    rejected(result, "not_implemented", "not written yet", "my_adain", "write this: instance")
    with pytest.raises(ExerciseError, match="not written yet"):
        result.raise_if_failed()


def test_passing_the_result_instead_of_the_function_is_explained():
    rejected(check_kid(0.5), "not_callable", "pass your function itself")


def test_an_exception_in_the_student_code_becomes_a_verdict_with_a_hint():
    def my_adain(x, scale, bias, eps=1e-5):  # forgot to reshape the style to (N, C, 1, 1)
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        return scale * (x - mean) / torch.sqrt(var + eps) + bias

    rejected(check_adain(my_adain), "raised", "RuntimeError", "(N, C, 1, 1)")


# ----- 1. losses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong, mistake, fragment",
    [
        (lambda d: torch.log(1 - d).mean(), "saturating", "saturating"),
        (
            lambda d: F.binary_cross_entropy(d, torch.zeros_like(d)),
            "fake_target_zero",
            "target is 1",
        ),
        (lambda d: torch.log(d).mean(), "missing_minus", "negative"),
        (
            lambda d: F.binary_cross_entropy_with_logits(d, torch.ones_like(d)),
            "logits",
            "already probabilities",
        ),
        (lambda d: -torch.log(d).sum(), "sum", "7 times too large"),
        (lambda d: -torch.log(d), "not_scalar", "one loss per sample"),
        (lambda d: -torch.log(d).mean().item(), "not_a_tensor", "cut the autograd graph"),
        (lambda d: -torch.log(d.detach()).mean(), "detached", "no gradient flows"),
    ],
)
def test_g_loss_check_names_the_mistake(wrong, mistake, fragment):
    rejected(check_g_loss(wrong), mistake, fragment)


@pytest.mark.parametrize(
    "wrong, mistake, fragment",
    [
        (lambda r, f: -torch.log(1 - r).mean() - torch.log(f).mean(), "swapped_labels", "swapped"),
        (
            lambda r, f: F.binary_cross_entropy(
                torch.cat([r, f]), torch.cat([torch.ones_like(r), torch.zeros_like(f)])
            ),
            "halved",
            "exactly half",
        ),
        (lambda r, f: -torch.log(r).mean(), "only_real", "add -log(1 - D(G(z)))"),
        (lambda r, f: -torch.log(r).mean() - torch.log(f).mean(), "fake_target_one", "score 0"),
        (
            lambda r, f: (
                F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
                + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
            ),
            "logits",
            "logits",
        ),
    ],
)
def test_d_loss_check_names_the_mistake(wrong, mistake, fragment):
    rejected(check_d_loss(wrong), mistake, fragment)


# ----- 2. AdaIN -----------------------------------------------------------------------------


def _adain_with(dims=(2, 3), unbiased=False, eps_inside=True, swap=False, one_plus=False):
    def my_adain(x, scale, bias, eps=1e-5):
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
        std = (
            torch.sqrt(var + eps)
            if eps_inside is True
            else torch.sqrt(var) + (eps if eps_inside == "outside" else 0.0)
        )
        s, b = scale[:, :, None, None], bias[:, :, None, None]
        if swap:
            s, b = b, s
        return (1 + s if one_plus else s) * (x - mean) / std + b

    return my_adain


@pytest.mark.parametrize(
    "wrong, mistake, fragment",
    [
        (_adain_with(dims=(0, 2, 3)), "batch_statistics", "over the batch"),
        (_adain_with(dims=(1, 2, 3)), "layer_statistics", "all channels together"),
        (_adain_with(unbiased=True), "unbiased_variance", "unbiased=False"),
        (_adain_with(eps_inside=False), "no_epsilon", "no epsilon"),
        (_adain_with(eps_inside="outside"), "epsilon_outside_sqrt", "sqrt(var + eps)"),
        (_adain_with(swap=True), "swapped_scale_bias", "swapped"),
        (_adain_with(one_plus=True), "one_plus_scale", "(1 + scale)"),
        (
            lambda x, s, b, eps=1e-5: _adain_with()(x, s, b).mean(dim=1),
            "wrong_shape",
            "(3, 4, 5, 6)",
        ),
    ],
)
def test_adain_check_names_the_mistake(wrong, mistake, fragment):
    rejected(check_adain(wrong), mistake, fragment)


# ----- 3. spectral norm ---------------------------------------------------------------------


def _power(normalise=True, update_u_last=True, iters=None, fixed_start=False):
    def my_power_iteration(weight, u, n_iters):
        if fixed_start:  # ignores the u it is given
            u = F.normalize(torch.ones(weight.shape[0]), dim=0)
        u_start = u
        for _ in range(n_iters if iters is None else iters):
            v = weight.T @ u
            v = F.normalize(v, dim=0) if normalise else v
            u_start = u
            u = weight @ v
            u = F.normalize(u, dim=0) if normalise else u
        sigma = (u if update_u_last else u_start) @ (weight @ v)
        return sigma, u

    return my_power_iteration


@pytest.mark.parametrize(
    "wrong, mistake, fragment",
    [
        (_power(normalise=False), "not_normalised", "not 1"),
        (_power(iters=200), "converged_regardless", "exactly n_iters rounds"),
        (_power(update_u_last=False), "old_u", "the u you started from"),
        (lambda w, u, n: (torch.linalg.matrix_norm(w), u), "frobenius", "Frobenius"),
        (lambda w, u, n: torch.linalg.svdvals(w)[0], "not_a_pair", "return a pair"),
        (lambda w, u, n: (u @ (w @ (w.T @ u)), u), None, "Start from the given u"),
        (_power(fixed_start=True), None, "not a random"),
        (lambda w, u, n: _power()(w.T, u, n), "raised", "input size 12"),
        (lambda w, u, n: _power(iters=1)(w, u, n), "no_loop", "after 50 rounds"),
    ],
)
def test_power_iteration_check_names_the_mistake(wrong, mistake, fragment):
    rejected(check_power_iteration(wrong), mistake, fragment)


# ----- 4. mapping ---------------------------------------------------------------------------


def _mapping(normalise=True, act=lambda t: F.leaky_relu(t, 0.2), transpose=True, layers=None):
    def my_mapping(z, weight, bias, n_layers):
        x = F.normalize(z, dim=1) if normalise else z
        for _ in range(n_layers if layers is None else layers):
            x = act((x @ weight.T if transpose else x @ weight) + bias)
        return x

    return my_mapping


@pytest.mark.parametrize(
    "wrong, mistake, fragment",
    [
        (_mapping(normalise=False), "no_normalisation", "not normalised"),
        (_mapping(act=torch.relu), "relu", "LeakyReLU(0.2)"),
        (_mapping(act=F.leaky_relu), "default_slope", "0.01"),
        (_mapping(transpose=False), "not_transposed", "weight.T"),
        (_mapping(layers=1), "one_layer", "n_layers (4) times"),
    ],
)
def test_mapping_check_names_the_mistake(wrong, mistake, fragment):
    rejected(check_mapping(wrong), mistake, fragment)


# ----- 5. FD and KID ------------------------------------------------------------------------


def _fd(mean_term=True, cross="sqrtm", cov=lambda x: np.cov(x, rowvar=False), real_part=True):
    def my_fd(real, fake):
        dm = real.mean(axis=0) - fake.mean(axis=0)
        s1, s2 = cov(real), cov(fake)
        if cross == "sqrtm":
            covmean = scipy.linalg.sqrtm(s1 @ s2)
            covmean = covmean.real if real_part else covmean + 1e-3j
        elif cross == "np.sqrt":
            with np.errstate(invalid="ignore"):  # off-diagonal entries can be negative
                covmean = np.sqrt(s1 @ s2)
        elif cross == "product of roots":
            covmean = scipy.linalg.sqrtm(s1) @ scipy.linalg.sqrtm(s2)
        value = np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
        return value + (dm @ dm if mean_term else 0.0)

    return my_fd


def _fd_no_trace(real, fake):
    dm = real.mean(axis=0) - fake.mean(axis=0)
    return float(dm @ dm)


def _fd_with_std(real, fake):
    dm = real.mean(axis=0) - fake.mean(axis=0)
    s1, s2 = real.std(axis=0, ddof=1), fake.std(axis=0, ddof=1)
    return float(dm @ dm + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2)))


@pytest.mark.parametrize(
    "wrong, mistake, fragment",
    [
        (_fd_no_trace, "no_trace_term", "covariance term is missing"),
        (_fd(mean_term=False), "no_mean_term", "|mu_r - mu_f|^2"),
        (_fd(cross="np.sqrt"), "elementwise_sqrt", "scipy.linalg.sqrtm"),
        (_fd(cross="product of roots"), "product_of_roots", "commute"),
        (_fd_with_std, "std_not_covariance", "standard deviations"),
        (_fd(cov=lambda x: np.cov(x, rowvar=False, bias=True)), "biased_covariance", "N - 1"),
        (_fd(real_part=False), "complex", "real part"),
        (_fd(cov=np.cov), "raised", "rowvar=False"),
    ],
)
def test_fd_check_names_the_mistake(wrong, mistake, fragment):
    rejected(check_frechet_distance(wrong), mistake, fragment)


def _kid(degree=3, scale_by_dim=True, unbiased=True, sqrt=False):
    def my_kid(real, fake):
        d = real.shape[1] if scale_by_dim else 1

        def k(a, b):
            return (a @ b.T / d + 1) ** degree

        n, m = len(real), len(fake)
        krr, kff = k(real, real), k(fake, fake)
        if unbiased:
            within = (krr.sum() - np.trace(krr)) / (n * (n - 1))
            within += (kff.sum() - np.trace(kff)) / (m * (m - 1))
        else:
            within = krr.mean() + kff.mean()
        value = within - 2 * k(real, fake).mean()
        return np.sqrt(value) if sqrt else value

    return my_kid


@pytest.mark.parametrize(
    "wrong, mistake, fragment",
    [
        (_kid(unbiased=False), "biased", "leave out the diagonal"),
        (_kid(scale_by_dim=False), "no_dimension_scaling", "/ D"),
        (_kid(degree=2), "wrong_degree", "cubic"),
        (_kid(sqrt=True), "square_root", "MMD^2"),
    ],
)
def test_kid_check_names_the_mistake(wrong, mistake, fragment):
    rejected(check_kid(wrong), mistake, fragment)


def test_an_unrecognised_wrong_answer_still_gets_the_numbers_and_the_formula():
    result = check_kid(lambda real, fake: 0.123)
    rejected(result, None, "got 0.123", "(x.y / D + 1)^3")
