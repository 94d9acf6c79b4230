"""Value-range conversions, grids, atomic writes and the prepared-dataset cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ssd_lib.data import cache
from ssd_lib.data.cache import (
    CacheError,
    ImageSplit,
    is_prepared,
    load_prepared,
    read_manifest,
    write_prepared,
)
from ssd_lib.utils.atomic import atomic_write, atomic_write_json, sha256_file
from ssd_lib.utils.images import float_to_uint8, make_grid, save_grid, split_grid, uint8_to_float


def test_value_range_round_trips_and_endpoints():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).reshape(1, 3, 1, 1)
    unit, signed = uint8_to_float(x, "[0, 1]"), uint8_to_float(x, "[-1, 1]")
    assert unit.flatten().tolist() == pytest.approx([0.0, 128 / 255, 1.0])
    assert signed.flatten().tolist() == pytest.approx([-1.0, 2 * 128 / 255 - 1, 1.0], abs=1e-6)
    assert torch.equal(float_to_uint8(unit, "[0, 1]"), x)
    assert torch.equal(float_to_uint8(signed, "[-1, 1]"), x)


def test_writing_a_signed_tensor_as_unit_range_is_visibly_wrong():
    # The classic mistake: a [-1, 1] image saved as if it were [0, 1] clips its dark half.
    signed = torch.linspace(-1, 1, 11).reshape(1, 1, 1, 11).expand(1, 3, 1, 11)
    right, wrong = float_to_uint8(signed, "[-1, 1]"), float_to_uint8(signed, "[0, 1]")
    assert right[0, 0, 0, 0] == 0 and right[0, 0, 0, -1] == 255
    assert (wrong[0, 0, 0, :6] == 0).all()  # half the ramp collapsed to black


def test_unknown_value_range_is_refused():
    with pytest.raises(ValueError, match=r"value_range='0-255'"):
        uint8_to_float(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), "0-255")


def test_make_grid_places_images_row_major():
    imgs = torch.stack([torch.full((3, 2, 2), i * 10, dtype=torch.uint8) for i in range(5)])
    grid = make_grid(imgs, nrow=3, padding=1)
    assert grid.shape == (2 * 3 + 1, 3 * 3 + 1, 3)
    assert grid[1, 1, 0] == 0 and grid[1, 4, 0] == 10 and grid[4, 1, 0] == 30
    assert grid[4, 7, 0] == 255  # the empty sixth cell stays padding


@pytest.mark.parametrize(("n", "nrow", "size"), [(1, 8, 64), (5, 3, 8), (16, 4, 64), (13, 8, 16)])
def test_split_grid_gives_back_the_images_a_saved_grid_tiled(tmp_path, n, nrow, size):
    imgs = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    path = save_grid(imgs, tmp_path / "g.png", nrow=nrow)
    with Image.open(path) as im:
        back = split_grid(np.asarray(im.convert("RGB")), n, nrow=nrow)
    assert torch.equal(back, imgs)  # exact: PNG is lossless
    with pytest.raises(ValueError, match="n >= 1 and nrow >= 1"):
        split_grid(np.asarray(Image.open(path).convert("RGB")), 0, nrow=nrow)
    with pytest.raises(ValueError, match=f"not a grid of {n + nrow} square images"):
        split_grid(np.asarray(Image.open(path).convert("RGB")), n + nrow, nrow=nrow)


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"a": 1})

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path):
    atomic_write_json(tmp_path / "a.json", {})
    (tmp_path / "b.json").write_text("{}")
    assert (tmp_path / "a.json").stat().st_mode == (tmp_path / "b.json").stat().st_mode


def _split(value: int, n: int = 10) -> ImageSplit:
    return ImageSplit(torch.full((n, 3, 8, 8), value, dtype=torch.uint8))


def _split_file(root, name: str, split: str = "train"):
    return root / name / read_manifest(name, root)["splits"][split]["file"]


def test_cache_round_trip_and_tamper_detection(tmp_path):
    imgs = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    split = ImageSplit(imgs, torch.arange(20.0).reshape(10, 2), ["u", "v"])
    write_prepared("toy", {"train": split}, {"kind": "test"}, root=tmp_path)
    assert is_prepared("toy", tmp_path)
    ds = load_prepared("toy", tmp_path)
    assert torch.equal(ds.train.images, imgs) and ds.train.factor_names == ["u", "v"]
    assert ds.val is None and read_manifest("toy", tmp_path)["splits"]["train"]["count"] == 10
    # Replace the tensor file with other content: the file hash check must catch it.
    other = ImageSplit(imgs.flip(0), split.factors, ["u", "v"])
    write_prepared("other", {"train": other}, {"kind": "test"}, root=tmp_path)
    file = _split_file(tmp_path, "toy")
    file.write_bytes(_split_file(tmp_path, "other").read_bytes())
    with pytest.raises(CacheError) as info:
        load_prepared("toy", tmp_path)
    msg = str(info.value)
    recorded = read_manifest("toy", tmp_path)["splits"]["train"]["file_sha256"]
    assert str(file) in msg and recorded in msg and sha256_file(file) in msg


def test_split_files_are_named_by_their_content(tmp_path):
    write_prepared("toy", {"train": _split(1), "val": _split(2, 4)}, {"kind": "t"}, root=tmp_path)
    info = read_manifest("toy", tmp_path)["splits"]
    for split in ("train", "val"):
        file = tmp_path / "toy" / info[split]["file"]
        assert file.name == f"{split}-{info[split]['file_sha256'][:16]}.safetensors"
        assert sha256_file(file) == info[split]["file_sha256"]


def test_version_1_layout_is_read_and_its_content_hash_checked(tmp_path):
    write_prepared("toy", {"train": _split(7)}, {"kind": "t"}, root=tmp_path)
    manifest = read_manifest("toy", tmp_path)
    info = manifest["splits"]["train"]
    (tmp_path / "toy" / info.pop("file")).rename(tmp_path / "toy" / "train.safetensors")
    info.pop("file_sha256")
    manifest["format_version"] = 1
    atomic_write_json(tmp_path / "toy" / "manifest.json", manifest)
    assert load_prepared("toy", tmp_path).train.images[0, 0, 0, 0] == 7
    # other images under the old fixed name: only the content hash can tell
    save_file({"images": _split(8).images}, str(tmp_path / "toy" / "train.safetensors"))
    with pytest.raises(CacheError, match="does not match the content hash") as err:
        load_prepared("toy", tmp_path)
    assert info["content_hash"] in str(err.value) and _split(8).content_hash() in str(err.value)
    # rewriting moves to the new layout and removes the old file
    write_prepared("toy", {"train": _split(9)}, {"kind": "t"}, root=tmp_path)
    assert not (tmp_path / "toy" / "train.safetensors").exists()
    assert load_prepared("toy", tmp_path).train.images[0, 0, 0, 0] == 9


@pytest.mark.parametrize("crash_at", ["second split", "manifest"])
def test_crash_while_rewriting_leaves_the_old_dataset_loadable(tmp_path, monkeypatch, crash_at):
    write_prepared("toy", {"train": _split(1), "val": _split(2, 4)}, {"kind": "t"}, root=tmp_path)
    writes = []

    def crashing(real):
        def write(path, *args):
            writes.append(path)
            if crash_at == "second split" and len(writes) == 2 or crash_at == "manifest":
                raise KeyboardInterrupt("power cut")
            return real(path, *args)

        return write

    target = "atomic_write_bytes" if crash_at == "second split" else "atomic_write_json"
    monkeypatch.setattr(cache, target, crashing(getattr(cache, target)))
    with pytest.raises(KeyboardInterrupt):
        write_prepared("toy", {"train": _split(3), "val": _split(4, 4)}, {"kind": "t"}, tmp_path)
    old = load_prepared("toy", tmp_path)  # hashes verified: complete and unmixed
    assert old.train.images.unique().tolist() == [1] and old.val.images.unique().tolist() == [2]
    monkeypatch.undo()
    write_prepared("toy", {"train": _split(3), "val": _split(4, 4)}, {"kind": "t"}, tmp_path)
    new = load_prepared("toy", tmp_path)
    assert new.train.images.unique().tolist() == [3] and new.val.images.unique().tolist() == [4]
    files = sorted(p.name for p in (tmp_path / "toy").glob("*.safetensors"))
    assert files == sorted(info["file"] for info in new.manifest["splits"].values())


def test_crash_after_the_manifest_leaves_the_new_dataset_and_stale_files_go_later(
    tmp_path, monkeypatch
):
    write_prepared("toy", {"train": _split(1), "val": _split(2, 4)}, {"kind": "t"}, root=tmp_path)

    def crash(*args):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(cache, "_remove_unnamed_splits", crash)
    with pytest.raises(KeyboardInterrupt):
        write_prepared("toy", {"train": _split(3)}, {"kind": "t"}, tmp_path)
    new = load_prepared("toy", tmp_path)
    assert new.train.images.unique().tolist() == [3] and new.val is None
    assert len(list((tmp_path / "toy").glob("*.safetensors"))) == 3  # old train and val linger
    monkeypatch.undo()
    write_prepared("toy", {"train": _split(3)}, {"kind": "t"}, tmp_path)
    assert [p.name for p in (tmp_path / "toy").glob("*.safetensors")] == [
        new.manifest["splits"]["train"]["file"]
    ]


def test_damaged_or_foreign_manifest_is_a_cache_error(tmp_path):
    write_prepared("toy", {"train": _split(1)}, {"kind": "t"}, root=tmp_path)
    manifest = tmp_path / "toy" / "manifest.json"
    manifest.write_text("[1, 2]")
    with pytest.raises(CacheError, match="not a dataset manifest"):
        load_prepared("toy", tmp_path)
    manifest.write_text('{"splits": {"train": {"file": "../../etc/passwd"}}}')
    with pytest.raises(CacheError, match="not a split file"):
        load_prepared("toy", tmp_path)


def test_missing_dataset_error_says_how_to_prepare(tmp_path):
    with pytest.raises(CacheError, match=r"prepare_dataset\('nope'\)"):
        load_prepared("nope", tmp_path)


def test_subsets_first_k_percent_and_seeded_random():
    imgs = torch.arange(20, dtype=torch.uint8).reshape(20, 1, 1, 1).expand(20, 3, 1, 1).clone()
    split = ImageSplit(imgs)
    first = split.subset(0.25)
    assert first.images[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]
    r1, r2 = split.subset(0.5, "random", seed=3), split.subset(0.5, "random", seed=3)
    assert torch.equal(r1.images, r2.images) and len(r1) == 10
    assert r1.images[:, 0, 0, 0].tolist() != list(range(10))
    hundred = ImageSplit(torch.zeros(100, 3, 1, 1, dtype=torch.uint8))
    assert len(hundred.subset(0.29)) == 29  # int(100 * 0.29) would be 28
    with pytest.raises(ValueError, match="fraction=0"):
        split.subset(0)
