"""apply: libcst rewrites keep formatting, add MIGRATE comments, are idempotent and never touch the input."""

from __future__ import annotations

import csv
import filecmp
import io
import shutil
import tempfile
from pathlib import Path

import pytest

from modelyard.core.errors import Conflict, InvalidInput
from modelyard.migrate.code.analyze import analyze_path
from modelyard.migrate.code.apply import REPORT_DIR, apply_migration
from modelyard.migrate.code.rewrite import rewrite_python
from modelyard.migrate.code.rules import load_rules

CORPUS = Path(__file__).parent / "code_corpus"

SOURCE = '''"""Train."""
import os

import torch
import torch.cuda as tc
from torch.cuda.amp import GradScaler, autocast  # AMP


def train(model, x, rank):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.cuda()   # keep this comment
    x = x.to(f"cuda:{rank}", non_blocking=True)
    scaler = GradScaler(init_scale=1024.0)
    with autocast(
        enabled=True,  # a comment inside the call
    ):
        y = model(x)
    tc.synchronize()
    torch.backends.cudnn.benchmark = True
    torch.distributed.init_process_group("nccl")
    return y, scaler, torch.ones(1, device=device)
'''


def _rewrite(text: str, target: str) -> tuple[str, list]:
    """Analyse ``text`` as a one-file project, then rewrite it with those findings."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.py"
        path.write_text(text, encoding="utf-8")
        findings = analyze_path(path, target).findings
    return rewrite_python(text, findings, load_rules(target), "m.py")


def test_any_rewrite_keeps_comments_and_formatting():
    new, rows = _rewrite(SOURCE, "any")
    assert "from torch.amp import GradScaler, autocast  # AMP" in new
    assert "model = model.to(_migrate_device())   # keep this comment" in new
    assert 'x = x.to(f"{_migrate_device().type}:{rank}", non_blocking=True)' in new
    assert 'device = _migrate_device().type if torch.accelerator.is_available() else "cpu"' in new
    assert "scaler = GradScaler(_migrate_device().type, init_scale=1024.0)" in new
    assert "with autocast(_migrate_device().type, enabled=True):" in new  # inner comment moved with its argument
    assert "torch.get_device_module(_migrate_device()).synchronize()" in new
    assert "init_process_group(torch.distributed.get_default_backend_for_device(_migrate_device()))" in new
    assert "    # MIGRATE(cudnn-flag): " in new and new.count("def _migrate_device()") == 1
    assert new.index("def _migrate_device()") > new.index("from torch.amp import")
    assert new.startswith('"""Train."""\nimport os\n')
    compile(new, "m.py", "exec")
    rules = {r.rule for r in rows}
    assert {"amp-cuda-import", "cuda-method", "cuda-device-string", "amp-cuda-grad-scaler", "amp-cuda-autocast",
            "cuda-synchronize", "nccl-backend", "cudnn-flag", "migrate-header"} <= rules


def test_npu_rewrite_adds_torch_npu_and_hccl():
    new, _ = _rewrite(SOURCE, "npu")
    assert "import torch_npu  # noqa: F401" in new
    assert "model = model.npu()" in new and 'f"npu:{rank}"' in new
    assert 'init_process_group("hccl")' in new and "torch.npu.synchronize()" in new
    assert "_migrate_device" not in new
    compile(new, "m.py", "exec")


def test_rewriting_twice_changes_nothing():
    once, _ = _rewrite(SOURCE, "any")
    twice, rows = _rewrite(once, "any")
    assert twice == once
    assert rows == []


def test_import_forms_and_unrewritable_sites():
    text = ("import torch.cuda.amp as amp\nfrom torch.cuda import amp as a2, synchronize\nimport torch\n\n"
            "with amp.autocast():\n    pass\nx = torch.zeros(1).cuda(1)\n")
    new, rows = _rewrite(text, "any")
    assert "import torch.amp as amp" in new
    assert "with amp.autocast(_migrate_device().type):" in new
    assert "# MIGRATE(amp-cuda-import): Import from torch.amp, which takes the device type. (not rewritten: " in new
    assert "# MIGRATE(cuda-method): " in new and ".cuda(1)" in new  # a device index needs a person
    compile(new, "m.py", "exec")


def test_fully_qualified_amp_is_renamed():
    new, _ = _rewrite("import torch\nwith torch.cuda.amp.autocast(dtype=torch.float16):\n    pass\n", "any")
    assert "with torch.amp.autocast(_migrate_device().type, dtype=torch.float16):" in new


@pytest.fixture()
def project(tmp_path):
    root = tmp_path / "project"
    shutil.copytree(CORPUS / "python", root / "src")
    shutil.copytree(CORPUS / "env", root / "env")
    return root


def test_out_copy_reports_and_untouched_input(project, tmp_path):
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    out = tmp_path / "migrated"
    result = apply_migration(project, "any", out=out)
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before  # input untouched
    assert not (project / REPORT_DIR).exists()
    reports = out / REPORT_DIR
    rows = list(csv.DictReader(io.StringIO((reports / "change_list.csv").read_text(encoding="utf-8"))))
    assert rows and set(rows[0]) == {"file", "line", "rule", "before", "after"}
    assert any(r["rule"] == "cuda-synchronize" and r["before"] == "tc.synchronize()" for r in rows)
    diff = (reports / "migration.diff").read_text(encoding="utf-8")
    assert diff.startswith("--- a/") and "+++ b/src/aliases.py" in diff
    assert '"schema": "modelyard.analysis/1"' in (reports / "analysis.json").read_text(encoding="utf-8")
    assert (reports / "analysis.md").read_text(encoding="utf-8").startswith("# Migration readiness")
    assert result.after is not None and result.after.count("auto") < result.before.count("auto")
    assert "# MIGRATE(nvidia-smi):" in (out / "env" / "run.sh").read_text(encoding="utf-8")
    assert (out / "env" / "run.sh").read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    assert (out / "env" / "kernel.cu").read_text(encoding="utf-8").startswith("// MIGRATE(cuda-source-file):")
    assert (out / "src" / "negatives.py").read_bytes() == (project / "src" / "negatives.py").read_bytes()
    for path in (out / "src").glob("*.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    second = apply_migration(out, "any", out=tmp_path / "again")
    assert second.changes == () and second.rows == ()
    comparison = filecmp.dircmp(out, tmp_path / "again", ignore=[REPORT_DIR])
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only


def test_in_place_is_atomic_with_backup_and_idempotent(project):
    original = (project / "src" / "aliases.py").read_text(encoding="utf-8")
    result = apply_migration(project, "any", in_place=True)
    assert result.destination == str(project.resolve())
    migrated = (project / "src" / "aliases.py").read_text(encoding="utf-8")
    assert migrated != original and "torch.get_device_module(_migrate_device()).synchronize()" in migrated
    [backup] = (project / REPORT_DIR).glob("backup-*")
    assert (backup / "src" / "aliases.py").read_text(encoding="utf-8") == original
    again = apply_migration(project, "any", in_place=True)
    assert again.changes == ()
    assert (project / "src" / "aliases.py").read_text(encoding="utf-8") == migrated
    assert not list(project.rglob(".*.tmp"))


def test_dry_run_writes_nothing(project, tmp_path):
    result = apply_migration(project, "any", dry_run=True)
    assert result.dry_run and result.after is None and result.destination is None
    assert "+++ b/src/coverage.py" in result.diff
    assert not (project / REPORT_DIR).exists()


def test_destination_checks(project, tmp_path):
    with pytest.raises(InvalidInput, match="--out DIR or --in-place"):
        apply_migration(project, "any")
    with pytest.raises(InvalidInput, match="choose one"):
        apply_migration(project, "any", out=tmp_path / "x", in_place=True)
    with pytest.raises(InvalidInput, match="inside PATH"):
        apply_migration(project, "any", out=project / "migrated")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x", encoding="utf-8")
    with pytest.raises(Conflict, match="not an empty folder"):
        apply_migration(project, "any", out=busy)


def test_archive_apply_to_out(tmp_path):
    import zipfile

    archive = tmp_path / "p.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("p/t.py", "import torch\nx = torch.ones(1).cuda()\n")
    with pytest.raises(InvalidInput, match="archive"):
        apply_migration(archive, "any", in_place=True)
    apply_migration(archive, "cpu", out=tmp_path / "out")
    assert 'x = torch.ones(1).to(torch.device("cpu"))' in (tmp_path / "out" / "p" / "t.py").read_text(encoding="utf-8")
