"""The values a scan produces: one ``Finding`` per matched site, one ``FileResult`` per scanned file.

Findings stay small (rule id, position, matched API, snippet) because a scan of a large tree holds tens of
thousands of them and ships them between processes; the rule's text is looked up when a report is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SNIPPET_CHARS = 160


@dataclass(frozen=True, slots=True)
class Finding:
    """One site a rule matched.

    Args:
        file: path relative to the analysed root, with ``/`` separators.
        line: 1-based line of the site's start.
        column: 1-based character column of the site's start.
        end_line: 1-based line of the site's end.
        end_column: 1-based character column just past the site's end.
        rule: the rule id.
        api: what matched, e.g. ``torch.cuda.synchronize`` or ``.cuda()`` or ``"cuda:0"``.
        status: the rule's status on the analysed target.
        snippet: the source line(s) of the site, stripped and shortened.
        anchor: what ``apply`` rewrites: ``call``, ``method``, ``reference``, ``value``, ``import``, ``line``.
        detail: extra text for the message (a parse error's reason, what a device string flows into).
    """

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    rule: str
    api: str
    status: str
    snippet: str = ""
    anchor: str = "line"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FileResult:
    """What scanning one file gave: its findings, line count, kind, and why it was not parsed if so."""

    path: str
    kind: str
    lines: int
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    parse_error: str | None = None


def make_snippet(lines: list[str], line: int, end_line: int | None = None) -> str:
    """The source of ``line``..``end_line`` (1-based) joined on one line, shortened to ``SNIPPET_CHARS``."""
    end = min(end_line or line, line + 2, len(lines))
    text = " ".join(part.strip() for part in lines[line - 1 : end] if part.strip()) if 0 < line <= len(lines) else ""
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "..."
