"""Archive limits: each member's size, the compression ratio and the total are checked on the bytes actually
unpacked, a zip bomb is refused early with nothing stored, and settings can tighten or loosen each limit."""

import io
import tarfile
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from modelyard.core.errors import InvalidInput
from modelyard.data.archive import ArchiveLimits, safe_extract
from modelyard.data.datasets import DatasetStore


@pytest.fixture
def store(sqlite_workspace):
    return DatasetStore(sqlite_workspace)


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _images_zip(path, extra: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for label in ("a", "b"):
            for i in range(5):
                bundle.writestr(f"{label}/{i}.png", _png(i + (10 if label == "b" else 0)))
        for name, data in extra.items():
            bundle.writestr(name, data)


def _blob_count(store) -> int:
    return sum(1 for _ in store.blobs.iter_digests())


def test_zip_bomb_is_refused_and_nothing_is_stored(store, tmp_path):
    bomb = tmp_path / "digits.zip"
    _images_zip(bomb, {"a/zeros.png": bytes(64 * 1024 * 1024)})  # 64 MiB of zeros deflate to ~64 KB
    assert bomb.stat().st_size < 200_000
    with pytest.raises(InvalidInput, match=r"digits.zip: member 'a/zeros.png' unpacks to more than 100 times its "
                                           r"compressed size \(a decompression bomb\?; setting max_archive_ratio\)"):
        store.import_path(bomb, "digits")
    assert store.list() == [] and _blob_count(store) == 0


def test_headers_are_not_trusted_the_bytes_are_counted(tmp_path):
    """A tar's members are checked against the limits while they stream out, not only by what headers say."""
    data = bytes(3 * 1024 * 1024)
    archive = tmp_path / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        info = tarfile.TarInfo("a/big.png")
        info.size = len(data)
        bundle.addfile(info, io.BytesIO(data))
    with pytest.raises(InvalidInput, match="x.tar.gz: unpacks to more than 100 times its size"):
        safe_extract(archive, tmp_path / "out")
    # the budget counts while copying: a member larger than the limit stops the copy at the limit
    stored = tmp_path / "stored.zip"
    with zipfile.ZipFile(stored, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr("a/one.png", bytes(3 * 1024 * 1024))
    limits = ArchiveLimits(max_bytes=10 * 1024**2, max_member_bytes=2 * 1024 * 1024)
    with pytest.raises(InvalidInput, match=r"member 'a/one.png' unpacks to more than 2097152 bytes \(setting "
                                           r"max_archive_member_bytes\)"):
        safe_extract(stored, tmp_path / "out2", limits=limits)
    from modelyard.data import archive as archive_module

    budget = archive_module._Budget(stored, limits, compressed_total=10**9)  # a header that under-reports
    with pytest.raises(InvalidInput, match="max_archive_member_bytes"):
        budget.copy("a/one.png", io.BytesIO(bytes(3 * 1024 * 1024)), tmp_path / "copy.bin", compressed=None)
    assert (tmp_path / "copy.bin").stat().st_size <= 2 * 1024 * 1024


def test_limits_come_from_settings(tmp_path):
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    settings = replace(Settings.load(tmp_path / "home"), max_archive_member_bytes=4096)
    workspace = Workspace.open(settings)
    try:
        archive = tmp_path / "pics.zip"
        _images_zip(archive, {"b/large.png": _png(99) * 40})
        with pytest.raises(InvalidInput, match="member 'b/large.png' unpacks to more than 4096 bytes"):
            DatasetStore(workspace).import_path(archive, "pics")
    finally:
        workspace.close()


def test_undecodable_members_are_left_out_not_stored(store, tmp_path):
    archive = tmp_path / "pics.zip"
    zeros = bytes(512 * 1024)  # under the ratio's floor: unpacked, then found undecodable
    _images_zip(archive, {"a/zeros.png": zeros, "b/empty.png": b""})
    version = store.import_path(archive, "pics")
    assert version.items == 10
    assert {i["path"]: i["error"] for i in version.stats["left_out"]["examples"]} == {
        "a/zeros.png": "cannot decode: not a JPEG, PNG or BMP image (unrecognised content)",
        "b/empty.png": "the file is empty (0 bytes)"}
    import hashlib

    assert not store.blobs.exists(hashlib.sha256(zeros).hexdigest())
