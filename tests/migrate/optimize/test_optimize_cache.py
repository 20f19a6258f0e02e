"""The optimiser's measurement cache keys on ``OptimizeSpec.content_hash()`` plus the digests of its inputs: what a
measurement depends on misses, what only chooses or judges candidates (budget, strategy, goals) and where the
data lies hit. The search itself reruns every time, so a hit can never hand back a result a bigger budget would
beat (see ``OptimizeSpec.not_hashed``)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from modelyard.migrate.model.bench import BenchSettings
from modelyard.migrate.optimize.search import measurement_key
from modelyard.migrate.optimize.space import build_space
from modelyard.migrate.optimize.spec import OptimizeSpec

SETTINGS = BenchSettings(warmup_s=0.02, min_iterations=10, max_iterations=200, max_seconds=0.2)


@pytest.fixture
def data(tmp_path):
    """The same samples in two folders, and different samples."""
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "samples.npz", x=rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "c").mkdir()
    np.savez(tmp_path / "c" / "samples.npz", x=rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    return {name: str(tmp_path / name / "samples.npz") for name in "abc"}


def test_same_spec_same_key(tiny_spec, data):
    key = measurement_key(tiny_spec, OptimizeSpec(samples=8, data=data["a"]), SETTINGS)
    assert measurement_key(tiny_spec, OptimizeSpec(samples=8, data=data["a"]), SETTINGS) == key


@pytest.mark.parametrize("change", [
    {"budget_s": 5.0}, {"budget_s": None}, {"strategy": "exhaustive"}, {"top_k": 5}, {"objective": "throughput"},
    {"max_accuracy_drop": 0.2}, {"min_speedup": 3.0}, {"target": "onnxruntime:cpu"},
])
def test_what_only_chooses_or_judges_candidates_is_not_in_the_key(tiny_spec, data, change):
    base = OptimizeSpec(samples=8, data=data["a"])
    assert measurement_key(tiny_spec, base.model_copy(update=change), SETTINGS) == \
        measurement_key(tiny_spec, base, SETTINGS)


def test_where_the_data_lies_is_not_in_the_key_its_content_is(tiny_spec, data):
    key = measurement_key(tiny_spec, OptimizeSpec(data=data["a"], calib=data["a"]), SETTINGS)
    assert measurement_key(tiny_spec, OptimizeSpec(data=data["b"], calib=data["b"]), SETTINGS) == key
    assert measurement_key(tiny_spec, OptimizeSpec(data=data["c"], calib=data["a"]), SETTINGS) != key
    assert measurement_key(tiny_spec, OptimizeSpec(data=data["a"], calib=data["c"]), SETTINGS) != key


@pytest.mark.parametrize("change", [{"samples": 16}, {"seed": 1}, {"batch_size": 2}])
def test_what_a_measurement_depends_on_is_in_the_key(tiny_spec, change):
    base = OptimizeSpec(samples=8)
    assert measurement_key(tiny_spec, base.model_copy(update=change), SETTINGS) != \
        measurement_key(tiny_spec, base, SETTINGS)


def test_the_model_and_the_timing_settings_are_in_the_key(tiny_spec, cnn_spec):
    spec = OptimizeSpec()
    key = measurement_key(tiny_spec, spec, SETTINGS)
    assert measurement_key(cnn_spec, spec, SETTINGS) != key
    assert measurement_key(tiny_spec, spec, BenchSettings(max_seconds=1.0)) != key


def test_a_variants_key_ignores_where_its_calibration_data_lies(data):
    """The calibration data's content is in the measurement key (above); the variant's key holds its passes'
    config hashes, which leave the path out."""
    def space(calibration):
        return build_space("onnxruntime:cpu", "torch", calibration).variants

    configs = [cfg for variant in space(data["a"]) for _, cfg in variant.pass_list()]
    assert any(cfg.get("calibration") == data["a"] for cfg in configs)
    assert [v.key() for v in space(data["a"])] == [v.key() for v in space(data["b"])]
