"""Training configuration: one dataclass, named presets, named compute profiles.

A *preset* is a recipe from the paper (which networks, which loss, which data range, which
step order). A *profile* is a compute budget (how many epochs and steps, how wide the StyleGAN
baseline is). ``make_config("paper", profile="quick")`` is the release's recipe on a budget a
laptop can afford; ``make_config("paper", profile="paper")`` is the paper's 20 epochs.

Every field is validated when the config is built; a bad value (unknown field, wrong type,
out of range) raises ``ConfigError`` naming the field, the value and what is allowed.
``to_dict``/``from_dict`` round-trip through JSON, and the JSON is stored in every checkpoint;
``from_json_file`` reads such a file and names it in every error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.validate import VALUE_RANGES, check_int, check_real, check_seed, fail

# The string options, as types (for readers and type checkers) and as the tuples the
# validation checks against, written once.
Generator = Literal["ssd", "dcgan", "mapping_dcgan", "stylegan", "ssd_demod", "lapgan"]
# "lapgan": one discriminator per pyramid level (ssd_lib.models.lapgan), with SN.
Discriminator = Literal["sn", "plain", "stylegan", "lapgan"]
Loss = Literal["bce", "wgan_gp"]  # ssd_lib.training.losses
StepOrder = Literal["g_then_d", "d_then_g"]
SubsetMode = Literal["first", "random"]
ValueRange = Literal["[0, 1]", "[-1, 1]"]  # the range reals are fed to D in
# Augmentation of every image D sees (ssd_lib.training.augment): none, DiffAugment at a
# fixed p, or StyleGAN2-ADA's adaptive p.
Augment = Literal["none", "diffaugment", "ada"]
# "auto": see ssd_lib.training.devices.resolve_precision; "fp16" trains with a gradient
# scaler (for GPUs)
Precision = Literal["fp32", "bf16", "fp16", "auto"]
GENERATORS = get_args(Generator)
DISCRIMINATORS = get_args(Discriminator)
LOSSES = get_args(Loss)
STEP_ORDERS = get_args(StepOrder)
SUBSET_MODES = get_args(SubsetMode)
AUGMENTS = get_args(Augment)
PRECISIONS = get_args(Precision)
assert get_args(ValueRange) == VALUE_RANGES
# Fields added after the first runs were published. ``to_dict`` leaves them out while they
# hold their defaults, so the JSON (and the hash that names every run folder) of a config
# that does not use them is what it was before they existed: published and half-trained runs
# keep their names.
LATER_FIELDS = (
    "augment",
    "augment_policy",
    "augment_p",
    "ada_target",
    "ada_interval",
    "ada_speed_images",
    "r1_gamma",
    "r1_every",
    "ema_half_life_images",
)


class ConfigError(SSDError, ValueError):
    """A configuration value is invalid; the message names the field and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the device is not part of it)."""

    preset: str = "paper"
    profile: str = "paper"
    # Networks (docs/paper.md, "The networks the release builds").
    generator: Generator = "ssd"
    discriminator: Discriminator = "sn"
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    tied_mapping: bool = True
    mapping_layers: int = 4
    stylegan_width: float = 1.0
    # Data.
    dataset: str = "embedded"
    data_fraction: float = 1.0
    subset_mode: SubsetMode = "first"
    real_range: ValueRange = "[0, 1]"
    # Recipe.
    loss: Loss = "bce"
    gp_weight: float = 10.0
    step_order: StepOrder = "g_then_d"
    d_loss_scale: float = 0.5
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 32
    drop_last: bool = False
    epochs: int = 20
    max_steps: int = 0  # 0: no cap beyond ``epochs``
    seed: int = 42
    precision: Precision = "fp32"
    # Logging.
    spectral_every: int = 1
    sample_count: int = 64
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: at epoch ends only
    # Discriminator augmentation (ssd_lib.training.augment; LATER_FIELDS).
    augment: Augment = "none"
    augment_policy: str = "color,translation,cutout"
    augment_p: float = 1.0  # the fixed p of "diffaugment"
    ada_target: float = 0.6  # "ada": the r_t = E[sign(D(real) - 1/2)] it holds
    ada_interval: int = 4  # "ada": steps between updates of p
    ada_speed_images: int = 500_000  # "ada": real images over which p can go from 0 to 1
    # Beyond the paper (StyleGAN2; LATER_FIELDS): the R1 penalty (gamma / 2) E||grad D(x)||^2
    # on real images, every ``r1_every`` steps (lazy, scaled by r1_every), 0: off; and an
    # exponential moving average of G's weights with this half-life in training images, which
    # samples and metrics then use, 0: off.
    r1_gamma: float = 0.0
    r1_every: int = 1
    ema_half_life_images: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.betas, (list, tuple)):
            fail(
                "TrainConfig.betas",
                self.betas,
                "two numbers in [0, 1)",
                error=ConfigError,
            )
        object.__setattr__(self, "betas", tuple(self.betas))
        _validate(self)
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    def to_dict(self) -> dict[str, Any]:
        """Every field, except LATER_FIELDS that hold their defaults (see LATER_FIELDS)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        for f in dataclasses.fields(self):
            if f.name in LATER_FIELDS and d[f.name] == f.default:
                del d[f.name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config with the fields of ``d`` (missing fields keep their defaults)."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a dict of fields, got {type(d).__name__}: {d!r}")
        _check_known(d)
        return cls(**d)

    @classmethod
    def from_json_file(cls, path: str | Path) -> TrainConfig:
        """The config stored as one JSON object in ``path`` (e.g. a run's ``config.json``);
        every error names the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read: {err}") from None
        try:
            d = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except (json.JSONDecodeError, ConfigError) as err:
            raise ConfigError(f"config file {path} is not valid JSON: {err}") from None
        try:
            return cls.from_dict(d)
        except ConfigError as err:
            raise ConfigError(f"config file {path}: {err}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **changes: Any) -> TrainConfig:
        _check_known(changes)
        return dataclasses.replace(self, **changes)

    def config_hash(self, salt: str = "") -> str:
        """Short stable hash of every field (and ``salt``): a run folder is named by the hash
        of its config salted with its dataset's content hash (ssd_lib.training.runs)."""
        return hashlib.sha256((self.to_json() + salt).encode()).hexdigest()[:10]

    def profile_overrides(self) -> dict[str, Any]:
        """The fields the profile sets that hold another value here (``--profile quick
        --epochs 20`` gives ``{"epochs": 20}``)."""
        return {
            k: getattr(self, k)
            for k, v in PROFILES[self.profile][1].items()
            if getattr(self, k) != v
        }


