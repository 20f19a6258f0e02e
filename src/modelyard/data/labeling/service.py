"""Labeling jobs and their items: open a job on a dataset version or on uploaded images, page through its queue,
save labels, record a model's proposals and an active-learning strategy's priorities.

Every function here is what the REST API, the SDK, the CLI and the console call: the rules (who may label which
item, which state may change to which) live here once. Each write is one transaction, so a refused request leaves
nothing half-written.

Who may do what (token roles stay linear; the team is per job):

* anyone with a token reads jobs, items and stats;
* an ``editor`` creates a job and becomes its owner; the owner and ``admin`` tokens manage it (team, assignment,
  proposals, priorities, publish, delete) and may label and review;
* a **labeler** member labels unassigned items and items assigned to them; a **reviewer** member reviews items
  labeled by someone else (see :mod:`modelyard.data.labeling.team`).

Example::

    store = LabelingStore(workspace)
    job = store.create("cats-l1", actor, task="classification", dataset="cats@1")
    page = store.items("cats-l1", state=["unlabeled", "proposed"], sort="-uncertainty", limit=50)
    store.annotate("cats-l1", page["items"][0]["item"], actor, labels=["cat"], seconds=4.2)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.core.ids import new_id, utcnow
from modelyard.data.labeling.model import (
    TASKS,
    Actor,
    LabelingJob,
    LabelItem,
    Proposal,
    check_classes,
    check_seconds,
    make_annotation,
    proposal_outcome,
)
from modelyard.data.labeling.publish import PublishMixin
from modelyard.data.labeling.rows import (
    SORTS,
    check_states,
    existing_items,
    existing_labels,
    item_of,
    item_row,
    job_of,
    job_row,
    queue_page,
    require_labeler,
    require_manager,
)
from modelyard.data.labeling.team import TeamMixin
from modelyard.data.labeling.transfer import TransferMixin
from modelyard.data.refs import check_name
from modelyard.store.schema_labeling import labeling_items, labeling_jobs, labeling_members, labeling_reviews
from modelyard.store.workspace import Workspace

MAX_PAGE = 500
MAX_ITEMS = 1_000_000
IMAGE_KINDS = ("image-classification", "multilabel-classification", "object-detection")
TEXT_KIND = "text-classification"


class LabelingStore(TeamMixin, PublishMixin, TransferMixin):
    """Labeling jobs of one workspace. Constructing it does no I/O."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.engine = workspace.engine

    # -- jobs -------------------------------------------------------------------------------------------------------
    def create(self, name: str, actor: Actor, *, task: str, classes: Sequence[str] | None = None,
               dataset: str | None = None, files: dict[str, str] | None = None, description: str = "") -> LabelingJob:
        """Open a labeling job.

        Args:
            name: the job's name (letters, digits, ``.``, ``_``, ``-``); unique.
            actor: who opens it; becomes the owner.
            task: ``classification`` (one class per item), ``multilabel``, ``detection`` (boxes) or ``text``
                (one class per text, on a ``text-classification`` version).
            classes: the label set; default the dataset version's classes.
            dataset: a dataset version ``NAME@VERSION`` of images to label: its entries become the items, their
                labels are kept as ``existing`` (shown to labelers; ``publish`` overwrites or keeps them).
            files: instead, uploaded images ``relative name -> sha256 digest`` (an unlabeled import); each is
                decoded now, a corrupt one refuses the whole job naming it.
            description: instructions for the labelers.

        Raises:
            InvalidInput: a bad name, label set, task/dataset combination, or a corrupt image (named).
            NotFound: the dataset version or an uploaded file does not exist.
            Conflict: a job of that name exists.
        """
        check_name(name, "labeling job name")
        if (dataset is None) == (files is None):
            raise InvalidInput("give exactly one of dataset (NAME@VERSION) or files (uploaded images)")
        if len(description or "") > 10_000:
            raise InvalidInput("description: at most 10000 characters")
        if task not in TASKS:
            raise InvalidInput(f"task {task!r}: expected one of {', '.join(TASKS)}")
        if task == "text" and dataset is None:
            raise InvalidInput(f"a text job is opened on a {TEXT_KIND} dataset version (dataset=NAME@VERSION), not "
                               "on uploaded images")
        if dataset is not None:
            source, items, default_classes = self._items_from_dataset(dataset, task)
        else:
            source, items, default_classes = {"dataset": None, "files": len(files)}, self._items_from_files(files), []
        label_set = check_classes(task, classes if classes is not None else default_classes)
        if not items:
            raise InvalidInput(f"{dataset or 'files'}: nothing to label (no usable items)")
        now = utcnow()
        job_id = new_id("lbj")
        rows = [{**item, "job_id": job_id, "position": index, "state": "unlabeled", "updated_at": now}
                for index, item in enumerate(items)]
        with self.engine.begin() as conn:
            if conn.execute(sa.select(labeling_jobs.c.id).where(labeling_jobs.c.name == name)).first():
                raise Conflict(f"labeling job {name!r} exists; pick another name")
            conn.execute(labeling_jobs.insert().values(
                id=job_id, name=name, task=task, classes=list(label_set), source=source,
                description=description or "", owner=actor.name, published=[], created_at=now, updated_at=now))
            conn.execute(labeling_items.insert(), rows)
        return self.get(name)

    def _items_from_dataset(self, ref: str, task: str) -> tuple[dict, list[dict], list]:
        from modelyard.data.datasets import DatasetStore

        store = DatasetStore(self.workspace)
        version = store.get(ref)
        source = {"dataset": version.ref, "dataset_kind": version.kind}
        if task == "text" and version.kind != TEXT_KIND:
            raise InvalidInput(f"{version.ref} is a {version.kind} dataset; a text job needs a {TEXT_KIND} one")
        if task != "text" and version.kind not in IMAGE_KINDS:
            raise InvalidInput(f"{version.ref} is a {version.kind} dataset; a {task} job needs images "
                               f"({' or '.join(IMAGE_KINDS)})")
        items, seen = [], set()
        for entry in store.manifest(version)["entries"]:
            if entry.get("error"):
                continue
            if entry["path"] in seen:
                raise InvalidInput(f"{version.ref}: item {entry['path']!r} appears twice in the manifest")
            seen.add(entry["path"])
            existing = existing_labels(entry)
            if task == "text":
                items.append({"item": entry["path"], "digest": None, "width": 0, "height": 0,
                              "text": entry.get("text", ""), "existing": existing})
                continue
            items.append({"item": entry["path"], "digest": "sha256:" + entry["digest"].removeprefix("sha256:"),
                          "width": int(entry.get("width") or 0), "height": int(entry.get("height") or 0),
                          "text": None, "existing": existing})
        return source, items, list(version.schema.get("classes") or [])

    def _items_from_files(self, files: dict[str, str]) -> list[dict]:
        from modelyard.core.trust import check_files
        from modelyard.data.images import IMAGE_SUFFIXES, inspect_image

        check_files(files)
        if len(files) > MAX_ITEMS:
            raise InvalidInput(f"files: at most {MAX_ITEMS} images per job")
        blobs = self.workspace.blobs
        missing = blobs.missing(list(files.values()))
        if missing:
            raise NotFound(f"{len(missing)} of {len(files)} files are not uploaded (POST /api/v1/blobs first), e.g. "
                           f"{missing[0]}")
        items = []
        for name, digest in sorted(files.items()):
            if not name.lower().endswith(IMAGE_SUFFIXES):
                raise InvalidInput(f"{name}: not an image ({', '.join(IMAGE_SUFFIXES)})")
            facts = inspect_image(blobs.read_bytes(digest))
            if facts.get("error"):
                raise InvalidInput(f"{name}: {facts['error']}; nothing was imported")
            items.append({"item": name, "digest": "sha256:" + blobs.normalize(digest), "width": facts["width"],
                          "height": facts["height"], "text": None, "existing": None})
        return items

    def get(self, name: str) -> LabelingJob:
        """The job named ``name`` with its team and item counts per state."""
        with self.engine.connect() as conn:
            return job_of(conn, job_row(conn, name))

    def list(self) -> list[LabelingJob]:
        """Every job, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(labeling_jobs).order_by(labeling_jobs.c.created_at.desc())).all()
            return [job_of(conn, row) for row in rows]

    def delete(self, name: str, actor: Actor) -> LabelingJob:
        """Delete a job with its items, team and review log (published dataset versions stay). Owner or admin."""
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            require_manager(job, actor, "delete the job")
            for table in (labeling_reviews, labeling_items, labeling_members):
                conn.execute(table.delete().where(table.c.job_id == row.id))
            conn.execute(labeling_jobs.delete().where(labeling_jobs.c.id == row.id))
        return job

    def add_items(self, name: str, actor: Actor, files: dict[str, str]) -> LabelingJob:
        """Add uploaded images to an image job (owner or admin); an item id that is already in the job is refused,
        and nothing is added."""
        images = self._items_from_files(files)
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            require_manager(job_of(conn, row), actor, "add items")
            if row.task == "text":
                raise InvalidInput("a text job's items come from its table; images cannot be added")
            names = [i["item"] for i in images]
            there = existing_items(conn, row.id, names)
            clash = next((n for n in names if n in there), None)  # the first in the request's order
            if clash is not None:
                raise Conflict(f"item {clash!r} is already in job {name!r}; item ids must be unique")
            start = conn.execute(sa.select(sa.func.max(labeling_items.c.position))
                                 .where(labeling_items.c.job_id == row.id)).scalar()
            now = utcnow()
            conn.execute(labeling_items.insert(), [
                {**item, "job_id": row.id, "position": (start or 0) + 1 + i, "state": "unlabeled", "updated_at": now}
                for i, item in enumerate(images)])
            conn.execute(labeling_jobs.update().where(labeling_jobs.c.id == row.id).values(updated_at=now))
        return self.get(name)

    # -- items ------------------------------------------------------------------------------------------------------
    def items(self, name: str, *, state: Iterable[str] | None = None, sort: str = "position",
              assignee: str | None = None, labeled_by: str | None = None, hard: bool | None = None,
              offset: int = 0, limit: int = 50) -> dict:
        """A page of the job's queue (``modelyard.labeling-items/1``).

        Args:
            state: only items in these states (any of ``unlabeled, proposed, labeled, in_review, accepted,
                rejected``); default all.
            sort: ``position`` (the dataset's order, default), ``score``/``-score`` (the model's proposal score,
                low/high first), ``uncertainty``/``-uncertainty`` (low/high first) or ``hard`` (hard examples
                first, then the most uncertain). Items without a score sort last.
            assignee: only items assigned to this principal (``""``: unassigned ones).
            labeled_by: only items this principal labeled.
            hard: only hard examples (True) or only the others (False).
            offset, limit: the page (limit 1 to 500). Every filter and sort is an indexed query on the job's
                rows, so a page stays fast on jobs of 100,000s of items.

        Returns:
            ``{"schema", "job", "total", "offset", "limit", "next_offset", "items": [...]}``; ``next_offset`` is
            None on the last page.
        """
        states = check_states(state)
        if sort not in SORTS:
            raise InvalidInput(f"sort {sort!r}: expected one of {', '.join(SORTS)}")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit {limit}: must be between 1 and {MAX_PAGE}")
        if offset < 0:
            raise InvalidInput(f"offset {offset}: must be 0 or more")
        t = labeling_items
        with self.engine.connect() as conn:
            job = job_row(conn, name)
            where = [t.c.job_id == job.id]
            if states:
                where.append(t.c.state.in_(states))
            if assignee is not None:
                where.append(t.c.assignee.is_(None) if assignee == "" else t.c.assignee == assignee)
            if labeled_by is not None:
                where.append(t.c.labeled_by == labeled_by)
            if hard is not None:
                where.append(t.c.hard.is_(hard))
            total = conn.execute(sa.select(sa.func.count()).select_from(t).where(*where)).scalar_one()
            # the page's ids first (index walks, see queue_segments), then only those rows with their JSON labels
            page = queue_page(conn, where, sort, offset, limit)
            found = {r.item: r for r in conn.execute(sa.select(t).where(t.c.job_id == job.id, t.c.item.in_(page)))}
            rows = [found[item] for item in page]
        following = offset + len(rows)
        return {"schema": "modelyard.labeling-items/1", "job": name, "total": int(total), "offset": offset,
                "limit": limit, "next_offset": following if following < total else None,
                "items": [item_of(r).to_dict() for r in rows]}

    def item(self, name: str, item: str) -> LabelItem:
        """One item of the job."""
        with self.engine.connect() as conn:
            job = job_row(conn, name)
            return item_of(item_row(conn, job, item))

    def annotate(self, name: str, item: str, actor: Actor, *, labels: Sequence[str] = (),
                 boxes: Sequence[Sequence] = (), seconds: float | None = None,
                 accept_proposal: bool = False) -> LabelItem:
        """Save a label for ``item``: class ``labels`` or detection ``boxes`` (``[x1, y1, x2, y2, label]`` in
        pixels), or ``accept_proposal`` to take the model's proposal as it is. The item becomes ``labeled``,
        records who, when and the ``seconds`` the client measured (added to earlier attempts), and whether the
        label is manual or the proposal accepted, edited or rejected (compared with the proposal shown).

        Raises:
            NotFound: the job or the item (an item not in the job is never created).
            Forbidden: the actor is not a labeler of the job, or the item is assigned to someone else.
            Conflict: the item is in review or accepted (a reviewer's verdict comes first).
            InvalidInput: unknown classes, a box outside the image, boxes in a classification job, ...
        """
        seconds = check_seconds(seconds)
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            job = job_of(conn, row)
            current = item_row(conn, row, item)
            require_labeler(job, actor, current)
            if current.state in ("in_review", "accepted"):
                raise Conflict(f"item {item!r} is {current.state.replace('_', ' ')}; it can be labeled again once a "
                               "reviewer rejects it")
            if accept_proposal:
                if labels or boxes:
                    raise InvalidInput("accept_proposal takes the proposal as it is; send no labels or boxes with it")
                if not current.proposal:
                    raise Conflict(f"item {item!r} has no model proposal to accept")
                labels, boxes = current.proposal.get("labels", ()), [b[:5] for b in current.proposal.get("boxes", ())]
            annotated = make_annotation(job.task, job.classes, item, current.width, current.height, labels, boxes)
            now = utcnow()
            conn.execute(labeling_items.update().where(labeling_items.c.job_id == row.id,
                                                       labeling_items.c.item == item).values(
                state="labeled", annotation=annotated.to_entry(),
                source=proposal_outcome(job.task, current.proposal, annotated), labeled_by=actor.name,
                labeled_at=now, seconds=current.seconds + seconds, updated_at=now,
                assignee=current.assignee or (actor.name if actor.name in job.members else None)))
            conn.execute(labeling_jobs.update().where(labeling_jobs.c.id == row.id).values(updated_at=now))
            return item_of(item_row(conn, row, item))

    # -- proposals and priorities -------------------------------------------------------------------------------------
    def record_proposals(self, name: str, proposals: Sequence[Proposal]) -> dict:
        """Store a model's proposals for items that nobody has labeled yet (state ``unlabeled`` or ``proposed``):
        they become ``proposed`` with the proposal's score, uncertainty and hard-example flag. Items labeled
        meanwhile are left alone and counted as ``skipped``. All in one transaction.

        Raises:
            NotFound: a proposal names an item that is not in the job (nothing is stored).
            InvalidInput: a proposal's classes are outside the job's label set (named).
        """
        with self.engine.begin() as conn:
            row = job_row(conn, name)
            # only the proposed items' states: a pre-labeling run calls this per batch, on jobs of any size
            names = list(dict.fromkeys(p.annotated.item for p in proposals))
            known = {}
            for start in range(0, len(names), 500):
                known.update(conn.execute(sa.select(labeling_items.c.item, labeling_items.c.state).where(
                    labeling_items.c.job_id == row.id, labeling_items.c.item.in_(names[start:start + 500]))).all())
            stored = skipped = 0
            now = utcnow()
            for proposal in proposals:
                annotated = proposal.annotated
                if annotated.item not in known:
                    raise NotFound(f"proposal for item {annotated.item!r}, which is not in job {name!r}")
                used = {b.label for b in annotated.boxes} | set(annotated.labels)
                unknown = sorted(used - set(row.classes))
                if unknown:
                    raise InvalidInput(f"{annotated.item}: the model proposes {unknown[0]!r}, which is not in the "
                                       f"job's label set ({', '.join(row.classes[:10])})")
                if known[annotated.item] not in ("unlabeled", "proposed"):
                    skipped += 1
                    continue
                conn.execute(labeling_items.update().where(labeling_items.c.job_id == row.id,
                                                           labeling_items.c.item == annotated.item).values(
                    state="proposed", proposal=proposal.to_dict(), score=proposal.score,
                    uncertainty=proposal.uncertainty, hard=proposal.hard, updated_at=now))
                stored += 1
            conn.execute(labeling_jobs.update().where(labeling_jobs.c.id == row.id).values(updated_at=now))
        return {"proposed": stored, "skipped": skipped}

    def set_priorities(self, name: str, actor: Actor, priorities: dict[str, dict]) -> dict:
        """Set ``uncertainty`` (0..1, higher first in the ``-uncertainty`` queue) and/or the ``hard`` flag per item,
        as an active-learning strategy or a hard-example filter decided (owner or admin). One transaction; an
        unknown item refuses all."""
        import math

        with self.engine.begin() as conn:
            row = job_row(conn, name)
            require_manager(job_of(conn, row), actor, "set priorities")
            known = existing_items(conn, row.id, list(priorities))
            for item, values in priorities.items():
                if item not in known:
                    raise NotFound(f"item {item!r} is not in labeling job {name!r}")
                update = {}
                if "uncertainty" in values and values["uncertainty"] is not None:
                    value = float(values["uncertainty"])
                    if not math.isfinite(value) or not 0 <= value <= 1:
                        raise InvalidInput(f"{item}: uncertainty {value} must be between 0 and 1")
                    update["uncertainty"] = value
                if "hard" in values and values["hard"] is not None:
                    update["hard"] = bool(values["hard"])
                extra = set(values) - {"uncertainty", "hard"}
                if extra:
                    raise InvalidInput(f"{item}: unknown priority field {sorted(extra)[0]!r} (uncertainty, hard)")
                if update:
                    conn.execute(labeling_items.update().where(labeling_items.c.job_id == row.id,
                                                               labeling_items.c.item == item).values(**update))
        return {"updated": len(priorities)}

    def unlabeled(self, name: str) -> tuple[LabelingJob, list[LabelItem]]:
        """The job and its items no person has labeled (``unlabeled`` and ``proposed``), in queue order: what a
        pre-labeling run proposes for."""
        with self.engine.connect() as conn:
            row = job_row(conn, name)
            rows = conn.execute(sa.select(labeling_items).where(
                labeling_items.c.job_id == row.id, labeling_items.c.state.in_(("unlabeled", "proposed")))
                .order_by(labeling_items.c.position)).all()
            return job_of(conn, row), [item_of(r) for r in rows]


__all__ = ["LabelingStore"]
