"""The S3 blob store against a real S3 server (SeaweedFS): the BlobStore contract, multipart, clear errors."""

from __future__ import annotations

import io
import os

import pytest

from modelyard.core.errors import IntegrityError, NotFound, WorkspaceError
from modelyard.core.settings import Settings
from modelyard.store.blob_stores import open_blob_store
from modelyard.store.s3blobs import MULTIPART_BYTES, S3BlobStore, parse_s3_url


@pytest.fixture
def s3_store(s3_server, tmp_path) -> S3BlobStore:
    settings = Settings.load(tmp_path / "home", **s3_server.settings_values())
    store = open_blob_store(settings)
    assert isinstance(store, S3BlobStore)
    return store


def test_parse_s3_url():
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    with pytest.raises(Exception, match="names no bucket"):
        parse_s3_url("s3:///x")


def test_settings_refuse_a_blob_url_that_is_not_s3(tmp_path):
    with pytest.raises(WorkspaceError, match="must be s3://"):
        Settings.load(tmp_path, blob_url="/mnt/blobs")


@pytest.mark.slow
def test_put_read_verify_and_dedup(s3_store, s3_server, tmp_path):
    info = s3_store.put_bytes(b"hello s3")
    assert s3_store.exists(info.digest) and s3_store.info("sha256:" + info.digest).size == 8
    assert s3_store.read_bytes(info.digest) == b"hello s3"
    assert s3_store.put_stream(io.BytesIO(b"hello s3")) == info  # same content, same blob
    assert list(s3_store.iter_digests()) == [info.digest]
    assert b"".join(s3_store.iter_verified(info.digest)) == b"hello s3"
    dest = s3_store.copy_to(info.digest, tmp_path / "out" / "file.bin")
    assert dest.read_bytes() == b"hello s3"
    folder = s3_store.materialize({"a/b.txt": info.digest}, tmp_path / "tree", link=True)
    assert (folder / "a" / "b.txt").read_bytes() == b"hello s3"
    assert s3_store.missing([info.digest, "0" * 64]) == ["0" * 64]
    # the object really is in the bucket, under the prefix, named by its digest
    key = f"{s3_store.prefix}/sha256/{info.digest[:2]}/{info.digest[2:]}"
    body = s3_server.client().get_object(Bucket=s3_store.bucket, Key=key)["Body"].read()
    assert body == b"hello s3"
    # staging files are gone
    assert not any((s3_store.root / "tmp").iterdir())


@pytest.mark.slow
def test_a_tampered_object_is_reported_never_served(s3_store, s3_server):
    info = s3_store.put_bytes(b"the real content")
    s3_server.client().put_object(Bucket=s3_store.bucket, Key=s3_store.key_for(info.digest), Body=b"rotten")
    with pytest.raises(IntegrityError, match="corrupt"):
        s3_store.read_bytes(info.digest)
    with pytest.raises(IntegrityError):
        s3_store.verify(info.digest)
    with pytest.raises(IntegrityError):
        s3_store.iter_verified(info.digest)


@pytest.mark.slow
def test_missing_blob_is_not_found(s3_store):
    with pytest.raises(NotFound):
        s3_store.read_bytes("ab" * 32)
    with pytest.raises(NotFound):
        s3_store.info("ab" * 32)
    assert s3_store.stat("ab" * 32) is None


@pytest.mark.slow
def test_large_blob_goes_up_in_parts(s3_store, s3_server, tmp_path):
    data = os.urandom(MULTIPART_BYTES + 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    info = s3_store.put_file(path)
    head = s3_server.client().head_object(Bucket=s3_store.bucket, Key=s3_store.key_for(info.digest))
    assert head["ContentLength"] == len(data)
    assert "-" in head["ETag"]  # a multipart upload's ETag is "<md5 of part md5s>-<parts>"
    assert s3_store.verify(info.digest).size == len(data)


@pytest.mark.slow
def test_wrong_credentials_and_missing_bucket_are_one_clear_line(s3_server, tmp_path):
    values = s3_server.settings_values()
    wrong = open_blob_store(Settings.load(tmp_path / "a", **{**values, "s3_secret_access_key": "nope"}))
    with pytest.raises(WorkspaceError, match="access denied") as caught:
        wrong.put_bytes(b"x")
    assert "\n" not in str(caught.value)
    gone = open_blob_store(Settings.load(tmp_path / "b", **{**values, "blob_url": "s3://no-such-bucket-xyz/p"}))
    with pytest.raises(WorkspaceError, match="bucket 'no-such-bucket-xyz' does not exist"):
        gone.check_bucket()  # (SeaweedFS makes a missing bucket on the first PUT by an admin, AWS refuses it)


@pytest.mark.slow
def test_gc_deletes_unreferenced_s3_blobs(s3_server, tmp_path):
    from modelyard.store.gc import collect_garbage
    from modelyard.store.workspace import Workspace

    values = s3_server.settings_values()
    workspace = Workspace.open(Settings.load(tmp_path / "ws", blob_gc_grace_s=0, **values))
    try:
        info = workspace.blobs.put_bytes(b"nobody refers to me")
        result = collect_garbage(workspace, dry_run=False, grace_s=0)
        assert info.digest in result.deleted
        assert not workspace.blobs.exists(info.digest)
    finally:
        workspace.close()
