"""Datasets and their immutable versions: import, look up, read back.

A version is a manifest (JSON, stored as a blob) of the content hashes of its files, plus a schema, a fixed seeded
split and statistics kept in the ``dataset_versions`` row. Writing order makes a failed import leave nothing
behind: every blob is stored first (content-addressed, so a retry or a second import of the same files reuses
them), then the dataset row (when new) and the version row are inserted in one transaction.

Example::

    store = DatasetStore(workspace)
    version = store.import_path(Path("iris.csv"), name="iris")
    print(version.ref, version.stats["per_class"])     # iris@1 {'setosa': 50, ...}
    frame, split = store.load_table(version)
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.data import archive, images, splits, stats, tabular
from modelyard.data.checks import CheckResult, check_stats
from modelyard.data.refs import check_name, format_version, parse_ref
from modelyard.store.db import as_utc
from modelyard.store.schema_data import DATASET_KINDS, dataset_versions, datasets
from modelyard.store.workspace import Workspace

MANIFEST_SCHEMA = "modelyard.dataset-manifest/1"
KINDS = ("auto",) + DATASET_KINDS


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a dataset (a row of ``dataset_versions`` with its dataset's name and kind)."""

    id: str
    name: str
    kind: str
    version: int
    manifest_digest: str
    schema: dict
    split: dict
    stats: dict
    lineage: dict
    source: dict
    items: int
    size: int
    description: str
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict:
        return {
            "schema": "modelyard.dataset-version/1",
            "id": self.id,
            "name": self.name,
            "ref": self.ref,
            "version": self.version,
            "display_version": format_version(self.version),
            "kind": self.kind,
            "manifest": self.manifest_digest,
            "data_schema": self.schema,
            "split": self.split,
            "stats": self.stats,
            "lineage": self.lineage,
            "source": self.source,
            "items": self.items,
            "size": self.size,
            "description": self.description,
            "created_by": self.created_by,
            "created_at": isoformat(self.created_at),
        }

    def __str__(self) -> str:
        unit = {"tabular": "rows", "text-classification": "texts", "text": "records"}.get(self.kind, "images")
        counts = self.split.get("counts", {})
        if self.kind == "object-detection":
            unit += f" with {self.stats.get('boxes', 0)} boxes"
        return (f"{self.ref} ({format_version(self.version)}) {self.kind}: {self.items} {unit}, "
                f"train {counts.get('train', 0)} / validation {counts.get('validation', 0)}, "
                f"{len(self.schema.get('classes', []))} classes")


def detect_kind(path: Path, name: str | None = None) -> str:
    """``tabular`` or ``image-classification`` for a file or folder (``--kind auto``); ``name`` is the file name
    to judge by when ``path`` is a temporary copy."""
    named = Path(name or path.name)
    if path.is_dir() or archive.is_archive(named):
        return "image-classification"
    suffix = named.suffix.lower()
    if suffix in (".parquet", ".pq", ".tsv"):
        return "tabular"
    if suffix in (".csv", ".txt"):
        import csv
        import io

        head = path.read_bytes()[:65536].decode("utf-8", errors="replace")
        rows = [r for r in csv.reader(io.StringIO(head)) if r][:20]
        body = rows[1:] if rows and not rows[0][0].lower().endswith(images.IMAGE_SUFFIXES) else rows
        if body and all(len(r) == 2 and r[0].strip().lower().endswith(images.IMAGE_SUFFIXES) for r in body):
            return "image-classification"
        return "tabular"
    if suffix in images.IMAGE_SUFFIXES:
        raise InvalidInput(f"{named.name}: a single image is not a dataset; import the folder of class folders")
    raise InvalidInput(f"{named.name}: unsupported file type {suffix or '(none)'}; import a .csv/.parquet table, an "
                       "image folder (class_name/*.jpg|png|bmp), a .zip/.tar of one, or a CSV of path,label")


