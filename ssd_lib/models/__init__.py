"""The paper's networks and a builder that picks them from a ``TrainConfig``."""

from __future__ import annotations

from torch import nn

from ssd_lib.config import TrainConfig
from ssd_lib.models.counting import count_parameters, format_millions, summary_tool_count
from ssd_lib.models.dcgan import DCGANGenerator, MappingDCGANGenerator
from ssd_lib.models.demod import SSDDemodGenerator
from ssd_lib.models.discriminator import Discriminator
from ssd_lib.models.lapgan import LAPGANDiscriminator, LAPGANGenerator
from ssd_lib.models.ssd import SSDGenerator
from ssd_lib.models.stylegan import StyleGANDiscriminator, StyleGANGenerator

__all__ = [
    "DCGANGenerator",
    "Discriminator",
    "LAPGANDiscriminator",
    "LAPGANGenerator",
    "MappingDCGANGenerator",
    "SSDDemodGenerator",
    "SSDGenerator",
    "StyleGANDiscriminator",
    "StyleGANGenerator",
    "build_discriminator",
    "build_generator",
    "count_parameters",
    "format_millions",
    "summary_tool_count",
]


def build_generator(cfg: TrainConfig) -> nn.Module:
    """The generator named by ``cfg.generator``; output images (N, 3, 64, 64) in [-1, 1]."""
    if cfg.generator == "ssd":
        return SSDGenerator(
            cfg.nz, cfg.ngf, tied_mapping=cfg.tied_mapping, mapping_layers=cfg.mapping_layers
        )
    if cfg.generator == "ssd_demod":
        return SSDDemodGenerator(
            cfg.nz, cfg.ngf, tied_mapping=cfg.tied_mapping, mapping_layers=cfg.mapping_layers
        )
    if cfg.generator == "dcgan":
        return DCGANGenerator(cfg.nz, cfg.ngf)
    if cfg.generator == "lapgan":
        return LAPGANGenerator(cfg.nz, cfg.ngf)
    if cfg.generator == "mapping_dcgan":
        return MappingDCGANGenerator(
            cfg.nz, cfg.ngf, tied_mapping=cfg.tied_mapping, mapping_layers=cfg.mapping_layers
        )
    return StyleGANGenerator(z_dim=cfg.nz, w_dim=cfg.nz, width=cfg.stylegan_width)


def build_discriminator(cfg: TrainConfig) -> nn.Module:
    """The discriminator named by ``cfg.discriminator``."""
    if cfg.discriminator == "stylegan":
        return StyleGANDiscriminator(width=cfg.stylegan_width)
    if cfg.discriminator == "lapgan":
        return LAPGANDiscriminator(cfg.ndf)
    return Discriminator(cfg.ndf, spectral_norm=cfg.discriminator == "sn")
