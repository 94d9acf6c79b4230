"""AFHQ dogs, the paper's training data: download, safe extraction, verification, cache.

The paper trained on the dog split of AFHQ as released with StarGAN v2: ``afhq.zip`` holds
``afhq/{train,val}/{cat,dog,wild}/*.jpg``, 512x512 JPEGs, with 4,739 train and 500 val dogs.
``prepare_afhq`` downloads the archive once (pooch: atomic download, optional hash check,
progress bar), extracts only the dog images, checks their counts, decodes and resizes them
to 64x64 with ``ssd_lib.data.folder.load_folder`` and writes the dataset ``afhq-dog`` (or
``afhq-dog-noaa`` for aliased resizing) to the prepared-dataset cache.

Offline: place a copy of ``afhq.zip`` at ``<root>/downloads/afhq.zip`` (used without
downloading) or pass ``prepare_afhq(archive=path)``.

Safety: extraction refuses absolute paths, '..' components, symbolic links and special files
in the archive. The extracted source folder is replaced in one rename, and a prepared dataset
whose files no longer match their hashes is rebuilt from the kept source images (or the
archive). Both variants share one source folder, so each holds its lock while it prepares.
"""

from __future__ import annotations

import logging
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import pooch

from ssd_lib.data.cache import (
    CacheError,
    ImageSplit,
    PreparedDataset,
    dataset_lock,
    dataset_path,
    default_data_root,
    is_prepared,
    load_if_intact,
    load_prepared,
    read_manifest,
    write_prepared,
)
from ssd_lib.data.folder import IMAGE_EXTENSIONS, load_folder
from ssd_lib.utils.atomic import atomic_write
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.locks import locked
from ssd_lib.utils.progress import progress_bar as tqdm

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
_EXTRACT_PREFIX = ".afhq-extract-"  # temporary folders inside root, removed when done


class AFHQError(SSDError, RuntimeError):
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


def _check_entry_type(info: zipfile.ZipInfo, archive: Path) -> None:
    """Refuses symbolic links and special files: only plain files and folders are extracted.

    Zips written on Unix keep the file's ``st_mode`` in the high 16 bits of
    ``external_attr``; 0 there (Windows zips) means a plain file or folder.
    """
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) in (0, stat.S_IFREG, stat.S_IFDIR):
        return
    kind = "a symbolic link" if stat.S_ISLNK(mode) else "a special file (device, pipe or socket)"
    raise AFHQError(
        f"refusing to extract {archive}: entry {info.filename!r} is {kind}, which could point "
        f"outside the target folder. A genuine AFHQ archive has none; this file is damaged "
        f"or not the AFHQ archive. Nothing was extracted."
    )


def _dog_members(zf: zipfile.ZipFile, archive: Path) -> list[tuple[zipfile.ZipInfo, str, str]]:
    """(entry, split, file name) for every ``*/{train,val}/dog/<image>``; checks all entries
    for safety first, so an unsafe archive is refused before anything is written."""
    members = []
    for info in zf.infolist():
        parts = _safe_parts(info.filename, archive)
        _check_entry_type(info, archive)
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


def _matching_manifest(
    name: str, root: Path, antialias: bool, known_hash: str | None, expected: dict[str, Any]
) -> dict[str, Any] | None:
    """The manifest of the prepared ``name`` if it was made with these settings, else None."""
    if not is_prepared(name, root):
        return None
    try:
        manifest = read_manifest(name, root)
    except CacheError as err:
        log.warning("dataset %s has a damaged manifest (%s); preparing it again", name, err)
        return None
    if not _cache_matches(manifest.get("source", {}), antialias, known_hash, expected):
        log.info("dataset %s was prepared with other settings; preparing it again", name)
        return None
    return manifest


def _rebuild_from_source(
    name: str, root: Path, manifest: dict[str, Any], antialias: bool, show_progress: bool
) -> PreparedDataset | None:
    """Decode the kept source JPEGs again when they reproduce every recorded content hash."""
    dirs = {s: Path(d) for s, d in manifest.get("source_dirs", {}).items()}
    if sorted(dirs) != sorted(SPLITS) or not all(d.is_dir() for d in dirs.values()):
        log.warning("the extracted AFHQ images of %s are gone; preparing from the archive", name)
        return None
    splits = {}
    for s, d in dirs.items():
        images, report = load_folder(
            d, size=IMAGE_SIZE, antialias=antialias, show_progress=show_progress
        )
        splits[s] = ImageSplit(images)
        recorded = manifest["splits"].get(s, {}).get("content_hash")
        if report.skipped or splits[s].content_hash() != recorded:
            log.warning("the AFHQ images in %s changed; preparing %s from the archive", d, name)
            return None
    extra = {"source_dirs": manifest["source_dirs"]}
    write_prepared(name, splits, manifest["source"], root=root, extra=extra)
    log.info("rebuilt dataset %s from the extracted images in %s", name, root / SOURCE_FOLDER)
    return load_prepared(name, root)


