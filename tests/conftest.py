"""Shared fixtures (tiny datasets, isolated data/run folders) and the project's module list."""

from __future__ import annotations

import os
import pkgutil
import shutil

import pytest
import torch

import ssd_lib
from ssd_lib.data.cache import ImageSplit, load_prepared, write_prepared

# What `make test` needed at its peak (measured in docs/benchmarks.md), with a margin.
MIN_FREE_DISK_GB = 5


def project_module_names(under: tuple[str, ...] | None = None) -> list[str]:
    """Every module of ssd_lib (``__main__`` files left out), or only those under ``under``
    (top-level names such as "training" or "config"). Walking imports the packages, not the
    modules: a test that must import them in a fresh interpreter can still do so."""
    names = []
    for info in pkgutil.walk_packages(ssd_lib.__path__, "ssd_lib."):
        top = info.name.split(".")[1]
        if info.name.endswith("__main__") or (under is not None and top not in under):
            continue
        names.append(info.name)
    return names


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs two workers) each worker computes on one thread:
    two single-threaded workers keep both cores busy without oversubscribing them. So do the
    processes a test starts (notebook kernels, nbval, torchrun ranks, servers): they read the
    thread count from the environment. A kernel on two threads beside the other worker ran
    notebook 03 under smoke in 195 s instead of 41 s (each of its many small ops waits at a
    barrier for a thread the other worker holds)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"


def low_disk_message(where) -> str | None:
    """The warning to show when fewer than ``MIN_FREE_DISK_GB`` are free on the disk holding
    ``where`` (the folder pytest writes its tmp folders into); None when there is room."""
    free = shutil.disk_usage(where).free / 2**30
    if free >= MIN_FREE_DISK_GB:
        return None
    return (
        f"warning: only {free:.1f} GB free under {where}; the full suite may need "
        f"{MIN_FREE_DISK_GB} GB: free some space there (old pytest-N folders?) or set "
        "--basetemp to a roomier disk"
    )


def pytest_sessionstart(session):
    """Says so at the start when the disk where the tests write is nearly full: the suite needs
    a few GB at its peak, and a full disk otherwise shows up as checkpoint errors deep inside
    unrelated tests, minutes later."""
    config = session.config
    factory = getattr(config, "_tmp_path_factory", None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if factory is None or reporter is None or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    message = low_disk_message(factory.getbasetemp().parent)
    if message:
        reporter.write_line(message, yellow=True)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """No test reads or writes the repository's data/ or runs/."""
    monkeypatch.setenv("SSD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SSD_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture
def tiny_dataset(tmp_path):
    """40 train / 8 val random 64x64 images with two fake factors, prepared as 'tiny'."""
    return make_tiny_dataset(tmp_path)


def make_tiny_dataset(tmp_path):
    """The ``tiny_dataset`` fixture's dataset, prepared under ``tmp_path / "data"``."""
    g = torch.Generator().manual_seed(0)
    train = ImageSplit(
        torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8, generator=g),
        torch.rand(40, 2, generator=g),
        ["a", "b"],
    )
    val = ImageSplit(
        torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8, generator=g),
        torch.rand(8, 2, generator=g),
        ["a", "b"],
    )
    write_prepared("tiny", {"train": train, "val": val}, {"kind": "test"}, root=tmp_path / "data")
    return load_prepared("tiny", root=tmp_path / "data")


def train_smoke_run(root, name: str = "tiny", n: int = 12, seed: int = 0):
    """A 3-step SSD run (``smoke`` profile) on ``n`` random images prepared as ``name``, with
    its own data and runs folders under ``root``: (run, dataset)."""
    from ssd_lib.config import make_config
    from ssd_lib.training.trainer import train

    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g)
    write_prepared(name, {"train": ImageSplit(imgs)}, {"kind": "test"}, root=root / "data")
    ds = load_prepared(name, root / "data")
    cfg = make_config("paper", "smoke", dataset=name)
    return train(cfg, ds, runs_root=root / "runs", device="cpu", show_progress=False), ds


@pytest.fixture
def photo_folder(tmp_path):
    """A factory: ``photo_folder(n)`` writes n random 70x70 PNGs to a fresh folder."""
    import numpy as np
    from PIL import Image

    def make(n: int, name: str = "photos"):
        folder = tmp_path / name
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(n):
            pixels = rng.integers(0, 256, (70, 70, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
        return folder

    return make
