"""Tests for the procedural dog-face dataset (ssd_lib.data.embedded)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from ssd_lib.data import embedded
from ssd_lib.data.cache import load_prepared
from ssd_lib.data.embedded import (
    FACTOR_NAMES,
    FACTORS,
    dataset_name,
    generate_split,
    prepare_embedded,
    render_faces,
    sample_factors,
)
from ssd_lib.utils.atomic import atomic_write_bytes, sha256_file

COL = {name: i for i, name in enumerate(FACTOR_NAMES)}


def plain_face(**overrides: float) -> np.ndarray:
    """One upright tan face with mid-range shape factors, both ears up, no patch: (1, F)."""
    values = {
        "fur_colour": 1, "fur_brightness": 0.5, "head_width": 0.5, "left_ear_up": 1,
        "right_ear_up": 1, "eye_colour": 0, "muzzle_size": 0.5, "head_rotation_deg": 0.0,
        "background_colour": 0, "eye_patch": 0,
    }  # fmt: skip
    values.update(overrides)
    return np.array([[values[name] for name in FACTOR_NAMES]], dtype=np.float32)


def changed_pixels(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """Bool (H, W): pixels where any channel of the two (1, F) faces differs by more than 8/255."""
    ia, ib = render_faces(a, seed=7).int(), render_faces(b, seed=7).int()
    return (ia - ib).abs().amax(dim=1)[0] > 8


def test_same_seed_gives_byte_identical_split():
    a, b = generate_split(64, seed=3), generate_split(64, seed=3)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.factors, b.factors)
    assert a.content_hash() == b.content_hash()


def test_different_seed_gives_different_split():
    a, b = generate_split(64, seed=3), generate_split(64, seed=4)
    assert not torch.equal(a.factors, b.factors)
    # every image differs, not just a few
    assert (a.images != b.images).flatten(1).any(dim=1).all()


def test_shapes_dtypes_and_names():
    split = generate_split(16, seed=0, size=32)
    assert split.images.dtype == torch.uint8 and split.images.shape == (16, 3, 32, 32)
    assert split.factors.dtype == torch.float32 and split.factors.shape == (16, len(FACTOR_NAMES))
    assert split.factor_names == FACTOR_NAMES == list(FACTORS)
    # a face is drawn: the image is not one flat colour
    assert (split.images.flatten(2).float().std(dim=2, unbiased=False) > 5).all()


def test_factor_values_match_their_descriptions():
    f = sample_factors(2000, np.random.default_rng(0))
    assert f.dtype == np.float32 and f.shape == (2000, len(FACTOR_NAMES))
    for name, desc in FACTORS.items():
        v = f[:, COL[name]]
        if desc["kind"] in ("binary", "categorical"):
            # integer codes, every class present in 2,000 draws
            assert set(np.unique(v).tolist()) == set(range(desc["n_classes"])), name
            assert desc["kind"] != "binary" or desc["n_classes"] == 2
        else:
            lo, hi = desc["range"]
            assert lo <= v.min() and v.max() <= hi, name
            # spread over the whole range, not squeezed into a corner of it
            assert v.min() < lo + 0.05 * (hi - lo) and v.max() > hi - 0.05 * (hi - lo), name
    assert FACTORS["head_rotation_deg"]["range"] == [-20.0, 20.0]


def test_all_four_ear_combinations_occur():
    f = sample_factors(300, np.random.default_rng(1))
    combos = f[:, COL["left_ear_up"]] * 2 + f[:, COL["right_ear_up"]]
    counts = np.bincount(combos.astype(int), minlength=4)
    assert counts.sum() == 300 and (counts >= 45).all(), counts  # 75 expected each


def test_train_and_val_are_different_images():
    train = generate_split(64, seed=0, split="train")
    val = generate_split(64, seed=0, split="val")
    assert not torch.equal(train.factors, val.factors)
    train_bytes = {img.numpy().tobytes() for img in train.images}
    assert not any(img.numpy().tobytes() in train_bytes for img in val.images)


def test_flipping_left_ear_changes_only_the_upper_left():
    for up in (0, 1):
        changed = changed_pixels(plain_face(left_ear_up=up), plain_face(left_ear_up=1 - up))
        total = int(changed.sum())
        assert total > 200  # an ear is a big part of a 64x64 face
        assert changed[:, 32:].sum() == 0  # nothing right of the centre line
        assert changed[:32, :32].sum() >= 0.7 * total
        # the floppy ear's tip reaches a little below the centre; the rest stays untouched
        assert changed[32:].float().mean() < 0.10
        assert changed[48:].sum() == 0


def test_flipping_right_ear_mirrors_the_left():
    left = changed_pixels(plain_face(left_ear_up=1), plain_face(left_ear_up=0))
    right = changed_pixels(plain_face(right_ear_up=1), plain_face(right_ear_up=0))
    assert changed_pixels(plain_face(), plain_face(right_ear_up=0))[:, :32].sum() == 0
    # the face is symmetric up to a pixel, so the two change masks mirror each other
    overlap = (left & right.flip(dims=[1])).sum() / left.sum()
    assert overlap > 0.9


@pytest.mark.parametrize(
    ("name", "new_value", "rows", "cols"),
    [
        ("eye_patch", 1, (16, 40), (32, 52)),  # around the viewer's-right eye
        ("eye_colour", 2, (20, 36), (12, 52)),  # both eyes, nothing else
        ("muzzle_size", 1.0, (32, 56), (16, 48)),  # lower centre
    ],
)
def test_factor_changes_stay_in_their_region(name, new_value, rows, cols):
    changed = changed_pixels(plain_face(), plain_face(**{name: new_value}))
    inside = changed[rows[0] : rows[1], cols[0] : cols[1]].sum()
    assert changed.sum() > 10
    assert inside == changed.sum()


def test_render_seed_changes_texture_but_not_shapes():
    f = plain_face()
    a, b = render_faces(f, seed=1), render_faces(f, seed=2)
    assert not torch.equal(a, b)
    assert torch.equal(a[..., 58:, :8], b[..., 58:, :8])  # background corner: no texture
    assert (a.int() - b.int()).abs().float().mean() < 8  # texture is a small perturbation


def test_rendering_does_not_depend_on_chunking(monkeypatch):
    f = sample_factors(40, np.random.default_rng(2))
    whole = render_faces(f, seed=5)
    monkeypatch.setattr(embedded, "_CHUNK", 7)
    assert torch.equal(render_faces(f, seed=5), whole)
    assert torch.equal(render_faces(f[:1], seed=5), whole[:1])


def test_prepare_writes_manifest_and_second_call_loads_from_cache(tmp_path, monkeypatch):
    kwargs = dict(root=tmp_path, seed=1, n_train=24, n_val=8, show_progress=False)
    first = prepare_embedded(**kwargs)
    assert first.name == "embedded-s1-n24-8-64" == dataset_name(1, 24, 8, 64)
    assert (len(first.train), len(first.val)) == (24, 8)
    manifest = json.loads((tmp_path / first.name / "manifest.json").read_text())
    assert manifest["source"] == {
        "kind": "embedded", "seed": 1, "n_train": 24, "n_val": 8, "size": 64,
        "generator_version": embedded.GENERATOR_VERSION,
    }  # fmt: skip
    assert manifest["factor_names"] == FACTOR_NAMES
    assert torch.equal(first.train.images, generate_split(24, 1, split="train").images)

    def no_render(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(embedded, "render_faces", no_render)
    second = prepare_embedded(**kwargs)
    assert second.content_hash == first.content_hash
    assert torch.equal(second.val.images, first.val.images)
    with pytest.raises(AssertionError, match="cache should have been used"):
        prepare_embedded(**kwargs, force=True)


def test_prepare_regenerates_when_cached_source_differs(tmp_path, monkeypatch):
    kwargs = dict(root=tmp_path, seed=2, n_train=8, n_val=0, show_progress=False)
    ds = prepare_embedded(**kwargs)
    assert ds.val is None
    manifest_path = ds.path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source"]["generator_version"] = 0  # as if written by an older renderer
    manifest_path.write_text(json.dumps(manifest))
    calls = []
    original = embedded.render_faces
    monkeypatch.setattr(
        embedded, "render_faces", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    again = prepare_embedded(**kwargs)
    assert calls == [1]
    assert again.manifest["source"]["generator_version"] == embedded.GENERATOR_VERSION
    assert again.content_hash == ds.content_hash  # same seed, same images


def _flip_last_byte(file) -> None:
    """A one-byte corruption, written as a new file: loaded tensors map the old one."""
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    atomic_write_bytes(file, bytes(data))


def test_damaged_cache_is_regenerated_with_a_warning_naming_file_and_hashes(
    tmp_path, monkeypatch, caplog
):
    kwargs = dict(root=tmp_path, seed=2, n_train=8, n_val=4, show_progress=False)
    ds = prepare_embedded(**kwargs)
    info = ds.manifest["splits"]["val"]
    file = ds.path / info["file"]
    _flip_last_byte(file)
    calls = []
    original = embedded.render_faces
    monkeypatch.setattr(
        embedded, "render_faces", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    with caplog.at_level(logging.WARNING):
        again = prepare_embedded(**kwargs)
    assert len(calls) == 2  # both splits rendered again
    message = next(r.getMessage() for r in caplog.records if str(file) in r.getMessage())
    assert info["file_sha256"] in message and sha256_file(file) in message
    assert again.content_hash == ds.content_hash
    assert load_prepared(again.name, tmp_path).val.images.equal(again.val.images)


def test_default_arguments_use_the_plain_name():
    assert dataset_name(0, 4739, 500, 64) == "embedded"
    assert dataset_name(0, 4739, 500, 32) != dataset_name(0, 4739, 500, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_train": -3}, r"n_train=-3 is invalid; allowed: an integer >= 1"),
        ({"n_train": 2.5}, r"n_train=2\.5 is invalid; allowed: an integer >= 1"),
        ({"n_val": -1}, r"n_val=-1 is invalid; allowed: an integer >= 0"),
        ({"seed": -1}, r"seed=-1 is invalid; allowed: an integer in \[0, 2\*\*32 - 1\]"),
        ({"size": 8}, r"size=8 is invalid; allowed: an integer >= 16"),
        ({"n_train": True}, r"n_train=True is invalid; allowed: an integer >= 1"),
    ],
)
def test_prepare_rejects_bad_arguments_by_name(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_embedded(root=tmp_path, show_progress=False, **kwargs)
    assert not any(tmp_path.iterdir())  # rejected before anything is written


def test_render_rejects_bad_factors_by_name():
    with pytest.raises(ValueError, match=r"left_ear_up.*2\.0.*integers 0\.\.1"):
        render_faces(plain_face(left_ear_up=2), seed=0)
    with pytest.raises(ValueError, match=r"head_rotation_deg.*45\.0.*\[-20\.0, 20\.0\]"):
        render_faces(plain_face(head_rotation_deg=45), seed=0)
    with pytest.raises(ValueError, match=r"shape \(N, 10\), got \(1, 9\)"):
        render_faces(plain_face()[:, :9], seed=0)
    with pytest.raises(ValueError, match=r"split='test' must be one of"):
        generate_split(4, seed=0, split="test")


def test_part_windows_never_clip_a_part(monkeypatch):
    # small parts are drawn inside precomputed windows; extreme factors must fit in them
    rows = [
        plain_face(head_rotation_deg=rot, head_width=hw, muzzle_size=ms, left_ear_up=0,
                   right_ear_up=0, eye_patch=1)[0]
        for rot in (-20.0, 0.0, 20.0) for hw in (0.0, 1.0) for ms in (0.0, 1.0)
    ]  # fmt: skip
    f = np.concatenate([np.stack(rows), sample_factors(30, np.random.default_rng(4))])
    windowed = render_faces(f, seed=3)
    monkeypatch.setattr(embedded, "_window", lambda *args: (slice(None), slice(None)))
    assert torch.equal(render_faces(f, seed=3), windowed)


def test_the_fingerprint_accepts_another_cpus_rounding_and_nothing_else():
    """The embedded renderer's float arithmetic rounds a few pixels one level differently on
    another CPU (measured: 1 of 7.4 million pixel values between two of torch's kernels), which
    changes the content hash; the fingerprint must still name those images, and only them."""
    from ssd_lib.data.cache import ImageSplit

    split = generate_split(300, 0)
    fp = split.fingerprint()
    assert fp["n"] == 300 and len(fp["projections"]) == 8 and fp["factors_sha256"]
    assert split.differs_from(split.content_hash(), fp) == ""
    rounded = split.images.clone()
    flat = rounded.view(-1)
    idx = torch.arange(0, flat.numel(), flat.numel() // 20)[:20]  # 20 values, one level each
    flat[idx] = torch.where(flat[idx] < 255, flat[idx] + 1, flat[idx] - 1)
    other_cpu = ImageSplit(rounded, split.factors, split.factor_names)
    assert other_cpu.content_hash() != split.content_hash()
    assert other_cpu.differs_from(split.content_hash(), fp) == ""
    # Without a recorded fingerprint only the exact hash counts.
    assert "hash" in other_cpu.differs_from(split.content_hash())
    # Other images with the same factors, the same images in another order, another count.
    shifted = ImageSplit(split.images.roll(1, dims=-1), split.factors, split.factor_names)
    assert "pixel sums" in shifted.differs_from(split.content_hash(), fp)
    reordered = ImageSplit(split.images.flip(0), split.factors, split.factor_names)
    assert "pixel sums" in reordered.differs_from(split.content_hash(), fp)
    assert "factors" in generate_split(300, 1).differs_from(split.content_hash(), fp)
    assert split.subset(0.5).differs_from(split.content_hash(), fp).startswith("n 300")
