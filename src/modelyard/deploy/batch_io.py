"""Batch inference inputs and outputs.

Inputs are read as an ordered list of rows with a key each, cut into fixed chunks (the same cut on every run, so a
resumed job skips exactly the chunks it finished):

* a folder of images (PNG/JPEG/BMP/PPM), directly in it or in class sub-folders (``cat/1.png``, the layout
  ``data import`` takes): key = the path relative to the folder, preprocessed as the signature says;
* a CSV or Parquet table: key = the ``key`` column (default: the row number). A model with one input per column
  (``[batch, 1]`` or ``[batch]`` each, as AutoML exports tables) gets each input from the column of its name
  (text inputs take text columns); a model with one ``[batch, features]`` input gets the other numeric columns
  (or ``columns``) in order;
* an ``.npz`` file: one array per input with a leading sample axis; key = the ``key`` array or the index.

Outputs (by suffix): ``.parquet`` (key column + one column per output, vectors as lists), ``.csv`` (vectors spread
over ``name_0, name_1...``) or ``.npz`` (``key`` + one stacked array per output). A classifier whose signature
names its classes also gets a ``class`` column: the predicted class name of each row. A detector writes one row
per box instead (``file, x1, y1, x2, y2, score, class, class_index``, in the original image's pixels).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.registry.signature import Signature

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
OUTPUT_SUFFIXES = (".parquet", ".csv", ".npz")


@dataclass
class Source:
    """Rows to predict: ``keys`` in order and ``read(start, stop) -> feeds`` for a slice of them."""

    keys: list
    kind: str
    _read: object
    sizes: list[tuple[int, int]] | None = None  # images of a detector: (height, width) each, to map boxes back

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return self._read(start, stop)


def open_source(path: Path, signature: Signature, key: str | None = None, columns: list[str] | None = None,
                encoder=None) -> Source:
    """``encoder``: a text model's :class:`~modelyard.deploy.text.TextEncoder`: the table's ``text`` column is
    tokenised chunk by chunk, as a service tokenises a request."""
    if not path.exists():
        raise NotFound(f"input {path} does not exist")
    if encoder is not None:
        return _texts(path, encoder, key, columns)
    if path.is_dir():
        return _images(path, signature)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet"):
        return _table(path, signature, key, columns)
    if suffix == ".npz":
        return _arrays(path, signature, key)
    raise InvalidInput(f"input {path.name}: expected a folder of images, a .csv/.parquet table or an .npz file")


def _texts(path: Path, encoder, key: str | None, columns: list[str] | None) -> Source:
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise InvalidInput(f"input {path.name}: a text model reads a .csv/.parquet table with a text column")
    table = _read_table(path)
    column = (columns or ["text"])[0]
    if len(columns or []) > 1 or column not in table.column_names:
        raise InvalidInput(f"{path.name}: a text model reads one text column ({column!r} is not among "
                           f"{', '.join(table.column_names[:30])}; name it with --column)")
    if key is not None and key not in table.column_names:
        raise InvalidInput(f"key column {key!r} is not in {path.name} (columns: {table.column_names})")
    texts = ["" if v is None else str(v) for v in table[column].to_pylist()]
    keys = table[key].to_pylist() if key else list(range(table.num_rows))
    return Source(keys, "texts", lambda start, stop: encoder.encode(texts[start:stop]))


def _images(folder: Path, signature: Signature) -> Source:
    from modelyard.deploy.images import decode_image, preprocess

    if signature.image_input is None:
        raise InvalidInput("the model's signature declares no image preprocessing: it cannot read an image folder "
                           "(register it with --preprocessing)")
    files = _image_files(folder)
    if not files:
        raise InvalidInput(f"input {folder.name}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it or in its "
                           "sub-folders")
    target = signature.input(signature.image_input)

    def read(start: int, stop: int) -> dict[str, np.ndarray]:
        arrays = []
        for f in files[start:stop]:
            try:
                arrays.append(preprocess(decode_image(f.read_bytes()), signature.preprocessing, target))
            except Exception as exc:  # noqa: BLE001 - name the file that broke the batch
                raise InvalidInput(f"{f.relative_to(folder).as_posix()}: {exc}") from None
        return {target.name: np.concatenate(arrays, axis=0)}

    sizes = _image_sizes(folder, files) if (signature.task or {}).get("type") == "detection" else None
    return Source([f.relative_to(folder).as_posix() for f in files], "images", read, sizes)


def _image_sizes(folder: Path, files: list[Path]) -> list[tuple[int, int]]:
    """Each image's (height, width), from its header (no pixels decoded)."""
    from PIL import Image

    sizes = []
    for f in files:
        try:
            with Image.open(f) as img:
                sizes.append((img.height, img.width))
        except Exception as exc:  # noqa: BLE001 - Pillow raises UnidentifiedImageError, OSError...
            raise InvalidInput(f"{f.relative_to(folder).as_posix()}: not a readable image "
                               f"({type(exc).__name__})") from None
    return sizes


