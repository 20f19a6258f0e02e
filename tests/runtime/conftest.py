"""Tiny models for the runtime tests, built and exported once per session."""

from __future__ import annotations

import pytest
import yaml

from modelyard.runtime.spec import load_spec


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="session")
def mlp_spec(runtime_dir):
    path = runtime_dir / "mlp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mlp",
        "entrypoint": "modelyard.runtime.zoo:tiny_mlp",
        "kwargs": {"in_features": 8, "hidden": 16, "out_features": 5, "depth": 2},
        "inputs": [{"name": "x", "shape": ["batch", 8], "range": [-1, 1]}],
        "outputs": ["logits"],
        "dims": {"batch": 3},
        "task": {"type": "classification"},
    }))
    return load_spec(path)


@pytest.fixture(scope="session")
def mlp_onnx(mlp_spec, runtime_dir):
    from modelyard.migrate.model.passes import convert

    return convert(mlp_spec, "onnx", out_dir=runtime_dir / "out", cache_dir=runtime_dir / "cache").artifact


@pytest.fixture(scope="session")
def mlp_ir(mlp_spec, runtime_dir, mlp_onnx):
    from modelyard.migrate.model.passes import convert

    return convert(mlp_spec, "openvino", out_dir=runtime_dir / "out", cache_dir=runtime_dir / "cache").artifact
