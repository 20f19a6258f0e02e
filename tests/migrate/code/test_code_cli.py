"""``modelyard migrate analyze|apply`` through Typer: options, formats, --fail-on, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli.main import app
from modelyard.core.errors import InvalidInput, NotFound

CORPUS = Path(__file__).parent / "code_corpus"


@pytest.fixture(scope="module")
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["migrate", *(str(a) for a in args)])


def test_default_prints_a_summary_table(cli):
    result = cli("analyze", CORPUS / "python")
    assert result.exit_code == 0, result.output
    assert "readiness" in result.output and "By category" in result.output and "aliases.py" in result.output


def test_json_output_and_formats(cli):
    result = cli("analyze", CORPUS / "python", "--json")
    data = json.loads(result.stdout)
    assert data["schema"] == "modelyard.analysis/1" and data["summary"]["findings"] > 10
    md = cli("analyze", CORPUS / "env", "--format", "md", "--target", "npu")
    assert md.exit_code == 0 and md.stdout.startswith("# Migration readiness: target `npu`")
    csv_out = cli("analyze", CORPUS / "env", "-f", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("file,line,column,rule")


def test_output_file_format_from_extension(cli, tmp_path):
    out = tmp_path / "reports" / "r.html"
    result = cli("analyze", CORPUS / "python", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert f"wrote html report to {out}" in result.stderr


def test_fail_on_gates_ci(cli):
    assert cli("analyze", CORPUS / "python", "--fail-on", "manual").exit_code == 1
    assert cli("analyze", CORPUS / "python" / "aliases.py", "--fail-on", "unsupported", "--json").exit_code == 0
    assert cli("analyze", CORPUS / "python" / "third_party.py", "--fail-on", "unsupported", "--json").exit_code == 1
    assert cli("analyze", CORPUS / "python" / "negatives.py", "--fail-on", "manual").exit_code == 0


def test_bad_options_and_missing_path(cli, tmp_path):
    assert isinstance(cli("analyze", tmp_path / "missing").exception, NotFound)
    assert isinstance(cli("analyze", CORPUS, "--target", "tpu").exception, InvalidInput)
    assert isinstance(cli("analyze", CORPUS, "--format", "xml").exception, InvalidInput)
    assert isinstance(cli("analyze", CORPUS, "--fail-on", "auto").exception, InvalidInput)
    assert isinstance(cli("apply", CORPUS / "python", "--target", "any").exception, InvalidInput)


def test_apply_dry_run_prints_the_diff_only(cli, tmp_path):
    result = cli("apply", CORPUS / "python", "--target", "any", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("--- a/") and "+    torch.get_device_module(_migrate_device())" in result.stdout
    assert not (CORPUS / "python" / ".modelyard-migrate").exists()


def test_apply_out_prints_result_and_reports(cli, tmp_path):
    result = cli("apply", CORPUS / "python", "--target", "npu", "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "modelyard.migration/1" and "aliases.py" in data["files_changed"]
    assert Path(data["reports"]["change_list"]).is_file()


def test_real_entry_point_prints_one_line_errors(tmp_path, capsys):
    try:
        from modelyard.cli.main import main
    except ImportError as exc:  # the rest of the CLI is built by other issues
        pytest.skip(f"modelyard.cli.main is not importable yet: {exc}")
    assert main(["migrate", "analyze", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "path not found" in err and "Traceback" not in err