def _archive_for_rebuild(
    name: str, root: Path, manifest: dict[str, Any], download_dir: str | Path | None
) -> Path | None:
    """The archive to rebuild a damaged ``name`` from: None for the one in ``download_dir``,
    else the one the manifest records. Raises when neither exists (no silent 1.5 GB download)."""
    downloaded = Path(download_dir or _default_download_dir(root)) / ARCHIVE_NAME
    if downloaded.is_file():
        return None
    recorded = Path(manifest.get("source", {}).get("archive") or downloaded)
    if recorded.is_file():
        return recorded
    path = dataset_path(name, root)
    raise AFHQError(
        f"the prepared dataset {path} is damaged and its sources are gone (no extracted images "
        f"in {root / SOURCE_FOLDER}, no archive at {downloaded} or {recorded}); to download "
        f"afhq.zip (1.5 GB) and prepare it again, run `ssd prepare --data afhq --out {root}` "
        f"after deleting {path}, or call prepare_afhq(force=True)."
    )


def _resolve_archive(
    root: Path,
    archive: str | Path | None,
    url: str,
    known_hash: str | None,
    download_dir: str | Path | None,
) -> tuple[Path, str | None, str]:
    """(archive path, the url it came from or None, its SHA-256); downloads if needed."""
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
    return archive_path, source_url, digest


def _decode_splits(
    dirs: dict[str, Path], archive: Path, antialias: bool, show_progress: bool
) -> dict[str, ImageSplit]:
    splits = {}
    for s, d in dirs.items():
        images, report = load_folder(
            d, size=IMAGE_SIZE, antialias=antialias, show_progress=show_progress
        )
        if report.skipped:
            bad = "; ".join(f"{p}: {r}" for p, r in report.skipped[:5])
            raise AFHQError(
                f"{len(report.skipped)} {s} dog images in {archive} cannot be decoded "
                f"(first: {bad}); the archive is damaged. Delete it and download it again."
            )
        splits[s] = ImageSplit(images)
    return splits


def _swap_in(new: Path, target: Path, trash: Path) -> None:
    """Replace the folder ``target`` by ``new``: the old one moves to ``trash`` first, so at no
    moment is ``target`` a mix of old and new files (a crash in between leaves no folder)."""
    if target.exists():
        target.rename(trash)
    new.rename(target)


def _extract_decode_swap(
    archive: Path,
    root: Path,
    antialias: bool,
    expected: dict[str, int | None],
    show_progress: bool,
) -> tuple[dict[str, ImageSplit], dict[str, int]]:
    """Extract and check the dogs, decode them, then make them ``root/SOURCE_FOLDER``."""
    # Only one process at a time gets here (the source lock), so these are left by crashes.
    for stale in root.glob(f"{_EXTRACT_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    # Extract into a temporary folder inside root (same disk). After the counts and decoding
    # check out, the dog JPEGs replace the stable folder: the paper's FID protocol measures
    # against them at their source resolution (512x512), not against the 64x64 cache.
    with tempfile.TemporaryDirectory(prefix=_EXTRACT_PREFIX, dir=root) as tmp:
        new_source = Path(tmp) / "source"
        dirs = dict(zip(SPLITS, extract_dogs(archive, new_source, show_progress), strict=True))
        counts = {s: sum(1 for p in d.iterdir() if p.is_file()) for s, d in dirs.items()}
        if any(n is not None and counts[s] != n for s, n in expected.items()):
            raise AFHQError(
                f"{archive} holds {counts['train']} train / {counts['val']} val dog "
                f"images, expected {expected['train']} / {expected['val']}. The archive is "
                f"incomplete or a different AFHQ version; delete it and download it again "
                f"(or pass expected_train/expected_val=None to accept it as it is)."
            )
        splits = _decode_splits(dirs, archive, antialias, show_progress)
        _swap_in(new_source, root / SOURCE_FOLDER, Path(tmp) / "old-source")
    return splits, counts


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
    same settings is loaded from the cache unless ``force``. A prepared one whose files do not
    match their hashes is rebuilt (with a warning) from the extracted images, else from the
    archive; with neither on disk it raises ``AFHQError`` saying what to run.
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
    # Lock order: the dataset, then the source folder both variants share (no deadlock).
    with dataset_lock(name, root), locked(root / SOURCE_FOLDER):
        manifest = (
            None if force else _matching_manifest(name, root, antialias, known_hash, expected)
        )
        if manifest is not None:
            dataset = load_if_intact(name, root) or _rebuild_from_source(
                name, root, manifest, antialias, show_progress
            )
            if dataset is not None:
                return dataset
            if archive is None:
                archive = _archive_for_rebuild(name, root, manifest, download_dir)
        archive_path, source_url, digest = _resolve_archive(
            root, archive, url, known_hash, download_dir
        )
        root.mkdir(parents=True, exist_ok=True)
        splits, counts = _extract_decode_swap(
            archive_path, root, antialias, expected, show_progress
        )
        source = {
            "kind": "afhq",
            "url": source_url,
            "archive": str(archive_path.resolve()),
            "archive_sha256": digest,
            "antialias": antialias,
            "counts": counts,
        }
        source_dirs = {s: str((root / SOURCE_FOLDER / s).resolve()) for s in SPLITS}
        write_prepared(name, splits, source, root=root, extra={"source_dirs": source_dirs})
        return load_prepared(name, root)
