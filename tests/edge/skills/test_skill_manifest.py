from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelyard.core.errors import IntegrityError, InvalidInput, NotFound
from modelyard.edge.skills.manifest import ModelRef, channel_config, load_logic, load_manifest, validate_config

BRIGHTNESS = Path(__file__).parent / "brightness_skill"


def _copy(tmp_path, edit=None, logic=None) -> Path:
    target = tmp_path / "skill"
    shutil.copytree(BRIGHTNESS, target)
    if edit:
        text = (target / "skill.yaml").read_text()
        (target / "skill.yaml").write_text(edit(text))
    if logic is not None:
        (target / "logic.py").write_text(logic)
    return target


def test_a_valid_manifest_loads_with_its_schemas():
    manifest = load_manifest(BRIGHTNESS)
    assert manifest.name == "brightness" and manifest.inputs == ["video"] and manifest.batch
    assert manifest.config.channel["properties"]["threshold"]["maximum"] == 255


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("inputs: [video]", "inputs: [smell]"), "inputs.0"),
    (lambda t: t.replace("inputs: [video]", "inputs: []"), "at least one input"),
    (lambda t: t.replace("license: Apache-2.0\n", ""), "license"),
    (lambda t: t.replace("minimum: 0, maximum: 255", "minimum: zero"), "not a valid JSON Schema"),
    (lambda t: t + "surprise: 1\n", "surprise"),
    (lambda t: t.replace("name: brightness", "name: Bad Name"), "name"),
])
def test_bad_manifests_are_refused_with_the_field(tmp_path, edit, message):
    with pytest.raises(InvalidInput, match=message):
        load_manifest(_copy(tmp_path, edit))


def test_a_folder_without_a_manifest_or_logic_hooks(tmp_path):
    with pytest.raises(NotFound, match="no skill.yaml"):
        load_manifest(tmp_path)
    folder = _copy(tmp_path, logic="def setup(config):\n    pass\n")
    with pytest.raises(InvalidInput, match="no process"):
        load_logic(folder, load_manifest(folder))
    folder2 = _copy(tmp_path / "b", logic="def setup(c):\n    pass\n\ndef process(i, c):\n    return []\n")
    with pytest.raises(InvalidInput, match="no infer_batch"):
        load_logic(folder2, load_manifest(folder2))


def test_config_validation_names_the_channel_and_the_field():
    manifest = load_manifest(BRIGHTNESS)
    validate_config(manifest, {"fail": "never"}, {"a": {"source": "x.mp4", "fps": 5, "config": {"threshold": 10}}})
    with pytest.raises(InvalidInput, match="global config: fail"):
        validate_config(manifest, {"fail": "sometimes"}, {})
    with pytest.raises(InvalidInput, match="channel b: config: threshold: 300 is greater"):
        validate_config(manifest, {}, {"a": {"config": {}}, "b": {"config": {"threshold": 300}}})
    with pytest.raises(InvalidInput, match="channel a: config: Additional properties"):
        validate_config(manifest, {}, {"a": {"config": {"zone": 1}}})
    with pytest.raises(InvalidInput, match="channel a: fps must be"):
        validate_config(manifest, {}, {"a": {"fps": 0}})
    with pytest.raises(InvalidInput, match="channel a: unknown key"):
        validate_config(manifest, {}, {"a": {"threshold": 3}})


def test_channel_config_overlays_the_global_one():
    assert channel_config({"a": 1, "b": 2}, {"config": {"b": 3}}) == {"a": 1, "b": 3}


def test_model_refs_are_verified_by_hash():
    import hashlib

    import jsonschema

    path = Path(jsonschema.__file__)
    good = ModelRef(name="m", package="jsonschema", file=path.name,
                    sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    assert good.verify()["bytes"] == path.stat().st_size
    with pytest.raises(IntegrityError, match="the manifest pins"):
        ModelRef(name="m", package="jsonschema", file=path.name, sha256="0" * 64).verify()
    with pytest.raises(NotFound, match="missing from package"):
        ModelRef(name="m", package="jsonschema", file="nope.onnx", sha256="0" * 64).verify()
