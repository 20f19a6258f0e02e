"""Model-migration fixtures: tiny models and one real `transformers` architecture, exported once per session into
a shared pass cache so every test reuses the same artifacts."""

from __future__ import annotations

import pytest
import yaml

from modelyard.runtime.spec import load_spec


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("model-migrate")


@pytest.fixture(scope="session")
def model_cache(model_dir):
    return model_dir / "cache"


def _write_spec(model_dir, name: str, data: dict):
    path = model_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


@pytest.fixture(scope="session")
def cnn_spec(model_dir):
    return _write_spec(model_dir, "cnn", {
        "name": "cnn",
        "entrypoint": "modelyard.runtime.zoo:tiny_cnn",
        "kwargs": {"batchnorm": False},
        "inputs": [{"name": "x", "shape": ["batch", 3, 16, 16], "range": [-1, 1]}],
        "outputs": ["logits"],
        "dims": {"batch": 2},
        "task": {"type": "classification"},
    })


@pytest.fixture(scope="session")
def resnet_spec(model_dir):
    return _write_spec(model_dir, "resnet", {
        "name": "resnet",
        "entrypoint": "modelyard.runtime.zoo:hf_resnet",
        # bottleneck blocks add the residual in place (`x += residual`): layer dumps must copy, not view
        "kwargs": {"num_labels": 10, "layer_type": "bottleneck", "hidden_sizes": [32, 64], "depths": [2, 1]},
        "inputs": [{"name": "pixel_values", "shape": ["batch", 3, 32, 32], "range": [-1, 1]}],
        "dims": {"batch": 2},
        "task": {"type": "classification", "top_k": 3},
    })


@pytest.fixture(scope="session")
def bert_spec(model_dir):
    return _write_spec(model_dir, "bert", {
        "name": "bert",
        "entrypoint": "modelyard.runtime.zoo:hf_bert",
        "inputs": [
            {"name": "input_ids", "shape": ["batch", "seq"], "dtype": "int64", "range": [0, 100]},
            {"name": "attention_mask", "shape": ["batch", "seq"], "dtype": "int64", "range": [1, 2]},
        ],
        "dims": {"batch": 2, "seq": 12},
        "task": {"type": "classification"},
    })


def _export(spec, model_dir, model_cache, target="onnx"):
    from modelyard.migrate.model.passes import convert

    return convert(spec, target, out_dir=model_dir / "out" / spec.name, cache_dir=model_cache).artifact


@pytest.fixture(scope="session")
def cnn_onnx(cnn_spec, model_dir, model_cache):
    return _export(cnn_spec, model_dir, model_cache)


@pytest.fixture(scope="session")
def resnet_onnx(resnet_spec, model_dir, model_cache):
    return _export(resnet_spec, model_dir, model_cache)


@pytest.fixture(scope="session")
def resnet_fp16(resnet_spec, resnet_onnx, model_dir, model_cache):
    return _export(resnet_spec, model_dir, model_cache, "onnx-fp16")


@pytest.fixture(scope="session")
def bert_onnx(bert_spec, model_dir, model_cache):
    return _export(bert_spec, model_dir, model_cache)
