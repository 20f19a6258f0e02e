"""The migrate.analyze and migrate.apply job kinds, run in this process with the shipped LocalJobContext."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelyard.core.jobkind import LocalJobContext
from modelyard.core.plugins import job_kind_targets, load_job_kind

CORPUS = Path(__file__).parent / "code_corpus"


def job_context(workdir: Path) -> LocalJobContext:
    return LocalJobContext(home=workdir, workdir=workdir, job_id="job-1")


def test_kinds_are_registered():
    """Each name resolves, through the registry, to the kind the module defines, and that kind carries the name."""
    from modelyard.migrate.code import jobs

    for name, defined in (("migrate.analyze", jobs.ANALYZE), ("migrate.apply", jobs.APPLY)):
        assert name in job_kind_targets()
        kind = load_job_kind(name)
        assert kind is defined and kind.name == name


def test_analyze_job_writes_reports(tmp_path):
    kind = load_job_kind("migrate.analyze")
    spec = kind.validate_spec({"path": str(CORPUS / "python"), "target": "npu", "formats": ["json", "csv"]})
    ctx = job_context(tmp_path)
    result = kind.run(spec, ctx)
    assert kind.idempotent and result["ready"] is False
    assert json.loads(Path(result["reports"]["json"]).read_text(encoding="utf-8"))["target"] == "npu"
    assert Path(result["reports"]["csv"]).is_file()
    assert ctx.progress_events[-1][0] == 1.0 and ctx.lines


def test_apply_job_defaults_to_the_job_folder(tmp_path):
    kind = load_job_kind("migrate.apply")
    result = kind.run(kind.validate_spec({"path": str(CORPUS / "python"), "target": "any"}), job_context(tmp_path))
    assert result["destination"] == str((tmp_path / "migrated").resolve())
    assert (tmp_path / "migrated" / "aliases.py").is_file()
    dry = kind.run(kind.validate_spec({"path": str(CORPUS / "python"), "target": "any", "dry_run": True}),
                   job_context(tmp_path / "dry"))
    assert dry["dry_run"] and (tmp_path / "dry" / "migration.diff").read_text(encoding="utf-8").startswith("--- a/")


def test_specs_reject_unknown_fields():
    with pytest.raises(ValidationError):
        load_job_kind("migrate.analyze").validate_spec({"path": "x", "colour": "red"})
    with pytest.raises(ValidationError):
        load_job_kind("migrate.apply").validate_spec({"path": "x", "target": "tpu"})
