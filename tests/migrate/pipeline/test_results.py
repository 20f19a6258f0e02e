"""Phase results and the pipeline state as frozen values: ``result.json`` and ``state.json`` read back into the
same values and written out to the same bytes; a file that does not fit is refused, and ``run`` reruns that phase
instead of misreading it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_report_golden import lay_out_recorded_run

from modelyard.migrate.pipeline import phases as pipeline_phases
from modelyard.migrate.pipeline.results import (
    CompareResult,
    OptimizeResult,
    ResultError,
    Skipped,
    result_from_dict,
)
from modelyard.migrate.pipeline.run import PHASES, run_migration
from modelyard.migrate.pipeline.state import STATE_SCHEMA, MigrationState, PhaseState, load_state

GOLDEN = Path(__file__).parent / "golden"
RECORDED = [(case, phase) for case in ("passing", "partial") for phase in PHASES[:-1]]


def _recorded(case: str, phase: str) -> dict:
    return json.loads((GOLDEN / case / "results" / f"{phase}.json").read_text())


@pytest.mark.parametrize(("case", "phase"), RECORDED)
def test_a_recorded_result_reads_back_and_writes_the_same_bytes(case, phase):
    data = _recorded(case, phase)
    result = result_from_dict(phase, data)
    assert json.dumps(result.to_dict(), indent=1) == json.dumps(data, indent=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.reason = "changed"  # type: ignore[misc]


def test_results_are_typed_values():
    compare = result_from_dict("compare", _recorded("passing", "compare"))
    assert isinstance(compare, CompareResult) and compare.verdict == "pass" and compare.summary() == \
        "pass on onnxruntime:cpu"
    optimize = result_from_dict("optimize", _recorded("passing", "optimize"))
    assert isinstance(optimize, OptimizeResult)
    assert optimize.best.label == optimize.candidates[0].label and optimize.performance.baseline.runs
    assert optimize.best.accuracy["metric"] == "top1_agreement"
    skipped = result_from_dict("analyze", _recorded("partial", "analyze"))
    assert isinstance(skipped, Skipped) and skipped.skipped and skipped.summary().startswith("skipped: ")


def test_a_result_that_does_not_fit_is_refused_with_the_field_named():
    data = _recorded("passing", "coverage")
    with pytest.raises(ResultError, match="unknown fields 'colour'"):
        result_from_dict("coverage", {**data, "colour": "blue"})
    del data["native_nodes"]
    with pytest.raises(ResultError, match="missing field 'native_nodes'"):
        result_from_dict("coverage", data)


def test_state_round_trips_and_drops_an_entry_that_does_not_fit(tmp_path):
    state = MigrationState().with_phase("convert", PhaseState("done", "abc", started=1.0, seconds=2.0,
                                                                 finished=3.0, summary="x.onnx"))
    data = state.to_dict()
    assert data == {"schema": STATE_SCHEMA, "phases": {"convert": {
        "status": "done", "input_hash": "abc", "started": 1.0, "seconds": 2.0, "finished": 3.0, "summary": "x.onnx"}}}
    data["phases"]["compare"] = {"status": "done"}  # no input hash: cannot be trusted
    (tmp_path / "state.json").write_text(json.dumps(data))
    assert load_state(tmp_path) == state
    (tmp_path / "state.json").write_text("{not json")
    assert load_state(tmp_path) == MigrationState()


def test_run_reruns_a_phase_whose_result_does_not_fit(tmp_path, monkeypatch):
    root = tmp_path / "run"
    lay_out_recorded_run("partial", root)
    coverage = root / "out" / "coverage" / "result.json"
    coverage.write_text(json.dumps({**json.loads(coverage.read_text()), "colour": "blue"}))
    ran = []

    def fake_coverage(ctx):
        ran.append("coverage")
        return Skipped("no coverage backend in this test", {"target": "onnxruntime:cpu"})

    monkeypatch.setitem(pipeline_phases.PHASE_FUNCTIONS, "coverage", fake_coverage)
    result = run_migration(root / "migration.yaml", root / "out", cache_dir=root / "cache")
    assert ran == ["coverage"]
    assert [p.name for p in result.phases if not p.reused] == ["coverage", "report"]
    assert json.loads(coverage.read_text()) == {"skipped": True, "reason": "no coverage backend in this test",
                                                 "target": "onnxruntime:cpu"}
    report = json.loads((root / "out" / "report" / "report.json").read_text())
    assert report["migration_report"]["coverage"]["skipped"] == "no coverage backend in this test"
