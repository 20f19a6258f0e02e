"""The migrate.analyze and migrate.apply job kinds, run with a minimal job context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelyard.core.plugins import JOB_KINDS, load_job_kind

CORPUS = Path(__file__).parent / "code_corpus"


class Context:
    def __init__(self, workdir: Path):
        self.job_id = "job-1"
        self.workdir = workdir
        self.home = workdir
        self.events: list[tuple[float, str]] = []
        self.lines: list[str] = []

    def progress(self, fraction: float, message: str = "") -> None:
        self.events.append((fraction, message))

    def log(self, message: str) -> None:
        self.lines.append(message)

    def cancelled(self) -> bool:
        return False


def test_kinds_are_registered():
    assert JOB_KINDS["migrate.analyze"] == "modelyard.migrate.code.jobs:ANALYZE"
    assert load_job_kind("migrate.apply").name == "migrate.apply"


def test_analyze_job_writes_reports(tmp_path):
    kind = load_job_kind("migrate.analyze")
    spec = kind.validate_spec({"path": str(CORPUS / "python"), "target": "npu", "formats": ["json", "csv"]})
    ctx = Context(tmp_path)
    result = kind.run(spec, ctx)
    assert kind.idempotent and result["ready"] is False
    assert json.loads(Path(result["reports"]["json"]).read_text(encoding="utf-8"))["target"] == "npu"
    assert Path(result["reports"]["csv"]).is_file()
    assert ctx.events[-1][0] == 1.0 and ctx.lines


def test_apply_job_defaults_to_the_job_folder(tmp_path):
    kind = load_job_kind("migrate.apply")
    result = kind.run(kind.validate_spec({"path": str(CORPUS / "python"), "target": "any"}), Context(tmp_path))
    assert result["destination"] == str((tmp_path / "migrated").resolve())
    assert (tmp_path / "migrated" / "aliases.py").is_file()
    dry = kind.run(kind.validate_spec({"path": str(CORPUS / "python"), "target": "any", "dry_run": True}),
                   Context(tmp_path / "dry"))
    assert dry["dry_run"] and (tmp_path / "dry" / "migration.diff").read_text(encoding="utf-8").startswith("--- a/")


def test_specs_reject_unknown_fields():
    with pytest.raises(ValidationError):
        load_job_kind("migrate.analyze").validate_spec({"path": "x", "colour": "red"})
    with pytest.raises(ValidationError):
        load_job_kind("migrate.apply").validate_spec({"path": "x", "target": "tpu"})