class DatasetStore:
    """Datasets of one workspace. Constructing it does no I/O."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.engine = workspace.engine
        self.blobs = workspace.blobs

    # -- import -------------------------------------------------------------------------------------------------
    def import_path(
        self,
        path: str | Path,
        name: str,
        kind: str = "auto",
        label: str | None = None,
        task: str = "auto",
        validation_fraction: float = 0.2,
        seed: int = 0,
        description: str = "",
        created_by: str = "",
        source_name: str | None = None,
        progress: Callable[[float, str], None] | None = None,
        fmt: str | None = None,
    ) -> DatasetVersion:
        """Import a file or folder as the next version of dataset ``name``.

        Args:
            path: a CSV/TSV/Parquet table, an image folder (``class/*.jpg|png|bmp``), a .zip/.tar of one, a
                CSV of ``path,label`` (paths relative to the CSV), or annotated images: a COCO, Pascal VOC, YOLO
                or Label Studio folder (or a .zip/.tar of one; see ``data.annotated``).
            name: dataset name; created on first import.
            kind: ``auto`` (default), ``tabular``, ``image-classification``, ``object-detection``,
                ``multilabel-classification`` or ``text-classification`` (a CSV of ``text,label`` or Label Studio
                text tasks).
            label: the label column of a table (default: a column named label/target/class/y, else the last).
            task: ``auto``, ``classification`` or ``regression`` (tables).
            validation_fraction: share of items in the validation split (default 0.2, ExeML's 0.8/0.2).
            seed: seed of the split.
            description: free text kept on the version.
            created_by: who imported it.
            source_name: the file name to record and to pick the reader by (when ``path`` is a temporary copy).
            progress: optional ``callable(fraction, message)``.
            fmt: the annotation format (``auto``, ``coco``, ``voc``, ``yolo``, ``labelstudio``, ``csv``); None
                (default) reads annotations when ``kind`` names an annotated kind, or ``auto`` finds a COCO, Label
                Studio, VOC or YOLO folder (or an archive of one).
        """
        check_name(name, "dataset name")
        path = Path(path)
        if not path.exists():
            raise InvalidInput(f"no such file or folder: {path}")
        if kind not in KINDS:
            raise InvalidInput(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
        if not 0 < validation_fraction < 1:
            raise InvalidInput(f"validation_fraction {validation_fraction}: must be between 0 and 1")
        display = Path(source_name) if source_name else path
        if kind == "text":
            if label is not None or fmt is not None:
                raise InvalidInput("label/format: a text dataset finds its columns itself (text, instruction/response "
                                   "or text/label)")
            return self._import_text(path, display.name, name, validation_fraction, seed, description, created_by)
        if self._annotated(path, display, kind, fmt):
            from modelyard.data.annotated import import_annotations

            if label is not None:
                raise InvalidInput("label: only tables have a label column; annotations name their own classes")
            return import_annotations(self, path, display.name, name, fmt or "auto", validation_fraction, seed,
                                      description, created_by, progress, expect_kind=kind)
        resolved = detect_kind(path, display.name) if kind == "auto" else kind
        if resolved == "tabular":
            if path.is_dir():
                raise InvalidInput(f"{display.name}: a folder cannot be imported as a table")
            return self._import_table(path, display.name, name, label, task, validation_fraction, seed,
                                      description, created_by)
        if label is not None:
            raise InvalidInput("label: only tables have a label column; image labels are the folder names")
        return self._import_images(path, display.name, name, validation_fraction, seed, description, created_by,
                                   progress, annotations_too=kind == "auto")

    @staticmethod
    def _annotated(path: Path, display: Path, kind: str, fmt: str | None) -> bool:
        """Whether an import reads annotation files (rather than a table or class folders)."""
        if fmt is not None or kind in ("object-detection", "multilabel-classification", "text-classification"):
            if kind == "tabular":
                raise InvalidInput("format: annotation formats hold images; a table is imported with --kind tabular "
                                   "and no format")
            return True
        if kind != "auto":
            return False
        from modelyard.data.annotated import looks_annotated

        return display.suffix.lower() == ".json" or (path.is_dir() and looks_annotated(path))

    def _import_text(self, path, display, name, validation_fraction, seed, description, created_by):
        from modelyard.data import text

        layout, records = text.read_records(path, display)
        records, removed = text.deduplicate(records)
        if len(records) < 2:
            raise InvalidInput(f"{display}: a text dataset needs at least 2 distinct records, found {len(records)}")
        labels = [r["label"] for r in records] if layout == "labeled" else None
        assignment = "".join(splits.stratified_split(labels, len(records), validation_fraction, seed).tolist())
        blob = self.blobs.put_bytes(text.records_to_jsonl(records, assignment))
        manifest = {"schema": MANIFEST_SCHEMA, "kind": "text", "layout": layout,
                    "records": {"digest": blob.digest, "size": blob.size, "count": len(records), "format": "jsonl"}}
        schema = {"layout": layout, "fields": list(text.LAYOUTS[layout])}
        if labels is not None:
            schema["classes"] = sorted(set(labels))
        return self._create_version(
            name, "text", manifest, schema=schema,
            split={"validation_fraction": validation_fraction, "seed": seed, "stratified": labels is not None,
                   "counts": splits.split_counts(assignment)},
            stats=text.text_stats(records, layout, assignment, removed),
            lineage={"parent": None, "step": None}, source={"name": display, "format": layout},
            items=len(records), size=blob.size, description=description, created_by=created_by)

    def load_texts(self, version: DatasetVersion) -> list[dict]:
        """The records of a ``text`` version, each with its ``split`` (``train``/``validation``), verified."""
        from modelyard.data import text

        if version.kind != "text":
            raise InvalidInput(f"{version.ref} is a {version.kind} dataset, not text")
        entry = self.manifest(version)["records"]
        return text.records_from_jsonl(self.blobs.read_bytes(entry["digest"]))

    def _import_table(self, path, display, name, label, task, validation_fraction, seed, description, created_by):
        raw = path.read_bytes()
        table = tabular.read_table(Path(display), data=raw)
        frame, schema, notes = tabular.prepare_table(table, display, label=label, task=task)
        labels = frame[schema["label"]].tolist() if schema["task"] == "classification" else None
        assignment = "".join(splits.stratified_split(labels, len(frame), validation_fraction, seed).tolist())
        table_blob = self.blobs.put_bytes(tabular.frame_to_parquet(frame))
        source_blob = self.blobs.put_bytes(raw)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "kind": "tabular",
            "table": {"digest": table_blob.digest, "size": table_blob.size, "rows": len(frame), "format": "parquet"},
            "split": assignment,
        }
        return self._create_version(
            name, "tabular", manifest,
            schema=schema,
            split={"validation_fraction": validation_fraction, "seed": seed,
                   "stratified": labels is not None, "counts": splits.split_counts(assignment)},
            stats=stats.tabular_stats(frame, schema, assignment),
            lineage={"parent": None, "step": None},
            source={"name": display, "format": table.format, "encoding": table.encoding,
                    "digest": "sha256:" + source_blob.digest, "size": source_blob.size, "notes": notes},
            items=len(frame),
            size=table_blob.size + source_blob.size,
            description=description,
            created_by=created_by,
        )

    def _import_images(self, path, display, name, validation_fraction, seed, description, created_by, progress,
                       annotations_too: bool = False):
        with tempfile.TemporaryDirectory(prefix="modelyard-import-") as scratch:
            if path.is_dir():
                found, notes = images.scan_folder(path)
            elif archive.is_archive(Path(display)):
                limits = archive.ArchiveLimits.from_settings(self.workspace.settings)
                root = archive.safe_extract(path, Path(scratch) / "x", display_name=display, limits=limits)
                from modelyard.data.annotated import import_annotations, looks_annotated, unwrap

                if annotations_too and looks_annotated(unwrap(root)):  # an archive of a COCO/VOC/YOLO/LS folder
                    return import_annotations(self, unwrap(root), display, name, "auto", validation_fraction, seed,
                                              description, created_by, progress)
                found, notes = images.scan_folder(root)
            else:
                found, notes = images.read_label_csv(path)
            if not found:
                raise InvalidInput(f"{display}: no images found (expected <folder>/<class>/*.jpg|jpeg|png|bmp or a "
                                   "CSV of path,label)")
            entries, left_out, total = [], [], 0
            seen: set[str] = set()
            for index, item in enumerate(found):
                # decoded from the file and hashed while streamed into the store: no file is held in memory whole,
                # and one that cannot be decoded is never stored (it is reported below, with the reason)
                facts = (images.inspect_image(item.source) if item.source.stat().st_size
                         else {"error": "the file is empty (0 bytes)"})
                if facts.get("error"):
                    left_out.append({"path": item.path, "label": item.label, "error": facts["error"]})
                    continue
                blob = self.blobs.put_file(item.source)
                if blob.digest not in seen:
                    seen.add(blob.digest)
                    total += blob.size
                entries.append({"path": item.path, "label": item.label, "digest": blob.digest, "size": blob.size,
                                **facts})
                if progress and index % 200 == 0:
                    progress(index / len(found), f"stored {index}/{len(found)} images")
        if not entries:
            first = left_out[0]
            raise InvalidInput(f"{display}: none of the {len(left_out)} image file(s) can be decoded (first: "
                               f"{first['path']}: {first['error']})")
        if left_out:
            shown = ", ".join(item["path"] for item in left_out[:5])
            notes = [*notes, f"left out {len(left_out)} file(s) that cannot be decoded: {shown}"
                             + (" ..." if len(left_out) > 5 else "") + " (reasons in 'data stats')"]
        classes = sorted({e["label"] for e in entries}, key=tabular._natural_key)
        assignment = splits.stratified_split([e["label"] for e in entries], len(entries), validation_fraction, seed)
        for entry, side in zip(entries, assignment.tolist(), strict=True):
            entry["split"] = side
        good = [e for e in entries if not e.get("error")]
        schema = {
            "task": "image-classification",
            "label": "label",
            "classes": classes,
            "channels": 1 if images.is_grayscale([e["mode"] for e in good]) else 3,
            "median_size": [int(np.median([e["height"] for e in good])) if good else 0,
                            int(np.median([e["width"] for e in good])) if good else 0],
        }
        manifest = {"schema": MANIFEST_SCHEMA, "kind": "image-classification", "entries": entries}
        return self._create_version(
            name, "image-classification", manifest,
            schema=schema,
            split={"validation_fraction": validation_fraction, "seed": seed, "stratified": True,
                   "counts": splits.split_counts(assignment.tolist())},
            stats=stats.image_stats(entries, classes, self.blobs.read_bytes, left_out=left_out),
            lineage={"parent": None, "step": None},
            source={"name": display, "format": "images", "notes": notes},
            items=len(entries),
            size=total,
            description=description,
            created_by=created_by,
        )

    # -- versions -----------------------------------------------------------------------------------------------
    def _create_version(self, name: str, kind: str, manifest: dict, *, schema: dict, split: dict, stats: dict,
                        lineage: dict, source: dict, items: int, size: int, description: str,
                        created_by: str) -> DatasetVersion:
        """Store the manifest blob, then insert the dataset (if new) and the version row in one transaction."""
        manifest_blob = self.blobs.put_bytes(json.dumps(manifest, sort_keys=True).encode())
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(sa.select(datasets).where(datasets.c.name == name)).first()
                    if row is None:
                        dataset_id = new_id("ds")
                        conn.execute(datasets.insert().values(
                            id=dataset_id, name=name, kind=kind, description="", created_by=created_by,
                            created_at=utcnow()))
                    else:
                        if row.kind != kind:
                            raise Conflict(f"dataset {name!r} holds {row.kind} data; cannot add a {kind} version "
                                           "(use another name)")
                        dataset_id = row.id
                    latest = conn.execute(sa.select(sa.func.max(dataset_versions.c.version))
                                          .where(dataset_versions.c.dataset_id == dataset_id)).scalar()
                    version_id = new_id("dsv")
                    conn.execute(dataset_versions.insert().values(
                        id=version_id, dataset_id=dataset_id, version=(latest or 0) + 1,
                        manifest_digest="sha256:" + manifest_blob.digest, schema=schema, split=split, stats=stats,
                        lineage=lineage, source=source, items=items, size=size + manifest_blob.size,
                        description=description, created_by=created_by, created_at=utcnow()))
                return self._get_by_id(version_id)
            except sa.exc.IntegrityError:
                if attempt == 4:
                    raise Conflict(f"dataset {name!r} is being changed by someone else; try again") from None
        raise AssertionError("unreachable")

    def _version(self, row) -> DatasetVersion:
        return DatasetVersion(
            id=row.id, name=row.name, kind=row.kind, version=row.version, manifest_digest=row.manifest_digest,
            schema=row.schema, split=row.split, stats=row.stats, lineage=row.lineage, source=row.source,
            items=row.items, size=row.size, description=row.description, created_by=row.created_by,
            created_at=as_utc(row.created_at),
        )

    def _select(self):
        return sa.select(dataset_versions, datasets.c.name, datasets.c.kind).join(
            datasets, datasets.c.id == dataset_versions.c.dataset_id)

    def _get_by_id(self, version_id: str) -> DatasetVersion:
        with self.engine.connect() as conn:
            row = conn.execute(self._select().where(dataset_versions.c.id == version_id)).first()
        return self._version(row)

    def get(self, ref: str) -> DatasetVersion:
        """The version named by ``NAME@VERSION`` (``NAME`` alone: the latest)."""
        name, version = parse_ref(ref)
        query = self._select().where(datasets.c.name == name)
        if version is None:
            query = query.order_by(dataset_versions.c.version.desc()).limit(1)
        else:
            query = query.where(dataset_versions.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                exists = conn.execute(sa.select(datasets.c.id).where(datasets.c.name == name)).first()
        if row is None:
            if exists:
                raise NotFound(f"dataset {name} has no version {version}")
            raise NotFound(f"dataset {name!r} not found")
        return self._version(row)

    def versions(self, name: str) -> list[DatasetVersion]:
        check_name(name, "dataset name")
        with self.engine.connect() as conn:
            rows = conn.execute(self._select().where(datasets.c.name == name)
                                .order_by(dataset_versions.c.version)).all()
        if not rows:
            raise NotFound(f"dataset {name!r} not found")
        return [self._version(r) for r in rows]

    def list(self) -> list[dict]:
        """Every dataset with its latest version's summary."""
        latest = (sa.select(dataset_versions.c.dataset_id, sa.func.max(dataset_versions.c.version).label("v"))
                  .group_by(dataset_versions.c.dataset_id).subquery())
        query = (self._select().join(latest, sa.and_(latest.c.dataset_id == dataset_versions.c.dataset_id,
                                                     latest.c.v == dataset_versions.c.version))
                 .order_by(datasets.c.name))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            version = self._version(row)
            out.append({"name": version.name, "kind": version.kind, "latest": version.ref,
                        "versions": version.version, "items": version.items,
                        "classes": len(version.schema.get("classes", [])), "task": version.schema.get("task"),
                        "created_at": isoformat(version.created_at)})
        return out

    def delete(self, ref: str) -> list[DatasetVersion]:
        """Delete one version (``NAME@VERSION``) or, for ``NAME`` alone, the dataset with every version.

        Only rows go: the blobs stay until ``blobs gc`` finds nothing else refers to them (versions share files).
        Refused while a queued or running job names the version (or the dataset, which means its latest).

        Raises:
            NotFound: no such dataset or version.
            Conflict: a job that is not finished uses it.
        """
        from modelyard.store.gc import active_jobs_naming

        name, number = parse_ref(ref)
        doomed = self.versions(name) if number is None else [self.get(ref)]
        latest = self.versions(name)[-1]
        names = {v.ref for v in doomed} | ({name} if any(v.id == latest.id for v in doomed) else set())
        users = active_jobs_naming(self.engine, names)
        if users:
            raise Conflict(f"{ref} is used by job(s) {', '.join(users[:5])} that have not finished; wait for them or "
                           "cancel them first")
        with self.engine.begin() as conn:
            conn.execute(dataset_versions.delete().where(dataset_versions.c.id.in_([v.id for v in doomed])))
            remaining = conn.execute(sa.select(sa.func.count()).select_from(dataset_versions)
                                     .where(dataset_versions.c.dataset_id == sa.select(datasets.c.id)
                                            .where(datasets.c.name == name).scalar_subquery())).scalar()
            if number is None or not remaining:
                conn.execute(datasets.delete().where(datasets.c.name == name))
        return doomed

    # -- reading ------------------------------------------------------------------------------------------------
    def manifest(self, version: DatasetVersion) -> dict:
        """The version's manifest, verified against its hash."""
        return json.loads(self.blobs.read_bytes(version.manifest_digest))

    def load_table(self, version: DatasetVersion):
        """``(frame, split)``: the stored table and its split as an array of ``"t"``/``"v"``."""
        if version.kind != "tabular":
            raise InvalidInput(f"{version.ref} is a {version.kind} dataset, not a table")
        manifest = self.manifest(version)
        frame = tabular.frame_from_parquet(self.blobs.read_bytes(manifest["table"]["digest"]))
        return frame, np.array(list(manifest["split"]), dtype="<U1")

    def load_annotations(self, version: DatasetVersion):
        """The labels of an ``object-detection`` or ``image-classification`` version as an
        :class:`~modelyard.data.annotations.AnnotationSet` (items that could not be decoded are left out; boxes are
        as stored, already clipped to their image)."""
        from modelyard.data.annotated import annotations_of

        return annotations_of(version.kind, version.schema, self.manifest(version))

    def item_reader(self, version: DatasetVersion) -> Callable[[str], bytes]:
        """``read(item) -> bytes``: an item's file, read from the blob store and verified against its hash."""
        from modelyard.data.annotated import digests_of

        digests = digests_of(self.manifest(version))

        def read(item: str) -> bytes:
            if item not in digests:
                raise NotFound(f"{version.ref} has no item {item!r}")
            return self.blobs.read_bytes(digests[item])

        return read

    def load_images(self, version: DatasetVersion, size: tuple[int, int], channels: int,
                    progress: Callable[[float, str], None] | None = None):
        """Decode every usable image to ``uint8 (N, C, H, W)``; returns ``(x, y, split, paths)`` with ``y`` the
        class index in ``schema["classes"]``. Corrupt entries are skipped (the check blocks training on them)."""
        if version.kind != "image-classification":
            raise InvalidInput(f"{version.ref} is a {version.kind} dataset, not an image-classification one")
        entries = [e for e in self.manifest(version)["entries"] if not e.get("error")]
        index = {name: i for i, name in enumerate(version.schema["classes"])}
        x = np.empty((len(entries), channels, size[0], size[1]), dtype=np.uint8)
        for i, entry in enumerate(entries):
            x[i] = images.decode_to_array(self.blobs.read_bytes(entry["digest"]), size, channels)
            if progress and i % 500 == 0:
                progress(i / max(1, len(entries)), f"decoded {i}/{len(entries)} images")
        y = np.array([index[e["label"]] for e in entries], dtype=np.int64)
        split = np.array([e["split"] for e in entries], dtype="<U1")
        return x, y, split, [e["path"] for e in entries]

    def check(self, ref_or_version: str | DatasetVersion) -> CheckResult:
        """The trainability verdict of a version (ExeML minimums, broken files)."""
        version = ref_or_version if isinstance(ref_or_version, DatasetVersion) else self.get(ref_or_version)
        return check_stats(version.ref, version.kind, version.schema, version.stats)