def _check_known(fields: dict[Any, Any]) -> None:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted((k for k in fields if k not in known), key=repr)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ConfigError(f"duplicate key(s) {duplicates}")
    return dict(pairs)


def _set(c: TrainConfig, name: str, value: Any) -> None:
    object.__setattr__(c, name, value)  # a frozen dataclass, still being built


def _validate(c: TrainConfig) -> None:
    choices = {
        "generator": GENERATORS,
        "discriminator": DISCRIMINATORS,
        "loss": LOSSES,
        "step_order": STEP_ORDERS,
        "real_range": VALUE_RANGES,
        "subset_mode": SUBSET_MODES,
        "precision": PRECISIONS,
        "augment": AUGMENTS,
    }
    for name, allowed in choices.items():
        v = getattr(c, name)
        if not isinstance(v, str) or v not in allowed:
            fail(f"TrainConfig.{name}", v, f"one of {list(allowed)}", error=ConfigError)
    positive_ints = (
        "nz",
        "ngf",
        "ndf",
        "mapping_layers",
        "batch_size",
        "epochs",
        "spectral_every",
        "sample_count",
        "ada_interval",
        "ada_speed_images",
        "r1_every",
    )
    # Each number is stored back as the check returns it, an int or a float: equal configs
    # hash alike (lr_g=1 and lr_g=1.0; a NumPy integer and the same Python int).
    for name in positive_ints:
        _set(c, name, check_int(f"TrainConfig.{name}", getattr(c, name), 1, error=ConfigError))
    for name in ("max_steps", "checkpoint_every", "ema_half_life_images"):
        _set(c, name, check_int(f"TrainConfig.{name}", getattr(c, name), 0, error=ConfigError))
    _set(c, "seed", check_seed("TrainConfig.seed", c.seed, error=ConfigError))
    for name in ("lr_g", "lr_d", "gp_weight", "d_loss_scale", "stylegan_width"):
        v = check_real(
            f"TrainConfig.{name}", getattr(c, name), 0, 1e3, low_open=True, error=ConfigError
        )
        _set(c, name, v)
    frac = check_real(
        "TrainConfig.data_fraction", c.data_fraction, 0, 1, low_open=True, error=ConfigError
    )
    _set(c, "data_fraction", frac)
    _set(c, "r1_gamma", check_real("TrainConfig.r1_gamma", c.r1_gamma, 0, 1e4, error=ConfigError))
    if len(c.betas) != 2 or not all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in c.betas
    ):
        fail("TrainConfig.betas", c.betas, "two numbers in [0, 1)", error=ConfigError)
    if not isinstance(c.preset, str) or c.preset not in PRESETS:
        fail("TrainConfig.preset", c.preset, f"one of {list(PRESETS)}", error=ConfigError)
    if not isinstance(c.profile, str) or c.profile not in PROFILES:
        fail("TrainConfig.profile", c.profile, f"one of {list(PROFILES)}", error=ConfigError)
    for name in ("tied_mapping", "drop_last"):
        if not isinstance(getattr(c, name), bool):
            fail(f"TrainConfig.{name}", getattr(c, name), "True or False", error=ConfigError)
    if not isinstance(c.dataset, str) or not c.dataset:
        fail("TrainConfig.dataset", c.dataset, "a non-empty dataset name", error=ConfigError)
    for name, low_open in (("augment_p", False), ("ada_target", True)):
        v = check_real(
            f"TrainConfig.{name}", getattr(c, name), 0, 1, low_open=low_open, error=ConfigError
        )
        _set(c, name, v)
    from ssd_lib.training.augment import (
        parse_policy,  # here: ssd_lib.training.augment imports torch
    )

    try:
        if not isinstance(c.augment_policy, str) or not parse_policy(c.augment_policy):
            raise ValueError
    except ValueError:
        fail(
            "TrainConfig.augment_policy",
            c.augment_policy,
            "a comma-separated list of color, brightness, saturation, contrast, translation, "
            "cutout",
            error=ConfigError,
        )
    # Combinations that cannot work.
    if (c.generator == "stylegan") != (c.discriminator == "stylegan"):
        fail(
            "TrainConfig.discriminator",
            c.discriminator,
            "'stylegan' exactly when generator='stylegan' (the two are built as a pair)",
            error=ConfigError,
        )
    if (c.generator == "lapgan") != (c.discriminator == "lapgan"):
        fail(
            "TrainConfig.discriminator",
            c.discriminator,
            "'lapgan' exactly when generator='lapgan' (one discriminator per pyramid level)",
            error=ConfigError,
        )
    if c.generator == "lapgan":
        # The pyramid's levels train as three independent GANs in one loop
        # (ssd_lib.training.lapgan_step), written for the corrected recipe only.
        for name, allowed in (
            ("real_range", "[-1, 1]"),
            ("step_order", "d_then_g"),
            ("loss", "bce"),
            ("augment", "none"),
        ):
            if getattr(c, name) != allowed:
                fail(
                    f"TrainConfig.{name}",
                    getattr(c, name),
                    f"{allowed!r} with generator='lapgan' (its levels train on [-1, 1] "
                    "pyramids, D step first, BCE, no augmentation; use the lapgan preset)",
                    error=ConfigError,
                )
        if c.r1_gamma:
            fail(
                "TrainConfig.r1_gamma",
                c.r1_gamma,
                "0 with generator='lapgan' (R1 is not written for its three discriminators)",
                error=ConfigError,
            )
    if c.loss == "wgan_gp" and c.discriminator != "stylegan":
        fail(
            "TrainConfig.loss",
            c.loss,
            "'bce' for the DCGAN discriminators (they end in a sigmoid)",
            error=ConfigError,
        )
    if c.loss == "bce" and c.discriminator == "stylegan":
        fail(
            "TrainConfig.loss",
            c.loss,
            "'wgan_gp' for the StyleGAN discriminator (it returns a score, not a probability)",
            error=ConfigError,
        )
    if c.loss == "wgan_gp" and c.precision == "fp16":
        fail(
            "TrainConfig.precision",
            c.precision,
            "'fp32', 'bf16' or 'auto' with loss='wgan_gp' (its gradient penalty is not "
            "written for fp16's loss scaling)",
            error=ConfigError,
        )
    if c.augment != "none" and c.real_range != "[-1, 1]":
        fail(
            "TrainConfig.augment",
            c.augment,
            "'none' unless real_range='[-1, 1]' (translation and cutout fill with 0, which is "
            "grey only in [-1, 1]; use the 'corrected' recipe, as the diffaugment and ada "
            "presets do)",
            error=ConfigError,
        )
    if c.nz != 100 and c.generator != "stylegan":
        fail(
            "TrainConfig.nz",
            c.nz,
            "100 for the paper's generators (their mapping is 100 wide)",
            error=ConfigError,
        )


