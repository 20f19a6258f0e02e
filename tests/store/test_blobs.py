import hashlib
import os
import subprocess
import sys

import pytest

from modelyard.core.errors import IntegrityError, InvalidInput, NotFound
from modelyard.store.blobs import BlobStore


@pytest.fixture
def store(tmp_path):
    return BlobStore(tmp_path / "blobs")


def test_put_is_content_addressed_and_deduplicated(store):
    first = store.put_bytes(b"hello")
    second = store.put_bytes(b"hello")
    assert first.digest == hashlib.sha256(b"hello").hexdigest() == second.digest
    assert first.size == 5
    assert list(store.iter_digests()) == [first.digest]
    assert store.read_bytes("sha256:" + first.digest) == b"hello"
    assert not any((store.root / "tmp").iterdir()), "no temp files may be left behind"


def test_published_blob_is_read_only(store):
    info = store.put_bytes(b"data")
    assert not os.stat(store.path_for(info.digest)).st_mode & 0o222


def test_tampered_blob_is_detected_on_every_read_path(store, tmp_path):
    info = store.put_bytes(b"original content")
    path = store.path_for(info.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered content")
    with pytest.raises(IntegrityError, match="corrupt"):
        store.verify(info.digest)
    with pytest.raises(IntegrityError):
        store.read_bytes(info.digest)
    with pytest.raises(IntegrityError):
        store.iter_verified(info.digest)
    with pytest.raises(IntegrityError):
        store.copy_to(info.digest, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


def test_missing_and_malformed_digests(store):
    with pytest.raises(NotFound):
        store.verify("0" * 64)
    with pytest.raises(InvalidInput, match="sha256"):
        store.path_for("../../etc/passwd")


def test_failed_write_leaves_nothing(store):
    class Exploding:
        def __init__(self):
            self.calls = 0

        def read(self, _n):
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk on fire")
            return b"x" * 10

    with pytest.raises(OSError):
        store.put_stream(Exploding())
    assert list(store.iter_digests()) == []
    assert not any((store.root / "tmp").iterdir())


def test_size_limit(store):
    import io

    with pytest.raises(InvalidInput, match="limit"):
        store.put_stream(io.BytesIO(b"x" * 100), max_bytes=10)


def test_two_processes_writing_at_once_lose_nothing(store):
    script = (
        "import sys; from modelyard.store.blobs import BlobStore\n"
        "s = BlobStore(sys.argv[1]); tag = sys.argv[2]\n"
        "for i in range(60):\n"
        "    s.put_bytes(f'shared-{i}'.encode()); s.put_bytes(f'{tag}-{i}'.encode())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(store.root), tag]) for tag in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    digests = set(store.iter_digests())
    expected = {hashlib.sha256(f"{t}-{i}".encode()).hexdigest() for t in ("a", "b", "shared") for i in range(60)}
    assert digests == expected
    for digest in digests:
        store.verify(digest)


def test_put_bytes_of_a_stored_blob_writes_nothing(store, monkeypatch):
    """Importing files that were uploaded already must not write (and fsync) each one a second time."""
    info = store.put_bytes(b"uploaded first")
    path = store.path_for(info.digest)
    os.utime(path, (1_000_000, 1_000_000))
    monkeypatch.setattr(store, "put_stream", lambda *a, **k: pytest.fail("wrote a stored blob again"))
    assert store.put_bytes(b"uploaded first") == info
    assert path.stat().st_mtime > 1_000_000  # renewed: garbage collection's grace period protects it again


def test_missing_and_materialize(store, tmp_path):
    a, b = store.put_bytes(b"a"), store.put_bytes(b"bb")
    absent = "sha256:" + "0" * 64
    os.utime(store.path_for(a.digest), (1_000_000, 1_000_000))
    assert store.missing(["sha256:" + a.digest, absent]) == [absent]
    assert store.path_for(a.digest).stat().st_mtime > 1_000_000  # the client will refer to it: renewed
    folder = store.materialize({"x/a.txt": a.digest, "b.txt": b.digest}, tmp_path / "copy")
    assert (folder / "x" / "a.txt").read_bytes() == b"a" and (folder / "b.txt").read_bytes() == b"bb"
    linked = store.materialize({"a.txt": a.digest}, tmp_path / "linked", link=True)
    assert (linked / "a.txt").read_bytes() == b"a"
    with pytest.raises(InvalidInput, match="leaves its folder"):
        store.materialize({"../escape.txt": a.digest}, tmp_path / "bad")
    assert not (tmp_path / "escape.txt").exists()
