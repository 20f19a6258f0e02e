"""The edge bundle file: one uncompressed tar holding ``manifest.json``, ``manifest.sig`` (Ed25519 over the manifest's
exact bytes) and ``files/<name>`` for every file the manifest lists with its sha256 and size.

Reading is verify-first: :func:`unpack_verified` extracts into a scratch folder, checks the signature against the
key the device trusts and every file's hash and size, refuses anything the manifest does not list, and only then
renames the folder into place. Signing lives here too (the platform's ``bundles`` module calls it), so the format has
one definition.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

from modelyard.core.errors import ModelyardError

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FILES_PREFIX = "files/"
BUNDLE_SCHEMA = "modelyard.edge-bundle/1"


class BundleRefused(ModelyardError):
    """The bundle's signature or a file's hash does not verify, or the file is not a bundle."""

    code = "bundle_refused"
    status = 422


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_manifest(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign(manifest_bytes: bytes, private_key_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(private_key_pem, password=None).sign(manifest_bytes)


def verify_signature(manifest_bytes: bytes, signature: bytes, public_key_hex: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(signature, manifest_bytes)
    except (InvalidSignature, ValueError) as exc:
        raise BundleRefused("bundle signature does not verify against the platform key") from exc


def write_bundle(out: Path, manifest: dict, files: dict[str, Path], private_key_pem: bytes) -> None:
    """Write a signed bundle to ``out`` (atomically). ``manifest["files"]`` is filled from ``files``."""
    manifest = dict(manifest, schema=BUNDLE_SCHEMA,
                    files={name: {"sha256": sha256_file(path), "size": path.stat().st_size}
                           for name, path in sorted(files.items())})
    manifest_bytes = canonical_manifest(manifest)
    signature = sign(manifest_bytes, private_key_pem)
    scratch = out.with_name(out.name + ".tmp")
    with tarfile.open(scratch, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((MANIFEST, manifest_bytes), (SIGNATURE, signature)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, path in sorted(files.items()):
            tar.add(str(path), arcname=FILES_PREFIX + name, recursive=False)
    os.replace(scratch, out)


def read_manifest(bundle: Path, public_key_hex: str) -> dict:
    """The manifest of ``bundle`` after checking its signature (files not checked: see :func:`unpack_verified`)."""
    try:
        with tarfile.open(bundle, "r:") as tar:
            manifest_bytes = _member_bytes(tar, MANIFEST)
            signature = _member_bytes(tar, SIGNATURE)
    except (tarfile.TarError, OSError) as exc:
        raise BundleRefused(f"not a readable bundle: {exc}") from exc
    verify_signature(manifest_bytes, signature, public_key_hex)
    return json.loads(manifest_bytes)


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.getmember(name)
    except KeyError as exc:
        raise BundleRefused(f"bundle has no {name}") from exc
    handle = tar.extractfile(member)
    if handle is None:
        raise BundleRefused(f"bundle member {name} is not a file")
    return handle.read()


def unpack_verified(bundle: Path, dest: Path, public_key_hex: str) -> dict:
    """Verify ``bundle`` and unpack its files into ``dest`` (which must not exist); returns the manifest.

    Nothing lands at ``dest`` unless the signature and every file's sha256 and size verify.
    """
    manifest = read_manifest(bundle, public_key_hex)
    listed: dict = manifest.get("files") or {}
    scratch = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        with tarfile.open(bundle, "r:") as tar:
            seen = set()
            for member in tar.getmembers():
                if member.name in (MANIFEST, SIGNATURE):
                    continue
                name = member.name.removeprefix(FILES_PREFIX)
                if not member.name.startswith(FILES_PREFIX) or name not in listed or not member.isfile() \
                        or "/" in name or name in (".", ".."):
                    raise BundleRefused(f"bundle holds {member.name!r}, which its manifest does not list")
                target = scratch / name
                with tar.extractfile(member) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                seen.add(name)
        for name, info in listed.items():
            path = scratch / name
            if name not in seen:
                raise BundleRefused(f"bundle lacks {name}, which its manifest lists")
            if path.stat().st_size != info["size"] or sha256_file(path) != info["sha256"]:
                raise BundleRefused(f"bundle file {name} does not match its sha256 in the signed manifest")
        (scratch / MANIFEST).write_bytes(canonical_manifest(manifest))
        os.replace(scratch, dest)
    except tarfile.TarError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise BundleRefused(f"bundle is not a readable tar file: {exc}") from exc
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return manifest
