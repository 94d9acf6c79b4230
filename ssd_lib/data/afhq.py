"""AFHQ dogs, the paper's training data: download, safe extraction, verification, cache.

The paper trained on the dog split of AFHQ as released with StarGAN v2: ``afhq.zip`` holds
``afhq/{train,val}/{cat,dog,wild}/*.jpg``, 512x512 JPEGs, with 4,739 train and 500 val dogs.
``prepare_afhq`` downloads the archive once (pooch: atomic download, optional hash check,
progress bar), extracts only the dog images, checks their counts, decodes and resizes them
to 64x64 with ``ssd_lib.data.folder.load_folder`` and writes the dataset ``afhq-dog`` (or
``afhq-dog-noaa`` for aliased resizing) to the prepared-dataset cache.

Offline: place a copy of ``afhq.zip`` at ``<root>/downloads/afhq.zip`` (used without
downloading) or pass ``prepare_afhq(archive=path)``.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import pooch
from tqdm.auto import tqdm

from ssd_lib.atomic import atomic_write
from ssd_lib.data.cache import (
    ImageSplit,
    PreparedDataset,
    default_data_root,
    is_prepared,
    load_prepared,
    read_manifest,
    write_prepared,
)
from ssd_lib.data.folder import IMAGE_EXTENSIONS, load_folder

log = logging.getLogger(__name__)

# Where the StarGAN v2 repository downloads AFHQ (v1, JPEG) from.
AFHQ_URL = "https://www.dropbox.com/s/t9l9o3vsx2jai3z/afhq.zip?dl=1"
# SHA-256 of that archive as published in the download script of the UVCGAN2 project
# (LS4GAN/uvcgan2, scripts/download_dataset.sh), which checks the same Dropbox file. Nobody on
# this project has downloaded the 1.5 GB archive to confirm it yet. If Dropbox ever serves
# different bytes, pooch refuses the download; pass known_hash=None to accept an unverified
# archive (its hash is then computed, logged and recorded in the manifest).
AFHQ_SHA256: str | None = "sha256:7f63dcc14ef58c0e849b59091287e1844da97016073aac20403ae6c6132b950f"
ARCHIVE_NAME = "afhq.zip"
EXPECTED_TRAIN = 4739
EXPECTED_VAL = 500
IMAGE_SIZE = 64
SPLITS = ("train", "val")
SOURCE_FOLDER = "afhq-dog-source"  # the extracted 512x512 dog JPEGs, kept for the FID protocol


class AFHQError(RuntimeError):
    """The AFHQ archive cannot be downloaded, is unsafe, or does not hold what it should."""


def _default_download_dir(root: str | Path | None) -> Path:
    return Path(root or default_data_root()) / "downloads"


def _pinned_sha256(known_hash: str | None) -> str | None:
    """The hex SHA-256 in a pooch-style hash ("abc..." or "sha256:abc..."), else None."""
    if known_hash is None:
        return None
    alg, _, value = known_hash.rpartition(":")
    return value.lower() if alg.lower() in ("", "sha256") else None


def _hash_matches(path: Path, known_hash: str) -> bool:
    """Whether ``path`` has the pooch-style hash ``known_hash`` ("alg:hex" or bare SHA-256)."""
    alg, _, value = known_hash.rpartition(":")
    return pooch.file_hash(str(path), alg=alg.lower() or "sha256") == value.lower()


def _fetch(download_dir: Path, url: str, known_hash: str | None) -> Path:
    # Imported here: requests is pooch's dependency, only needed when downloading.
    import requests

    target = download_dir / ARCHIVE_NAME
    manual = (
        f"To use a copy you downloaded yourself, place it at exactly {target} (it is then "
        f"used without downloading) or pass prepare_afhq(archive='/path/to/afhq.zip')."
    )
    if known_hash is not None and target.is_file():
        # pooch only downloads over an existing file when its hash differs from known_hash
        manual += f" The file already at {target} does not match known_hash={known_hash!r}."
    try:
        path = pooch.retrieve(
            url, known_hash, fname=ARCHIVE_NAME, path=download_dir, progressbar=True
        )
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise AFHQError(f"cannot download AFHQ from {url}: {err}. {manual}") from err
        raise AFHQError(
            f"the file downloaded from {url} does not have the expected hash "
            f"{known_hash} ({err}); it was not kept. The archive at that URL changed or the "
            f"download was corrupted; check the hash you pinned. {manual}"
        ) from err
    except (requests.exceptions.RequestException, OSError) as err:
        raise AFHQError(f"cannot download AFHQ from {url} ({err}). {manual}") from err
    return Path(path)


def _archive_sha256(archive: Path, warn_unpinned: bool) -> str:
    digest = pooch.file_hash(str(archive), alg="sha256")
    if warn_unpinned:
        log.warning(
            "the AFHQ archive hash is not pinned, so %s was not verified; its SHA-256 is %s. "
            "Pin it with known_hash=%r (or ssd_lib.data.afhq.AFHQ_SHA256) to verify it.",
            archive,
            digest,
            digest,
        )
    return digest


def download_afhq(
    download_dir: str | Path | None = None,
    url: str = AFHQ_URL,
    known_hash: str | None = AFHQ_SHA256,
) -> Path:
    """Download ``afhq.zip`` into ``download_dir`` (default ``<data root>/downloads``), or
    reuse the file already there, and return its path. With ``known_hash`` pooch verifies
    the file; without it the SHA-256 is computed and logged as a warning."""
    path = _fetch(Path(download_dir or _default_download_dir(None)), url, known_hash)
    if known_hash is None:
        _archive_sha256(path, warn_unpinned=True)
    return path


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    """The path components of a zip entry; refuses absolute paths and '..' components."""
    posix = name.replace("\\", "/")  # zips written on Windows may use backslashes
    problem = None
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        problem = "an absolute path"
    elif ".." in PurePosixPath(posix).parts:
        problem = "a '..' component"
    if problem:
        raise AFHQError(
            f"refusing to extract {archive}: entry {name!r} has {problem}, which could write "
            f"outside the target folder. A genuine AFHQ archive has none; this file is damaged "
            f"or not the AFHQ archive. Nothing was extracted."
        )
    return tuple(p for p in PurePosixPath(posix).parts if p not in ("", "."))


def _dog_members(zf: zipfile.ZipFile, archive: Path) -> list[tuple[zipfile.ZipInfo, str, str]]:
    """(entry, split, file name) for every ``*/{train,val}/dog/<image>``; checks all entries
    for safety first, so an unsafe archive is refused before anything is written."""
    members = []
    for info in zf.infolist():
        parts = _safe_parts(info.filename, archive)
        if info.is_dir() or len(parts) < 3:
            continue
        # macOS zips carry "__MACOSX/.../._name" resource forks that look like images
        if "__MACOSX" in parts or parts[-1].startswith("._"):
            continue
        split, cls, fname = parts[-3:]
        if cls == "dog" and split in SPLITS and Path(fname).suffix.lower() in IMAGE_EXTENSIONS:
            members.append((info, split, fname))
    seen: set[tuple[str, str]] = set()
    for _, split, fname in members:
        if (split, fname) in seen:
            raise AFHQError(f"{archive} holds two {split} dog images named {fname!r}")
        seen.add((split, fname))
    return members


def extract_dogs(
    archive: str | Path, dest: str | Path, show_progress: bool = True
) -> tuple[Path, Path]:
    """Extract the dog images of ``archive`` into ``dest/train`` and ``dest/val``.

    Reads members one by one (no ``extractall``) and writes each under its bare file name,
    so nothing can land outside ``dest``. Both folders must be absent or empty.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise AFHQError(f"AFHQ archive {str(archive)!r} does not exist or is not a file")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise AFHQError(
            f"{archive} is not a zip archive ({err}); delete it and download afhq.zip again"
        ) from err
    with zf:
        members = _dog_members(zf, archive)
        dirs = {s: dest / s for s in SPLITS}
        for d in dirs.values():
            if d.exists() and any(d.iterdir()):
                raise AFHQError(
                    f"{d} is not empty; extract into an empty folder so that stale files are "
                    f"not counted as AFHQ images"
                )
            d.mkdir(parents=True, exist_ok=True)
        for info, split, fname in tqdm(
            members, desc="extracting dogs", unit="img", disable=not show_progress
        ):
            target = dirs[split] / fname
            if target.resolve().parent != dirs[split].resolve():  # defence in depth
                raise AFHQError(f"refusing to write {target}: it resolves outside {dirs[split]}")

            def copy(tmp: Path, info: zipfile.ZipInfo = info) -> None:
                with zf.open(info) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)

            atomic_write(target, copy)
    log.info("extracted %d dog images from %s into %s", len(members), archive, dest)
    return dirs["train"], dirs["val"]


