"""Reliability of the data caches: two processes at once, and folders full of odd files.

The concurrency tests start two real Python processes that prepare the same things into one
temporary data root at the same moment (a file barrier lines them up). Each build step is
wrapped so that it appends a line to a log and sleeps a little, so the second process
arrives while the first is still building; the log must then hold exactly one build, and
both processes must end with the same valid result.

The property-based tests (hypothesis) generate folders of odd files and check what
``load_folder`` and ``prepare_folder`` promise: no crash, every good image used, every other
file named in the report with a reason.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ssd_lib.data.cache import load_prepared
from ssd_lib.data.folder import FolderError, load_folder, prepare_folder
from ssd_lib.metrics.export import is_complete

# Starts processes: `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

# Both child processes run this. Before each scenario they wait for each other (a file
# barrier); the build step of the scenario is wrapped to log "<scenario> <process>" and sleep,
# so the second process reaches the lock while the first is building. Importing torch takes
# most of a child's time, so one pair of processes runs every scenario.
_CHILD = """
import json, sys, time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ssd_lib.data import afhq, embedded, folder
from ssd_lib.metrics import export, inception, toy

work, me = Path(sys.argv[1]), sys.argv[2]


def count_builds(scenario, module, name):
    real = getattr(module, name)

    def wrapped(*args, **kwargs):
        with open(work / f"builds-{scenario}.log", "a") as log:
            log.write(f"{me}\\n")
        time.sleep(0.5)  # long enough for the other process to reach the lock
        return real(*args, **kwargs)

    setattr(module, name, wrapped)


