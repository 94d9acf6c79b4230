"""Auto-checked exercises: ``check_adain(my_adain)`` and friends, one per lesson exercise.

Every check builds small seeded inputs, runs the student's function on them, and compares the
answer with the project's own implementation (the trainer's BCE, the ``AdaIN`` and
``MappingNetwork`` modules, torch's ``spectral_norm`` and an exact SVD, the pytorch-fid and
clean-fid formulas behind ``ssd_lib.metrics.features``). A wrong answer is matched against
the answers that typical mistakes give on the same inputs, so the verdict says which mistake
it is and how to think about it. The expected signatures are those of
:mod:`ssd_lib.teach.solutions`.

Each check returns a :class:`~ssd_lib.teach.feedback.CheckResult` (shown as one line by
Jupyter; ``bool(result)`` is whether it passed; ``result.raise_if_failed()`` for scripts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils import spectral_norm as torch_spectral_norm

from ssd_lib.metrics import features
from ssd_lib.models.layers import AdaIN, MappingNetwork
from ssd_lib.teach.feedback import (
    CheckResult,
    Mistake,
    as_number,
    as_scalar_tensor,
    call_student,
    close,
    diagnose,
    fail,
    fmt,
    nan_verdict,
    require_tensor,
    run_check,
)
from ssd_lib.training.sigma_tracker import exact_sigma


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _probabilities(n: int, seed: int) -> torch.Tensor:
    """n discriminator outputs, spread over (0.05, 0.95) so that every mistake shows."""
    return 0.05 + 0.9 * torch.rand(n, generator=_rng(seed), dtype=torch.float32)


def _gradient(loss: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor] | None:
    if not loss.requires_grad:
        return None
    return list(torch.autograd.grad(loss, inputs, allow_unused=True))


def _graph_cut(exercise: str) -> Exception:
    return fail(
        exercise,
        "the loss has the right value but no gradient flows back to the inputs: something "
        "detached it (.detach(), .item(), torch.no_grad() or a NumPy round trip). Training "
        "needs the graph, so build the loss from the input tensors with torch operations.",
        "detached",
    )


# ----- 1. GAN losses ------------------------------------------------------------------------

G_LOSS = "generator loss"


def check_g_loss(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """``fn(d_fake) -> loss``: the non-saturating loss, mean of -log D(G(z)).

    ``d_fake`` is (N,) probabilities, as the project's discriminator outputs (a sigmoid), and
    the loss is a 0-d tensor equal to the trainer's ``F.binary_cross_entropy(d_fake, 1)``.
    """

    def body() -> str:
        d = _probabilities(7, seed=1).requires_grad_(True)
        expected = F.binary_cross_entropy(d, torch.ones_like(d))
        raw = call_student(G_LOSS, fn, [d], _loss_error_hint)
        if isinstance(raw, torch.Tensor) and raw.numel() == d.numel() and raw.numel() > 1:
            if close(raw, -torch.log(d)):
                raise fail(
                    G_LOSS,
                    f"you returned one loss per sample, shape {tuple(raw.shape)}; the loss is "
                    f"one number: take the mean over the batch.",
                    "not_scalar",
                )
        got = as_scalar_tensor(G_LOSS, raw)
        nan_verdict(G_LOSS, got, "D's outputs are in (0, 1), so -log D is finite.")
        if not close(got, expected):
            dd = d.detach()
            raise diagnose(
                G_LOSS,
                got,
                [
                    Mistake(
                        "saturating",
                        lambda: torch.log(1 - dd).mean(),
                        "this is the original minimax ('saturating') form, minimising "
                        "log(1 - D(G(z))). Its gradient vanishes exactly when D confidently "
                        "rejects the fakes (D(G(z)) near 0), which is how training starts. "
                        "Minimise -log D(G(z)) instead: the same goal (make D say 'real'), "
                        "but strong gradients while G is losing.",
                    ),
                    Mistake(
                        "fake_target_zero",
                        lambda: -torch.log(1 - dd).mean(),
                        "this is BCE(D(G(z)), 0): the discriminator's loss on fakes. The "
                        "generator wants D to call its images real, so its target is 1: "
                        "-log D(G(z)).",
                    ),
                    Mistake(
                        "missing_minus",
                        lambda: torch.log(dd).mean(),
                        "your loss is the negative of the expected one: you wrote log D(G(z)). "
                        "Optimisers minimise, and G should make log D(G(z)) large, so the "
                        "loss is -log D(G(z)).",
                    ),
                    Mistake(
                        "logits",
                        lambda: F.softplus(-dd).mean(),
                        "you treated D's outputs as logits (binary_cross_entropy_with_logits or "
                        "a sigmoid of your own). The project's discriminator ends in a sigmoid, "
                        "so its outputs are already probabilities: use -log(d_fake) or "
                        "F.binary_cross_entropy.",
                    ),
                    Mistake(
                        "sum",
                        lambda: -torch.log(dd).sum(),
                        f"your loss is {len(dd)} times too large: you summed over the batch. "
                        f"Average instead (.mean()), so the loss and the learning rate do not "
                        f"depend on the batch size.",
                    ),
                ],
                f"expected {fmt(expected)} on these {len(d)} outputs, got {fmt(got)}. The "
                f"non-saturating loss is the batch mean of -log D(G(z)), with d_fake already "
                f"a probability.",
            )
        grads = _gradient(got, [d])
        if grads is None or grads[0] is None:
            raise _graph_cut(G_LOSS)
        return (
            f"{fmt(got)}, as the trainer's BCE(D(G(z)), 1). Per sample, when D(G(z)) = 0.01 its "
            f"gradient with respect to D's logit is -0.99; the saturating log(1 - D) gives -0.01."
        )

    return run_check(G_LOSS, body)


D_LOSS = "discriminator loss"


def check_d_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> CheckResult:
    """``fn(d_real, d_fake) -> loss``: BCE(D(x), 1) + BCE(D(G(z)), 0), each a batch mean.

    Inputs (N,) probabilities. This is the trainer's D loss before ``d_loss_scale`` (1.0 in the
    corrected preset; the paper preset halves it).
    """

    def body() -> str:
        r = _probabilities(6, seed=2).requires_grad_(True)
        f = (0.9 * _probabilities(6, seed=3)).requires_grad_(True)  # fakes look less real
        expected = F.binary_cross_entropy(r, torch.ones_like(r)) + F.binary_cross_entropy(
            f, torch.zeros_like(f)
        )
        got = as_scalar_tensor(D_LOSS, call_student(D_LOSS, fn, [r, f], _loss_error_hint))
        nan_verdict(D_LOSS, got, "both inputs are in (0, 1), so every log is finite.")
        if not close(got, expected):
            rr, ff = r.detach(), f.detach()
            real_term, fake_term = -torch.log(rr).mean(), -torch.log(1 - ff).mean()
            raise diagnose(
                D_LOSS,
                got,
                [
                    Mistake(
                        "swapped_labels",
                        lambda: -torch.log(1 - rr).mean() - torch.log(ff).mean(),
                        "the labels are swapped: D must say 1 (real) for real images and 0 for "
                        "fakes, i.e. -log D(x) - log(1 - D(G(z))).",
                    ),
                    Mistake(
                        "halved",
                        lambda: 0.5 * (real_term + fake_term),
                        "yours is exactly half the expected value: you averaged the two terms "
                        "(or took one BCE over the real and fake batches concatenated). Add "
                        "them; the trainer then multiplies the sum by d_loss_scale (1.0 in the "
                        "corrected preset, 0.5 in the paper's, where your value would be right).",
                    ),
                    Mistake(
                        "only_real",
                        lambda: real_term,
                        "only the real term is there: D must also be penalised for calling "
                        "fakes real, so add -log(1 - D(G(z))).",
                    ),
                    Mistake(
                        "only_fake",
                        lambda: fake_term,
                        "only the fake term is there: D must also be penalised for calling "
                        "real images fake, so add -log D(x).",
                    ),
                    Mistake(
                        "fake_target_one",
                        lambda: real_term - torch.log(ff).mean(),
                        "the fake term uses target 1 (-log D(G(z)), the generator's loss). For "
                        "D, a fake should score 0: -log(1 - D(G(z))).",
                    ),
                    Mistake(
                        "missing_minus",
                        lambda: -(real_term + fake_term),
                        "your loss has the wrong sign: log-likelihoods are <= 0 and D should "
                        "make them large, so the loss to minimise is their negative.",
                    ),
                    Mistake(
                        "logits",
                        lambda: F.softplus(-rr).mean() + F.softplus(ff).mean(),
                        "you treated D's outputs as logits (binary_cross_entropy_with_logits or "
                        "an extra sigmoid). The project's discriminator already ends in a "
                        "sigmoid: its outputs are probabilities.",
                    ),
                    Mistake(
                        "sum",
                        lambda: -torch.log(rr).sum() - torch.log(1 - ff).sum(),
                        "you summed over the batch: take the mean of each term, so the loss "
                        "does not grow with the batch size.",
                    ),
                ],
                f"expected {fmt(expected)}, got {fmt(got)}. The D loss is the batch mean of "
                f"-log D(x) plus the batch mean of -log(1 - D(G(z))).",
            )
        grads = _gradient(got, [r, f])
        if grads is None or any(g is None for g in grads):
            raise _graph_cut(D_LOSS)
        return (
            f"{fmt(got)}, as the trainer's BCE(D(x), 1) + BCE(D(G(z)), 0). A D that guesses "
            f"(0.5 everywhere) scores 2 ln 2 = 1.386; below that it is winning."
        )

    return run_check(D_LOSS, body)


def _loss_error_hint(error: str) -> str:
    if "all elements of input should be between 0 and 1" in error:
        return "binary_cross_entropy needs probabilities: check what you pass it"
    if "grad" in error and "requires" in error:
        return "use torch operations on the inputs; do not call .numpy() or .item()"
    return ""


# ----- 2. AdaIN -----------------------------------------------------------------------------

ADAIN = "AdaIN"


def _adain_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (3, 4, 5, 6) and the project's AdaIN module's scale, bias and output for it.

    H != W, N != C and one nearly constant channel (variance ~1e-6, below eps = 1e-5), so that
    wrong reduction axes, a missing epsilon and swapped broadcasts all change the answer.
    """
    g = _rng(4)
    x = torch.randn(3, 4, 5, 6, generator=g) * 2.0 + 1.0
    x[0, 1] = 0.5 + 1e-3 * torch.randn(5, 6, generator=g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        module = AdaIN(4, w_dim=6)
    w = torch.randn(3, 6, generator=g)
    with torch.no_grad():
        scale, bias = module.scale(w), module.bias(w)
        expected = module(x, w)
    return x, scale, bias, expected


def check_adain(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """``fn(x, scale, bias) -> out``: instance-normalise x (N, C, H, W) per sample and channel
    (biased variance, eps = 1e-5 inside the square root), then ``scale * x_hat + bias`` with
    scale and bias (N, C). Compared with ``ssd_lib.models.layers.AdaIN``."""

    def body() -> str:
        x, scale, bias, expected = _adain_inputs()
        got = call_student(ADAIN, fn, [x, scale, bias], _adain_error_hint)
        got = require_tensor(ADAIN, got, tuple(x.shape), "the output")
        nan_verdict(
            ADAIN, got, "A 0/0 or the square root of a negative number: eps goes inside sqrt."
        )
        if close(got, expected):
            return (
                "matches the project's AdaIN module. Every sample and channel now has the mean "
                "and spread its style asks for, whatever the convolution produced."
            )
        s, b = scale[:, :, None, None], bias[:, :, None, None]

        def norm(dims: tuple[int, ...], unbiased: bool = False, eps: float = 1e-5) -> torch.Tensor:
            mean = x.mean(dim=dims, keepdim=True)
            return (x - mean) / torch.sqrt(x.var(dim=dims, keepdim=True, unbiased=unbiased) + eps)

        per = (2, 3)
        std = x.var(dim=per, keepdim=True, unbiased=False).sqrt()
        raise diagnose(
            ADAIN,
            got,
            [
                Mistake(
                    "batch_statistics",
                    lambda: s * norm((0, 2, 3)) + b,
                    "you normalised over the batch (dims 0, 2, 3: BatchNorm). Instance norm "
                    "takes the mean and variance of each sample's channel separately (dims 2, "
                    "3): one image's statistics must not depend on the others in the batch.",
                ),
                Mistake(
                    "layer_statistics",
                    lambda: s * norm((1, 2, 3)) + b,
                    "you normalised each sample over all channels together (dims 1, 2, 3: "
                    "LayerNorm). AdaIN gives every channel its own style, so each channel is "
                    "normalised on its own (dims 2, 3).",
                ),
                Mistake(
                    "unbiased_variance",
                    lambda: s * norm(per, unbiased=True) + b,
                    "close, but you used the unbiased variance (divide by H*W - 1, torch.var's "
                    "default). InstanceNorm2d divides by H*W: pass unbiased=False (or "
                    "correction=0).",
                ),
                Mistake(
                    "no_epsilon",
                    lambda: s * ((x - x.mean(dim=per, keepdim=True)) / std) + b,
                    "no epsilon: a nearly constant channel (sample 0, channel 1 here) gets "
                    "blown up to unit variance, noise included, and an exactly constant one "
                    "gives 0/0. Divide by sqrt(var + eps) with eps = 1e-5, as InstanceNorm2d.",
                ),
                Mistake(
                    "epsilon_outside_sqrt",
                    lambda: s * ((x - x.mean(dim=per, keepdim=True)) / (std + 1e-5)) + b,
                    "the epsilon is outside the square root (std + eps). InstanceNorm2d adds "
                    "it to the variance: sqrt(var + eps). It only matters for nearly constant "
                    "channels, like sample 0, channel 1 here, which is why it is tested.",
                ),
                Mistake(
                    "swapped_scale_bias",
                    lambda: b * norm(per) + s,
                    "scale and bias are swapped: the scale multiplies the normalised map "
                    "(it sets the spread) and the bias is added (it sets the mean).",
                ),
                Mistake(
                    "one_plus_scale",
                    lambda: (1 + s) * norm(per) + b,
                    "you multiplied by (1 + scale), the convention of some StyleGAN code. The "
                    "SSD release (and the project's AdaIN) uses the scale as is.",
                ),
                Mistake(
                    "no_mean_subtraction",
                    lambda: (
                        s * (x / torch.sqrt(x.var(dim=per, keepdim=True, unbiased=False) + 1e-5))
                        + b
                    ),
                    "you divided by the standard deviation but did not subtract the mean first: "
                    "x_hat = (x - mean) / sqrt(var + eps).",
                ),
                Mistake(
                    "no_normalisation",
                    lambda: s * x + b,
                    "the feature map is not normalised at all: AdaIN first removes each "
                    "channel's own mean and spread (instance norm), so that the style alone "
                    "decides them.",
                ),
            ],
            f"the values differ from the project's AdaIN (first entries: expected "
            f"{fmt(expected)}, got {fmt(got)}). Steps: mean and biased variance over dims "
            f"(2, 3) with keepdim=True; x_hat = (x - mean) / sqrt(var + 1e-5); then "
            f"scale[:, :, None, None] * x_hat + bias[:, :, None, None].",
        )

    return run_check(ADAIN, body)


def _adain_error_hint(error: str) -> str:
    if "must match the size of tensor" in error:
        return (
            "scale and bias are (N, C): reshape them to (N, C, 1, 1) (scale[:, :, None, None]) "
            "so they broadcast over H and W; reductions need keepdim=True for the same reason"
        )
    return ""


# ----- 3. spectral normalisation by power iteration ------------------------------------------

SN = "spectral norm"


def _sn_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """W (8, 12) with singular values 3, 2.2, 1.5, ... (fast, clean convergence) and a unit u."""
    g = _rng(6)
    left, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    right, _ = torch.linalg.qr(torch.randn(12, 8, generator=g))
    s = torch.tensor([3.0, 2.2, 1.5, 1.2, 0.9, 0.6, 0.4, 0.2])
    w = left @ torch.diag(s) @ right.T
    u = F.normalize(torch.randn(8, generator=g), dim=0)
    return w, u


def torch_sn_sigma(weight: torch.Tensor, u: torch.Tensor, n_iters: int) -> float:
    """sigma as torch's ``spectral_norm`` estimates it after ``n_iters`` from ``u``."""
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    layer = torch_spectral_norm(layer, n_power_iterations=n_iters)
    with torch.no_grad():
        layer.weight_u.copy_(u)
        layer.train()
        layer(torch.zeros(1, weight.shape[1]))  # one forward pass runs the iterations
        return float((layer.weight_orig / layer.weight).mean())


def check_power_iteration(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> CheckResult:
    """``fn(weight, u, n_iters) -> (sigma, u)``: ``n_iters`` rounds of v = normalise(W^T u),
    u = normalise(W v), then sigma = u^T W v. Compared with torch's ``spectral_norm`` from the
    same u, and with the exact largest singular value after 50 rounds."""

    def body() -> str:
        w, u0 = _sn_inputs()
        exact = exact_sigma(w)
        one = torch_sn_sigma(w, u0, 1)
        got = call_student(SN, fn, [w, u0, 1], _sn_error_hint)
        if not (isinstance(got, tuple | list) and len(got) == 2):
            raise fail(
                SN,
                f"return a pair (sigma, u), got {type(got).__name__}. The new u is returned so "
                f"that the next call starts from it: SN keeps u between training steps, which "
                f"is why one iteration per step is enough.",
                "not_a_pair",
            )
        sigma1 = as_number(SN, got[0], "sigma")
        u1 = require_tensor(SN, got[1], (8,), "the returned u")
        if abs(float(u1.norm()) - 1) > 1e-4:
            raise fail(
                SN,
                f"the returned u has length {float(u1.norm()):.4g}, not 1. Normalise u and v "
                f"after every multiplication (F.normalize(..., dim=0)); otherwise they grow like "
                f"sigma^k and u^T W v is no longer sigma.",
                "not_normalised",
            )
        if not close(sigma1, one):
            wd, u = w, u0
            v = F.normalize(wd.T @ u, dim=0)
            u_new = F.normalize(wd @ v, dim=0)
            raise diagnose(
                SN,
                sigma1,
                [
                    Mistake(
                        "converged_regardless",
                        lambda: exact,
                        f"with n_iters=1 you returned the converged value {exact:.4f}, but one "
                        f"round from this u gives {one:.4f} (torch's spectral_norm agrees). Do "
                        f"exactly n_iters rounds, starting from the u you are given: during "
                        f"training SN does one round per step and relies on u carried over.",
                    ),
                    Mistake(
                        "old_u",
                        lambda: u @ (wd @ v),
                        "you computed sigma with the u you started from. After v = "
                        "normalise(W^T u), update u = normalise(W v) first, then sigma = u^T W v "
                        "(equivalently |W v|).",
                    ),
                    Mistake(
                        "sigma_squared",
                        lambda: (u_new @ (wd @ v)) ** 2,
                        "you returned sigma squared: the eigenvalues of W^T W are the squared "
                        "singular values of W. sigma = u^T W v.",
                    ),
                    Mistake(
                        "frobenius",
                        lambda: wd.norm(),
                        "that is the Frobenius norm sqrt(sum W_ij^2), an upper bound on sigma, "
                        "not sigma itself: sigma is the largest stretch |W v| over unit v.",
                    ),
                    Mistake(
                        "max_entry",
                        lambda: wd.abs().max(),
                        "that is the largest entry of W, not its largest singular value (the "
                        "largest stretch |W v| of a unit vector v).",
                    ),
                ],
                f"after one round from the given u, torch's spectral_norm estimates sigma = "
                f"{one:.4g}; yours is {sigma1:.4g}. Start from the given u (not a random "
                f"vector), compute v = normalise(W^T u), then u = normalise(W v), and return "
                f"sigma = u^T W v.",
            )
        got50 = call_student(SN, fn, [w, u0, 50], _sn_error_hint)
        sigma50 = as_number(SN, got50[0], "sigma") if isinstance(got50, tuple | list) else None
        if sigma50 is None or abs(sigma50 - exact) > 1e-4 * exact:
            yours = "no (sigma, u) pair" if sigma50 is None else fmt(sigma50)
            raise fail(
                SN,
                f"one round matches torch, but after 50 rounds sigma should converge to the "
                f"exact value {exact:.5f} (SVD); yours is {yours}. Do you loop n_iters times, "
                f"feeding each round's u into the next?",
                "no_loop",
            )
        return (
            f"one round from u: {sigma1:.4f} (torch's spectral_norm: {one:.4f}); 50 rounds: "
            f"{sigma50:.5f} (exact SVD: {exact:.5f}). One round per training step suffices "
            f"because u is kept between steps and W changes only a little per step."
        )

    return run_check(SN, body)


def _sn_error_hint(error: str) -> str:
    if "shapes cannot be multiplied" in error or "size mismatch" in error:
        return (
            "W is (out, in) = (8, 12): v = W^T u has the input size 12 and u = W v the output "
            "size 8 (use weight.T, and torch.mv or @ with 1-D vectors)"
        )
    return ""


# ----- 4. the mapping network ----------------------------------------------------------------

MAPPING = "mapping network"


def check_mapping(fn: Callable[..., torch.Tensor]) -> CheckResult:
    """``fn(z, weight, bias, n_layers) -> w``: L2-normalise each z, then apply the one tied
    Linear + LeakyReLU(0.2) ``n_layers`` times. Compared with ``MappingNetwork(tied=True)``."""

    def body() -> str:
        g = _rng(7)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(8)
            net = MappingNetwork(dim=8, n_layers=4, tied=True)
        with torch.no_grad():
            net.layers[0].weight.mul_(4.0)  # larger than at init, so that every layer matters
            weight, bias = net.layers[0].weight.detach().clone(), net.layers[0].bias.detach()
            z = torch.randn(5, 8, generator=g) * 3.0
            expected = net(z)
        got = call_student(MAPPING, fn, [z, weight, bias, 4], None)
        got = require_tensor(MAPPING, got, (5, 8), "w")
        nan_verdict(MAPPING, got, "Normalising a non-zero z cannot divide by zero.")
        if close(got, expected):
            return (
                "matches the project's MappingNetwork. Four passes through one layer: the "
                "release's tied mapping has the parameters of a single Linear(100, 100)."
            )

        def layers(x: torch.Tensor, n: int, act: Callable, transpose: bool = True) -> torch.Tensor:
            for _ in range(n):
                x = act((x @ weight.T if transpose else x @ weight) + bias)
            return x

        def leaky(slope: float) -> Callable:
            return lambda t: F.leaky_relu(t, slope)

        zn = F.normalize(z, dim=1)
        raise diagnose(
            MAPPING,
            got,
            [
                Mistake(
                    "no_normalisation",
                    lambda: layers(z, 4, leaky(0.2)),
                    "z is not normalised first: the release divides each z by its L2 norm "
                    "(F.normalize(z, dim=1)), so only its direction matters.",
                ),
                Mistake(
                    "normalised_over_batch",
                    lambda: layers(F.normalize(z, dim=0), 4, leaky(0.2)),
                    "you normalised over the batch (dim 0). Each z is normalised on its own: "
                    "dim=1, its length over the 100 (here 8) coordinates.",
                ),
                Mistake(
                    "relu",
                    lambda: layers(zn, 4, torch.relu),
                    "ReLU instead of LeakyReLU(0.2): negative pre-activations must keep 0.2 of "
                    "their value, or parts of W collapse to exactly zero.",
                ),
                Mistake(
                    "default_slope",
                    lambda: layers(zn, 4, leaky(0.01)),
                    "F.leaky_relu's default slope is 0.01; the mapping uses 0.2 "
                    "(negative_slope=0.2).",
                ),
                Mistake(
                    "not_transposed",
                    lambda: layers(zn, 4, leaky(0.2), transpose=False),
                    "the weight is not transposed: nn.Linear computes x @ weight.T + bias "
                    "(weight is (out, in)). A square matrix hides this mistake from shape "
                    "errors, not from the values.",
                ),
                Mistake(
                    "one_layer",
                    lambda: layers(zn, 1, leaky(0.2)),
                    "you applied the layer once; the tied mapping applies the same layer "
                    "n_layers (4) times, each followed by LeakyReLU(0.2).",
                ),
                Mistake(
                    "no_last_activation",
                    lambda: layers(zn, 3, leaky(0.2)) @ weight.T + bias,
                    "the last pass has no LeakyReLU: every one of the n_layers passes is "
                    "Linear then LeakyReLU(0.2).",
                ),
            ],
            f"w differs from the project's MappingNetwork (expected {fmt(expected)}, got "
            f"{fmt(got)}). Normalise z per sample, then repeat n_layers times: "
            f"x = leaky_relu(x @ weight.T + bias, 0.2).",
        )

    return run_check(MAPPING, body)


# ----- 5. Frechet distance and KID ----------------------------------------------------------

FD = "Frechet distance"


def _feature_sets(seed: int, n_real: int, n_fake: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated Gaussian feature sets with different means and covariances."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d)) * 0.7
    real = rng.normal(size=(n_real, d)) @ a + rng.normal(size=d)
    fake = rng.normal(size=(n_fake, d)) @ b + rng.normal(size=d)
    return real, fake


def check_frechet_distance(fn: Callable[[np.ndarray, np.ndarray], float]) -> CheckResult:
    """``fn(real, fake) -> float`` for (N, D) and (M, D) features: |mu_r - mu_f|^2 +
    tr(S_r + S_f - 2 sqrtm(S_r S_f)), covariances with N - 1. Compared with
    ``ssd_lib.metrics.features.frechet_distance`` (pytorch-fid's formula)."""

    def body() -> str:
        real, fake = _feature_sets(9, 80, 70, 4)
        expected = features.frechet_distance(real, fake, min_samples=2).value
        got = as_number(FD, call_student(FD, fn, [real, fake], _fd_error_hint), "the distance")
        nan_verdict(
            FD,
            got,
            "np.sqrt of a matrix takes the root of each entry, and entries "
            "can be negative: use scipy.linalg.sqrtm for the matrix square root.",
        )
        if close(got, expected, rtol=1e-4, atol=1e-6):
            return (
                f"{got:.4f}, as pytorch-fid's formula in ssd_lib.metrics.features. On "
                f"Inception features this number would be an FID."
            )
        from scipy.linalg import sqrtm

        mu_r, mu_f = real.mean(0), fake.mean(0)
        dm = mu_r - mu_f
        s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
        sd_r, sd_f = real.std(0, ddof=1), fake.std(0, ddof=1)

        def fd(s1: np.ndarray, s2: np.ndarray, mean_term: float | None = None) -> float:
            cross = np.real(np.trace(sqrtm(s1 @ s2)))
            mt = dm @ dm if mean_term is None else mean_term
            return float(mt + np.trace(s1) + np.trace(s2) - 2 * cross)

        cov_term = np.trace(s_r) + np.trace(s_f)
        raise diagnose(
            FD,
            got,
            [
                Mistake(
                    "no_trace_term",
                    lambda: dm @ dm,
                    "only the mean term |mu_r - mu_f|^2: the covariance term is missing. Two "
                    "sets with the same mean but different spreads must be far apart: add "
                    "tr(S_r + S_f - 2 sqrtm(S_r S_f)).",
                ),
                Mistake(
                    "no_mean_term",
                    lambda: fd(s_r, s_f, mean_term=0.0),
                    "only the covariance term: add the squared distance between the means, "
                    "|mu_r - mu_f|^2.",
                ),
                Mistake(
                    "elementwise_sqrt",
                    lambda: dm @ dm + cov_term - 2 * np.trace(_entrywise_sqrt(s_r @ s_f)),
                    "np.sqrt(S_r @ S_f) takes the square root of each entry. The formula needs "
                    "the matrix square root (a matrix M with M @ M = S_r @ S_f): "
                    "scipy.linalg.sqrtm.",
                ),
                Mistake(
                    "elementwise_product",
                    lambda: dm @ dm + cov_term - 2 * np.trace(_entrywise_sqrt(s_r * s_f)),
                    "sqrt(S_r * S_f) multiplies the matrices entry by entry. The formula uses "
                    "the matrix product and the matrix square root: sqrtm(S_r @ S_f).",
                ),
                Mistake(
                    "product_of_roots",
                    lambda: dm @ dm + cov_term - 2 * np.trace(np.real(sqrtm(s_r) @ sqrtm(s_f))),
                    "sqrtm(S_r) @ sqrtm(S_f) equals sqrtm(S_r @ S_f) only when the two "
                    "covariances commute, which they do not here: take sqrtm of the product.",
                ),
                Mistake(
                    "std_not_covariance",
                    lambda: dm @ dm + np.sum(sd_r + sd_f - 2 * np.sqrt(sd_r * sd_f)),
                    "you used standard deviations where the formula needs covariances. The "
                    "Gaussian fitted to the features has a full (D, D) covariance matrix "
                    "np.cov(x, rowvar=False): variances on the diagonal, correlations off it.",
                ),
                Mistake(
                    "diagonal_only",
                    lambda: dm @ dm + np.sum((sd_r - sd_f) ** 2),
                    "that is the distance between Gaussians with diagonal covariances: it "
                    "ignores how features vary together. Use the full covariance matrices.",
                ),
                Mistake(
                    "biased_covariance",
                    lambda: fd(
                        np.cov(real, rowvar=False, bias=True), np.cov(fake, rowvar=False, bias=True)
                    ),
                    "close: your covariances divide by N; np.cov (and pytorch-fid) divide by "
                    "N - 1, the unbiased estimate.",
                ),
                Mistake(
                    "uncentred_covariance",
                    lambda: fd(real.T @ real / (len(real) - 1), fake.T @ fake / (len(fake) - 1)),
                    "your covariance is X^T X / (N - 1) without subtracting the mean first: "
                    "that is a second moment, not a covariance. Centre the features, or use "
                    "np.cov(x, rowvar=False).",
                ),
                Mistake(
                    "mean_not_squared",
                    lambda: fd(s_r, s_f, mean_term=float(np.linalg.norm(dm))),
                    "the mean term is the squared distance |mu_r - mu_f|^2, not the distance.",
                ),
                Mistake(
                    "plus_cross_term",
                    lambda: float(dm @ dm + cov_term + 2 * np.real(np.trace(sqrtm(s_r @ s_f)))),
                    "the cross term is subtracted: tr(S_r) + tr(S_f) - 2 tr(sqrtm(S_r S_f)). "
                    "For identical sets it must cancel to 0.",
                ),
            ],
            f"expected {expected:.4f}, got {got:.4f}. Check each part: means over axis 0, "
            f"np.cov(x, rowvar=False), scipy.linalg.sqrtm of the product, its real part, and "
            f"|mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr(covmean).",
            rtol=1e-4,
            atol=1e-6,
        )

    return run_check(FD, body)


def _entrywise_sqrt(m: np.ndarray) -> np.ndarray:
    """np.sqrt of each entry, as the mistake does; negative entries give NaN, quietly."""
    with np.errstate(invalid="ignore"):
        return np.sqrt(m)


def _fd_error_hint(error: str) -> str:
    if "not aligned" in error or "mismatch" in error or "shapes" in error:
        return (
            "np.cov(x) treats each row as a variable: pass rowvar=False so that the covariance "
            "is (D, D) whatever the sample count"
        )
    return ""


KID = "KID"


def check_kid(fn: Callable[[np.ndarray, np.ndarray], float]) -> CheckResult:
    """``fn(real, fake) -> float``: unbiased MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3:
    the mean of k over distinct pairs within each set, minus twice the mean over all cross
    pairs. Compared with ``ssd_lib.metrics.features.kernel_distance`` (clean-fid's formula,
    one subset holding every sample)."""

    def body() -> str:
        real, fake = _feature_sets(10, 60, 60, 5)
        fake = 0.6 * fake  # a visible but not huge difference
        expected = features.kernel_distance(
            real, fake, num_subsets=1, max_subset_size=len(real), min_samples=2
        ).value
        got = as_number(KID, call_student(KID, fn, [real, fake], None), "KID")
        nan_verdict(KID, got, "Every kernel value is finite on finite features.")
        if close(got, expected, rtol=1e-4, atol=1e-7):
            return (
                f"{got:.5g}, as clean-fid's kernel_distance with one subset of all {len(real)} "
                f"samples. Unbiased means it can come out slightly negative for two samples "
                f"of the same distribution."
            )
        d, n = real.shape[1], len(real)

        def mmd(
            degree: int = 3,
            scale: float = d,
            unbiased: bool = True,
            two: float = 2.0,
            cross_offdiag: bool = False,
        ) -> float:
            def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                return (a @ b.T / scale + 1) ** degree

            krr, kff, krf = k(real, real), k(fake, fake), k(real, fake)
            if unbiased:
                within = (krr.sum() - np.trace(krr) + kff.sum() - np.trace(kff)) / (n * (n - 1))
            else:
                within = krr.mean() + kff.mean()
            cross = (krf.sum() - np.trace(krf)) / (n * (n - 1)) if cross_offdiag else krf.mean()
            return float(within - two * cross)

        raise diagnose(
            KID,
            got,
            [
                Mistake(
                    "biased",
                    lambda: mmd(unbiased=False),
                    "your within-set means include the pairs (x_i, x_i). Comparing a sample "
                    "with itself always scores high, which biases MMD upwards; leave out the "
                    "diagonal and divide by N (N - 1).",
                ),
                Mistake(
                    "no_dimension_scaling",
                    lambda: mmd(scale=1.0),
                    "the kernel is (x.y / D + 1)^3 with D the feature dimension; without the "
                    "/ D the dot products (and the cube) grow with the number of features.",
                ),
                Mistake(
                    "wrong_degree",
                    lambda: mmd(degree=2),
                    "KID's polynomial kernel is cubic: (x.y / D + 1)^3.",
                ),
                Mistake(
                    "cross_term_once",
                    lambda: mmd(two=1.0),
                    "the cross term counts twice: MMD^2 = E k(x, x') + E k(y, y') - "
                    "2 E k(x, y), since k(x, y) and k(y, x) both appear.",
                ),
                Mistake(
                    "cross_term_offdiagonal",
                    lambda: mmd(cross_offdiag=True),
                    "this is also an unbiased estimate (Gretton et al. drop the i = j cross "
                    "pairs too), but KID, clean-fid and this project average the cross term "
                    "over all N * M pairs: use that, so your number matches the library's.",
                ),
                Mistake(
                    "square_root",
                    lambda: float(np.sqrt(expected)) if expected > 0 else float("nan"),
                    "you returned the square root (MMD); KID reports MMD^2 itself, which is "
                    "what the unbiased estimate estimates (its root would not be unbiased).",
                ),
                Mistake(
                    "sign",
                    lambda: -expected,
                    "the sign is flipped: within-set similarities count positively, the "
                    "cross term negatively.",
                ),
            ],
            f"expected {expected:.5g}, got {got:.5g}. KID = mean of k over pairs i != j "
            f"within the real set + the same within the fake set - 2 * mean of k over all "
            f"real-fake pairs, with k(x, y) = (x.y / D + 1)^3.",
            rtol=1e-4,
            atol=1e-7,
        )

    return run_check(KID, body)


CHECKS: dict[str, Callable[[Any], CheckResult]] = {
    "g_loss": check_g_loss,
    "d_loss": check_d_loss,
    "adain": check_adain,
    "power_iteration": check_power_iteration,
    "mapping_forward": check_mapping,
    "frechet_distance": check_frechet_distance,
    "kid": check_kid,
}
"""Each check by the name of its reference solution in :mod:`ssd_lib.teach.solutions`."""
