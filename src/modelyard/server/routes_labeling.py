"""Labeling jobs: create, list, show, delete; the item queue; labels; team, assignment and review; statistics;
proposals (the ``label.propose`` job); priorities; publish. Every route calls ``LabelingStore`` (the console does
too), which holds the rules: who may label or review what, and which state may change to which.

Item ids are paths (``cat/001.png``), so they travel in the body or the ``id`` query parameter, never in the path.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.server.auth import Principal, require
from modelyard.server.responses import DatasetVersion, Job, documented
from modelyard.server.responses_labeling import (
    LabelingAssignment,
    LabelingImport,
    LabelingItem,
    LabelingItems,
    LabelingJob,
    LabelingJobDeleted,
    LabelingJobList,
    LabelingPriorities,
    LabelingReviewSample,
    LabelingStats,
)

router = APIRouter(tags=["labeling"])
JOBS = "/labeling/jobs"
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
STATE = Literal["unlabeled", "proposed", "labeled", "in_review", "accepted", "rejected"]
SORT = Literal["position", "score", "-score", "uncertainty", "-uncertainty", "hard"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateJob(_Body):
    name: str = Field(pattern=NAME, description="The job's name (unique).")
    task: Literal["classification", "multilabel", "detection", "text"] = Field(
        description="classification (one class per item), multilabel, detection (boxes) or text (on a "
                    "text-classification version).")
    classes: list[str] | None = Field(default=None, max_length=1000,
                                      description="The label set; default the dataset version's classes.")
    dataset: str | None = Field(default=None, max_length=220, description="A dataset version NAME@VERSION.")
    files: dict[str, str] | None = Field(default=None, description="Instead: uploaded images, relative name -> "
                                                                   "sha256 digest (POST /blobs first).")
    description: str = Field(default="", max_length=10_000, description="Instructions for the labelers.")


class AddItems(_Body):
    files: dict[str, str] = Field(min_length=1, description="Uploaded images, relative name -> sha256 digest.")


class Annotate(_Body):
    item: str = Field(min_length=1, max_length=1000)
    labels: list[str] = Field(default_factory=list, max_length=1000, description="Class labels (classification).")
    boxes: list[list[Any]] = Field(default_factory=list, max_length=10_000,
                                   description="Boxes [x1, y1, x2, y2, label] in pixels, origin top-left.")
    seconds: float | None = Field(default=None, ge=0, le=86_400,
                                  description="Seconds the labeler spent on the item, as the client measured.")
    accept_proposal: bool = Field(default=False, description="Save the model's proposal as it is.")


class SetMember(_Body):
    role: Literal["labeler", "reviewer"]


class Assign(_Body):
    labelers: list[str] = Field(min_length=1, max_length=1000)
    items: list[str] | None = Field(default=None, max_length=100_000, description="These items (default: the queue).")
    count: int | None = Field(default=None, ge=1, le=1_000_000)
    state: list[STATE] = Field(default_factory=lambda: ["unlabeled", "proposed"])
    sort: SORT = "position"
    reassign: bool = False


class ReviewSample(_Body):
    labeler: str | None = Field(default=None, max_length=200)
    fraction: float | None = Field(default=None, gt=0, le=1)
    count: int | None = Field(default=None, ge=1, le=1_000_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class Review(_Body):
    item: str = Field(min_length=1, max_length=1000)
    outcome: Literal["pass", "reject"]
    rating: Literal["A", "B", "C", "D"] | None = None
    comment: str = Field(default="", max_length=10_000)


class Priority(_Body):
    uncertainty: float | None = Field(default=None, ge=0, le=1)
    hard: bool | None = None


class Priorities(_Body):
    items: dict[str, Priority] = Field(min_length=1, max_length=100_000)


class Propose(_Body):
    model: str = Field(min_length=1, max_length=220, description="A registered model: N@V, N@alias or N.")
    backend: str = Field(default="auto", max_length=64)
    batch_size: int = Field(default=32, ge=1, le=1024)
    limit: int | None = Field(default=None, ge=1, le=10_000_000)


class ImportedItem(_Body):
    item: str = Field(min_length=1, max_length=1000)
    width: int = Field(default=0, ge=0, le=1_000_000, description="The image size the boxes refer to (0: the item's).")
    height: int = Field(default=0, ge=0, le=1_000_000)
    labels: list[str] = Field(default_factory=list, max_length=1000)
    boxes: list[list[Any]] = Field(default_factory=list, max_length=10_000,
                                   description="[x1, y1, x2, y2, label] or [..., score] in pixels.")


class ImportLabels(_Body):
    items: list[ImportedItem] = Field(min_length=1, max_length=100_000)
    as_proposals: bool = Field(default=False, description="Store them as a model's proposals, not as labels.")
    model: str = Field(default="", max_length=220, description="The name recorded on proposals.")


class Publish(_Body):
    mode: Literal["overwrite", "keep"] = Field(default="overwrite", description="overwrite: new labels replace the "
                                               "source's; keep: items that had a label keep it.")
    dataset: str | None = Field(default=None, pattern=NAME, description="Target dataset (default the source's).")
    accepted_only: bool = Field(default=False, description="Only labels a reviewer passed.")
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    description: str = Field(default="", max_length=10_000)


def _store(request: Request):
    from modelyard.data.labeling import LabelingStore

    return LabelingStore(request.app.state.workspace)


def _item(found) -> dict:
    return {"schema": "modelyard.labeling-item/1", **found.to_dict()}


@router.post(JOBS, status_code=201, responses=documented(LabelingJob, 404, 409, 413, 422, status=201))
def create_job(body: CreateJob, request: Request, principal: Principal = Depends(require("editor"))):
    """Open a labeling job on a dataset version or on uploaded images; the caller becomes its owner. A corrupt
    image refuses the whole job (named), and nothing is stored."""
    return _store(request).create(body.name, principal, task=body.task, classes=body.classes, dataset=body.dataset,
                                  files=body.files, description=body.description).to_dict()


@router.get(JOBS, responses=documented(LabelingJobList))
def list_jobs(request: Request, _: Principal = Depends(require("viewer"))):
    return {"schema": "modelyard.labeling-job-list/1", "items": [j.to_dict() for j in _store(request).list()]}


@router.get(JOBS + "/{name}", responses=documented(LabelingJob, 404))
def get_job(name: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The job with its team, item counts per state and publishes."""
    return _store(request).get(name).to_dict()


