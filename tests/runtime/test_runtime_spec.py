"""ModelSpec: loading, validation errors that name the field, building torch models and their weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.runtime.spec import load_spec, parse_spec
from modelyard.runtime.torch_backend import build_torch_model

BASE = {"entrypoint": "modelyard.runtime.zoo:tiny_mlp", "inputs": [{"name": "x", "shape": ["batch", 16]}]}


def test_yaml_and_json_specs_load_and_resolve_paths(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({**BASE, "weights": "w.safetensors"}))
    (tmp_path / "b.json").write_text(json.dumps(BASE))
    spec = load_spec(tmp_path / "a.yaml")
    assert spec.source_format == "torch"
    assert spec.resolve(spec.weights) == (tmp_path / "w.safetensors").resolve()
    assert load_spec(tmp_path / "b.json").inputs[0].concrete_shape({"batch": 4}) == (4, 16)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"inputs": [{"name": "x", "shape": [0, 3]}]}, "spec.inputs[0].shape"),
        ({"inputs": [{"name": "x", "shape": [1], "dtype": "float8"}]}, "spec.inputs[0].dtype"),
        ({"inputs": [{"name": "x", "shape": [1], "range": [2, 1]}]}, "spec.inputs[0].range"),
        ({"entrypoint": "no_colon"}, "spec.entrypoint"),
        ({"onnx": "m.onnx"}, "exactly one of"),
        ({"task": {"type": "segmentation"}}, "spec.task.type"),
        ({"colour": "blue"}, "spec.colour"),
    ],
)
def test_spec_errors_name_the_field(change, field):
    with pytest.raises(InvalidInput) as err:
        parse_spec({**BASE, **change})
    assert field in str(err.value)


def test_bad_yaml_and_missing_file_are_clear(tmp_path):
    (tmp_path / "bad.yaml").write_text("inputs: [unclosed")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    with pytest.raises(NotFound):
        load_spec(tmp_path / "nope.yaml")


def test_entrypoint_import_error_is_shown():
    spec = parse_spec({**BASE, "entrypoint": "modelyard_no_such_pkg.models:net"})
    with pytest.raises(InvalidInput, match="cannot import 'modelyard_no_such_pkg.models'.*No module named"):
        build_torch_model(spec)


def test_weights_from_safetensors_and_state_dict(tmp_path):
    from safetensors.torch import save_file

    model = build_torch_model(parse_spec(BASE))
    state = {k: torch.full_like(v, 0.5) for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(state, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        loaded = build_torch_model(parse_spec({**BASE, "weights": name}, base_dir=tmp_path))
        assert all(torch.equal(p, torch.full_like(p, 0.5)) for p in loaded.state_dict().values())


def test_missing_or_mismatched_weights_are_clear(tmp_path):
    with pytest.raises(NotFound, match="weight file"):
        build_torch_model(parse_spec({**BASE, "weights": "absent.pt"}, base_dir=tmp_path))
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "wrong.pt")
    with pytest.raises(InvalidInput, match="does not fit the model"):
        build_torch_model(parse_spec({**BASE, "weights": "wrong.pt"}, base_dir=tmp_path))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInput, match="cannot read junk.pt"):
        build_torch_model(parse_spec({**BASE, "weights": "junk.pt"}, base_dir=tmp_path))


def test_weights_only_refuses_pickled_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("should never run",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InvalidInput, match="cannot read evil.pt"):
        build_torch_model(parse_spec({**BASE, "weights": "evil.pt"}, base_dir=tmp_path))


def test_content_hash_changes_with_the_spec():
    a = parse_spec(BASE).content_hash()
    b = parse_spec({**BASE, "kwargs": {"hidden": 8}}).content_hash()
    assert a != b and len(a) == 64
    assert np.all([parse_spec(BASE).content_hash() == a])


def test_task_as_a_string_is_shorthand_for_its_type(tmp_path):
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({**BASE, "task": "classification"}))
    short = load_spec(tmp_path / "m.yaml")
    assert short.task.type == "classification" and short.task.top_k == 5 and short.task.output is None
    assert short.content_hash() == parse_spec({**BASE, "task": {"type": "classification"}}).content_hash()
    with pytest.raises(InvalidInput, match="spec.task"):
        parse_spec({**BASE, "task": "segmentation"})
