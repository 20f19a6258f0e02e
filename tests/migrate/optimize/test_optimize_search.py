"""Accuracy-gated optimisation: gate, NNCF-style float fallback, Pareto front, best artifact, cache, budget, goals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.migrate.optimize.search import optimize
from modelyard.migrate.optimize.space import build_space, keep_float_variant

pytestmark = pytest.mark.slow  # optimisation searches (one of them with a 300 s budget)

ISSUE_KEYS = {
    "top": {"schema", "target", "objective", "baseline", "best", "candidates"},
    "baseline": {"backend", "latency_ms_p50", "throughput"},
    "best": {"backend", "passes", "options", "artifact", "latency_ms_p50", "throughput", "speedup", "accuracy"},
    "candidate": {"backend", "passes", "options", "latency_ms_p50", "speedup", "accuracy", "accepted", "reason"},
}


@pytest.fixture(scope="session")
def ov_search(tiny_spec, opt_dir, fast_bench):
    """One search over OpenVINO on the tiny CNN: its NNCF INT8 loses top-1 agreement on these inputs."""
    return optimize(tiny_spec, "openvino:cpu", samples=32, budget_s=300, out_dir=opt_dir / "ov",
                    cache_dir=opt_dir / "cache", settings=fast_bench, top_k=1)


def test_result_follows_the_documented_schema(ov_search):
    result = ov_search
    data = json.loads(json.dumps(result.to_dict()))
    assert data["schema"] == "modelyard.optimize/1"
    assert ISSUE_KEYS["top"] <= set(data)
    assert ISSUE_KEYS["baseline"] <= set(data["baseline"]) and data["baseline"]["backend"] == "torch:cpu"
    assert ISSUE_KEYS["best"] <= set(data["best"])
    for candidate in data["candidates"]:
        assert ISSUE_KEYS["candidate"] <= set(candidate)
        if candidate["options"].get("precision"):
            assert candidate["options"]["precision"] in ("f32", "bf16", "f16")  # recorded per candidate


def test_best_is_the_fastest_accepted_and_its_artifact_is_published(ov_search):
    result = ov_search
    accepted = [c for c in result.candidates if c.accepted]
    assert result.best is not None and bool(result)
    assert result.best.latency_ms_p50 == min(c.latency_ms_p50 for c in accepted)
    assert result.best.accuracy["drop"] <= 0.01
    best_file = Path(result.best_artifact)
    assert best_file.is_file() and best_file.parent.name == "best"
    runtime = json.loads((best_file.parent / "runtime.json").read_text())
    assert runtime["backend"] == "openvino:cpu" and runtime["options"] == result.best.options
    if best_file.suffix == ".xml":
        assert best_file.with_suffix(".bin").is_file()
    assert (best_file.parent.parent / "optimize.json").is_file()


def test_failing_int8_is_retried_with_blamed_layers_in_float(ov_search):
    result = ov_search
    rejected_int8 = [c for c in result.candidates if not c.accepted and "int8" in c.label and c.parent is None]
    assert rejected_int8, "the tiny CNN's INT8 should lose agreement on random inputs"
    assert "loses" in rejected_int8[0].reason
    fallbacks = [c for c in result.candidates if c.parent is not None]
    assert fallbacks, "a failing INT8 variant must be retried with layers kept in float"
    names = [p["name"] for p in fallbacks[0].passes]
    assert "nncf-int8-keep-float" in names
    config = next(p["config"] for p in fallbacks[0].passes if p["name"] == "nncf-int8-keep-float")
    assert config["exclude_nodes"]
    assert fallbacks[-1].accuracy["value"] >= rejected_int8[0].accuracy["value"]


def test_pareto_front_is_not_dominated(ov_search):
    result = ov_search
    front = [c for c in result.candidates if c.pareto]
    assert front
    for c in front:
        assert not any(o.latency_ms_p50 < c.latency_ms_p50 and o.accuracy["drop"] < c.accuracy["drop"]
                       for o in result.candidates if o.latency_ms_p50 is not None)


def test_rerun_reuses_cached_results_and_says_why_a_goal_is_unreachable(ov_search, tiny_spec, opt_dir, fast_bench):
    first = ov_search
    # another budget, goal and output folder: none of them is in the measurement cache's key
    again = optimize(tiny_spec, "openvino:cpu", samples=32, budget_s=600, out_dir=opt_dir / "ov2",
                     cache_dir=opt_dir / "cache", settings=fast_bench, top_k=1, min_speedup=1e9)
    measured = [c for c in again.candidates if c.latency is not None]
    assert measured and all(c.cached for c in measured)  # the rerun measured nothing: every latency came from the cache
    assert again.best.latency_ms_p50 == first.best.latency_ms_p50
    assert any("1e+09x speedup not reached" in note for note in again.notes), again.notes


def test_budget_stops_the_search(tiny_spec, opt_dir, fast_bench):
    result = optimize(tiny_spec, "onnxruntime:cpu", samples=8, budget_s=0.001, out_dir=opt_dir / "budget",
                      cache_dir=opt_dir / "cache", settings=fast_bench, use_cache=False)
    assert result.stopped == "budget" and result.best is None and not result
    assert any("budget" in note for note in result.notes)


def test_missing_backends_are_skipped_with_reasons():
    space = build_space("npu", "torch")
    assert space.baseline == "torch:npu"
    assert {s["backend"] for s in space.skipped} >= {"onnxruntime:cann"}
    assert all(s["reason"] for s in space.skipped)
    assert not any(v.backend == "onnxruntime:cann" for v in space.variants)
    with pytest.raises(InvalidInput, match="--target"):
        build_space("tpu", "torch")


def test_keep_float_variant_swaps_the_int8_pass():
    space = build_space("onnxruntime:cpu", "torch")
    static = next(v for v in space.variants if v.label == "onnxruntime int8 static per-channel")
    retry = keep_float_variant(static, ["node_a"], ["stage1.0"])
    assert retry.pass_list()[0][0] == "int8-static-keep-float"
    assert retry.pass_list()[0][1]["exclude_nodes"] == ["node_a"] and retry.parent == static.label
    fp32 = next(v for v in space.variants if v.numeric_class == "fp32")
    assert keep_float_variant(fp32, ["n"], ["l"]) is None


def test_bad_arguments_name_the_option(tiny_spec):
    with pytest.raises(InvalidInput, match="--objective"):
        optimize(tiny_spec, objective="speed")
    with pytest.raises(InvalidInput, match="--max-accuracy-drop"):
        optimize(tiny_spec, max_accuracy_drop=5)
