"""The migration pipeline: phases, reports, resume after a failure or a kill, input-hash invalidation, config
errors naming the field."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from modelyard.core.errors import InvalidInput, ModelyardError
from modelyard.migrate.pipeline import phases as pipeline_phases
from modelyard.migrate.pipeline.config import load_migration, parse_migration
from modelyard.migrate.pipeline.run import PHASES, PhaseFailed, run_migration
from tiny_models import TINY_CNN

PROJECT = '''import torch

model = torch.nn.Linear(4, 2).cuda()
torch.backends.cudnn.benchmark = True
x = torch.randn(8, 4, device="cuda")
torch.cuda.synchronize()
'''


def _config(tmp, **overrides) -> dict:
    data = {
        "name": "tiny",
        "source": "project",
        "model": dict(TINY_CNN),
        "target": "onnxruntime:cpu",
        "goals": {"max_accuracy_drop": 0.01, "min_speedup": 0.01, "min_readiness": 1, "min_coverage": 0.5},
        "compare": {"samples": 4, "layerwise": True},
        "optimize": {"budget_s": 60, "samples": 8, "top_k": 1},
        "benchmark": {"batch_sizes": [1, 2]},
        "owners": {"default": "ml team", "categories": {"build": "platform team"}},
    }
    data.update(overrides)
    return data


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    (root / "project").mkdir()
    (root / "project" / "train.py").write_text(PROJECT)
    (root / "migration.yaml").write_text(yaml.safe_dump(_config(root)))
    return root


@pytest.fixture(scope="module")
def first_run(project):
    return run_migration(project / "migration.yaml", project / "out", cache_dir=project / "cache")


@pytest.fixture
def finished(first_run, project, tmp_path):
    """A copy of the project after the first run (config, out folder, cache) for one test to change: no test sees
    another's edits, so they pass in any order and alone."""
    copy = tmp_path / "pipeline"
    shutil.copytree(project, copy, symlinks=True)
    return copy


def _rewrite(project, **overrides):
    (project / "migration.yaml").write_text(yaml.safe_dump(_config(project, **overrides)))


@pytest.mark.slow
def test_first_run_does_every_phase_and_writes_the_reports(first_run, project):
    assert [p.name for p in first_run.phases] == list(PHASES)
    assert all(p.status == "done" and not p.reused for p in first_run.phases)
    assert first_run.headline.readiness_score is not None and first_run.headline.verdict == "pass"
    assert first_run.headline.speedup and first_run
    doc = json.loads((project / "out" / "report" / "report.json").read_text())
    assert doc["schema"] == "modelyard.migration-report/1"
    mig, tests = doc["migration_report"], doc["test_report"]
    assert mig["changes"] and mig["manual_items"] and all(m["owner"] for m in mig["manual_items"])
    assert mig["coverage"]["coverage"] == pytest.approx(1.0)
    assert tests["precision"]["layers"] and tests["performance"]["batch_sizes"] == [1, 2]
    assert len(tests["performance"]["chosen"]["runs"]) == 2
    assert tests["environment"]["input_hashes"]["model"] and tests["environment"]["seed"] == 0
    assert {row["goal"] for row in doc["acceptance"]} >= {"accuracy drop", "speedup vs baseline", "code readiness"}
    page = (project / "out" / "report" / "report.html").read_text()
    assert page.count("<svg") >= 4 and "<script" not in page and "<link" not in page and " src=" not in page
    markdown = (project / "out" / "report" / "report.md").read_text()
    assert "## Acceptance checklist" in markdown and "## 2. Test report" in markdown
    manifest = json.loads((project / "out" / "package" / "MANIFEST.json").read_text())
    assert any(name.startswith("model/") for name in manifest["files"]) and "code/train.py" in manifest["files"]


@pytest.mark.slow
def test_unchanged_inputs_reuse_every_phase(first_run, finished):
    again = run_migration(finished / "migration.yaml", finished / "out", cache_dir=finished / "cache")
    assert all(p.reused for p in again.phases)
    assert again.headline == first_run.headline


