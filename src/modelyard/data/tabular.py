"""Reading CSV/Parquet files into a typed table and inferring its schema (column types, label, task, classes).

Every problem with a user's file becomes one ``InvalidInput`` line that names the file and, where it applies, the
column: an empty file, a header without rows, a missing label column, a label with a single class, duplicate
column names. Files that are merely awkward are handled and noted instead: a non-UTF-8 CSV is decoded as
Windows-1252 or Latin-1 (the encoding is recorded), a mostly-numeric column with a few stray strings becomes numeric
with those cells missing (the note lists them).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.core.errors import InvalidInput

LABEL_NAMES = ("label", "target", "class", "y", "outcome", "species")
ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
NUMERIC_SHARE = 0.9  # a text column whose non-empty cells are at least this share numbers is numeric
MAX_CATEGORIES = 100  # a text column with more distinct values is free text / an id and is not a feature
MAX_CLASSES_FOR_INT_LABEL = 20


@dataclass
class TableFile:
    """A table read from a file, with how it was read."""

    frame: object  # pandas.DataFrame
    format: str
    encoding: str | None
    notes: list[str] = field(default_factory=list)


def read_table(path: Path, data: bytes | None = None) -> TableFile:
    """Read ``path`` (CSV/TSV or Parquet) into a DataFrame.

    Args:
        path: the file; its suffix picks the reader.
        data: the file's bytes when already in memory (the file is not read again).

    Raises:
        InvalidInput: empty file, no columns, no rows, unreadable Parquet, duplicate column names.
    """
    import pandas as pd

    raw = path.read_bytes() if data is None else data
    if not raw.strip():
        raise InvalidInput(f"{path.name}: the file is empty")
    suffix = path.suffix.lower()
    notes: list[str] = []
    encoding = None
    if suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            frame = pq.read_table(io.BytesIO(raw)).to_pandas()
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InvalidInput(f"{path.name}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})") from exc
        fmt = "parquet"
    else:
        text = None
        for encoding in ENCODINGS:
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        if encoding != "utf-8-sig":
            notes.append(f"the file is not UTF-8; decoded it as {encoding}")
        if "\x00" in text[:4096]:
            raise InvalidInput(f"{path.name}: this looks like a binary file, not a CSV (it contains NUL bytes)")
        sep = "\t" if suffix == ".tsv" else _sniff_delimiter(text)
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, skipinitialspace=True, low_memory=False)
        except pd.errors.EmptyDataError as exc:
            raise InvalidInput(f"{path.name}: no columns found (empty or blank file)") from exc
        except (pd.errors.ParserError, csv_error()) as exc:
            raise InvalidInput(f"{path.name}: not a well-formed CSV ({str(exc).splitlines()[0][:200]})") from exc
        fmt = "csv"
        encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    columns = [str(c) for c in frame.columns]
    mangled = sorted({c.rpartition(".")[0] for c in columns if _is_mangled(c) and c.rpartition(".")[0] in columns})
    duplicates = sorted({c for c in columns if columns.count(c) > 1}) or mangled
    if duplicates:
        raise InvalidInput(f"{path.name}: duplicate column name(s) {', '.join(duplicates)}")
    frame.columns = columns
    if len(frame.columns) == 0:
        raise InvalidInput(f"{path.name}: no columns found")
    if len(frame) == 0:
        raise InvalidInput(f"{path.name}: the file has a header but no rows")
    return TableFile(frame=frame, format=fmt, encoding=encoding, notes=notes)


def _sniff_delimiter(text: str) -> str:
    """``,`` unless the header clearly uses ``;``, tab or ``|`` (European spreadsheets export ``;``)."""
    import csv

    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def csv_error():
    import csv

    return csv.Error


def _is_mangled(name: str) -> bool:
    # pandas renames a repeated header "a" to "a.1"; we refuse the file instead of guessing which is which
    base, dot, tail = name.rpartition(".")
    return bool(dot and base and tail.isdigit())


def _coerce_mixed(frame, notes: list[str]):
    """Make columns that are mostly numbers numeric; the stray text cells become missing (noted)."""
    import pandas as pd

    for name in frame.columns:
        column = frame[name]
        if column.dtype != object and not pd.api.types.is_string_dtype(column.dtype):
            continue
        present = column.dropna()
        present = present[present.astype(str).str.strip() != ""]
        if present.empty:
            frame[name] = pd.to_numeric(column, errors="coerce")
            continue
        numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
        share = float(numbers.notna().mean())
        if share >= NUMERIC_SHARE and share < 1.0:
            stray = present[numbers.isna()].astype(str).unique()[:3].tolist()
            notes.append(
                f"column {name!r} mixes numbers with text ({int(numbers.isna().sum())} cell(s) such as "
                f"{', '.join(repr(s) for s in stray)}); treated as numeric with those cells missing"
            )
            frame[name] = pd.to_numeric(column.astype(str).str.strip(), errors="coerce")
        elif share == 1.0:
            frame[name] = pd.to_numeric(column.astype(str).str.strip(), errors="coerce")
        elif share > 0:
            notes.append(f"column {name!r} mixes text with some numbers; treated as categorical text")
            frame[name] = column.where(column.isna(), column.astype(str))
    return frame


def column_type(series) -> str:
    """``numeric``, ``boolean``, ``categorical``, ``text`` (too many distinct values) or ``datetime``."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "datetime"
    distinct = series.dropna().nunique()
    if distinct > MAX_CATEGORIES and distinct > 0.5 * max(1, series.notna().sum()):
        return "text"
    return "categorical"


