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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ssd_lib.atomic import sha256_file

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


class MissingWeightsError(RuntimeError):
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

    @property
    def verified(self) -> bool:
        """True when the file is the published reference network."""
        return self.sha256 is not None and self.sha256.startswith(_SHA256_PREFIX[self.library])

    def describe(self) -> str:
        if not self.present:
            return f"{self.library}: missing ({shown_path(self.path)})"
        kind = "reference weights" if self.verified else "UNVERIFIED weights (not the reference)"
        return f"{self.library}: {kind} at {shown_path(self.path)}"


def weights_status(library: str, hash_file: bool = True) -> WeightsStatus:
    """Whether ``library``'s weights are present (and, with ``hash_file``, which file it is)."""
    path = weights_path(library)
    present = path.is_file()
    digest = sha256_file(path) if present and hash_file else None
    return WeightsStatus(library, path, present, weights_url(library), digest)


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
