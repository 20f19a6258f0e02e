"""Reports: JSON, Markdown, self-contained HTML and CSV carry the same findings."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from modelyard.migrate.code.analyze import analyze_path
from modelyard.migrate.code.report import CSV_COLUMNS, format_for, render

CORPUS = Path(__file__).parent / "code_corpus"


@pytest.fixture(scope="module")
def analysis():
    return analyze_path(CORPUS / "python", "any")


def test_json_round_trips(analysis):
    data = json.loads(render(analysis, "json"))
    assert data == json.loads(json.dumps(analysis.to_dict()))
    assert data["schema"] == "modelyard.analysis/1" and data["target"] == "any"


def test_csv_has_one_row_per_finding(analysis):
    rows = list(csv.DictReader(io.StringIO(render(analysis, "csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(analysis.findings)
    sync = next(r for r in rows if r["file"] == "aliases.py" and r["line"] == "14")
    assert (sync["rule"], sync["status"], sync["api"]) == ("cuda-synchronize", "auto", "torch.cuda.synchronize")
    assert float(sync["effort_hours_low"]) <= float(sync["effort_hours_high"])


def test_markdown_lists_summary_files_and_findings(analysis):
    text = render(analysis, "md")
    summary = analysis.summary()
    assert text.startswith("# Migration readiness: target `any`")
    assert f"**Readiness {summary['readiness_score']}/100**" in text
    assert "## By category" in text and "| mixed-precision |" in text
    assert "### `aliases.py`" in text and "`cuda-synchronize` (auto" in text
    assert "negatives.py" not in text


def test_html_is_self_contained_with_cards_chart_and_sortable_table(analysis):
    page = render(analysis, "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no external resources"
    assert "<style>" in page and "<script>" in page and "<svg" in page
    assert 'class="card"' in page and 'id="findings"' in page and "addEventListener('click'" in page
    assert page.count("<tr><td>") == len(analysis.findings)


def test_html_escapes_code(tmp_path):
    (tmp_path / "x.py").write_text('import torch\nx = "<script>alert(1)</script>"; torch.cuda.synchronize()\n',
                                   encoding="utf-8")
    page = render(analyze_path(tmp_path, "any"), "html")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_format_inference():
    assert format_for("r.html", None) == "html"
    assert format_for("r.md", None) == "md"
    assert format_for("r.csv", None) == "csv"
    assert format_for("r.json", None) == "json"
    assert format_for("r.html", "csv") == "csv"
    with pytest.raises(ValueError):
        render(analyze_path(CORPUS / "bad" / "good_neighbour.py", "any"), "xml")


def test_documentation_covers_the_schema_and_every_matcher():
    from modelyard.migrate.code.rules import Match

    docs = (Path(__file__).parents[3] / "docs" / "migrate-code.md").read_text(encoding="utf-8")
    data = analyze_path(CORPUS / "python", "any").to_dict()
    for key in [*data, *data["summary"], *data["files"][0], *data["findings"][0]]:
        assert f'"{key}"' in docs or f"`{key}`" in docs, key
    for name in Match.model_fields:
        assert f"`{name.rstrip('_')}`" in docs, name
