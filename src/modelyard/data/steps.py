"""Preprocessing operators as versioned steps: each one reads a version and writes a new one whose lineage names
its parent and the step, so every version can be traced back to the imported files.

Operators: ``drop-columns`` and ``impute`` (tables), ``dedupe`` (tables: identical rows; images: identical files,
and with ``near`` also near-duplicates), ``filter-corrupt`` and ``resize`` (images). Items that survive a step keep
their side of the split, so a validation row never moves into training through preprocessing.

Example::

    new = apply_step(store, "iris@1", {"op": "impute", "strategy": "median"})
    new.lineage  # {"parent": "iris@1", "step": {"op": "impute", "strategy": "median"}}
"""

from __future__ import annotations

from modelyard.core.errors import InvalidInput
from modelyard.data import images, near_duplicates, splits, stats, tabular
from modelyard.data.datasets import MANIFEST_SCHEMA, DatasetStore, DatasetVersion

TABLE_OPS = ("drop-columns", "impute", "dedupe")
IMAGE_OPS = ("dedupe", "filter-corrupt", "resize")
IMPUTE_STRATEGIES = ("median", "mean", "most_frequent", "zero")


def apply_step(store: DatasetStore, ref: str | DatasetVersion, step: dict, created_by: str = "",
               description: str = "") -> DatasetVersion:
    """Apply one operator to a version and store the result as the next version of the same dataset.

    Args:
        store: the workspace's datasets.
        ref: the parent version (``NAME@V``) or the version itself.
        step: ``{"op": ..., **params}``; see the module docstring for the operators.
        created_by: who ran it.
        description: kept on the new version.

    Raises:
        InvalidInput: an unknown operator, one that does not apply to the dataset's kind, bad parameters, or a step
            that would change nothing.
    """
    parent = ref if isinstance(ref, DatasetVersion) else store.get(ref)
    if not isinstance(step, dict) or "op" not in step:
        raise InvalidInput("step: expected an object with an 'op' field")
    op = step["op"]
    allowed = {"tabular": TABLE_OPS, "image-classification": IMAGE_OPS}.get(parent.kind, ())
    if not allowed:
        raise InvalidInput(f"no preprocessing steps apply to {parent.kind} data yet")
    if op not in allowed:
        raise InvalidInput(f"step {op!r} does not apply to {parent.kind} data; use one of {', '.join(allowed)}")
    lineage = {"parent": parent.ref, "parent_id": parent.id, "step": step}
    if parent.kind == "tabular":
        return _table_step(store, parent, step, lineage, created_by, description)
    return _image_step(store, parent, step, lineage, created_by, description)


def apply_steps(store: DatasetStore, ref: str, steps: list[dict], created_by: str = "") -> list[DatasetVersion]:
    """Apply operators one after another; each makes its own version. Returns the new versions in order."""
    if not steps:
        raise InvalidInput("steps: give at least one preprocessing step")
    made, current = [], store.get(ref)
    for step in steps:
        current = apply_step(store, current, step, created_by=created_by)
        made.append(current)
    return made


def _table_step(store, parent, step, lineage, created_by, description) -> DatasetVersion:
    frame, split = store.load_table(parent)
    schema = parent.schema
    op = step["op"]
    if op == "drop-columns":
        columns = step.get("columns") or []
        if not isinstance(columns, list) or not columns:
            raise InvalidInput("drop-columns: 'columns' must list at least one column")
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise InvalidInput(f"drop-columns: no column(s) {', '.join(unknown)} in {parent.ref}")
        if schema["label"] in columns:
            raise InvalidInput(f"drop-columns: {schema['label']!r} is the label column; it cannot be dropped")
        frame = frame.drop(columns=columns)
    elif op == "impute":
        strategy = step.get("strategy", "median")
        if strategy not in IMPUTE_STRATEGIES:
            raise InvalidInput(f"impute: strategy {strategy!r}; expected one of {', '.join(IMPUTE_STRATEGIES)}")
        targets = step.get("columns") or [c["name"] for c in schema["columns"] if c["role"] == "feature"]
        unknown = [c for c in targets if c not in frame.columns]
        if unknown:
            raise InvalidInput(f"impute: no column(s) {', '.join(unknown)} in {parent.ref}")
        changed = 0
        for name in targets:
            column = frame[name]
            if not column.isna().any():
                continue
            changed += int(column.isna().sum())
            numeric = column.dtype.kind in "fiub"
            if strategy == "most_frequent" or not numeric:
                value = column.mode(dropna=True).iloc[0] if column.notna().any() else ""
            elif strategy == "zero":
                value = 0
            else:
                value = getattr(column, strategy)()
            frame[name] = column.fillna(value)
        if not changed:
            raise InvalidInput(f"impute: {parent.ref} has no missing values in {', '.join(targets[:10])}")
        lineage["step"] = {**step, "filled": changed}
    elif op == "dedupe":
        keep = ~frame.duplicated().to_numpy()
        if keep.all():
            raise InvalidInput(f"dedupe: {parent.ref} has no duplicate rows")
        frame, split = frame[keep].reset_index(drop=True), split[keep]
        lineage["step"] = {**step, "removed": int((~keep).sum())}
    table = tabular.TableFile(frame=frame, format=schema.get("format", "parquet"), encoding=schema.get("encoding"))
    frame, new_schema, notes = tabular.prepare_table(table, parent.ref, label=schema["label"], task=schema["task"])
    assignment = "".join(split.tolist())
    blob = store.blobs.put_bytes(tabular.frame_to_parquet(frame))
    manifest = {"schema": MANIFEST_SCHEMA, "kind": "tabular",
                "table": {"digest": blob.digest, "size": blob.size, "rows": len(frame), "format": "parquet"},
                "split": assignment}
    return store._create_version(
        parent.name, "tabular", manifest, schema=new_schema,
        split={**parent.split, "counts": splits.split_counts(assignment)},
        stats=stats.tabular_stats(frame, new_schema, assignment), lineage=lineage,
        source={**parent.source, "notes": notes}, items=len(frame), size=blob.size, description=description,
        created_by=created_by)