# name -> (one-line description, field overrides on top of the TrainConfig defaults)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": (
        "SSD exactly as the release trains it: tied mapping, reals in [0, 1] against a tanh "
        "generator, G step then D step on regenerated fakes, D loss halved.",
        {},
    ),
    "corrected": (
        "SSD networks with the usual recipe: reals in [-1, 1], D step then G step on the same "
        "fakes, D loss summed.",
        {"real_range": "[-1, 1]", "step_order": "d_then_g", "d_loss_scale": 1.0},
    ),
    "dcgan": (
        "The DCGAN baseline: z straight into a BatchNorm generator, discriminator without SN; "
        "the release's recipe.",
        {"generator": "dcgan", "discriminator": "plain"},
    ),
    "no_sn": (
        "Ablation of paper Fig. 2/4/6: the SSD generator against the discriminator without SN.",
        {"discriminator": "plain"},
    ),
    "no_adain": (
        "Ablation of paper Fig. 5: mapping network output fed to a BatchNorm DCGAN generator, "
        "no AdaIN; SN discriminator.",
        {"generator": "mapping_dcgan"},
    ),
    "stylegan": (
        "StyleGAN (2019-style) baseline at 64x64: 8x512 mapping, noise inputs, WGAN-GP, "
        "reals in [-1, 1], Adam 1e-3 (0, 0.99).",
        {
            "generator": "stylegan",
            "discriminator": "stylegan",
            "nz": 512,
            "loss": "wgan_gp",
            "real_range": "[-1, 1]",
            "step_order": "d_then_g",
            "d_loss_scale": 1.0,
            "lr_g": 1e-3,
            "lr_d": 1e-3,
            "betas": (0.0, 0.99),
        },
    ),
    "demod": (
        "Beyond the paper: SSD with StyleGAN2's weight demodulation in place of AdaIN (the "
        "release's recipe otherwise).",
        {"generator": "ssd_demod"},
    ),
    "diffaugment": (
        "Beyond the paper: the corrected SSD recipe with DiffAugment (colour, translation, "
        "cutout) on every image D sees.",
        {
            "real_range": "[-1, 1]",
            "step_order": "d_then_g",
            "d_loss_scale": 1.0,
            "augment": "diffaugment",
        },
    ),
    "ada": (
        "Beyond the paper: the corrected SSD recipe with StyleGAN2-ADA's adaptive "
        "augmentation probability.",
        {
            "real_range": "[-1, 1]",
            "step_order": "d_then_g",
            "d_loss_scale": 1.0,
            "augment": "ada",
            # The paper's 500k images for p to go 0 -> 1 suit runs of millions of images; 20
            # epochs here see about 95k, so p may cross its range in about 4 epochs.
            "ada_speed_images": 20_000,
        },
    ),
    "r1_ema": (
        "Beyond the paper: the corrected SSD recipe with StyleGAN2's lazy R1 penalty on real "
        "images and a moving average of G for sampling.",
        {
            "real_range": "[-1, 1]",
            "step_order": "d_then_g",
            "d_loss_scale": 1.0,
            # StyleGAN2-ADA's heuristic gamma = 0.0002 * resolution^2 / batch for 64 px and
            # batch 64, every 16 steps as there; the average's half-life is about two epochs
            # of the embedded data (a 20-epoch run sees about 95k images).
            "r1_gamma": 0.0128,
            "r1_every": 16,
            "ema_half_life_images": 10_000,
        },
    ),
    "lapgan": (
        "Beyond the paper: a 3-level Laplacian pyramid GAN (16 -> 32 -> 64, Denton et al. "
        "2015), each level its own GAN on the real pyramid, the corrected recipe.",
        {
            "generator": "lapgan",
            "discriminator": "lapgan",
            "real_range": "[-1, 1]",
            "step_order": "d_then_g",
            "d_loss_scale": 1.0,
        },
    ),
}