@pytest.mark.slow
def test_a_changed_goal_reruns_only_the_report(first_run, finished):
    _rewrite(finished, goals={"max_accuracy_drop": 0.01, "min_speedup": 1e9})
    result = run_migration(finished / "migration.yaml", finished / "out", cache_dir=finished / "cache")
    rerun = [p.name for p in result.phases if not p.reused]
    assert rerun == ["report"]
    assert not result  # 1e9x is not reachable: the checklist fails
    report = json.loads((finished / "out" / "report" / "report.json").read_text())
    checklist = {r["goal"]: r for r in report["acceptance"]}
    assert checklist["speedup vs baseline"]["passed"] is False


@pytest.mark.slow
def test_a_changed_compare_setting_reruns_compare_and_report_only(first_run, finished):
    _rewrite(finished, compare={"samples": 3, "layerwise": False})
    result = run_migration(finished / "migration.yaml", finished / "out", cache_dir=finished / "cache")
    assert [p.name for p in result.phases if not p.reused] == ["compare", "report"]


@pytest.mark.slow
def test_a_failed_phase_resumes_there(first_run, finished, monkeypatch):
    def broken(ctx):
        raise ModelyardError("backend exploded")

    monkeypatch.setitem(pipeline_phases.PHASE_FUNCTIONS, "package", broken)
    with pytest.raises(PhaseFailed, match="phase package failed: backend exploded"):
        run_migration(finished / "migration.yaml", finished / "out", cache_dir=finished / "cache", force=("package",))
    state = json.loads((finished / "out" / "state.json").read_text())
    assert state["phases"]["package"]["status"] == "failed"
    monkeypatch.undo()
    result = run_migration(finished / "migration.yaml", finished / "out", cache_dir=finished / "cache")
    assert [p.name for p in result.phases if not p.reused] == ["package", "report"]


@pytest.mark.slow
def test_a_killed_phase_is_run_again(first_run, finished):
    state_file = finished / "out" / "state.json"
    state = json.loads(state_file.read_text())
    state["phases"]["coverage"]["status"] = "running"  # what a kill mid-phase leaves behind
    state_file.write_text(json.dumps(state))
    result = run_migration(finished / "migration.yaml", finished / "out", cache_dir=finished / "cache")
    assert [p.name for p in result.phases if not p.reused] == ["coverage", "report"]


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(InvalidInput, match=r"migration\.goals\.max_accuracy_drop"):
        parse_migration(_config(tmp_path, source=None, goals={"max_accuracy_drop": 2}), tmp_path)
    with pytest.raises(InvalidInput, match=r"migration\.colour"):
        parse_migration({**_config(tmp_path, source=None), "colour": "red"}, tmp_path)
    with pytest.raises(InvalidInput, match=r"migration\.model"):
        parse_migration({"name": "x"}, tmp_path)
    with pytest.raises(InvalidInput, match=r"migration\.source"):
        parse_migration(_config(tmp_path, source="nowhere"), tmp_path)
    bad_spec = _config(tmp_path, source=None, model={"entrypoint": "x:y", "inputs": []})
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(bad_spec))
    with pytest.raises(InvalidInput, match=r"migration\.model.*spec\.inputs"):
        load_migration(tmp_path / "m.yaml").model_spec()


def test_cli_run_reports_bad_files_in_one_line(tmp_path):
    from modelyard.cli.main import app

    (tmp_path / "m.yaml").write_text("name: x\nmodel: {}\ngoals: {min_speedup: -1}\n")
    result = CliRunner().invoke(app, ["migrate", "run", str(tmp_path / "m.yaml"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "migration.goals.min_speedup" in result.output and "Traceback" not in result.output


def test_example_migration_file_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[3] / "examples" / "migration.yaml"
    config = load_migration(example)
    assert config.source == "gpu_project" and config.goals.min_speedup
    assert config.model_spec().entrypoint == "gpu_project_model:build"
