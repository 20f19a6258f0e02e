"""Tiny models for every test folder, built and exported once per session into a shared pass cache.

A pytest plugin (``pytest_plugins`` in ``tests/conftest.py``): any test takes these fixtures by name, no import.
Torch factories come from ``modelyard.runtime.zoo``; ``resnet_*`` and ``bert_*`` are small real ``transformers``
architectures (exporting them takes seconds: tests using them are marked slow).
"""

from __future__ import annotations

import pytest
import yaml

from modelyard.runtime.spec import load_spec

# the CNN of the benchmark, optimise and pipeline tests (batch 1: latency is measured per sample)
TINY_CNN = {
    "name": "tinycnn",
    "entrypoint": "modelyard.runtime.zoo:tiny_cnn",
    "kwargs": {"batchnorm": False},
    "inputs": [{"name": "x", "shape": ["batch", 3, 16, 16], "range": [-1, 1]}],
    "outputs": ["logits"],
    "dims": {"batch": 1},
    "task": {"type": "classification"},
}


def _write_spec(folder, name: str, data: dict):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def _export(spec, model_dir, model_cache, target="onnx"):
    from modelyard.migrate.model.passes import convert

    return convert(spec, target, out_dir=model_dir / "out" / spec.name, cache_dir=model_cache).artifact


# -- an MLP (runtime backends) -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def runtime_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="session")
def mlp_spec(runtime_dir):
    return _write_spec(runtime_dir, "mlp", {
        "name": "mlp",
        "entrypoint": "modelyard.runtime.zoo:tiny_mlp",
        "kwargs": {"in_features": 8, "hidden": 16, "out_features": 5, "depth": 2},
        "inputs": [{"name": "x", "shape": ["batch", 8], "range": [-1, 1]}],
        "outputs": ["logits"],
        "dims": {"batch": 3},
        "task": {"type": "classification"},
    })


@pytest.fixture(scope="session")
def mlp_onnx(mlp_spec, runtime_dir):
    from modelyard.migrate.model.passes import convert

    return convert(mlp_spec, "onnx", out_dir=runtime_dir / "out", cache_dir=runtime_dir / "cache").artifact


@pytest.fixture(scope="session")
def mlp_ir(mlp_spec, runtime_dir, mlp_onnx):
    from modelyard.migrate.model.passes import convert

    return convert(mlp_spec, "openvino", out_dir=runtime_dir / "out", cache_dir=runtime_dir / "cache").artifact


# -- a CNN, a ResNet and a BERT (model migration) ------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("model-migrate")


@pytest.fixture(scope="session")
def model_cache(model_dir):
    return model_dir / "cache"


@pytest.fixture(scope="session")
def cnn_spec(model_dir):
    return _write_spec(model_dir, "cnn", {**TINY_CNN, "name": "cnn", "dims": {"batch": 2}})


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


# -- the CNN at batch 1 with fast benchmark settings (benchmark, optimise, pipeline) -------------------------------


@pytest.fixture(scope="session")
def opt_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("optimize")


@pytest.fixture(scope="session")
def tiny_spec(opt_dir):
    return _write_spec(opt_dir, "tinycnn", TINY_CNN)


@pytest.fixture(scope="session")
def fast_bench():
    from modelyard.migrate.model.bench import BenchSettings

    return BenchSettings(warmup_s=0.02, min_iterations=10, max_iterations=200, max_seconds=0.2)
