"""Text corpora (dataset kind ``text``): the data a language model is tuned on.

Sources: a folder of ``.txt``/``.md``/``.rst`` files (read recursively) or one such file, split into paragraphs at
blank lines; or JSONL/CSV with a ``text`` column, ``instruction``/``response`` columns (instruction tuning) or
``text``/``label`` columns (a classification task). Records are stored as one JSONL blob; exact duplicates (after
folding whitespace and case) are removed at import and counted; a seeded split (stratified by label when there is
one) fixes train and validation once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
TABLE_SUFFIXES = (".jsonl", ".csv")
LAYOUTS = {"instruction": ("instruction", "response"), "labeled": ("text", "label"), "text": ("text",)}
MAX_RECORD_CHARS = 4000  # a paragraph longer than this is cut into pieces: tuning reads bounded windows anyway


def _paragraphs(text: str) -> list[str]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        block = block.strip()
        while block:
            out.append(block[:MAX_RECORD_CHARS])
            block = block[MAX_RECORD_CHARS:].strip()
    return out


def _read_plain(path: Path) -> list[dict]:
    try:
        return [{"text": p} for p in _paragraphs(path.read_text(encoding="utf-8", errors="replace"))]
    except OSError as exc:
        raise InvalidInput(f"{path.name}: cannot read ({type(exc).__name__})") from None


def _rows(path: Path, display: str) -> list[dict]:
    raw = path.read_text(encoding="utf-8-sig", errors="replace")
    if display.lower().endswith(".jsonl"):
        rows = []
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise InvalidInput(f"{display}: line {number} is not JSON") from None
            if not isinstance(row, dict):
                raise InvalidInput(f"{display}: line {number} is not a JSON object")
            rows.append(row)
        return rows
    return list(csv.DictReader(io.StringIO(raw)))


def _layout(rows: list[dict], display: str) -> str:
    columns = set(rows[0]) if rows else set()
    for layout, needed in LAYOUTS.items():
        if set(needed) <= columns:
            return layout
    raise InvalidInput(f"{display}: a text dataset needs a 'text' column, 'instruction' and 'response' columns, or "
                       f"'text' and 'label' columns; found {sorted(columns) or 'none'}")


def read_records(path: Path, display: str | None = None) -> tuple[str, list[dict]]:
    """``(layout, records)`` from a file or folder; every record a dict of non-empty strings."""
    display = display or path.name
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise InvalidInput(f"{display}: no {'/'.join(TEXT_SUFFIXES)} files in the folder")
        return "text", [r for f in files for r in _read_plain(f)]
    suffix = Path(display).suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "text", _read_plain(path)
    if suffix not in TABLE_SUFFIXES:
        raise InvalidInput(f"{display}: a text dataset is a folder of text files, a .txt/.md/.rst file, or a "
                           ".jsonl/.csv with text columns")
    rows = _rows(path, display)
    layout = _layout(rows, display)
    records = []
    for number, row in enumerate(rows, 1):
        record = {key: str(row.get(key) or "").strip() for key in LAYOUTS[layout]}
        if not all(record.values()):
            empty = ", ".join(k for k, v in record.items() if not v)
            raise InvalidInput(f"{display}: row {number} has an empty {empty}")
        records.append(record)
    return layout, records


def _fingerprint(record: dict) -> str:
    folded = "\x1f".join(" ".join(value.lower().split()) for value in record.values())
    return hashlib.sha256(folded.encode()).hexdigest()


def deduplicate(records: list[dict]) -> tuple[list[dict], int]:
    """Records without exact repeats (whitespace and case folded), keeping the first; and how many were dropped."""
    seen, kept = set(), []
    for record in records:
        key = _fingerprint(record)
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept, len(records) - len(kept)


def text_stats(records: list[dict], layout: str, assignment: str, removed_duplicates: int) -> dict:
    """Counts a person checks before tuning: items, characters, whitespace tokens, lengths, classes."""
    lengths = [sum(len(v.split()) for v in r.values() if v is not r.get("label")) for r in records]
    array = np.asarray(lengths or [0], dtype=np.float64)
    stats = {
        "items": len(records), "layout": layout,
        "characters": sum(len(v) for r in records for v in r.values()),
        "tokens": int(array.sum()), "tokenizer": "whitespace",
        "length_tokens": {"min": int(array.min()), "median": float(np.median(array)), "max": int(array.max()),
                          "mean": round(float(array.mean()), 2)},
        "duplicates_removed": removed_duplicates,
        "split": {"train": assignment.count("t"), "validation": assignment.count("v")},
    }
    if layout == "labeled":
        per_class: dict[str, int] = {}
        for record in records:
            per_class[record["label"]] = per_class.get(record["label"], 0) + 1
        stats["per_class"] = dict(sorted(per_class.items()))
    return stats


def records_to_jsonl(records: list[dict], assignment: str) -> bytes:
    return "".join(json.dumps({**r, "split": "validation" if s == "v" else "train"}, ensure_ascii=False) + "\n"
                   for r, s in zip(records, assignment, strict=True)).encode()


def records_from_jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
