"""The labeling model as values: what a job, an item and a proposal are, and the rules that need no database.

Annotations are :class:`modelyard.data.annotations.Annotated` values everywhere; they are stored in the
``labeling_items`` rows in their manifest form (``Annotated.to_entry()``), so a published version's entries carry
exactly what the labeler saved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from modelyard.core.errors import InvalidInput
from modelyard.core.ids import isoformat
from modelyard.data.annotations import Annotated, AnnotationSet, Box
from modelyard.store.schema_labeling import ITEM_STATES, LABELING_TASKS, MEMBER_ROLES

TASKS = LABELING_TASKS
STATES = ITEM_STATES
ROLES = MEMBER_ROLES
# where an item's label came from: typed by a person, a model's proposal the person accepted as it was, edited, or
# rejected (and labeled otherwise), or imported from an annotation file
SOURCES = ("manual", "proposal_accepted", "proposal_edited", "proposal_rejected", "imported")
RATINGS = ("A", "B", "C", "D")
# states whose label a person has saved (what publish can use)
LABELED_STATES = ("labeled", "in_review", "accepted")
# a box of a proposal matches a label's box when the classes agree and they overlap at least this much
MATCH_IOU = 0.5
# an accepted box may move by rounding in the client (canvas pixels) without becoming an edit
SAME_BOX_IOU = 0.98
# a proposal whose best class score is below this is flagged as a hard example (HiLens' CrossEntropyFilter idea:
# the model is unsure, so a person should look first)
HARD_SCORE = 0.5


class Actor(Protocol):
    """Who calls a service function: the server's ``Principal`` (token name and role) or any object like it."""

    name: str
    role: str


@dataclass(frozen=True)
class Proposal:
    """A model's proposed labels for one item: the annotation (boxes carry their own scores), the item's score
    (the top class probability, or the mean box score) and, for classifiers, every class's score."""

    annotated: Annotated
    score: float
    scores: dict[str, float] | None = None
    model: str = ""

    @property
    def uncertainty(self) -> float:
        """1 - margin between the two best class scores (classification), else 1 - score: higher is less sure."""
        if self.scores and len(self.scores) >= 2:
            top = sorted(self.scores.values(), reverse=True)
            return float(min(1.0, max(0.0, 1.0 - (top[0] - top[1]))))
        return float(min(1.0, max(0.0, 1.0 - self.score)))

    @property
    def hard(self) -> bool:
        return self.score < HARD_SCORE

    def to_dict(self) -> dict:
        out = {**self.annotated.to_entry(), "score": self.score, "model": self.model}
        if self.scores is not None:
            out["scores"] = self.scores
        return out


@dataclass(frozen=True)
class LabelingJob:
    """One labeling job: its label set and task, what it was opened on, who owns it, its team, and its publishes."""

    id: str
    name: str
    task: str
    classes: tuple[str, ...]
    source: dict
    description: str
    owner: str
    members: dict[str, str]
    published: tuple[dict, ...]
    counts: dict[str, int]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict:
        return {
            "schema": "modelyard.labeling-job/1",
            "id": self.id,
            "name": self.name,
            "task": self.task,
            "classes": list(self.classes),
            "source": self.source,
            "description": self.description,
            "owner": self.owner,
            "members": [{"principal": p, "role": r} for p, r in sorted(self.members.items())],
            "published": list(self.published),
            "counts": self.counts,
            "items": sum(self.counts.values()),
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }

    def __str__(self) -> str:
        done = sum(self.counts.get(s, 0) for s in LABELED_STATES)
        return (f"{self.name} ({self.task}, {len(self.classes)} classes): {done}/{sum(self.counts.values())} "
                f"labeled, on {self.source.get('dataset') or 'uploaded images'}")


@dataclass(frozen=True)
class LabelItem:
    """One item of a job with its labels, proposal, assignment and review."""

    item: str
    position: int
    digest: str | None
    width: int
    height: int
    text: str | None
    state: str
    existing: dict | None
    annotation: dict | None
    proposal: dict | None
    score: float | None
    uncertainty: float | None
    hard: bool
    source: str | None
    assignee: str | None
    labeled_by: str | None
    labeled_at: datetime | None
    seconds: float
    reviewer: str | None
    review: dict | None

    def annotated(self) -> Annotated | None:
        """The saved label as an ``Annotated`` (None while nothing is saved)."""
        if self.annotation is None:
            return None
        return Annotated.from_entry(self.item, self.annotation)

    def to_dict(self) -> dict:
        return {
            "item": self.item,
            "position": self.position,
            "digest": self.digest,
            "width": self.width,
            "height": self.height,
            "text": self.text,
            "state": self.state,
            "existing": self.existing,
            "annotation": self.annotation,
            "proposal": self.proposal,
            "score": self.score,
            "uncertainty": self.uncertainty,
            "hard": self.hard,
            "source": self.source,
            "assignee": self.assignee,
            "labeled_by": self.labeled_by,
            "labeled_at": isoformat(self.labeled_at),
            "seconds": self.seconds,
            "reviewer": self.reviewer,
            "review": self.review,
        }