@router.delete(JOBS + "/{name}", responses=documented(LabelingJobDeleted, 403, 404))
def delete_job(name: str, request: Request, principal: Principal = Depends(require("editor"))):
    """Delete a job with its items and reviews (owner or admin); published dataset versions stay."""
    job = _store(request).delete(name, principal)
    return {"schema": "modelyard.labeling-job-deleted/1", "name": job.name, "items": sum(job.counts.values())}


@router.post(JOBS + "/{name}/items", responses=documented(LabelingJob, 403, 404, 409, 413, 422))
def add_items(name: str, body: AddItems, request: Request, principal: Principal = Depends(require("editor"))):
    """Add uploaded images to the job (owner or admin); an id already in the job refuses all (409)."""
    return _store(request).add_items(name, principal, body.files).to_dict()


@router.get(JOBS + "/{name}/items", responses=documented(LabelingItems, 404, 422))
def list_items(
    name: str,
    request: Request,
    state: list[STATE] | None = Query(None, description="Only these states (repeat the parameter)."),
    sort: SORT = Query("position", description="position, score/-score, uncertainty/-uncertainty, hard"),
    assignee: str | None = Query(None, max_length=200, description="Only items assigned to them ('' unassigned)."),
    labeled_by: str | None = Query(None, max_length=200),
    hard: bool | None = Query(None, description="Only hard examples (true) or only the others (false)."),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
    _: Principal = Depends(require("viewer")),
):
    """A page of the queue: filter by state, assignee, labeler, hard flag; sort by model score or uncertainty."""
    return _store(request).items(name, state=state, sort=sort, assignee=assignee, labeled_by=labeled_by, hard=hard,
                                 offset=offset, limit=limit)


@router.get(JOBS + "/{name}/item", responses=documented(LabelingItem, 404, 422))
def get_item(name: str, request: Request, id: str = Query(min_length=1, max_length=1000),  # noqa: A002
             _: Principal = Depends(require("viewer"))):
    """One item with its label, proposal, assignment and review."""
    return _item(_store(request).item(name, id))


@router.post(JOBS + "/{name}/annotations", responses=documented(LabelingItem, 403, 404, 409, 413, 422))
def annotate(name: str, body: Annotate, request: Request, principal: Principal = Depends(require("editor"))):
    """Save a label (classes or boxes, or the model's proposal as it is) with the seconds the labeler spent.
    403 for a non-labeler or an item assigned to someone else; 409 while the item is in review or accepted."""
    return _item(_store(request).annotate(name, body.item, principal, labels=body.labels, boxes=body.boxes,
                                          seconds=body.seconds, accept_proposal=body.accept_proposal))


@router.put(JOBS + "/{name}/members/{principal_name}", responses=documented(LabelingJob, 403, 404, 422))
def set_member(name: str, principal_name: str, body: SetMember, request: Request,
               principal: Principal = Depends(require("editor"))):
    """Make a token's name a labeler or a reviewer of the job (owner or admin)."""
    return _store(request).set_member(name, principal, principal_name, body.role).to_dict()


@router.delete(JOBS + "/{name}/members/{principal_name}", responses=documented(LabelingJob, 403, 404))
def remove_member(name: str, principal_name: str, request: Request,
                  principal: Principal = Depends(require("editor"))):
    """Take a member off the team; their unlabeled items become unassigned."""
    return _store(request).remove_member(name, principal, principal_name).to_dict()


