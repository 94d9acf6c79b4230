"""ssd_lib.data.folder: every kind of file a user's folder may hold, built here with PIL."""

from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_lib.data import folder as folder_mod
from ssd_lib.data.cache import is_prepared
from ssd_lib.data.folder import (
    FolderError,
    IngestReport,
    default_folder_name,
    load_folder,
    prepare_folder,
    read_report,
)
from ssd_lib.utils.atomic import atomic_write_bytes, sha256_file

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def _solid(path: Path, color, size=(32, 32), mode="RGB", **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **save_kwargs)
    return path


def _png16(path: Path, value: int, size=(16, 16)) -> Path:
    Image.fromarray(np.full(size, value, dtype=np.uint16)).save(path)
    return path


def _noise_jpeg_bytes(seed: int = 0, size: int = 64) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """One file of every kind; the expected outcome of each is asserted below."""
    d = tmp_path / "pets"
    _solid(d / "a_rgb.jpg", RED, quality=95)
    _solid(d / "b_gray.png", 100, mode="L")
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 16, 32))  # left half fully transparent black
    rgba.save(d / "c_rgba.png")
    pal = Image.new("P", (32, 32), 1)
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)  # index 1 = green (0, 200, 0)
    pal.save(d / "d_palette.png")
    _solid(d / "e_cmyk.jpg", (0, 255, 255, 0), mode="CMYK", quality=95)  # red in CMYK
    _png16(d / "f_16bit_full.png", 65535)
    _png16(d / "f_16bit_half.png", 32768)
    _solid(d / "g.webp", BLUE, lossless=True)
    _solid(d / "h.bmp", (10, 20, 30))
    _solid(d / "nested" / "deeper" / "i_nested.png", (1, 2, 3))
    _solid(d / "UPPER.JPG", RED, quality=95)
    (d / "z_empty.png").write_bytes(b"")
    (d / "z_truncated.jpg").write_bytes(_noise_jpeg_bytes()[:1500])
    (d / "z_notes.txt").write_text("not an image")
    (d / "z_junk.png").write_bytes(random.Random(0).randbytes(2000))
    return d


EXPECTED_USED = [
    "UPPER.JPG",
    "a_rgb.jpg",
    "b_gray.png",
    "c_rgba.png",
    "d_palette.png",
    "e_cmyk.jpg",
    "f_16bit_full.png",
    "f_16bit_half.png",
    "g.webp",
    "h.bmp",
    "nested/deeper/i_nested.png",
]


def test_mixed_folder_uses_every_good_file_and_names_every_bad_one(mixed_folder: Path):
    images, report = load_folder(mixed_folder, size=16, show_progress=False)
    assert report.used == EXPECTED_USED
    assert images.shape == (len(EXPECTED_USED), 3, 16, 16) and images.dtype == torch.uint8
    skipped = dict(report.skipped)
    assert sorted(skipped) == ["z_empty.png", "z_junk.png", "z_notes.txt", "z_truncated.jpg"]
    assert skipped["z_empty.png"] == "empty file (0 bytes)"
    assert skipped["z_notes.txt"] == "not an image extension"
    assert skipped["z_junk.png"].startswith("not a readable image")
    assert skipped["z_truncated.jpg"].startswith("truncated or corrupt")
    assert report.converted == {"L": 1, "RGBA": 1, "P": 1, "CMYK": 1, "I;16": 2}
    summary = report.summary()
    assert "11 used, 4 skipped" in summary and "z_truncated.jpg" in summary


def test_modes_convert_to_the_right_rgb_values(mixed_folder: Path):
    images, report = load_folder(mixed_folder, size=16, show_progress=False)
    px = {name: images[i, :, 8, 8].tolist() for i, name in enumerate(report.used)}
    assert px["b_gray.png"] == [100, 100, 100]
    assert px["d_palette.png"] == [0, 200, 0]
    assert px["g.webp"] == list(BLUE)
    assert px["h.bmp"] == [10, 20, 30]
    assert px["nested/deeper/i_nested.png"] == [1, 2, 3]
    assert px["f_16bit_full.png"] == [255, 255, 255]  # scaled, 65535 -> 255
    assert px["f_16bit_half.png"] == [128, 128, 128]  # 32768 / 257 = 127.5 -> 128, not clipped
    cmyk = np.array(px["e_cmyk.jpg"])
    assert np.abs(cmyk - np.array(RED)).max() <= 3
    # RGBA: transparent left half composited on white, opaque right half stays red
    rgba = images[report.used.index("c_rgba.png")]
    assert rgba[:, 8, 2].tolist() == [255, 255, 255]
    assert rgba[:, 8, 13].tolist() == list(RED)


