"""In-process uploads of files larger than one request body go up in chunks, as they do against a server (a
foundation model's GGUF file is larger than the default 64 MiB limit)."""

from __future__ import annotations


def test_in_process_upload_above_the_body_limit_goes_up_in_chunks(tmp_path, monkeypatch):
    from modelyard.client import Client

    monkeypatch.setenv("MODELYARD_MAX_BODY_BYTES", str(1 << 20))
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (6 << 10))  # 1.5 MiB
    with Client(home=tmp_path / "home") as client:
        stored = client.blobs.put(big)
        assert stored["size"] == big.stat().st_size
        assert client._workspace.blobs.read_bytes(stored["digest"]) == big.read_bytes()
