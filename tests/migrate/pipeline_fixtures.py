"""Shared fixtures of the benchmark, optimise and pipeline tests (imported explicitly by those test files)."""

from __future__ import annotations

import pytest
import yaml

from modelyard.runtime.spec import load_spec

TINY_CNN = {
    "name": "tinycnn",
    "entrypoint": "modelyard.runtime.zoo:tiny_cnn",
    "kwargs": {"batchnorm": False},
    "inputs": [{"name": "x", "shape": ["batch", 3, 16, 16], "range": [-1, 1]}],
    "outputs": ["logits"],
    "dims": {"batch": 1},
    "task": {"type": "classification"},
}


@pytest.fixture(scope="session")
def opt_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("optimize")


@pytest.fixture(scope="session")
def tiny_spec(opt_dir):
    path = opt_dir / "tinycnn.yaml"
    path.write_text(yaml.safe_dump(TINY_CNN))
    return load_spec(path)


@pytest.fixture(scope="session")
def fast_bench():
    from modelyard.migrate.model.bench import BenchSettings

    return BenchSettings(warmup_s=0.02, min_iterations=10, max_iterations=200, max_seconds=0.2)