def test_non_square_image_is_centre_cropped(tmp_path: Path):
    img = Image.new("RGB", (96, 64), BLUE)  # blue side bars 16 px wide
    img.paste(RED, (16, 0, 80, 64))  # red centre square 64 x 64
    img.save(tmp_path / "wide.png")
    tall = Image.new("RGB", (64, 96), BLUE)
    tall.paste(RED, (0, 16, 64, 80))
    tall.save(tmp_path / "tall.png")
    for antialias in (True, False):
        images, report = load_folder(tmp_path, size=32, antialias=antialias, show_progress=False)
        assert images.shape == (2, 3, 32, 32)
        assert report.cropped == 2
        assert (images[:, 0] >= 250).all() and (images[:, 1:] <= 5).all()  # all red


def test_exif_orientation_is_applied(tmp_path: Path):
    img = Image.new("RGB", (32, 32), RED)
    img.paste(BLUE, (16, 0, 32, 32))  # stored: left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 3  # "rotate 180 degrees to display"
    img.save(tmp_path / "rotated.png", exif=exif)
    images, report = load_folder(tmp_path, size=32, show_progress=False)
    assert report.rotated == 1
    assert images[0, :, 16, 2].tolist() == list(BLUE)  # displayed: left blue
    assert images[0, :, 16, 29].tolist() == list(RED)


def test_antialias_true_averages_a_checkerboard_and_false_aliases_it(tmp_path: Path):
    cb = ((np.indices((192, 192)).sum(0) % 2) * 255).astype(np.uint8)  # 1-px checkerboard
    Image.fromarray(cb, mode="L").save(tmp_path / "checker.png")
    smooth, _ = load_folder(tmp_path, size=64, antialias=True, show_progress=False)
    aliased, _ = load_folder(tmp_path, size=64, antialias=False, show_progress=False)
    assert abs(smooth.float().mean().item() - 127.5) < 2 and smooth.float().std().item() < 3
    assert aliased.float().std().item() > 100  # every output pixel is a single input pixel
    assert set(aliased.unique().tolist()) == {0, 255}


def test_missing_folder_and_file_instead_of_folder_name_the_path(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(FolderError, match="nope.*does not exist"):
        load_folder(missing)
    file = _solid(tmp_path / "one.png", RED)
    with pytest.raises(FolderError, match=r"one\.png.*is a file, not a folder"):
        prepare_folder(file)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"size": 0}, "size=0"),
        ({"size": 64.0}, "size=64.0"),
        ({"antialias": "yes"}, "antialias='yes'"),
        ({"val_fraction": 1.0}, "val_fraction=1.0"),
        ({"min_images": 0}, "min_images=0"),
        ({"name": "../escape"}, "name='../escape'"),
    ],
)
def test_bad_arguments_name_the_parameter_and_value(tmp_path, kwargs, param):
    with pytest.raises((ValueError, TypeError)) as info:
        prepare_folder(tmp_path, root=tmp_path / "data", **kwargs)
    assert param in str(info.value) and "allowed" in str(info.value)


def test_too_few_images_error_explains_counts_and_reasons(tmp_path: Path):
    d = tmp_path / "few"
    for i in range(3):
        _solid(d / f"{i}.png", (i, i, i))
    (d / "bad.png").write_bytes(b"")
    (d / "readme.md").write_text("hi")
    with pytest.raises(FolderError) as info:
        prepare_folder(d, root=tmp_path / "data", min_images=16)
    msg = str(info.value)
    assert str(d) in msg and "3 usable" in msg and "2 files were skipped" in msg
    assert "bad.png: empty file" in msg and "min_images=16" in msg
    assert not any((tmp_path / "data").glob("*/manifest.json"))


def _folder_of(d: Path, n: int) -> Path:
    for i in range(n):
        _solid(d / f"img_{i:02d}.png", (i * 10, 0, 255 - i * 10), size=(24, 24))
    return d


def test_prepare_folder_round_trips_and_second_call_uses_the_cache(tmp_path: Path, monkeypatch):
    d = _folder_of(tmp_path / "My Dogs!", 20)
    (d / "broken.jpg").write_bytes(b"\xff\xd8junk")
    root = tmp_path / "data"
    ds = prepare_folder(d, root=root, size=16, val_fraction=0.25, seed=3, show_progress=False)
    name = default_folder_name(d)
    assert ds.name == name and name.startswith("folder-my-dogs-") and len(name) == 23
    assert is_prepared(name, root)
    assert len(ds.train) == 15 and len(ds.val) == 5
    assert ds.train.images.shape == (15, 3, 16, 16)
    src = ds.manifest["source"]
    assert src["kind"] == "folder" and src["path"] == str(d.resolve())
    assert (src["size"], src["antialias"], src["val_fraction"], src["seed"]) == (16, True, 0.25, 3)
    assert (src["n_files_used"], src["n_skipped"]) == (20, 1)

    report = read_report(ds)
    assert isinstance(report, IngestReport) and report.skipped[0][0] == "broken.jpg"
    splits = json.loads((ds.path / "report.json").read_text())["splits"]
    assert sorted(splits["train"] + splits["val"]) == [f"img_{i:02d}.png" for i in range(20)]
    # each split keeps file order; red channel encodes the file index
    val_idx = [int(p[4:6]) for p in splits["val"]]
    assert ds.val.images[:, 0, 0, 0].tolist() == [i * 10 for i in val_idx]

    def fail(*args, **kwargs):
        raise AssertionError("decoded again instead of loading from the cache")

    monkeypatch.setattr(folder_mod, "load_folder", fail)
    again = prepare_folder(d, root=root, size=16, val_fraction=0.25, seed=3)
    assert torch.equal(again.train.images, ds.train.images)
    assert torch.equal(again.val.images, ds.val.images)
    with pytest.raises(AssertionError, match="decoded again"):
        prepare_folder(d, root=root, size=16, val_fraction=0.25, seed=3, force=True)
    with pytest.raises(AssertionError, match="decoded again"):  # a different seed is new input
        prepare_folder(d, root=root, size=16, val_fraction=0.25, seed=4)
    _solid(d / "img_new.png", RED, size=(24, 24))
    with pytest.raises(AssertionError, match="decoded again"):  # so is a new file
        prepare_folder(d, root=root, size=16, val_fraction=0.25, seed=3)


