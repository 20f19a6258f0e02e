"""The signed bundle format: verify-first unpacking refuses a wrong key, one changed byte, an unlisted file."""

from __future__ import annotations

import io
import tarfile

import pytest

from modelyard.edge.agent.bundle_file import BundleRefused, read_manifest, unpack_verified, write_bundle


def _keys():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    return pem, public


@pytest.fixture()
def bundle(tmp_path):
    pem, public = _keys()
    (tmp_path / "model.onnx").write_bytes(b"model-bytes" * 100)
    (tmp_path / "samples.npz").write_bytes(b"samples")
    out = tmp_path / "b.myb"
    write_bundle(out, {"bundle": "bdl_1"}, {"model.onnx": tmp_path / "model.onnx",
                                            "samples.npz": tmp_path / "samples.npz"}, pem)
    return out, public


def test_a_signed_bundle_unpacks_with_its_manifest(bundle, tmp_path):
    path, public = bundle
    manifest = unpack_verified(path, tmp_path / "slot", public)
    assert manifest["bundle"] == "bdl_1" and set(manifest["files"]) == {"model.onnx", "samples.npz"}
    assert (tmp_path / "slot" / "model.onnx").read_bytes() == b"model-bytes" * 100


def test_another_key_is_refused(bundle, tmp_path):
    path, _ = bundle
    _, other = _keys()
    with pytest.raises(BundleRefused, match="signature"):
        read_manifest(path, other)


def test_one_changed_byte_is_refused_and_nothing_lands(bundle, tmp_path):
    path, public = bundle
    data = bytearray(path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        offset = tar.getmember("files/model.onnx").offset_data
    data[offset + 5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleRefused, match="model.onnx does not match its sha256"):
        unpack_verified(path, tmp_path / "slot", public)
    assert not (tmp_path / "slot").exists() and not (tmp_path / "slot.unpack").exists()


def test_a_file_the_manifest_does_not_list_is_refused(bundle, tmp_path):
    path, public = bundle
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo("files/extra.sh")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(BundleRefused, match="does not list"):
        unpack_verified(path, tmp_path / "slot", public)


def test_the_signing_key_is_created_once_when_many_threads_ask_at_once(tmp_path):
    """Three agents activating together reached the key's first creation on three server threads: the scratch file
    was named by the process id only, so the second thread's exclusive create failed (a 500 at activation)."""
    from concurrent.futures import ThreadPoolExecutor

    from modelyard.edge.bundles import signing_key

    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: signing_key(tmp_path), range(32)))
    assert len(set(keys)) == 1 and keys[0].startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in (tmp_path / "edge").iterdir()] == ["signing-key.pem"]  # no scratch file left behind
