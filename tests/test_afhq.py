"""ssd_lib.data.afhq, offline: a tiny AFHQ-shaped zip served by a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import logging
import shutil
import stat
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from ssd_lib.data import afhq
from ssd_lib.data.afhq import AFHQError, extract_dogs, prepare_afhq
from ssd_lib.data.cache import is_prepared
from ssd_lib.utils.atomic import atomic_write, atomic_write_bytes, sha256_file

N_TRAIN, N_VAL = 6, 3


def _jpeg(color: tuple[int, int, int], size: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _dog_color(split: str, i: int) -> tuple[int, int, int]:
    # red channel encodes the index, green the split, so the order can be checked after JPEG
    return (20 + 30 * i, 60 if split == "train" else 180, 100)


def _write_zip(path: Path, extra: dict[str, bytes] | None = None, n_train: int = N_TRAIN) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("afhq/", b"")
        for split, n in (("train", n_train), ("val", N_VAL)):
            for i in range(n):
                zf.writestr(f"afhq/{split}/dog/flickr_dog_{i:06d}.jpg", _jpeg(_dog_color(split, i)))
            for cls in ("cat", "wild"):  # must be ignored
                for i in range(2):
                    zf.writestr(f"afhq/{split}/{cls}/{cls}_{i:06d}.jpg", _jpeg((0, 0, 0)))
        zf.writestr("__MACOSX/afhq/train/dog/._flickr_dog_000000.jpg", b"resource fork")
        for name, data in (extra or {}).items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def server(tmp_path: Path, monkeypatch):
    """(base url, served folder); the folder holds a tiny afhq.zip."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # requests would send 127.0.0.1 to a proxy
    www = tmp_path / "www"
    _write_zip(www / "afhq.zip")
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _prepare(tmp_path: Path, url: str, **kwargs):
    kwargs.setdefault("expected_train", N_TRAIN)
    kwargs.setdefault("expected_val", N_VAL)
    kwargs.setdefault("known_hash", None)  # the tiny test archive is not the real one
    return prepare_afhq(root=tmp_path / "data", url=url, show_progress=False, **kwargs)


def test_prepare_downloads_verifies_and_caches_dogs_only(tmp_path, server, monkeypatch):
    base, www = server
    sha = _sha256(www / "afhq.zip")
    ds = _prepare(tmp_path, f"{base}/afhq.zip", known_hash=sha)
    assert ds.name == "afhq-dog"
    # The source-resolution dog JPEGs stay for the paper's FID protocol; cats never do.
    val_dir = Path(ds.manifest["source_dirs"]["val"])
    assert len(list(val_dir.iterdir())) == N_VAL
    assert len(list(Path(ds.manifest["source_dirs"]["train"]).iterdir())) == N_TRAIN
    assert not list((tmp_path / "data").glob("**/cat*"))
    assert ds.train.images.shape == (N_TRAIN, 3, 64, 64) and ds.train.images.dtype == torch.uint8
    assert ds.val.images.shape == (N_VAL, 3, 64, 64)
    # cats, wild and the __MACOSX fork were ignored: every image is a dog colour, in file order
    for split, images in (("train", ds.train.images), ("val", ds.val.images)):
        want = torch.tensor([_dog_color(split, i) for i in range(len(images))])
        assert (images[:, :, 32, 32].int() - want).abs().max() <= 3, images[:, :, 32, 32]
    src = ds.manifest["source"]
    assert src["kind"] == "afhq" and src["url"] == f"{base}/afhq.zip"
    assert src["archive_sha256"] == sha and src["antialias"] is True
    assert src["counts"] == {"train": N_TRAIN, "val": N_VAL}
    assert (tmp_path / "data" / "downloads" / "afhq.zip").is_file()  # kept for re-preparing
    assert not list((tmp_path / "data").glob(".afhq-extract-*"))  # temporary folder removed

    def fail(*args, **kwargs):
        raise AssertionError("extracted again instead of loading from the cache")

    monkeypatch.setattr(afhq, "extract_dogs", fail)
    again = _prepare(tmp_path, f"{base}/afhq.zip", known_hash=sha)
    assert torch.equal(again.train.images, ds.train.images)
    with pytest.raises(AssertionError, match="extracted again"):
        _prepare(tmp_path, f"{base}/afhq.zip", known_hash=sha, force=True)


