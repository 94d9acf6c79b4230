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
    "dataset_for",
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


def dataset_for(name: str, dataset: PreparedDataset | None, needed_by: str) -> PreparedDataset:
    """``dataset``, or the dataset ``name`` prepared (or loaded from the cache) when it is
    None; a prepared dataset of another name is refused with a ``ConfigError`` that says
    what needs ``name`` (``needed_by``) and what to pass instead."""
    from ssd_lib.config import ConfigError

    if dataset is None:
        return prepare_dataset(name)
    if dataset.name != name:
        raise ConfigError(
            f"{needed_by} needs the dataset {name!r}, but the dataset passed is "
            f"{dataset.name!r}; pass the prepared {name!r} dataset (or none, to prepare it), "
            f"or ask for dataset={dataset.name!r} instead of {name!r}"
        )
    return dataset