def choose_label(columns: list[str], label: str | None, source: str) -> str:
    if label is not None:
        if label not in columns:
            raise InvalidInput(f"{source}: no label column {label!r}; columns are {', '.join(columns[:30])}")
        return label
    lowered = {c.lower(): c for c in columns}
    for candidate in LABEL_NAMES:
        if candidate in lowered:
            return lowered[candidate]
    return columns[-1]


def infer_task(series, task: str) -> str:
    """``classification`` or ``regression`` for a label column (``task`` ``auto`` decides from the values)."""
    import pandas as pd

    if task in ("classification", "regression"):
        return task
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return "classification"
    values = series.dropna()
    integral = bool((values == values.round()).all())
    if integral and values.nunique() <= MAX_CLASSES_FOR_INT_LABEL:
        return "classification"
    return "regression"


def class_name(value) -> str:
    """The string form of a class label (``3.0`` -> ``"3"``) used in schemas, metrics and model outputs."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def prepare_table(table: TableFile, source: str, label: str | None = None, task: str = "auto"):
    """Coerce types, pick the label and task, drop rows without a label, and describe the columns.

    Returns:
        ``(frame, schema, notes)``: the cleaned DataFrame, a JSON-able schema
        (``{"columns": [...], "label", "task", "classes", "encoding", "format"}``) and notes for the user.

    Raises:
        InvalidInput: no label column, only the label column, a classification label with a single class, a
            regression label that is not numeric.
    """
    import pandas as pd

    if task not in ("auto", "classification", "regression"):
        raise InvalidInput(f"task {task!r}: expected auto, classification or regression for a table")
    notes = list(table.notes)
    frame = _coerce_mixed(table.frame.copy(), notes)
    columns = list(frame.columns)
    label_column = choose_label(columns, label, source)
    if len(columns) < 2:
        raise InvalidInput(f"{source}: only one column ({columns[0]!r}); a table needs feature columns and a label")
    missing_labels = int(frame[label_column].isna().sum())
    if missing_labels:
        frame = frame[frame[label_column].notna()].reset_index(drop=True)
        notes.append(f"dropped {missing_labels} row(s) without a label")
    if len(frame) == 0:
        raise InvalidInput(f"{source}: the label column {label_column!r} is empty")
    resolved = infer_task(frame[label_column], task)
    classes: list[str] = []
    if resolved == "classification":
        if pd.api.types.is_float_dtype(frame[label_column].dtype) and (
            frame[label_column] == frame[label_column].round()
        ).all():
            frame[label_column] = frame[label_column].astype("int64")
        classes = sorted({class_name(v) for v in frame[label_column].tolist()}, key=_natural_key)
        if len(classes) < 2:
            raise InvalidInput(
                f"{source}: the label column {label_column!r} has a single class ({classes[0]!r}); "
                "classification needs at least 2 classes"
            )
    elif not pd.api.types.is_numeric_dtype(frame[label_column].dtype):
        raise InvalidInput(f"{source}: regression needs a numeric label; {label_column!r} holds text")
    described = []
    for name in columns:
        kind = column_type(frame[name])
        role = "label" if name == label_column else ("feature" if kind in ("numeric", "boolean", "categorical")
                                                       else "ignored")
        if role == "feature" and frame[name].notna().sum() == 0:
            role = "ignored"
        described.append({
            "name": name,
            "type": kind,
            "role": role,
            "missing": int(frame[name].isna().sum()),
            "unique": int(frame[name].nunique(dropna=True)),
        })
    ignored = [c["name"] for c in described if c["role"] == "ignored"]
    if ignored:
        notes.append(f"not used as features (free text, ids, dates or empty): {', '.join(ignored[:10])}")
    if not any(c["role"] == "feature" for c in described):
        raise InvalidInput(f"{source}: no usable feature columns besides the label {label_column!r}")
    schema = {
        "columns": described,
        "label": label_column,
        "task": resolved,
        "classes": classes,
        "format": table.format,
        "encoding": table.encoding,
    }
    return frame, schema, notes


def _natural_key(text: str):
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def frame_to_parquet(frame) -> bytes:
    """The canonical stored form of a table: Parquet bytes (typed, compact, stable across readers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue()


def frame_from_parquet(data: bytes):
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pandas()
