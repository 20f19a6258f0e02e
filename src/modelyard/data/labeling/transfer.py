"""Labels in and out of a labeling job as :class:`~modelyard.data.annotations.AnnotationSet` values, so every
annotation format (COCO, VOC, YOLO, Label Studio, CSV: ``modelyard.data.formats``) converts to and from a job once.

Imported labels are checked as a labeler's would be (the job's task and label set, boxes clipped or refused by the
``Annotated`` policy) and written in one transaction: an unknown item or class anywhere refuses the whole import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.core.ids import utcnow
from modelyard.data.annotations import Annotated, AnnotationSet
from modelyard.data.labeling.model import LABELED_STATES, Actor, Proposal, make_annotation
from modelyard.data.labeling.rows import check_states, job_of, job_row, require_manager
from modelyard.store.schema_labeling import labeling_items, labeling_jobs

# labels already under or past review are not overwritten by an import
PROTECTED_STATES = ("in_review", "accepted")


class TransferMixin:
    """``import_annotations`` and ``annotation_set`` of :class:`~modelyard.data.labeling.service.LabelingStore`."""

    engine: sa.Engine

    def import_annotations(self, name: str, actor: Actor, annotations: Iterable[Annotated], *,
                           as_proposals: bool = False, model: str = "") -> dict:
        """Bring labels made elsewhere into the job (owner or admin).

        Args:
            annotations: one ``Annotated`` per item, matched by item id.
            as_proposals: store them as proposals (a model's predictions: they become ``proposed``, with a score from
                their boxes' scores, else 1) instead of labels (``labeled``, source ``imported``, by ``actor``).
            model: the name recorded on proposals.

        Returns:
            ``{"imported": n, "skipped": n}``: items in review or accepted (labels) or already labeled (proposals)
            are skipped.

        Raises:
            NotFound: an item is not in the job (named); nothing is imported.
            InvalidInput: a class outside the label set, a box outside the image, a size that differs from the
                item's image (named); nothing is imported.
        """
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            require_manager(job, actor, "import labels")
            items = {r.item: r for r in conn.execute(sa.select(
                labeling_items.c.item, labeling_items.c.state, labeling_items.c.width, labeling_items.c.height)
                .where(labeling_items.c.job_id == row.id))}
            checked, seen = [], set()
            for annotated in annotations:
                if annotated.item in seen:
                    raise InvalidInput(f"item {annotated.item!r} appears twice in the import; nothing was imported")
                seen.add(annotated.item)
                current = items.get(annotated.item)
                if current is None:
                    raise NotFound(f"item {annotated.item!r} is not in labeling job {name!r}; nothing was imported")
                if annotated.width and current.width and (annotated.width, annotated.height) != \
                        (current.width, current.height):
                    raise InvalidInput(f"{annotated.item}: the labels are for a {annotated.width}x{annotated.height} "
                                       f"image, the job's is {current.width}x{current.height}")
                boxes = [b.to_list()[:5] for b in annotated.boxes]
                made = make_annotation(job.task, job.classes, annotated.item, current.width, current.height,
                                       annotated.labels, boxes)
                if as_proposals:
                    scores = [b.score for b in annotated.boxes if b.score is not None]
                    made = Annotated.make(made.item, made.width, made.height, boxes=annotated.boxes,
                                          labels=made.labels) if annotated.boxes else made
                    checked.append(Proposal(made, sum(scores) / len(scores) if scores else 1.0, model=model))
                else:
                    checked.append(made)
            now, imported, skipped = utcnow(), 0, 0
            for value in checked:
                item = value.annotated.item if as_proposals else value.item
                state = items[item].state
                if (state in PROTECTED_STATES) if not as_proposals else (state not in ("unlabeled", "proposed")):
                    skipped += 1
                    continue
                where = (labeling_items.c.job_id == row.id, labeling_items.c.item == item)
                if as_proposals:
                    conn.execute(labeling_items.update().where(*where).values(
                        state="proposed", proposal=value.to_dict(), score=value.score,
                        uncertainty=value.uncertainty, hard=value.hard, updated_at=now))
                else:
                    conn.execute(labeling_items.update().where(*where).values(
                        state="labeled", annotation=value.to_entry(), source="imported", labeled_by=actor.name,
                        labeled_at=now, updated_at=now))
                imported += 1
            conn.execute(labeling_jobs.update().where(labeling_jobs.c.id == row.id).values(updated_at=now))
        return {"imported": imported, "skipped": skipped}

    def annotation_set(self, name: str, state: Sequence[str] = LABELED_STATES) -> AnnotationSet:
        """The job's saved labels of items in ``state`` (default every saved label not rejected), in queue order,
        as an ``AnnotationSet`` any format writes. A text job's set is a ``text`` set."""
        states = check_states(state)
        with self.engine.connect() as conn:
            row = job_row(conn, name)
            rows = conn.execute(sa.select(labeling_items.c.item, labeling_items.c.annotation)
                                .where(labeling_items.c.job_id == row.id, labeling_items.c.state.in_(states),
                                       labeling_items.c.annotation.is_not(None))
                                .order_by(labeling_items.c.position)).all()
        return AnnotationSet(row.task, tuple(row.classes),
                             tuple(Annotated.from_entry(r.item, r.annotation) for r in rows))
