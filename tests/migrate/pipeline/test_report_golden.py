"""The migration report stays byte-compatible: the phase results of two real runs of the pipeline on the tiny CNN
(``golden/<case>/results/*.json``, recorded before the phase results became typed values) are reloaded through
``run_migration``'s resume path, only the report phase runs, and ``report.json``, ``report.md`` and ``report.html``
must equal the recorded ``golden/<case>/report.*`` byte for byte.

Normalised, and only these: the temporary root (``@ROOT@``), the report's ``generated_at`` (``@GENERATED_AT@``),
the machine facts of the environment manifest (a fixed ``environment()``) and the input hashes it quotes
(``@MODEL_HASH@``...: the state module computes them, and they change with the ModelSpec's fields, not with the
report).

Cases: ``passing`` (every phase ran, every goal met) and ``partial`` (no source folder, so analyze and apply were
skipped; the optimiser's budget ran out before any candidate; the speed goals fail).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.migrate.pipeline.config import load_migration
from modelyard.migrate.pipeline.run import PHASES, run_migration
from modelyard.migrate.pipeline.state import STATE_SCHEMA, phase_hashes

GOLDEN = Path(__file__).parent / "golden"
CASES = ("passing", "partial")
REPORT_FILES = ("report.json", "report.md", "report.html")
PROJECT = '''import torch

model = torch.nn.Linear(4, 2).cuda()
torch.backends.cudnn.benchmark = True
x = torch.randn(8, 4, device="cuda")
torch.cuda.synchronize()
'''
FIXED_ENVIRONMENT = {
    "python": "3.x", "platform": "golden-platform", "machine": "x86_64", "cpu": "golden cpu",
    "cpu_flags": ["avx2"], "cpu_count": 2, "packages": {"numpy": "1", "torch": "2"},
}


def lay_out_recorded_run(case: str, root: Path) -> None:
    """``case``'s recorded phase results under ``root`` as a finished run whose report is missing."""
    source = GOLDEN / case
    root.mkdir(parents=True)
    (root / "project").mkdir()
    (root / "project" / "train.py").write_text(PROJECT)
    (root / "migration.yaml").write_text((source / "migration.yaml").read_text())
    hashes = phase_hashes(load_migration(root / "migration.yaml"))
    state = {"schema": STATE_SCHEMA, "phases": {}}
    for phase in PHASES[:-1]:
        text = (source / "results" / f"{phase}.json").read_text().replace("@ROOT@", str(root))
        (root / "out" / phase).mkdir(parents=True)
        (root / "out" / phase / "result.json").write_text(text)
        status = "skipped" if json.loads(text).get("skipped") is True else "done"
        state["phases"][phase] = {"status": status, "input_hash": hashes[phase], "summary": ""}
    (root / "out" / "state.json").write_text(json.dumps(state))


def _resumed_report(case: str, root: Path) -> dict[str, str]:
    """Lay out ``case`` as a finished run under ``root``, rerun only the report, and return the three report
    files, normalised."""
    lay_out_recorded_run(case, root)
    result = run_migration(root / "migration.yaml", root / "out", cache_dir=root / "cache")
    assert [p.name for p in result.phases if not p.reused] == ["report"]
    folder = root / "out" / "report"
    document = json.loads((folder / "report.json").read_text())
    stand_ins = {str(root): "@ROOT@", document["generated_at"]: "@GENERATED_AT@"}
    # the input hashes are the state module's (a ModelSpec field added one day changes them), not the report's
    stand_ins |= {digest: f"@{name.upper()}_HASH@"
                  for name, digest in document["test_report"]["environment"]["input_hashes"].items()}
    return {name: _replaced((folder / name).read_text(encoding="utf-8"), stand_ins) for name in REPORT_FILES}


def _replaced(text: str, stand_ins: dict[str, str]) -> str:
    for value, stand_in in stand_ins.items():
        text = text.replace(value, stand_in)
    return text


@pytest.mark.parametrize("case", CASES)
def test_report_is_byte_compatible_with_the_recorded_one(case, tmp_path, monkeypatch):
    monkeypatch.setattr("modelyard.migrate.model.bench.environment", lambda: dict(FIXED_ENVIRONMENT))
    produced = _resumed_report(case, tmp_path / case)
    for name in REPORT_FILES:
        expected = (GOLDEN / case / name).read_text(encoding="utf-8")
        assert produced[name] == expected, f"{case}/{name} differs from the recorded report"
