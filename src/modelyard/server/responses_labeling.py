"""What the labeling routes and the Label Studio ML backend answer, as closed pydantic models for the OpenAPI
document (see ``responses.py``: they document the bodies, routes return plain dicts)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.server.responses import _schema_field


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


STATES = Literal["unlabeled", "proposed", "labeled", "in_review", "accepted", "rejected"]


class Member(_Closed):
    principal: str
    role: Literal["labeler", "reviewer"]


class LabelingJob(_Closed):
    schema_: Literal["modelyard.labeling-job/1"] = _schema_field("modelyard.labeling-job/1")
    id: str
    name: str
    task: Literal["classification", "multilabel", "detection", "text"]
    classes: list[str]
    source: dict[str, Any] = Field(description="What the job was opened on: {dataset, dataset_kind} or {files}.")
    description: str
    owner: str
    members: list[Member]
    published: list[dict[str, Any]] = Field(description="Every publish: {ref, mode, accepted_only, items, by, at}.")
    counts: dict[str, int] = Field(description="Items per state.")
    items: int
    created_at: str | None
    updated_at: str | None


class LabelingJobList(_Closed):
    schema_: Literal["modelyard.labeling-job-list/1"] = _schema_field("modelyard.labeling-job-list/1")
    items: list[LabelingJob]


class LabelingJobDeleted(_Closed):
    schema_: Literal["modelyard.labeling-job-deleted/1"] = _schema_field("modelyard.labeling-job-deleted/1")
    name: str
    items: int


class ItemFields(_Closed):
    item: str = Field(description="The item's id: the image's path in the dataset (or its uploaded name).")
    position: int
    digest: str | None = Field(description="The image's blob (GET /api/v1/blobs/{digest}).")
    width: int
    height: int
    text: str | None
    state: STATES
    existing: dict[str, Any] | None = Field(description="The source version's labels ({labels} or {boxes}).")
    annotation: dict[str, Any] | None = Field(description="The saved label: {width, height, labels?, boxes?}.")
    proposal: dict[str, Any] | None = Field(description="A model's proposal: {labels?, boxes?, score, scores?, "
                                                        "model}.")
    score: float | None
    uncertainty: float | None
    hard: bool
    source: Literal["manual", "proposal_accepted", "proposal_edited", "proposal_rejected", "imported"] | None
    assignee: str | None
    labeled_by: str | None
    labeled_at: str | None
    seconds: float
    reviewer: str | None
    review: dict[str, Any] | None = Field(description="The last verdict: {outcome, rating, comment, by, at}.")


class LabelingItem(ItemFields):
    schema_: Literal["modelyard.labeling-item/1"] = _schema_field("modelyard.labeling-item/1")


class LabelingItems(_Closed):
    schema_: Literal["modelyard.labeling-items/1"] = _schema_field("modelyard.labeling-items/1")
    job: str
    total: int
    offset: int
    limit: int
    next_offset: int | None
    items: list[ItemFields]


class LabelingAssignment(_Closed):
    schema_: Literal["modelyard.labeling-assignment/1"] = _schema_field("modelyard.labeling-assignment/1")
    assigned: dict[str, int]
    total: int


class LabelingReviewSample(_Closed):
    schema_: Literal["modelyard.labeling-review-sample/1"] = _schema_field("modelyard.labeling-review-sample/1")
    items: list[ItemFields]


class LabelingPriorities(_Closed):
    schema_: Literal["modelyard.labeling-priorities/1"] = _schema_field("modelyard.labeling-priorities/1")
    updated: int


class LabelingImport(_Closed):
    schema_: Literal["modelyard.labeling-import/1"] = _schema_field("modelyard.labeling-import/1")
    imported: int
    skipped: int


class LabelingStats(_Closed):
    schema_: Literal["modelyard.labeling-stats/1"] = _schema_field("modelyard.labeling-stats/1")
    job: str
    counts: dict[str, int]
    labelers: list[dict[str, Any]] = Field(description="Per principal: labeled, seconds, items_per_hour, passed, "
                                                       "rejected, accuracy, ratings, sources, reviewed.")
    prelabeling: dict[str, Any] = Field(description="Seconds per label manual vs assisted, ratio and verdict.")


class LabelStudioHealth(_Closed):
    status: Literal["UP"]
    model_class: str
    model: str


class LabelStudioSetup(_Closed):
    model_version: str


class LabelStudioPrediction(_Closed):
    model_version: str
    score: float
    result: list[dict[str, Any]]


class LabelStudioPredictions(_Closed):
    results: list[LabelStudioPrediction]
    model_version: str