def barrier(scenario):
    (work / f"ready-{scenario}-{me}").touch()
    deadline = time.monotonic() + 60
    while len(list(work.glob(f"ready-{scenario}-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)


def fake_extract(files, library, *args):  # stands in for the Inception network
    return np.full((len(files), 4), 7.0), args[-1]


def run(scenario, module, name, build):
    count_builds(scenario, module, name)
    barrier(scenario)
    print(scenario, json.dumps(build()), flush=True)


run("embedded", embedded, "generate_split", lambda: embedded.prepare_embedded(
    n_train=16, n_val=0, size=16, show_progress=False).content_hash)
run("folder", folder, "load_folder", lambda: folder.prepare_folder(
    work / "photos", name="photos", size=8, min_images=4, show_progress=False).content_hash)
run("afhq", afhq, "extract_dogs", lambda: afhq.prepare_afhq(
    archive=work / "afhq.zip", known_hash=None, expected_train=3, expected_val=2,
    show_progress=False).content_hash)
inception.extract_features = fake_extract
run("features", inception, "extract_features", lambda: inception.cached_features(
    [Path(f"{i}.png") for i in range(3)], "pytorch-fid", inception.FeatureCache(work / "stats"),
    {"split": "x"}, status=SimpleNamespace(sha256="w" * 64))[2])
dogs = embedded.prepare_embedded(n_train=16, n_val=0, size=16, show_progress=False)
run("factor-net", toy, "train_factor_net", lambda: toy.load_or_train_factor_net(
    dogs, root=work / "nets", epochs=1, widths=(4, 4, 4, 4), feature_dim=4,
    show_progress=False).from_cache)
run("export", export, "write_image_folder", lambda: export.is_complete(export.export_split(
    torch.zeros(5, 3, 8, 8, dtype=torch.uint8), work / "png64" / "train", show_progress=False), 5))
"""


def _tiny_afhq_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for split, n in (("train", 3), ("val", 2)):
            for i in range(n):
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), (40 * i, 90, 30)).save(buf, format="JPEG")
                zf.writestr(f"afhq/{split}/dog/dog_{i}.jpg", buf.getvalue())
    return path


def _photos(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@dataclass
class Race:
    work: Path
    results: dict[str, list]  # scenario -> what each process returned

    def builds(self, scenario: str) -> int:
        return len((self.work / f"builds-{scenario}.log").read_text().splitlines())


@pytest.fixture(scope="module")
def race(tmp_path_factory) -> Race:
    """Two processes that run every scenario of ``_CHILD`` at the same moment."""
    work = tmp_path_factory.mktemp("race")
    _photos(work / "photos")
    _tiny_afhq_zip(work / "afhq.zip")
    env = {**os.environ, "SSD_DATA_DIR": str(work / "data"), "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(work), str(i)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results: dict[str, list] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        for line in out.splitlines():
            scenario, value = line.split(" ", 1)
            results.setdefault(scenario, []).append(json.loads(value))
    return Race(work, results)


def test_two_processes_preparing_the_embedded_dataset_render_it_once(race):
    assert race.builds("embedded") == 1  # one split, rendered by one process
    first, second = race.results["embedded"]
    assert first == second
    ds = load_prepared("embedded-s0-n16-0-16", race.work / "data")
    assert ds.content_hash == first


def test_two_processes_preparing_one_folder_decode_it_once(race):
    assert race.builds("folder") == 1
    first, second = race.results["folder"]
    assert first == second == load_prepared("photos", race.work / "data").content_hash
    report = json.loads((race.work / "data" / "photos" / "report.json").read_text())
    assert len(report["used"]) == 4


def test_two_processes_preparing_afhq_extract_it_once(race):
    assert race.builds("afhq") == 1
    first, second = race.results["afhq"]
    assert first == second == load_prepared("afhq-dog", race.work / "data").content_hash
    source = race.work / "data" / "afhq-dog-source" / "train"
    assert sorted(p.name for p in source.iterdir()) == [f"dog_{i}.jpg" for i in range(3)]


def test_two_processes_needing_the_same_features_compute_them_once(race):
    assert race.builds("features") == 1
    assert sorted(race.results["features"]) == [False, True]  # computed once, then read


def test_two_processes_needing_the_same_factor_net_train_it_once(race):
    assert race.builds("factor-net") == 1
    assert sorted(race.results["factor-net"]) == [False, True]


def test_two_processes_exporting_one_split_write_it_once(race):
    assert race.builds("export") == 1
    assert race.results["export"] == [True, True]
    assert is_complete(race.work / "png64" / "train", 5)


# --- property-based tests: folders of odd files ------------------------------------------

GOOD_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}  # the documented set
EXTENSIONS = [
    ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif",
    ".PNG", ".JPG", ".Jpeg", ".BMP", ".WEBP", ".GIF", "", ".txt",
]  # fmt: skip
MODES = ["L", "LA", "P", "RGBA", "RGB", "I;16", "CMYK", "1"]
FORMATS = ["PNG", "JPEG", "BMP", "WEBP", "GIF"]
KINDS = ["image", "image", "image", "truncated", "empty", "text", "junk"]


@dataclass
class OddFile:
    kind: str  # image | truncated | empty | text | junk
    ext: str
    hidden: bool
    subdir: str  # "" or a folder name
    mode: str
    fmt: str
    width: int
    height: int
    seed: int

    def name(self, index: int) -> str:
        stem = f"{'.' if self.hidden else ''}f{index:02d}"
        return f"{self.subdir}/{stem}{self.ext}" if self.subdir else f"{stem}{self.ext}"

    def is_good(self) -> bool:
        """Whether ``load_folder`` must use it: a whole image with an accepted extension."""
        return self.kind == "image" and self.ext.lower() in GOOD_EXTENSIONS


odd_files = st.builds(
    OddFile,
    kind=st.sampled_from(KINDS),
    ext=st.sampled_from(EXTENSIONS),
    hidden=st.booleans(),
    subdir=st.sampled_from(["", "", "nested", ".hidden"]),
    mode=st.sampled_from(MODES),
    fmt=st.sampled_from(FORMATS),
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    seed=st.integers(0, 2**16),
)


def _pixels(mode: str, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "1":
        return Image.fromarray(rng.random((height, width)) < 0.5)
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 8, (height, width), dtype=np.uint8), mode="L")
        img = img.convert("P")
        img.putpalette(rng.integers(0, 256, 24, dtype=np.uint8).tolist())
        return img
    bands = len(Image.new(mode, (1, 1)).getbands())
    arr = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
    return Image.frombytes(mode, (width, height), arr.tobytes())


def _image_bytes(f: OddFile) -> bytes:
    """The image in ``f.fmt``; modes a format cannot store are saved as RGB instead."""
    img = _pixels(f.mode, f.width, f.height, np.random.default_rng(f.seed))
    for candidate in (img, img.convert("RGB")):
        buf = io.BytesIO()
        try:
            candidate.save(buf, format=f.fmt)
            return buf.getvalue()
        except (OSError, ValueError, KeyError):
            continue
    raise AssertionError(f"cannot save {f.mode} as {f.fmt}")


def _content(f: OddFile) -> bytes:
    if f.kind == "empty":
        return b""
    if f.kind == "text":
        return b"not an image\n"
    if f.kind == "junk":
        return np.random.default_rng(f.seed).integers(0, 256, 200, dtype=np.uint8).tobytes()
    data = _image_bytes(f)
    return data if f.kind == "image" else data[: len(data) // 2]


def _write(folder: Path, files: list[OddFile]) -> dict[str, OddFile]:
    written = {}
    for i, f in enumerate(files):
        path = folder / f.name(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_content(f))
        written[f.name(i)] = f
    return written


@settings(
    max_examples=25,
    deadline=None,
    # the autouse fixture only sets environment variables; each example makes its own folder
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(files=st.lists(odd_files, max_size=8))
def test_ingestion_uses_every_good_image_and_names_every_other_file(files):
    with tempfile.TemporaryDirectory() as tmp:
        written = _write(Path(tmp) / "in", files)
        (Path(tmp) / "in").mkdir(exist_ok=True)
        images, report = load_folder(Path(tmp) / "in", size=8, show_progress=False)
        good = sorted(name for name, f in written.items() if f.is_good())
        assert report.used == good  # sorted by relative path, which is how they are named
        assert images.shape == (len(good), 3, 8, 8)
        skipped = dict(report.skipped)
        assert len(skipped) == len(report.skipped)  # each file named once
        assert set(skipped) == set(written) - set(good)
        assert all(isinstance(r, str) and r for r in skipped.values())
        assert sum(report.converted.values()) <= len(good)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(files=st.lists(odd_files, max_size=6))
def test_prepare_either_caches_every_good_image_or_raises_folder_error(files):
    with tempfile.TemporaryDirectory() as tmp:
        written = _write(Path(tmp) / "in", files)
        (Path(tmp) / "in").mkdir(exist_ok=True)
        n_good = sum(f.is_good() for f in written.values())
        kwargs = dict(root=Path(tmp) / "data", size=8, min_images=1, show_progress=False)
        if n_good == 0:
            with pytest.raises(FolderError, match="0 usable images"):
                prepare_folder(Path(tmp) / "in", **kwargs)
            return
        ds = prepare_folder(Path(tmp) / "in", **kwargs)
        assert len(ds.train) == n_good
        source = ds.manifest["source"]
        assert (source["n_files_used"], source["n_skipped"]) == (n_good, len(written) - n_good)
