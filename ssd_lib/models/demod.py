"""Weight demodulation (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", StyleGAN2) and an SSD generator that uses it in place of AdaIN.

StyleGAN2 removes instance normalisation, which causes the "droplet" artefacts, and folds the
style into the convolution weights instead:

    modulate:    w'[n, o, i, :, :] = w[o, i, :, :] * s[n, i]          (s = affine(w_latent))
    demodulate:  w''[n, o]          = w'[n, o] / sqrt(sum_{i, kh, kw} w'[n, o, i, kh, kw]^2 + eps)

With unit-variance i.i.d. inputs, output channel o of sample n then has unit variance whatever
the style's scale, which is what instance norm was there to guarantee. Every sample has its
own weights; ``modulated_conv2d`` computes the same numbers either as one grouped convolution
(``groups=N``) or, by default and faster on a CPU, as the shared convolution between a scaling
of the input channels (the style) and one of the output channels (the demodulation).

``SSDDemodGenerator`` keeps the SSD generator of ``ssd.py`` (tied mapping, learned constant
(1, 100, 1, 1), the same five transposed convolutions and widths, ReLU, tanh output layer) and
replaces each "ConvT -> AdaIN(w)" pair by one modulated, demodulated transposed convolution
plus a learned per-channel bias (demodulation removes any shift, so AdaIN's bias(w) becomes a
constant bias, as in StyleGAN2):

    z (N, 100) -> mapping (one Linear(100, 100) applied 4 times) -> w (N, 100)
    learned constant (1, 100, 1, 1), expanded to the batch
      ModConvT(100 -> 512, k4 s1 p0, style A0(w): 100) + bias -> ReLU    (N, 512, 4, 4)
      ModConvT(512 -> 256, k4 s2 p1, style A1(w): 512) + bias -> ReLU    (N, 256, 8, 8)
      ModConvT(256 -> 128, k4 s2 p1, style A2(w): 256) + bias -> ReLU    (N, 128, 16, 16)
      ModConvT(128 ->  64, k4 s2 p1, style A3(w): 128) + bias -> ReLU    (N, 64, 32, 32)
      ConvT( 64 ->   3, k4 s2 p1) -> tanh  (unchanged from SSD)          (N, 3, 64, 64)

Parameter count by hand (defaults nz = 100, ngf = 64; a modulated layer has
in*out*k*k conv weights + out biases + an affine map Linear(100, in) = 100*in + in):

    layer 0:  100*512*16 + 512 + (100*100 + 100) =   819,200 + 512 + 10,100 =   829,812
    layer 1:  512*256*16 + 256 + (100*512 + 512) = 2,097,152 + 256 + 51,712 = 2,149,120
    layer 2:  256*128*16 + 128 + (100*256 + 256) =   524,288 + 128 + 25,856 =   550,272
    layer 3:  128* 64*16 +  64 + (100*128 + 128) =   131,072 +  64 + 12,928 =   144,064
    to_rgb:    64*  3*16 (no bias, as in SSD)                                =     3,072
    mapping:  100*100 + 100 (tied: one layer)                                =    10,100
    constant: 100                                                            =       100
    total                                                                    = 3,686,540

against 3,778,904 for SSD: the convolutions are the same; the four AdaINs had two Linear(100, c)
maps on the *output* widths, 2 * 101 * (512 + 256 + 128 + 64) = 193,920, the modulated layers
have one Linear(100, c) on the *input* widths plus biases, 101 * 996 + 960 = 101,556.
``demod_generator_parameter_count`` evaluates this formula for other widths.

Transposed convolutions with stride s: an output pixel sees only about (k/s)^2 of the k^2
taps, so demodulating by the full filter norm leaves variance ~1/s^2 per layer (StyleGAN2
makes this up with the gain of its up-sampling filter). ``gain`` multiplies the demodulation
coefficients to restore unit variance: s for the stride-2 layers, k = 4 for the first layer,
where each of the 4x4 outputs of a 1x1 input sees exactly one tap. Layers 1-3 also take a
ReLU's output, whose mean square is half its input's, so their gain has an extra sqrt(2) (He
et al.'s argument; StyleGAN2 gives its activations the same gain). Without these factors the
features shrink by ~2.8x per layer and the output layer starts from near-zero inputs.

With unit-variance features, though, SSD's output layer (initialised as in SSD) turns them into
a loud high-frequency pattern: at initialisation the demodulated generator's images have a
pixel SD of 0.51 and neighbouring pixels differing by 0.76 RMS, SSD's 0.10 and 0.13 (AdaIN's
styles start small, so SSD's features do). That pattern looked like the reason D was right
about every image from the second step of a 25 % run under the release's recipe, which then
ended as one fixed noise pattern.
``TO_RGB_INIT_SCALE`` = 0.1 scales the output layer's initial weights so the first images are
near-flat, as SSD's (pixel SD 0.07). These numbers are ``first_image_stats`` on 32 codes of
seed 0 (``python -c "from ssd_lib.models.demod import first_image_stats as f; print(f())"``,
with ``TO_RGB_INIT_SCALE`` set to 1 for the loud start).
It did not rescue the run: SSD's own discriminator is also right about every image for its
first 20-40 steps and its generator catches up after (published ``ssd_25-seed42``'s history),
while a full 25 % run with the quiet start stayed at 100 %. The scale is kept because it makes
the start match SSD's; why the demodulated generator never catches up is open.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ssd_lib.models.layers import MappingNetwork, StyleGeneratorMixin, broadcast_ws
from ssd_lib.models.ssd import conv_t

TO_RGB_INIT_SCALE = 0.1  # the output layer's initial weights, against SSD's (module docstring)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    stride: int = 1,
    padding: int = 0,
    transposed: bool = False,
    gain: float = 1.0,
    eps: float = 1e-8,
    grouped: bool = False,
) -> torch.Tensor:
    """Per-sample modulated (and demodulated) convolution.

    x: (N, C_in, H, W); weight: (C_out, C_in, k, k), the same layout for ``transposed=True``
    (unlike ``nn.ConvTranspose2d``); styles: (N, C_in). Demodulation divides each sample's
    output filter by its L2 norm over (C_in, k, k), then multiplies by ``gain``.
    Returns (N, C_out, H', W') with H' as ``F.conv2d`` / ``F.conv_transpose2d`` give it.

    Two ways to the same numbers (tested equal): ``grouped=True`` builds every sample's
    weights and runs one grouped convolution (StyleGAN2's fused form); the default scales the
    input channels by the style, runs the one shared convolution over the batch and scales
    the output channels by the demodulation coefficient, which is exact because that
    coefficient depends only on (sample, output channel). The default is several times
    faster on a CPU, where grouped transposed convolutions are slow.
    """
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    if styles.shape != (n, c_in):
        raise ValueError(f"styles has shape {tuple(styles.shape)}; expected ({n}, {c_in})")
    if not grouped:
        conv = F.conv_transpose2d if transposed else F.conv2d
        shared = weight.transpose(0, 1) if transposed else weight
        out = conv(x * styles[:, :, None, None], shared, stride=stride, padding=padding)
        if demodulate:  # sum_i,k (w[o, i, k] s[n, i])^2 = (s^2) @ (sum_k w^2)^T
            norms = styles.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t()  # (N, C_out)
            out = out * (torch.rsqrt(norms + eps) * gain)[:, :, None, None]
        return out
    wts = weight[None] * styles[:, None, :, None, None]  # (N, C_out, C_in, k, k)
    if demodulate:
        d = torch.rsqrt(wts.pow(2).sum(dim=(2, 3, 4)) + eps) * gain  # (N, C_out)
        wts = wts * d[:, :, None, None, None]
    x = x.reshape(1, n * c_in, h, w)  # the batch becomes groups
    if transposed:
        # conv_transpose2d wants (in, out / groups, k, k): group n owns rows n*C_in ...
        wts = wts.transpose(1, 2).reshape(n * c_in, c_out, kh, kw)
        out = F.conv_transpose2d(x, wts, stride=stride, padding=padding, groups=n)
    else:
        wts = wts.reshape(n * c_out, c_in, kh, kw)
        out = F.conv2d(x, wts, stride=stride, padding=padding, groups=n)
    return out.reshape(n, c_out, out.shape[2], out.shape[3])


class ModulatedConv2d(nn.Module):
    """A convolution whose weights are scaled per sample by ``affine(w)`` and demodulated.

    The affine map's bias starts at 1, so every style starts near 1 (as in StyleGAN2). A
    learned per-channel bias is added after the convolution. Weights start as
    N(0, 1 / (C_in * k * k)), the scale of SSD's own convolutions (about 0.01), and are used
    as stored. StyleGAN2 stores N(0, 1) and scales at run time ("equalised learning rate"),
    which with demodulation changes nothing in the forward pass but makes every Adam step
    about a hundred times smaller relative to the weights than SSD's under the same learning
    rate (5e-4, tuned for weights of SSD's scale). Stored at SSD's scale they learn at SSD's
    pace, so the comparison with AdaIN changes one thing. (It did not rescue the 25 % run
    under the release's recipe: with either storage D was right about every image from step
    2 and the run ended as one fixed colour-noise pattern; see docs/beyond.md.)
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        w_dim: int = 100,
        *,
        stride: int = 1,
        padding: int | None = None,
        transposed: bool = False,
        demodulate: bool = True,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        fan_in = c_in * kernel * kernel
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel) * fan_in**-0.5)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.affine = nn.Linear(w_dim, c_in)
        with torch.no_grad():
            self.affine.bias.fill_(1.0)
        self.stride = stride
        self.padding = kernel // 2 if padding is None else padding
        self.transposed, self.demodulate, self.gain = transposed, demodulate, gain

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, H, W) (a batch-1 x is expanded); w: (N, w_dim)."""
        x = x.expand(w.shape[0], -1, -1, -1)
        out = modulated_conv2d(
            x,
            self.weight,
            self.affine(w),  # (N, C_in)
            demodulate=self.demodulate,
            stride=self.stride,
            padding=self.padding,
            transposed=self.transposed,
            gain=self.gain,
        )
        return out + self.bias[None, :, None, None]


def first_image_stats(n: int = 32, seed: int = 0) -> dict[str, dict[str, float]]:
    """What the first images (freshly initialised, ``torch.manual_seed(seed)`` before building
    each) of SSD's generator and of ``SSDDemodGenerator`` look like on ``n`` codes: pixel SD
    and RMS difference of neighbouring pixels (how loud each starts; module docstring), and
    how little they depend on the code: the SD of w across the codes (mean over its
    dimensions) beside its mean absolute value, and the samples' coarse spread across the
    codes (``health.structural_diversity``; the training images': about 0.18)."""
    from ssd_lib.models.ssd import SSDGenerator
    from ssd_lib.training.health import structural_diversity
    from ssd_lib.utils.images import float_to_uint8

    out = {}
    for name, cls in (("ssd", SSDGenerator), ("demod", SSDDemodGenerator)):
        torch.manual_seed(seed)
        g = cls()
        z = torch.randn(n, g.z_dim)
        with torch.no_grad():
            w, x = g.mapping(z), g(z)
        neighbour = (x[..., 1:] - x[..., :-1]).pow(2).mean().sqrt()
        out[name] = {
            "pixel_sd": float(x.std()),
            "neighbour_rms": float(neighbour),
            "w_sd_across_codes": float(w.std(dim=0).mean()),
            "w_mean_abs": float(w.abs().mean()),
            "coarse_spread": structural_diversity(float_to_uint8(x, "[-1, 1]")),
        }
    return out


class SSDDemodGenerator(StyleGeneratorMixin, nn.Module):
    """SSD with weight demodulation instead of AdaIN; output (N, 3, 64, 64) in [-1, 1]."""

    def __init__(
        self,
        nz: int = 100,
        ngf: int = 64,
        channels: int = 3,
        tied_mapping: bool = True,
        mapping_layers: int = 4,
    ) -> None:
        super().__init__()
        self.z_dim = self.w_dim = nz
        widths = [ngf * 8, ngf * 4, ngf * 2, ngf]  # 512, 256, 128, 64
        self.num_ws = len(widths)
        self.mapping = MappingNetwork(nz, mapping_layers, tied=tied_mapping)
        self.const = nn.Parameter(torch.randn(1, nz, 1, 1))
        self.convs = nn.ModuleList()
        c_in = nz
        for i, c in enumerate(widths):
            first = i == 0
            self.convs.append(
                ModulatedConv2d(
                    c_in,
                    c,
                    4,
                    nz,
                    stride=1 if first else 2,
                    padding=0 if first else 1,
                    transposed=True,
                    gain=4.0 if first else 2.0 * math.sqrt(2.0),  # module docstring
                )
            )
            c_in = c
        self.to_rgb = conv_t(c_in, channels)
        with torch.no_grad():  # the first images near-flat, as SSD's (module docstring)
            self.to_rgb.weight.mul_(TO_RGB_INIT_SCALE)
        self.register_buffer("w_avg", torch.zeros(nz))

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """ws: (N, 100) or (N, 4, 100) -> images (N, 3, 64, 64) in [-1, 1]."""
        ws = broadcast_ws(ws, self.num_ws, self.w_dim)
        x = self.const  # (1, 100, 1, 1); the first layer expands it to the batch
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x, ws[:, i]))
        return torch.tanh(self.to_rgb(x))


def demod_generator_parameter_count(
    nz: int = 100,
    ngf: int = 64,
    channels: int = 3,
    tied_mapping: bool = True,
    mapping_layers: int = 4,
) -> int:
    """The parameter count of ``SSDDemodGenerator`` by the formula in the module docstring."""
    widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
    total = 0
    for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
        total += c_in * c_out * 16 + c_out + (nz * c_in + c_in)
    total += ngf * channels * 16  # to_rgb, no bias
    total += (1 if tied_mapping else mapping_layers) * (nz * nz + nz)
    return total + nz  # the learned constant
