"""make bench's pieces that are not timings: the release's data path, the targets, the docs."""

from __future__ import annotations

import torch
from PIL import Image

from ssd_lib.bench.cli import write_section
from ssd_lib.bench.compare import targets
from ssd_lib.bench.precision import precision_report
from ssd_lib.bench.reference import ReleaseStep, make_jpeg_folder, release_loader


def test_release_data_path_reads_512px_jpegs_as_64px_in_unit_range(tmp_path):
    images = torch.randint(0, 256, (5, 3, 64, 64), dtype=torch.uint8)
    folder = make_jpeg_folder(images, tmp_path / "jpegs")
    assert {Image.open(p).size for p in (folder / "dog").iterdir()} == {(512, 512)}
    real, labels = next(iter(release_loader(folder, batch_size=4)))
    assert real.shape == (4, 3, 64, 64) and labels.tolist() == [0, 0, 0, 0]
    assert 0.0 <= real.min() and real.max() <= 1.0  # ToTensor: the release's [0, 1] reals
    loss_g, loss_d = ReleaseStep(torch.device("cpu"))(real)
    assert loss_g > 0 and loss_d > 0


def test_jpeg_folder_is_reused_only_when_complete_and_never_mixed(tmp_path):
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    folder = make_jpeg_folder(images, tmp_path / "jpegs")
    first = (folder / "dog" / "000000.jpg").stat().st_mtime_ns
    assert make_jpeg_folder(images, folder) == folder  # complete: reused as it is
    assert (folder / "dog" / "000000.jpg").stat().st_mtime_ns == first
    (folder / ".complete").unlink()  # as if killed before the last JPEG
    make_jpeg_folder(images[:2], folder)  # fewer images: the extra JPEGs go
    assert sorted(p.name for p in (folder / "dog").iterdir()) == ["000000.jpg", "000001.jpg"]


def _rows(step_rel, step_ours, e2e_rel, e2e_ours, bf16=None):
    rows = [
        ("train step alone, img/s (ours fp32)", str(step_rel), str(step_ours), ""),
        ("end to end, img/s (ours fp32)", str(e2e_rel), str(e2e_ours), ""),
    ]
    if bf16 is not None:
        rows.append(("end to end, img/s (ours bf16)", str(e2e_rel), str(bf16), ""))
    return rows


def test_targets_are_read_off_the_rows():
    met = targets(_rows(90, 100, 75, 96, bf16=130))
    assert [line.endswith(": met") for line in met] == [True, True, True]
    missed = targets(_rows(110, 100, 75, 90, bf16=100))
    assert [line.endswith("NOT met") for line in missed] == [True, True, True]
    assert "does not apply" in targets(_rows(90, 100, 75, 96))[2]


def test_the_bench_rewrites_only_its_own_section(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nhand-written notes\n")
    write_section(doc, "first")
    write_section(doc, "second")
    text = doc.read_text()
    assert "hand-written notes" in text and "second" in text and "first" not in text
    assert text.count("<!-- make bench: start -->") == 1


def test_precision_report_sets_the_bf16_difference_against_the_seed_spread():
    rows = [("fp32", 1, 10.0), ("fp32", 2, 14.0), ("bf16", 1, 13.0), ("bf16", 2, 15.0)]
    text = precision_report(rows, "cmd", torch.device("cpu"))
    assert "| 1 | 10.0 | 13.0 | +3.0 |" in text and "| 2 | 14.0 | 15.0 | +1.0 |" in text
    # means 12 and 14, standard deviations 2.83 and 1.41: standard error sqrt(4 + 1) = 2.24
    assert "fp32 across 2 seeds: 10.0 to 14.0, mean 12.0, standard deviation 2.8" in text
    assert "mean bf16 - mean fp32: +2.0, standard error 2.2 (0.9 standard errors)" in text