def test_prepare_without_val_split_and_custom_name(tmp_path: Path):
    d = _folder_of(tmp_path / "imgs", 4)
    ds = prepare_folder(d, name="tiny", root=tmp_path / "data", size=8, min_images=4)
    assert ds.name == "tiny" and ds.val is None and len(ds.train) == 4
    # without a val split the training set keeps the sorted file order
    assert ds.train.images[:, 0, 0, 0].tolist() == [0, 10, 20, 30]


def test_damaged_cache_is_decoded_again_from_the_folder(tmp_path: Path, monkeypatch, caplog):
    d = _folder_of(tmp_path / "imgs", 4)
    kwargs = dict(name="tiny", root=tmp_path / "data", size=8, min_images=4, show_progress=False)
    ds = prepare_folder(d, **kwargs)
    expected = ds.train.images.clone()
    info = ds.manifest["splits"]["train"]
    file = ds.path / info["file"]
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF  # one pixel byte, in a new file: the loaded tensors map the old one
    atomic_write_bytes(file, bytes(data))
    calls = []
    original = folder_mod.load_folder
    monkeypatch.setattr(
        folder_mod, "load_folder", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    with caplog.at_level(logging.WARNING):
        again = prepare_folder(d, **kwargs)
    assert calls == [1]
    message = next(r.getMessage() for r in caplog.records if str(file) in r.getMessage())
    assert info["file_sha256"] in message and sha256_file(file) in message
    assert torch.equal(again.train.images, expected)
    assert prepare_folder(d, **kwargs).content_hash == ds.content_hash  # and cached again
    assert calls == [1]


@pytest.mark.parametrize("size", [0, -64, 48, 100, 2048, 64.0, "64", True, None])
def test_size_must_be_a_power_of_two_the_models_can_use(tmp_path: Path, size):
    _folder_of(tmp_path / "imgs", 2)
    for call in (load_folder, prepare_folder):
        with pytest.raises((ValueError, TypeError)) as info:
            call(tmp_path / "imgs", size=size)
        msg = str(info.value)
        assert f"size={size!r} is not allowed" in msg and "[8, 16, 32, 64," in msg


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128])
def test_allowed_sizes_give_images_of_that_size(tmp_path: Path, size):
    _folder_of(tmp_path / "imgs", 1)
    images, _ = load_folder(tmp_path / "imgs", size=size, show_progress=False)
    assert images.shape == (1, 3, size, size)


def test_empty_folder_error_names_the_folder_and_says_it_found_nothing(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FolderError) as info:
        prepare_folder(empty, root=tmp_path / "data")
    msg = str(info.value)
    assert str(empty) in msg and "0 usable images" in msg and "no other files" in msg


def test_folder_without_images_lists_what_it_found(tmp_path: Path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "notes.txt").write_text("hi")
    (d / "photo.gif").write_bytes(b"GIF89a")
    with pytest.raises(FolderError) as info:
        prepare_folder(d, root=tmp_path / "data")
    msg = str(info.value)
    assert str(d) in msg and "notes.txt: not an image extension" in msg and "photo.gif" in msg


def test_broken_symlink_is_reported_not_dropped(tmp_path: Path):
    _solid(tmp_path / "ok.png", RED)
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    _, report = load_folder(tmp_path, size=8, show_progress=False)
    assert report.used == ["ok.png"]
    assert report.skipped == [("gone.png", "broken symbolic link (its target does not exist)")]


def test_conversion_counts_only_images_that_were_used(tmp_path: Path, monkeypatch):
    _solid(tmp_path / "gray.png", 100, mode="L")
    _solid(tmp_path / "rgb.png", RED)
    real = folder_mod._to_rgb

    def fail_on_gray(img):
        if img.mode == "L":
            raise TypeError("unsupported")
        return real(img)

    monkeypatch.setattr(folder_mod, "_to_rgb", fail_on_gray)
    _, report = load_folder(tmp_path, size=8, show_progress=False)
    assert report.used == ["rgb.png"] and report.converted == {}
    assert report.skipped == [("gray.png", "cannot convert mode L to RGB (unsupported)")]
