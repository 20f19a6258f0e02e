"""Publishing a labeling job: the next immutable dataset version, with lineage per item.

Each entry of the new version's manifest carries ``labeling``: the job, who labeled the item, whether the label is a
model's proposal accepted, edited or rejected (or manual), the review verdict and rating, and ``origin``: ``job``
(this job's label), ``kept`` (the source version's label, kept because ``mode="keep"``) or ``existing`` (the source
label of an item the job did not label). Items with no label at all are left out and counted.

Order of writes: every blob first (the manifest is content-addressed), then the version row in one transaction
(``DatasetStore``), then the job's publish record. A refused publish (nothing labeled, a kind conflict) writes nothing.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import sqlalchemy as sa

from modelyard.core.errors import Conflict, InvalidInput
from modelyard.core.ids import isoformat, utcnow
from modelyard.data.labeling.model import LABELED_STATES, Actor
from modelyard.data.labeling.rows import item_of, job_of, job_row, require_manager
from modelyard.store.schema_labeling import labeling_items, labeling_jobs

MODES = ("overwrite", "keep")
DETECTION_KIND = "object-detection"
# the labeling task -> the dataset kind its labels publish as
KIND_OF_TASK = {"classification": "image-classification", "multilabel": "multilabel-classification",
                "detection": DETECTION_KIND, "text": "text-classification"}


class PublishMixin:
    """``publish`` of :class:`~modelyard.data.labeling.service.LabelingStore`."""

    engine: sa.Engine

    def publish(self, name: str, actor: Actor, *, mode: str = "overwrite", dataset: str | None = None,
                accepted_only: bool = False, validation_fraction: float = 0.2, seed: int = 0,
                description: str = ""):
        """Create the next version of a dataset from the job's labels (owner or admin).

        Args:
            mode: ``overwrite`` (default): an item's new label replaces the source version's; ``keep``: an item
                that already had a label keeps it, the job's labels fill only the unlabeled ones.
            dataset: the dataset to add the version to; default the source version's dataset (required for a job
                on uploaded images, and for boxes on a classification dataset: a dataset holds one kind).
            accepted_only: publish only labels a reviewer passed (default: every saved label that was not
                rejected: labeled, in review, accepted).
            validation_fraction, seed: the split of items the source version did not place (new images).
            description: kept on the version.

        Returns:
            The new ``DatasetVersion``.

        Raises:
            Conflict: nothing is labeled yet (or nothing accepted with ``accepted_only``).
            InvalidInput: an unknown mode, no dataset name for uploaded images, or a kind the build lacks.
        """
        from modelyard.data.datasets import DatasetStore
        from modelyard.data.refs import check_name, parse_ref

        if mode not in MODES:
            raise InvalidInput(f"mode {mode!r}: expected overwrite or keep")
        if not 0 < validation_fraction < 1:
            raise InvalidInput(f"validation_fraction {validation_fraction}: must be between 0 and 1")
        with self.engine.connect() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            require_manager(job, actor, "publish it")
            items = [item_of(r) for r in conn.execute(sa.select(labeling_items).where(
                labeling_items.c.job_id == row.id).order_by(labeling_items.c.position))]
        states = ("accepted",) if accepted_only else LABELED_STATES
        if not any(i.state in states and i.annotation for i in items):
            what = "accepted by a reviewer" if accepted_only else "labeled"
            raise Conflict(f"labeling job {name!r} has nothing {what} to publish yet")
        source_ref = job.source.get("dataset")
        target = dataset or (parse_ref(source_ref)[0] if source_ref else None)
        if target is None:
            raise InvalidInput("dataset: name the dataset to publish to (the job was opened on uploaded images)")
        check_name(target, "dataset name")
        kind = KIND_OF_TASK.get(job.task)
        if kind is None:
            raise InvalidInput(f"a {job.task} job cannot be published yet (classification, multilabel and detection "
                               "jobs can)")
        store = DatasetStore(self.workspace)
        source_entries = {}
        if source_ref:
            for entry in store.manifest(store.get(source_ref))["entries"]:
                source_entries[entry["path"]] = entry
        entries, origins, left_out = [], Counter(), 0
        for item in items:
            new = item.annotation if item.state in states and item.annotation else None
            if mode == "keep" and item.existing:
                label, origin = item.existing, "kept"
            elif new:
                label, origin = new, "job"
            elif item.existing:
                label, origin = item.existing, "existing"
            else:
                left_out += 1
                continue
            origins[origin] += 1
            base = source_entries.get(item.item) or self._image_facts(item)
            if kind == "text-classification":
                entry = {"path": item.item, "text": base.get("text", item.text or ""), "labels": list(label["labels"]),
                         "label": label["labels"][0]}
                if "split" in base:
                    entry["split"] = base["split"]
                entry["labeling"] = _lineage(job.name, item, origin)
                entries.append(entry)
                continue
            entry = {k: v for k, v in base.items() if k not in ("label", "labels", "boxes", "labeling")}
            entry.update({"path": item.item, "width": item.width or base.get("width", 0),
                          "height": item.height or base.get("height", 0)})
            if kind == DETECTION_KIND:
                entry["boxes"] = label.get("boxes", [])
                if label.get("labels"):
                    entry["labels"] = label["labels"]
            else:
                names = label.get("labels") or []
                if not names:  # a box-labeled source item in a classification job: nothing to publish for it
                    origins[origin] -= 1
                    left_out += 1
                    continue
                if job.task == "multilabel":
                    entry["labels"] = list(names)
                else:
                    entry["label"] = names[0]
            entry["labeling"] = _lineage(job.name, item, origin)
            entries.append(entry)
        classes = list(job.classes)
        used = {e["label"] for e in entries if "label" in e} | {b[4] for e in entries for b in e.get("boxes", ())} \
            | {name for e in entries for name in e.get("labels", ())}
        classes += sorted(used - set(classes))
        self._split(entries, validation_fraction, seed)
        version = self._create(store, target, kind, job, entries, classes, origins, left_out, mode, accepted_only,
                               source_ref, actor, description, validation_fraction, seed)
        record = {"ref": version.ref, "mode": mode, "accepted_only": accepted_only, "items": len(entries),
                  "by": actor.name, "at": isoformat(version.created_at)}
        with self.engine.begin() as conn:
            current = conn.execute(sa.select(labeling_jobs.c.published).where(labeling_jobs.c.id == row.id)).scalar()
            conn.execute(labeling_jobs.update().where(labeling_jobs.c.id == row.id).values(
                published=[*(current or []), record], updated_at=utcnow()))
        return version

    def _image_facts(self, item) -> dict:
        """The manifest facts of an uploaded image (what an import records), read again from the blob store."""
        from modelyard.data.images import inspect_image

        data = self.workspace.blobs.read_bytes(item.digest)
        facts = inspect_image(data)
        return {"digest": item.digest.removeprefix("sha256:"), "size": len(data), **facts}

    @staticmethod
    def _split(entries: list[dict], validation_fraction: float, seed: int) -> None:
        """Keep the source split of every entry that has one; split the others, stratified by label."""
        from modelyard.data.splits import stratified_split

        fresh = [e for e in entries if e.get("split") not in ("t", "v")]
        if not fresh:
            return
        keys = [e.get("label") or ",".join(e.get("labels", ())) or ",".join(sorted({b[4] for b in e.get("boxes", ())}))
                for e in fresh]
        for entry, side in zip(fresh, stratified_split(keys, len(fresh), validation_fraction, seed).tolist(),
                               strict=True):
            entry["split"] = side

    def _create(self, store, target, kind, job, entries, classes, origins, left_out, mode, accepted_only, source_ref,
                actor, description, validation_fraction, seed):
        from modelyard.data import images
        from modelyard.data.datasets import MANIFEST_SCHEMA
        from modelyard.data.splits import split_counts

        good = [e for e in entries if not e.get("error")]
        from modelyard.data import stats as statistics

        schema = {"task": kind, "classes": classes}
        if kind == DETECTION_KIND:
            stats = statistics.annotation_stats(entries, classes)
        elif kind == "text-classification":
            stats = statistics.text_stats(entries, classes)
            schema["multilabel"] = False
        elif kind == "multilabel-classification":
            stats = statistics.multilabel_stats(entries, classes)
            schema["multilabel"] = True
        else:
            stats = statistics.image_stats(entries, classes, store.blobs.read_bytes)
            schema["label"] = "label"
        if good and "mode" in good[0]:
            schema["channels"] = 1 if images.is_grayscale([e.get("mode", "RGB") for e in good]) else 3
        if good and kind != "text-classification":
            schema["median_size"] = [int(np.median([e["height"] for e in good])),
                                     int(np.median([e["width"] for e in good]))]
        counts = split_counts(e["split"] for e in entries)
        sources = Counter(e["labeling"]["source"] for e in entries if e["labeling"]["origin"] == "job")
        reviews = Counter(e["labeling"]["review"] for e in entries if e["labeling"]["review"])
        manifest = {"schema": MANIFEST_SCHEMA, "kind": kind, "entries": entries}
        return store._create_version(
            target, kind, manifest,
            schema=schema,
            split={"validation_fraction": validation_fraction, "seed": seed, "stratified": True, "counts": counts},
            stats=stats,
            lineage={"parent": source_ref,
                     "step": {"op": "label", "job": job.name, "mode": mode, "accepted_only": accepted_only},
                     "labeling": {"origins": dict(origins), "left_out": left_out, "sources": dict(sources),
                                  "reviews": dict(reviews)}},
            source={"name": f"labeling job {job.name}", "format": "labeling", "notes": (
                [f"left out {left_out} item(s) with no label"] if left_out else [])},
            items=len(entries),
            size=(sum(len(e["text"].encode("utf-8")) for e in entries) if kind == "text-classification" else
                  sum(int(e.get("size") or 0) for e in {e["digest"]: e for e in entries}.values())),
            description=description or f"published from labeling job {job.name}",
            created_by=actor.name,
        )


def _lineage(job: str, item, origin: str) -> dict:
    """What a published entry records of where its label came from."""
    mine = origin == "job"
    return {"job": job, "origin": origin, "by": item.labeled_by if mine else None,
            "source": item.source if mine else None,
            "review": (item.review or {}).get("outcome") if mine else None,
            "rating": (item.review or {}).get("rating") if mine else None}