def _image_files(folder: Path) -> list[Path]:
    """Image files in ``folder`` and its sub-folders (the class-folder layout ``data import`` takes:
    ``cat/1.png``), sorted by relative path; hidden files and folders (``.DS_Store``, ``__MACOSX``) are skipped."""
    found = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _read_table(path: Path):
    import pyarrow as pa

    try:
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{path.name}: not a readable table ({str(exc).splitlines()[0][:200]})") from None


def _column_input(tensor) -> bool:
    """An input one table column can feed: ``[batch]`` or ``[batch, 1]``."""
    return len(tensor.shape) == 1 or (len(tensor.shape) == 2 and tensor.shape[1] in (1, None))


def _column_for(name: str, columns: list[str]) -> str | None:
    """The column feeding input ``name``: the column of that name, else the one whose name becomes it when every
    character but letters, digits and ``_`` is replaced by ``_`` (how AutoML names its inputs:
    ``bill length-mm`` -> ``bill_length_mm``)."""
    if name in columns:
        return name
    matches = [c for c in columns if _as_input_name(c) == name]
    return matches[0] if len(matches) == 1 else None


def _as_input_name(column: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", column).strip("_") or "col"
    return "c_" + base if base[0].isdigit() else base


def _table(path: Path, signature: Signature, key: str | None, columns: list[str] | None) -> Source:
    table = _read_table(path)
    if key is not None and key not in table.column_names:
        raise InvalidInput(f"key column {key!r} is not in {path.name} (columns: {table.column_names})")
    named = all(_column_input(t) for t in signature.inputs) and (
        len(signature.inputs) > 1 or _column_for(signature.inputs[0].name, table.column_names) is not None)
    if named:
        if columns:
            raise InvalidInput(f"--column picks the features of a model with one [batch, features] input; this model "
                               f"takes one column per input ({', '.join(t.name for t in signature.inputs)})")
        return _named_columns(path, table, signature, key)
    if len(signature.inputs) != 1 or len(signature.inputs[0].shape) != 2:
        raise InvalidInput(f"{path.name} cannot feed this model: it takes "
                           + ", ".join(f"{t.name}{t.describe_shape()}" for t in signature.inputs)
                           + "; a table feeds one [batch, features] input or one column per [batch, 1] input")
    return _matrix(path, table, signature.inputs[0], key, columns)


def _named_columns(path: Path, table, signature: Signature, key: str | None) -> Source:
    """One column per input, matched by name; text inputs get the column's text ("" for an empty cell), float
    inputs its numbers (NaN for an empty cell: a model trained by AutoML imputes them)."""
    wanted = {t.name: _column_for(t.name, table.column_names) for t in signature.inputs}
    missing = [name for name, column in wanted.items() if column is None]
    if missing:
        raise InvalidInput(f"{path.name} has no column for the model's input(s) {', '.join(missing)} (the model "
                           f"takes {', '.join(wanted)}; the table has {', '.join(table.column_names[:30])})")
    feeds = {}
    for tensor in signature.inputs:
        values = _column_values(path, table[wanted[tensor.name]], wanted[tensor.name], tensor)
        feeds[tensor.name] = values.reshape(-1, 1) if len(tensor.shape) == 2 else values
    keys = table[key].to_pylist() if key else list(range(table.num_rows))
    return Source(keys, "table", lambda start, stop: {name: value[start:stop] for name, value in feeds.items()})


def _column_values(path: Path, column, name: str, tensor) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if tensor.dtype == "string":
        from modelyard.data.tabular import class_name

        # numbers in a text column are written as the training table's text form: 3.0 -> "3"
        return np.array([v if isinstance(v, str) else "" if v is None or np.isnan(v) else class_name(v)
                         for v in column.to_pylist()], dtype=object)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            column = pc.cast(column, pa.float64())
        except pa.ArrowInvalid:
            raise InvalidInput(f"{path.name}: column {name!r} holds text, input {tensor.name!r} takes "
                               f"{tensor.dtype} numbers") from None
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type)
            or pa.types.is_null(column.type)):
        raise InvalidInput(f"{path.name}: column {name!r} ({column.type}) cannot feed input {tensor.name!r} "
                           f"({tensor.dtype})")
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    dtype = "float32" if tensor.dtype == "bfloat16" else tensor.dtype
    if np.dtype(dtype).kind != "f" and np.isnan(values).any():
        raise InvalidInput(f"{path.name}: column {name!r} has empty cells; input {tensor.name!r} ({tensor.dtype}) "
                           "has no missing value")
    return values.astype(dtype)