def test_unpinned_hash_is_computed_logged_and_recorded(tmp_path, server, caplog):
    base, www = server
    with caplog.at_level(logging.WARNING, logger="ssd_lib.data.afhq"):
        ds = _prepare(tmp_path, f"{base}/afhq.zip", known_hash=None, antialias=False)
    sha = _sha256(www / "afhq.zip")
    assert ds.name == "afhq-dog-noaa" and ds.manifest["source"]["antialias"] is False
    assert ds.manifest["source"]["archive_sha256"] == sha
    assert any("not pinned" in r.getMessage() and sha in r.getMessage() for r in caplog.records)


def test_wrong_known_hash_fails_and_keeps_nothing(tmp_path, server):
    base, _ = server
    with pytest.raises(AFHQError, match="does not have the expected hash"):
        _prepare(tmp_path, f"{base}/afhq.zip", known_hash="0" * 64)
    downloads = tmp_path / "data" / "downloads"
    assert list(downloads.iterdir()) == []  # pooch removed its temporary download
    assert not is_prepared("afhq-dog", tmp_path / "data")


def test_http_404_gives_clear_download_error_with_manual_path(tmp_path, server):
    base, _ = server
    with pytest.raises(AFHQError) as info:
        _prepare(tmp_path, f"{base}/missing.zip")
    msg = str(info.value)
    assert f"{base}/missing.zip" in msg and "404" in msg
    assert str(tmp_path / "data" / "downloads" / "afhq.zip") in msg and "archive=" in msg


def test_local_archive_skips_download(tmp_path):
    zip_path = _write_zip(tmp_path / "mine" / "afhq.zip")
    # nothing listens on this url: a download attempt would fail
    ds = _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip", archive=zip_path)
    assert (len(ds.train), len(ds.val)) == (N_TRAIN, N_VAL)
    assert ds.manifest["source"]["url"] is None
    assert ds.manifest["source"]["archive_sha256"] == _sha256(zip_path)
    assert not (tmp_path / "data" / "downloads").exists()


def test_archive_placed_in_download_dir_is_used_without_download(tmp_path):
    _write_zip(tmp_path / "data" / "downloads" / "afhq.zip")
    ds = _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip")
    assert len(ds.train) == N_TRAIN


def test_count_mismatch_names_found_and_expected_counts(tmp_path):
    zip_path = _write_zip(tmp_path / "short.zip", n_train=N_TRAIN - 1)
    with pytest.raises(AFHQError) as info:
        _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip", archive=zip_path)
    msg = str(info.value)
    assert str(zip_path) in msg
    assert f"holds {N_TRAIN - 1} train / {N_VAL} val" in msg
    assert f"expected {N_TRAIN} / {N_VAL}" in msg
    assert not is_prepared("afhq-dog", tmp_path / "data")
    ok = _prepare(tmp_path, "", archive=zip_path, expected_train=None)  # None: not checked
    assert len(ok.train) == N_TRAIN - 1


def test_undecodable_dog_image_is_reported(tmp_path):
    zip_path = _write_zip(tmp_path / "bad.zip", {"afhq/val/dog/broken.jpg": b"\xff\xd8not jpeg"})
    with pytest.raises(AFHQError, match=r"1 val dog images .* cannot be decoded.*broken\.jpg"):
        _prepare(tmp_path, "", archive=zip_path, expected_val=N_VAL + 1)


