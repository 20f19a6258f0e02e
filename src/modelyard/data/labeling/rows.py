"""Reading labeling rows into values, and the access rules every labeling service function applies."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from modelyard.core.errors import Forbidden, InvalidInput, NotFound
from modelyard.data.labeling.model import STATES, Actor, LabelingJob, LabelItem
from modelyard.store.db import as_utc
from modelyard.store.schema_labeling import labeling_items, labeling_jobs, labeling_members


def job_row(conn, name: str):
    row = conn.execute(sa.select(labeling_jobs).where(labeling_jobs.c.name == name)).first()
    if row is None:
        raise NotFound(f"labeling job {name!r} not found")
    return row


def job_of(conn, row) -> LabelingJob:
    members = dict(conn.execute(sa.select(labeling_members.c.principal, labeling_members.c.role)
                                .where(labeling_members.c.job_id == row.id)).all())
    counts = dict(conn.execute(sa.select(labeling_items.c.state, sa.func.count())
                               .where(labeling_items.c.job_id == row.id)
                               .group_by(labeling_items.c.state)).all())
    return LabelingJob(
        id=row.id, name=row.name, task=row.task, classes=tuple(row.classes), source=row.source,
        description=row.description, owner=row.owner, members=members, published=tuple(row.published),
        counts={state: int(counts.get(state, 0)) for state in STATES},
        created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at))


def item_row(conn, job, item: str):
    row = conn.execute(sa.select(labeling_items).where(labeling_items.c.job_id == job.id,
                                                       labeling_items.c.item == item)).first()
    if row is None:
        raise NotFound(f"item {item!r} is not in labeling job {job.name!r}")
    return row


SORTS = ("position", "score", "-score", "uncertainty", "-uncertainty", "hard")


def queue_segments(sort: str) -> list[tuple[list, list]]:
    """A queue sort as segments ``(extra WHERE terms, ORDER BY terms)`` read one after the other: the items with a
    score (or uncertainty) in its order, then those without one in queue order. Each segment's ORDER BY walks an
    index (``(job_id, score, position)``, ...); one ORDER BY with ``score IS NULL`` first would sort every row of the
    job for each page (55 ms instead of 1 ms at 10,000 items on SQLite), and databases disagree on where NULLs sort.
    """
    t = labeling_items

    def ranked(column, descending: bool, *where) -> list[tuple[list, list]]:
        key = column.desc() if descending else column
        return [([*where, column.is_not(None)], [key, t.c.position]), ([*where, column.is_(None)], [t.c.position])]

    segments = {
        "position": [([], [t.c.position])],
        "score": ranked(t.c.score, False),
        "-score": ranked(t.c.score, True),
        "uncertainty": ranked(t.c.uncertainty, False),
        "-uncertainty": ranked(t.c.uncertainty, True),
        "hard": ranked(t.c.uncertainty, True, t.c.hard.is_(True)) + ranked(t.c.uncertainty, True,
                                                                           t.c.hard.is_(False)),
    }
    if sort not in segments:
        raise InvalidInput(f"sort {sort!r}: expected one of {', '.join(SORTS)}")
    return segments[sort]


def queue_page(conn, where: list, sort: str, offset: int, limit: int | None) -> list[str]:
    """Item ids of one page of the queue: ``where`` filters, ``sort`` orders (see :func:`queue_segments`),
    ``offset``/``limit`` (None: to the end) page."""
    t = labeling_items
    page: list[str] = []
    for extra, order in queue_segments(sort):
        if limit is not None and len(page) >= limit:
            break
        terms = [*where, *extra]
        if offset:
            size = conn.execute(sa.select(sa.func.count()).select_from(t).where(*terms)).scalar_one()
            if offset >= size:
                offset -= size
                continue
        query = sa.select(t.c.item).where(*terms).order_by(*order).offset(offset)
        if limit is not None:
            query = query.limit(limit - len(page))
        page += conn.execute(query).scalars()
        offset = 0
    return page


def existing_items(conn, job_id: str, names: list[str], chunk: int = 500) -> set[str]:
    """Which of ``names`` are items of the job (asked in chunks: SQLite binds at most a few thousand values)."""
    found: set[str] = set()
    for start in range(0, len(names), chunk):
        found |= set(conn.execute(sa.select(labeling_items.c.item).where(
            labeling_items.c.job_id == job_id, labeling_items.c.item.in_(names[start:start + chunk]))).scalars())
    return found


def existing_labels(entry: dict) -> dict | None:
    """The labels a manifest entry already carries, in ``Annotated.to_entry()`` form, or None."""
    if entry.get("boxes") or entry.get("labels"):
        return {k: entry[k] for k in ("width", "height", "boxes", "labels") if k in entry and entry[k] != []}
    if entry.get("label") not in (None, ""):
        return {"width": int(entry.get("width") or 0), "height": int(entry.get("height") or 0),
                "labels": [entry["label"]]}
    return None


def check_states(state: Iterable[str] | None) -> list[str]:
    states = [s for s in (state or ()) if s]
    bad = [s for s in states if s not in STATES]
    if bad:
        raise InvalidInput(f"state {bad[0]!r}: expected one of {', '.join(STATES)}")
    return states


def item_of(row) -> LabelItem:
    return LabelItem(
        item=row.item, position=row.position, digest=row.digest, width=row.width, height=row.height, text=row.text,
        state=row.state, existing=row.existing, annotation=row.annotation, proposal=row.proposal, score=row.score,
        uncertainty=row.uncertainty, hard=bool(row.hard), source=row.source, assignee=row.assignee,
        labeled_by=row.labeled_by, labeled_at=as_utc(row.labeled_at), seconds=float(row.seconds),
        reviewer=row.reviewer, review=row.review)


def is_manager(job: LabelingJob, actor: Actor) -> bool:
    """The job's owner or an admin token."""
    return actor.role == "admin" or actor.name == job.owner


def require_manager(job: LabelingJob, actor: Actor, what: str) -> None:
    if not is_manager(job, actor):
        raise Forbidden(f"only the owner of labeling job {job.name!r} ({job.owner}) or an admin may {what}")


def require_labeler(job: LabelingJob, actor: Actor, row) -> None:
    if is_manager(job, actor):
        return
    if job.members.get(actor.name) != "labeler":
        raise Forbidden(f"{actor.name!r} is not a labeler of job {job.name!r}; its owner adds labelers "
                        f"(modelyard label assign / PUT .../members)")
    if row.assignee not in (None, actor.name):
        raise Forbidden(f"item {row.item!r} is assigned to {row.assignee!r}")


