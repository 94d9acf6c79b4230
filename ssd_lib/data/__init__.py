"""Data sources: the embedded procedural dogs, AFHQ dogs, or any folder of images.

Every source is prepared once into the cache (``cache.py``); ``prepare_dataset`` is the one
entry point notebooks and the trainer use.
"""

from __future__ import annotations

from pathlib import Path

from ssd_lib.data.cache import (
    CacheError,
    ImageSplit,
    PreparedDataset,
    default_data_root,
    is_prepared,
    load_prepared,
)

KNOWN_SOURCES = ("embedded", "afhq")

__all__ = [
    "CacheError",
    "ImageSplit",
    "KNOWN_SOURCES",
    "PreparedDataset",
    "default_data_root",
    "is_prepared",
    "load_prepared",
    "prepare_dataset",
]


def prepare_dataset(
    source: str | Path = "embedded", root: str | Path | None = None, **kwargs: object
) -> PreparedDataset:
    """Prepare (or load from the cache) a dataset.

    ``source`` is "embedded" (generated offline), "afhq" (downloads the StarGAN v2 archive),
    a path to a folder of images, or the name of an already prepared dataset. ``kwargs`` go to
    the source's own ``prepare_*`` function.
    """
    if source == "embedded":
        from ssd_lib.data.embedded import prepare_embedded

        return prepare_embedded(root=root, **kwargs)
    if source == "afhq":
        from ssd_lib.data.afhq import prepare_afhq

        return prepare_afhq(root=root, **kwargs)
    if Path(source).is_dir():
        from ssd_lib.data.folder import prepare_folder

        return prepare_folder(source, root=root, **kwargs)
    if isinstance(source, str) and is_prepared(source, root):
        return load_prepared(source, root)
    raise ValueError(
        f"source={str(source)!r} is neither a known source {list(KNOWN_SOURCES)}, nor a folder, "
        f"nor a dataset prepared under {Path(root or default_data_root())}"
    )