def _matrix(path: Path, table, spec, key: str | None, columns: list[str] | None) -> Source:
    import pyarrow as pa
    import pyarrow.compute as pc

    names = columns or [c for c in table.column_names if c != key]
    missing = [c for c in names if c not in table.column_names]
    if missing:
        raise InvalidInput(f"columns {missing} are not in {path.name}")
    bad = [c for c in names if not (pa.types.is_integer(table[c].type) or pa.types.is_floating(table[c].type)
                                    or pa.types.is_boolean(table[c].type))]
    if bad:
        raise InvalidInput(f"columns {bad} of {path.name} are not numeric; name the feature columns with --columns")
    width = spec.shape[1]
    if isinstance(width, int) and width != len(names):
        raise InvalidInput(f"{path.name} has {len(names)} feature columns {names}, input {spec.name!r} takes {width}")
    dtype = "float32" if spec.dtype == "bfloat16" else spec.dtype
    matrix = np.column_stack([pc.cast(table[c], pa.float64()).to_numpy(zero_copy_only=False) for c in names])
    if np.isnan(matrix).any():
        raise InvalidInput(f"{path.name} has empty cells in the feature columns")
    matrix = matrix.astype(dtype)
    keys = table[key].to_pylist() if key else list(range(table.num_rows))
    return Source(keys, "table", lambda start, stop: {spec.name: matrix[start:stop]})


def _arrays(path: Path, signature: Signature, key: str | None) -> Source:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    names = [t.name for t in signature.inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InvalidInput(f"{path.name} has no array for input(s) {missing} (it has {sorted(arrays)})")
    counts = {n: arrays[n].shape[0] if arrays[n].ndim else 0 for n in names}
    if len(set(counts.values())) != 1:
        raise InvalidInput(f"{path.name}: inputs hold different sample counts {counts}")
    count = next(iter(counts.values()))
    if key is not None:
        if key not in arrays or len(arrays[key]) != count:
            raise InvalidInput(f"{path.name}: key array {key!r} is missing or not {count} long")
        keys = arrays[key].tolist()
    else:
        keys = list(range(count))
    return Source(keys, "arrays", lambda start, stop: {n: arrays[n][start:stop] for n in names})


def write_part(path: Path, keys: list, outputs: dict[str, np.ndarray]) -> None:
    """One finished chunk, written atomically (a crash leaves either the whole part or none)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, __key__=np.asarray(keys), **{f"out_{k}": v for k, v in outputs.items()})
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_part(path: Path) -> tuple[list, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        keys = data["__key__"].tolist()
        outputs = {k.removeprefix("out_"): data[k] for k in data.files if k.startswith("out_")}
    return keys, outputs


def write_output(path: Path, key_name: str, keys: list, outputs: dict[str, np.ndarray]) -> None:
    """Write every row (atomically: a temporary file renamed into place)."""
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if suffix == ".npz":
        with open(tmp, "wb") as handle:
            np.savez(handle, key=np.asarray(keys), **outputs)
    else:
        import pyarrow as pa

        columns = {key_name: pa.array(keys)}
        for name, value in outputs.items():
            flat = value.reshape(value.shape[0], -1) if value.ndim > 1 else value
            if flat.ndim == 1:
                columns[name] = pa.array(flat)
            elif suffix == ".csv":
                for j in range(flat.shape[1]):
                    columns[f"{name}_{j}"] = pa.array(flat[:, j])
            else:
                columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
        table = pa.table(columns)
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)
    os.replace(tmp, path)


def iter_chunks(total: int, size: int) -> Iterator[tuple[int, int, int]]:
    """``(index, start, stop)`` of each chunk."""
    for index, start in enumerate(range(0, total, size)):
        yield index, start, min(total, start + size)
