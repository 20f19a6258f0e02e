"""Benchmark engine: timing statistics, batch sizes, runtime options, operator profiles, CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.migrate.model.bench import BenchSettings, batched_feeds, benchmark, check_options, time_calls


def test_time_calls_reports_ordered_percentiles_and_throughput():
    stats = time_calls(lambda: sum(range(200)), batch_size=4,
                       settings=BenchSettings(warmup_s=0.0, min_iterations=20, max_seconds=0.5))
    assert stats.iterations >= 20 and stats.warmup >= 3
    assert stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.throughput == pytest.approx(4 * 1000 / stats.mean_ms)
    assert stats.to_dict()["latency_ms"]["p50"] == round(stats.p50_ms, 4)
    assert stats.peak_rss_mb is None or stats.peak_rss_mb > 1


def test_benchmark_engine_on_the_null_backend(tiny_spec, opt_dir, fast_bench):
    """The engine's plumbing (batch sizes, options, profile hook, result JSON) in milliseconds, no engine needed."""
    result = benchmark(tiny_spec, "null:cpu", batch_sizes=[1, 4, 1], options={"width": 3, "offset": None},
                       settings=fast_bench, profile=True, cache_dir=opt_dir / "cache" / "passes")
    data = result.to_dict()
    assert data["backend"] == "null:cpu" and data["model"].startswith("torch:")  # no export: null runs any format
    assert [r["batch_size"] for r in data["runs"]] == [1, 4]
    assert data["options"] == {"width": 3}
    assert all(r["iterations"] >= 10 and r["latency_ms"]["p50"] > 0 for r in data["runs"])
    assert data["profile"]["method"] == "null timer" and data["profile"]["batch_size"] == 1
    assert {row["op_type"] for row in data["profile"]["by_op_type"]} == {"Statistics", "MatMul"}
    assert data["runner_info"]["engine"] == "numpy"
    with pytest.raises(InvalidInput, match="unknown runtime option.*threads"):
        benchmark(tiny_spec, "null:cpu", options={"threads": 2}, settings=fast_bench)


@pytest.mark.slow
def test_benchmark_batch_sizes_and_onnxruntime_profile(tiny_spec, opt_dir, fast_bench):
    result = benchmark(tiny_spec, "onnxruntime:cpu", batch_sizes=[1, 3], options={"threads": 1},
                       settings=fast_bench, profile=True, cache_dir=opt_dir / "cache" / "passes")
    data = result.to_dict()
    assert data["schema"] == "modelyard.benchmark/1"
    assert [r["batch_size"] for r in data["runs"]] == [1, 3]
    assert data["options"] == {"threads": 1}
    profile = data["profile"]
    assert profile["method"] == "onnxruntime profiler" and profile["batch_size"] == 1
    ops = {row["op_type"] for row in profile["by_op_type"]}
    assert "Conv" in ops
    assert sum(row["share"] for row in profile["by_op_type"]) == pytest.approx(1.0, abs=0.01)
    assert profile["hot_spots"][0]["ms"] >= profile["hot_spots"][-1]["ms"]
    assert data["environment"]["packages"]["onnxruntime"]


@pytest.mark.slow
def test_benchmark_openvino_counters_and_precision(tiny_spec, opt_dir, fast_bench):
    result = benchmark(tiny_spec, "openvino:cpu", batch_sizes=[2], options={"precision": "f32", "threads": 1},
                       settings=fast_bench, profile=True, cache_dir=opt_dir / "cache" / "passes")
    assert result.runs[0].batch_size == 2
    assert result.runner_info["inference_precision_hint"] == "f32"
    assert result.profile["method"] == "openvino performance counters"
    assert any(row["op_type"].startswith("Convolution") for row in result.profile["by_op_type"])


def test_bad_inputs_are_clear(tiny_spec):
    with pytest.raises(InvalidInput, match="graph_optimization"):
        check_options("onnxruntime:cpu", {"graph_optimization": "max"})
    with pytest.raises(InvalidInput, match="unknown runtime option"):
        check_options("torch:cpu", {"precision": "bf16"})
    with pytest.raises(InvalidInput, match="threads=0"):
        check_options("openvino:cpu", {"threads": 0})
    assert check_options("torch:cpu", {"threads": 2, "dtype": None}) == {"threads": 2}
    fixed = tiny_spec.model_copy(update={"inputs": [tiny_spec.inputs[0].model_copy(update={"shape": [2, 3, 16, 16]})]})
    with pytest.raises(InvalidInput, match="fixed first dimension"):
        batched_feeds(fixed, 4)
    assert batched_feeds(tiny_spec, 5)["x"].shape == (5, 3, 16, 16)
    with pytest.raises(Unavailable, match="CUDAExecutionProvider"):
        benchmark(tiny_spec, "onnxruntime:cuda")


@pytest.mark.slow
def test_cli_benchmark_json_and_errors(tiny_spec, opt_dir):
    from modelyard.cli.main import app

    runner = CliRunner()
    spec_path = str(tiny_spec.base_dir / "tinycnn.yaml")
    result = runner.invoke(app, ["migrate", "benchmark", spec_path, "--backend", "torch:cpu", "--batch-sizes", "1,2",
                                 "--max-seconds", "0.2", "--cache-dir", str(opt_dir / "cache"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["backend"] == "torch:cpu" and len(data["runs"]) == 2
    bad = runner.invoke(app, ["migrate", "benchmark", spec_path, "--batch-sizes", "0,x"])
    assert bad.exit_code == 2 and "batch-sizes" in bad.output