@pytest.mark.parametrize("evil_kind", ["dotdot", "absolute"])
def test_unsafe_zip_entries_are_refused_and_nothing_is_written(tmp_path, evil_kind):
    outside = tmp_path / "outside" / "evil.jpg"
    name = "afhq/train/dog/../../../evil.jpg" if evil_kind == "dotdot" else str(outside)
    zip_path = _write_zip(tmp_path / "evil.zip", {name: _jpeg((255, 0, 0))})
    with zipfile.ZipFile(zip_path) as zf:  # the entry really is stored unsafe
        assert name in zf.namelist()
    dest = tmp_path / "dest"
    with pytest.raises(AFHQError, match="refusing to extract"):
        extract_dogs(zip_path, dest)
    with pytest.raises(AFHQError, match="refusing to extract"):
        _prepare(tmp_path, "", archive=zip_path)
    assert not list(tmp_path.rglob("evil.jpg"))
    assert not dest.exists()  # every entry is checked before the first write


def test_extract_dogs_writes_only_dogs_into_train_and_val(tmp_path):
    zip_path = _write_zip(tmp_path / "afhq.zip", {"afhq/train/dog/notes.txt": b"x"})
    train, val = extract_dogs(zip_path, tmp_path / "out", show_progress=False)
    assert sorted(p.name for p in train.iterdir()) == [f"flickr_dog_{i:06d}.jpg" for i in range(6)]
    assert sorted(p.name for p in val.iterdir()) == [f"flickr_dog_{i:06d}.jpg" for i in range(3)]
    assert {p.parent.name for p in (tmp_path / "out").rglob("*.jpg")} == {"train", "val"}
    with pytest.raises(AFHQError, match="not empty"):  # stale files would be counted
        extract_dogs(zip_path, tmp_path / "out")


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [({"expected_train": -1}, "expected_train=-1"), ({"antialias": 1}, "antialias=1")],
)
def test_bad_arguments_name_the_parameter(tmp_path, kwargs, text):
    with pytest.raises((ValueError, TypeError), match=text):
        prepare_afhq(root=tmp_path, archive=tmp_path / "none.zip", **kwargs)


def test_default_pinned_hash_refuses_an_archive_that_is_not_the_real_one(tmp_path):
    assert afhq.AFHQ_SHA256 and len(afhq.AFHQ_SHA256.split(":")[-1]) == 64
    zip_path = _write_zip(tmp_path / "afhq.zip")
    with pytest.raises(AFHQError, match="expected hash"):
        prepare_afhq(
            root=tmp_path / "data",
            archive=zip_path,
            expected_train=N_TRAIN,
            expected_val=N_VAL,
            show_progress=False,
        )


@pytest.mark.parametrize("member", ["afhq/train/dog/link.jpg", "afhq/passwd"])
def test_symlink_entries_are_refused_naming_archive_and_member(tmp_path, member):
    zip_path = _write_zip(tmp_path / "links.zip")
    with zipfile.ZipFile(zip_path, "a") as zf:
        info = zipfile.ZipInfo(member)
        info.create_system = 3  # Unix: external_attr holds st_mode in its high 16 bits
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../../../etc/passwd")
    dest = tmp_path / "dest"
    with pytest.raises(AFHQError, match="symbolic link") as err:
        extract_dogs(zip_path, dest, show_progress=False)
    assert str(zip_path) in str(err.value) and repr(member) in str(err.value)
    assert not dest.exists()  # refused before the first write
    with pytest.raises(AFHQError, match="symbolic link"):
        _prepare(tmp_path, "", archive=zip_path)
    assert not list(tmp_path.rglob("link.jpg")) and not list(tmp_path.rglob("passwd"))


def _corrupt_train_file(ds) -> Path:
    """Flip the last pixel byte of the cached train split, in a new copy of the file: the
    loaded tensors map the file, so editing it in place would change them too."""
    file = ds.path / ds.manifest["splits"]["train"]["file"]
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    atomic_write_bytes(file, bytes(data))
    return file


def _assert_damage_warned(caplog, file: Path, recorded: str) -> None:
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(file) in m and recorded in m and sha256_file(file) in m for m in warnings)