def _image_step(store, parent, step, lineage, created_by, description) -> DatasetVersion:
    entries = store.manifest(parent)["entries"]
    op = step["op"]
    if op == "filter-corrupt":
        kept = [e for e in entries if not e.get("error")]
        if len(kept) == len(entries):
            raise InvalidInput(f"filter-corrupt: {parent.ref} has no corrupt images")
        lineage["step"] = {**step, "removed": len(entries) - len(kept)}
    elif op == "dedupe":
        plan = duplicate_plan(store, parent, near=bool(step.get("near", False)), entries=entries)
        if not plan["remove"]:
            raise InvalidInput(f"dedupe: {parent.ref} has no duplicate images")
        drop = set(plan["remove"])
        kept = [e for e in entries if e["path"] not in drop]
        lineage["step"] = {**step, "removed": len(drop)}
    else:  # resize
        height, width = _size(step)
        kept, used = [], set()
        for entry in entries:
            if entry.get("error"):
                kept.append(entry)
                continue
            channels = 1 if entry["mode"] in images.GRAY_MODES else 3
            array = images.decode_to_array(store.blobs.read_bytes(entry["digest"]), (height, width), channels)
            data = images.encode_png(array)
            blob = store.blobs.put_bytes(data)
            path = entry["path"].rsplit(".", 1)[0] + ".png"
            if path in used:  # "a.jpg" and "a.png" in one class: keep both apart
                path = entry["path"] + ".png"
            used.add(path)
            kept.append({**entry, **images.inspect_image(data), "path": path, "digest": blob.digest,
                         "size": blob.size})
        lineage["step"] = {"op": "resize", "height": height, "width": width}
    classes = parent.schema["classes"]
    good = [e for e in kept if not e.get("error")]
    schema = {**parent.schema,
              "channels": 1 if images.is_grayscale([e["mode"] for e in good]) else 3}
    if good:
        import numpy as np

        schema["median_size"] = [
            int(np.median([e["height"] for e in good])),
            int(np.median([e["width"] for e in good])),
        ]
    manifest = {"schema": MANIFEST_SCHEMA, "kind": "image-classification", "entries": kept}
    size = sum({e["digest"]: e["size"] for e in kept}.values())
    return store._create_version(
        parent.name, "image-classification", manifest, schema=schema,
        split={**parent.split, "counts": splits.split_counts(e["split"] for e in kept)},
        stats=stats.image_stats(kept, classes, store.blobs.read_bytes,
                                left_out=parent.stats.get("left_out", {}).get("examples", [])),
        lineage=lineage, source=parent.source, items=len(kept),
        size=size, description=description, created_by=created_by)


def duplicate_plan(store: DatasetStore, ref: str | DatasetVersion, near: bool = True,
                   entries: list[dict] | None = None) -> dict:
    """What ``{"op": "dedupe", "near": near}`` would remove from an image version, without removing anything.

    Returns:
        ``modelyard.dedupe-plan/1``: ``exact`` groups (``keep`` and the identical copies removed), ``near`` pairs
        (``keep``, ``remove``, ``correlation``, ``difference``), ``remove`` (every path, in manifest order) and the
        near-duplicate ``rule``.
    """
    version = ref if isinstance(ref, DatasetVersion) else store.get(ref)
    if version.kind != "image-classification":
        raise InvalidInput(f"{version.ref} is a table; its dedupe removes identical rows (see data stats)")
    if entries is None:
        entries = store.manifest(version)["entries"]
    pairs = near_duplicates.find_near_duplicates(entries, store.blobs.read_bytes) if near else None
    plan = near_duplicates.duplicate_removals(entries, pairs)
    return {"schema": "modelyard.dedupe-plan/1", "ref": version.ref, "near_included": near,
            "rule": near_duplicates.RULE, "images": len(entries), **plan}


def _size(step: dict) -> tuple[int, int]:
    try:
        height, width = int(step.get("height", 0)), int(step.get("width", 0))
    except (TypeError, ValueError) as exc:
        raise InvalidInput("resize: 'height' and 'width' must be whole numbers of pixels") from exc
    if not (4 <= height <= 4096 and 4 <= width <= 4096):
        raise InvalidInput(f"resize: {width}x{height} is outside 4..4096 pixels per side")
    return height, width