@router.post(JOBS + "/{name}/assign", responses=documented(LabelingAssignment, 403, 404, 413, 422))
def assign(name: str, body: Assign, request: Request, principal: Principal = Depends(require("editor"))):
    """Assign items to labelers round-robin in queue order (or the given items); owner or admin."""
    result = _store(request).assign(name, principal, body.labelers, items=body.items, count=body.count,
                                    state=body.state, sort=body.sort, reassign=body.reassign)
    return {"schema": "modelyard.labeling-assignment/1", **result}


@router.post(JOBS + "/{name}/review-sample", responses=documented(LabelingReviewSample, 403, 404, 409, 422))
def review_sample(name: str, body: ReviewSample, request: Request,
                  principal: Principal = Depends(require("editor"))):
    """Draw a share or a count of labeled items (of one labeler, or of everyone but the reviewer) into review."""
    items = _store(request).sample_for_review(name, principal, labeler=body.labeler, fraction=body.fraction,
                                              count=body.count, seed=body.seed)
    return {"schema": "modelyard.labeling-review-sample/1", "items": [i.to_dict() for i in items]}


@router.post(JOBS + "/{name}/reviews", responses=documented(LabelingItem, 403, 404, 409, 422))
def review(name: str, body: Review, request: Request, principal: Principal = Depends(require("editor"))):
    """Pass or reject a labeled item (A-D rating, comment); a rejected item returns to its labeler. 403 for your
    own labels."""
    return _item(_store(request).review(name, body.item, principal, outcome=body.outcome, rating=body.rating,
                                        comment=body.comment))


@router.get(JOBS + "/{name}/stats", responses=documented(LabelingStats, 404))
def stats(name: str, request: Request, _: Principal = Depends(require("viewer"))):
    """Per-labeler accuracy (pass rate) and throughput (items per hour), and whether pre-labeling is helping."""
    return _store(request).stats(name)


@router.post(JOBS + "/{name}/priorities", responses=documented(LabelingPriorities, 403, 404, 413, 422))
def priorities(name: str, body: Priorities, request: Request, principal: Principal = Depends(require("editor"))):
    """Set uncertainty and hard-example flags per item (an active-learning strategy's ranking); owner or admin."""
    values = {item: p.model_dump(exclude_none=True) for item, p in body.items.items()}
    result = _store(request).set_priorities(name, principal, values)
    return {"schema": "modelyard.labeling-priorities/1", **result}


@router.post(JOBS + "/{name}/proposals", status_code=201, responses=documented(Job, 403, 404, 422, status=201))
def propose(name: str, body: Propose, request: Request, principal: Principal = Depends(require("editor"))):
    """Queue a ``label.propose`` job: a registered model proposes labels with scores for the unlabeled items
    (owner or admin). Follow it with ``GET /jobs/{id}``."""
    from modelyard.core.trust import Caller
    from modelyard.jobs.queue import JobQueue

    spec = {"job": name, **body.model_dump()}
    return JobQueue(request.app.state.workspace).submit("label.propose", spec, owner=principal.name,
                                                        caller=Caller(principal.name, principal.role)).to_dict()


@router.post(JOBS + "/{name}/imports", responses=documented(LabelingImport, 403, 404, 413, 422))
def import_labels(name: str, body: ImportLabels, request: Request, principal: Principal = Depends(require("editor"))):
    """Import labels (or a model's predictions, ``as_proposals``) made elsewhere, matched by item id (owner or
    admin). An unknown item or class anywhere refuses all (named); items in review or accepted are skipped."""
    from modelyard.core.errors import InvalidInput
    from modelyard.data.annotations import Annotated, Box

    values = []
    for entry in body.items:
        try:
            boxes = tuple(Box.from_list(b) for b in entry.boxes)
        except (InvalidInput, ValueError, TypeError, OverflowError):
            raise InvalidInput(f"{entry.item}: a box is [x1, y1, x2, y2, label] or [x1, y1, x2, y2, label, score] "
                               "in pixels") from None
        values.append(Annotated(entry.item, entry.width, entry.height, boxes, tuple(dict.fromkeys(entry.labels))))
    result = _store(request).import_annotations(name, principal, values, as_proposals=body.as_proposals,
                                                model=body.model)
    return {"schema": "modelyard.labeling-import/1", **result}


@router.post(JOBS + "/{name}/publish", status_code=201,
             responses=documented(DatasetVersion, 403, 404, 409, 422, status=201))
def publish(name: str, body: Publish, request: Request, principal: Principal = Depends(require("editor"))):
    """Publish the labels as the next immutable dataset version, with lineage per item (owner or admin). 409 when
    nothing is labeled."""
    version = _store(request).publish(name, principal, mode=body.mode, dataset=body.dataset,
                                      accepted_only=body.accepted_only,
                                      validation_fraction=body.validation_fraction, seed=body.seed,
                                      description=body.description)
    return version.to_dict()