def test_damaged_cache_is_rebuilt_from_the_extracted_images(tmp_path, monkeypatch, caplog):
    zip_path = _write_zip(tmp_path / "mine" / "afhq.zip")
    ds = _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip", archive=zip_path)
    zip_path.unlink()  # only the extracted source images are left to rebuild from
    file = _corrupt_train_file(ds)
    monkeypatch.setattr(afhq, "extract_dogs", lambda *a, **k: pytest.fail("extracted again"))
    with caplog.at_level(logging.WARNING):
        again = _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip")
    _assert_damage_warned(caplog, file, ds.manifest["splits"]["train"]["file_sha256"])
    assert torch.equal(again.train.images, ds.train.images)
    assert again.content_hash == ds.content_hash


def test_damaged_cache_without_extracted_images_is_rebuilt_from_the_archive(tmp_path, caplog):
    _write_zip(tmp_path / "data" / "downloads" / "afhq.zip")
    ds = _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip")
    shutil.rmtree(tmp_path / "data" / afhq.SOURCE_FOLDER)
    file = _corrupt_train_file(ds)
    with caplog.at_level(logging.WARNING):
        again = _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip")
    _assert_damage_warned(caplog, file, ds.manifest["splits"]["train"]["file_sha256"])
    assert torch.equal(again.train.images, ds.train.images)
    assert len(list(Path(again.manifest["source_dirs"]["train"]).iterdir())) == N_TRAIN


def test_damaged_cache_with_no_source_left_says_what_to_run(tmp_path):
    zip_path = _write_zip(tmp_path / "mine" / "afhq.zip")
    ds = _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip", archive=zip_path)
    zip_path.unlink()
    shutil.rmtree(tmp_path / "data" / afhq.SOURCE_FOLDER)
    _corrupt_train_file(ds)
    with pytest.raises(AFHQError) as err:
        _prepare(tmp_path, "http://127.0.0.1:9/afhq.zip")
    msg = str(err.value)
    assert str(ds.path) in msg and "ssd prepare --data afhq" in msg and "force=True" in msg
    assert "\n" not in msg


def _source_files(root: Path) -> dict[str, bytes]:
    source = root / afhq.SOURCE_FOLDER
    return {p.relative_to(source).as_posix(): p.read_bytes() for p in source.rglob("*.jpg")}


def test_failed_re_extraction_keeps_the_old_source_folder_whole(tmp_path, monkeypatch):
    zip_path = _write_zip(tmp_path / "mine" / "afhq.zip")
    _prepare(tmp_path, "", archive=zip_path)
    before = _source_files(tmp_path / "data")
    other = _write_zip(tmp_path / "other" / "afhq.zip", n_train=N_TRAIN - 1)
    calls = []

    def crash_on_fourth(path, write):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt("power cut")
        return atomic_write(path, write)

    monkeypatch.setattr(afhq, "atomic_write", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        _prepare(tmp_path, "", archive=other, force=True, expected_train=None)
    assert _source_files(tmp_path / "data") == before
    assert not list((tmp_path / "data").glob(".afhq-extract-*"))


def test_crash_between_the_two_renames_leaves_no_half_mixed_source(tmp_path, monkeypatch):
    zip_path = _write_zip(tmp_path / "mine" / "afhq.zip")
    _prepare(tmp_path, "", archive=zip_path)
    rename = Path.rename

    def crash_before_new_source(self, target):
        if Path(target).name == afhq.SOURCE_FOLDER:
            raise KeyboardInterrupt("power cut")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_before_new_source)
    with pytest.raises(KeyboardInterrupt):
        _prepare(tmp_path, "", archive=zip_path, force=True)
    monkeypatch.undo()
    assert not (tmp_path / "data" / afhq.SOURCE_FOLDER).exists()  # gone, never half-swapped
    ds = _prepare(tmp_path, "", archive=zip_path, force=True)
    assert len(list(Path(ds.manifest["source_dirs"]["val"]).iterdir())) == N_VAL