def _check_expected(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r} is not allowed; use an integer >= 0 or None")
    if value < 0:
        raise ValueError(f"{name}={value!r} is not allowed; use an integer >= 0 or None")
    return value


def _cache_matches(
    source: dict[str, Any], antialias: bool, known_hash: str | None, expected: dict[str, Any]
) -> bool:
    # The url and archive path are not compared: AFHQ is one fixed archive, identified by
    # its hash (when pinned) and its counts. Pass force=True to rebuild from another copy.
    pinned = _pinned_sha256(known_hash)
    counts = source.get("counts", {})
    return (
        source.get("kind") == "afhq"
        and source.get("antialias") == antialias
        and (pinned is None or source.get("archive_sha256") == pinned)
        and all(n is None or counts.get(s) == n for s, n in expected.items())
    )


def prepare_afhq(
    root: str | Path | None = None,
    archive: str | Path | None = None,
    url: str = AFHQ_URL,
    known_hash: str | None = AFHQ_SHA256,
    download_dir: str | Path | None = None,
    antialias: bool = True,
    expected_train: int | None = EXPECTED_TRAIN,
    expected_val: int | None = EXPECTED_VAL,
    force: bool = False,
    show_progress: bool = True,
) -> PreparedDataset:
    """Prepare AFHQ dogs as uint8 (N, 3, 64, 64) train and val splits and load them.

    ``archive`` skips the download; otherwise ``afhq.zip`` is fetched from ``url`` into
    ``download_dir`` (default ``<root>/downloads``) and kept there. ``expected_train`` and
    ``expected_val`` are the dog counts the archive must hold (None: not checked).
    ``antialias`` picks the resize (see ``ssd_lib.data.folder``). The dataset is named
    "afhq-dog" or, with ``antialias=False``, "afhq-dog-noaa"; an already prepared one with the
    same settings is loaded from the cache unless ``force``.
    """
    if not isinstance(antialias, bool):
        raise TypeError(f"antialias={antialias!r} is not allowed; use True or False")
    if not isinstance(force, bool):
        raise TypeError(f"force={force!r} is not allowed; use True or False")
    expected = {
        "train": _check_expected("expected_train", expected_train),
        "val": _check_expected("expected_val", expected_val),
    }
    root = Path(root or default_data_root())
    name = "afhq-dog" if antialias else "afhq-dog-noaa"
    if is_prepared(name, root) and not force:
        if _cache_matches(
            read_manifest(name, root).get("source", {}), antialias, known_hash, expected
        ):
            log.info("dataset %s is already prepared; loading it from the cache", name)
            return load_prepared(name, root)
        log.info("dataset %s was prepared with other settings; preparing it again", name)

    if archive is None:
        download_dir = Path(download_dir) if download_dir else _default_download_dir(root)
        archive_path = _fetch(download_dir, url, known_hash)
        source_url: str | None = url
    else:
        archive_path, source_url = Path(archive), None
        if not archive_path.is_file():
            raise AFHQError(f"archive={str(archive)!r} does not exist or is not a file")
        if known_hash is not None and not _hash_matches(archive_path, known_hash):
            raise AFHQError(
                f"{archive_path} does not have the expected hash {known_hash}; it is damaged "
                f"or a different archive. To use it anyway, pass known_hash=None."
            )
    # pooch (or _hash_matches above) already checked a pinned SHA-256: no need to hash again
    digest = _pinned_sha256(known_hash) or _archive_sha256(archive_path, known_hash is None)

    root.mkdir(parents=True, exist_ok=True)
    # Extract into a temporary folder inside root (same disk). After the counts and decoding
    # check out, the dog JPEGs move to a stable folder: the paper's FID protocol measures
    # against them at their source resolution (512x512), not against the 64x64 cache.
    source_root = root / SOURCE_FOLDER
    with tempfile.TemporaryDirectory(prefix=".afhq-extract-", dir=root) as tmp:
        dirs = dict(zip(SPLITS, extract_dogs(archive_path, Path(tmp), show_progress), strict=True))
        counts = {s: sum(1 for p in d.iterdir() if p.is_file()) for s, d in dirs.items()}
        if any(n is not None and counts[s] != n for s, n in expected.items()):
            raise AFHQError(
                f"{archive_path} holds {counts['train']} train / {counts['val']} val dog "
                f"images, expected {expected['train']} / {expected['val']}. The archive is "
                f"incomplete or a different AFHQ version; delete it and download it again "
                f"(or pass expected_train/expected_val=None to accept it as it is)."
            )
        splits = {}
        for s, d in dirs.items():
            images, report = load_folder(
                d, size=IMAGE_SIZE, antialias=antialias, show_progress=show_progress
            )
            if report.skipped:
                bad = "; ".join(f"{p}: {r}" for p, r in report.skipped[:5])
                raise AFHQError(
                    f"{len(report.skipped)} {s} dog images in {archive_path} cannot be decoded "
                    f"(first: {bad}); the archive is damaged. Delete it and download it again."
                )
            splits[s] = ImageSplit(images)
        shutil.rmtree(source_root, ignore_errors=True)
        source_root.mkdir(parents=True)
        for s, d in dirs.items():
            d.rename(source_root / s)

    source = {
        "kind": "afhq",
        "url": source_url,
        "archive": str(archive_path.resolve()),
        "archive_sha256": digest,
        "antialias": antialias,
        "counts": counts,
    }
    source_dirs = {s: str((source_root / s).resolve()) for s in SPLITS}
    write_prepared(name, splits, source, root=root, extra={"source_dirs": source_dirs})
    return load_prepared(name, root)