# name -> (one-line description, field overrides applied after the preset)
PROFILES: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("The paper's budget: 20 epochs, full-width StyleGAN.", {"epochs": 20}),
    "quick": (
        "A CPU budget for laptops and classrooms: 1 epoch, a checkpoint (with samples and D's "
        "train/val gap) every 25 steps, StyleGAN at 1/16 width.",
        {"epochs": 1, "checkpoint_every": 25, "stylegan_width": 0.0625},
    ),
    "smoke": (
        "A seconds-long run for tests: 3 steps of batch 8, the networks at 1/4 width "
        "(ngf = ndf = 16), StyleGAN at 1/16.",
        {
            "epochs": 1,
            "max_steps": 3,
            "batch_size": 8,
            "stylegan_width": 0.0625,
            "sample_count": 8,
            # A quarter of the paper's width: 0.6 M parameters instead of 6.5 M, so a step
            # and a checkpoint (7 MB instead of 75 MB) cost a sixth. Tests check behaviour
            # (resume, signals, files, notebooks' plumbing), which the width does not change.
            "ngf": 16,
            "ndf": 16,
        },
    ),
}


def make_config(preset: str = "paper", profile: str = "paper", **overrides: Any) -> TrainConfig:
    """The config for ``preset`` on the budget ``profile``, with ``overrides`` applied last."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is unknown; known presets: {list(PRESETS)}")
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is unknown; known profiles: {list(PROFILES)}")
    fields = {"preset": preset, "profile": profile, **PRESETS[preset][1], **PROFILES[profile][1]}
    _check_known(overrides)
    fields.update(overrides)
    return TrainConfig(**fields)


def describe_presets() -> str:
    """One line per preset and profile, for notebooks and ``--help``."""
    lines = ["presets:"] + [f"  {k:10s} {v[0]}" for k, v in PRESETS.items()]
    lines += ["profiles:"] + [f"  {k:10s} {v[0]}" for k, v in PROFILES.items()]
    return "\n".join(lines)