def check_classes(task: str, classes: Sequence[str]) -> tuple[str, ...]:
    """The label set, checked: a known task, 1 to 1000 distinct non-empty names (2 or more for single-label
    classification: one class is no choice)."""
    if task not in TASKS:
        raise InvalidInput(f"task {task!r}: expected one of {', '.join(TASKS)}")
    names = tuple(str(c).strip() for c in classes)
    if not names:
        raise InvalidInput("classes: a labeling job needs a label set (at least one class)")
    if any(not n or len(n) > 200 for n in names):
        raise InvalidInput("classes: every class name must be 1 to 200 characters")
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise InvalidInput(f"classes: {duplicate!r} appears twice")
    if len(names) > 1000:
        raise InvalidInput(f"classes: at most 1000 classes, got {len(names)}")
    if task in ("classification", "text") and len(names) < 2:
        raise InvalidInput(f"classes: {task} needs at least two classes to choose from")
    return names


def make_annotation(task: str, classes: Sequence[str], item: str, width: int, height: int,
                    labels: Iterable[str] = (), boxes: Iterable[Sequence] = ()) -> Annotated:
    """A person's (or a model's) labels for ``item``, validated against the job: classification and text take
    exactly one label, multilabel one or more, detection boxes ``[x1, y1, x2, y2, label]`` in pixels (clipped to the
    image when they cross an edge, refused when outside: the ``Annotated`` policy); every class must be in the label
    set.

    Raises:
        InvalidInput: naming the item and what is wrong.
    """
    labels = [str(label) for label in labels]
    rows = [list(b) for b in boxes]
    if task == "detection":
        if labels:
            raise InvalidInput(f"{item}: a detection job takes boxes, not class labels")
        parsed = []
        for row in rows:
            try:
                parsed.append(Box.from_list(row[:5] + row[5:6]))
            except (InvalidInput, ValueError, TypeError, OverflowError):
                raise InvalidInput(f"{item}: a box is [x1, y1, x2, y2, label] in pixels, got {row!r}") from None
        annotated = Annotated.make(item, width, height, boxes=parsed)
    else:
        if rows:
            raise InvalidInput(f"{item}: a {task} job takes class labels, not boxes")
        if not labels:
            raise InvalidInput(f"{item}: no label given (choose one of {', '.join(list(classes)[:10])})")
        if task in ("classification", "text") and len(set(labels)) > 1:
            raise InvalidInput(f"{item}: {task} takes one label, got {len(set(labels))}: {', '.join(labels)}")
        annotated = Annotated.make(item, width, height, labels=labels)
    # AnnotationSet names the first unknown class with the item
    AnnotationSet("classification" if task == "text" else task, tuple(classes), (annotated,))
    return annotated


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _matched(proposed: Sequence[Box], labeled: Sequence[Box], threshold: float) -> int:
    """Greedy one-to-one matches of same-class boxes with IoU >= threshold."""
    free = list(labeled)
    count = 0
    for box in proposed:
        best, best_iou = None, threshold
        for candidate in free:
            if candidate.label == box.label and (iou := _iou(box, candidate)) >= best_iou:
                best, best_iou = candidate, iou
        if best is not None:
            free.remove(best)
            count += 1
    return count


def proposal_outcome(task: str, proposal: dict | None, annotation: Annotated) -> str:
    """Where a saved label came from, given the proposal the labeler saw: ``manual`` (there was none),
    ``proposal_accepted`` (the label is the proposal), ``proposal_edited`` (it keeps part of it: a class of a
    multi-label proposal, a box that still matches) or ``proposal_rejected`` (nothing of it)."""
    if not proposal:
        return "manual"
    proposed = Annotated.from_entry(annotation.item, {k: proposal[k] for k in ("width", "height", "boxes", "labels")
                                                      if k in proposal})
    if task == "detection":
        if len(proposed.boxes) == len(annotation.boxes) and \
                _matched(proposed.boxes, annotation.boxes, SAME_BOX_IOU) == len(annotation.boxes):
            return "proposal_accepted"
        return "proposal_edited" if _matched(proposed.boxes, annotation.boxes, MATCH_IOU) else "proposal_rejected"
    if set(proposed.labels) == set(annotation.labels):
        return "proposal_accepted"
    return "proposal_edited" if set(proposed.labels) & set(annotation.labels) else "proposal_rejected"


def check_seconds(seconds: float | None) -> float:
    """Seconds the client says the labeler spent on the item: finite, 0 to one day."""
    if seconds is None:
        return 0.0
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0 or seconds > 86_400:
        raise InvalidInput(f"seconds {seconds}: must be between 0 and 86400")
    return seconds
