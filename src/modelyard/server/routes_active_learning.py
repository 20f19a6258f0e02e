"""Labeling assistance: active-learning suggestions and auto grouping, each a job (``label.suggest``,
``label.group``) submitted with the kind's own spec as the body; the answer is the queued job (poll
``/jobs/{id}`` for its result)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from modelyard.core.trust import Caller
from modelyard.jobs.queue import JobQueue
from modelyard.server.auth import Principal, require
from modelyard.server.responses import Job, documented
from modelyard.train.label_suggest import GroupSpec, SuggestSpec

router = APIRouter(tags=["labeling"])


def _submit(request: Request, kind: str, spec, principal: Principal) -> dict:
    caller = Caller(principal.name, principal.role)
    return JobQueue(request.app.state.workspace).submit(kind, spec.model_dump(mode="json"), owner=principal.name,
                                                        caller=caller).to_dict()


@router.post("/labeling/suggest", status_code=201, responses=documented(Job, 404, 413, 422, status=201))
def suggest(body: SuggestSpec, request: Request, principal: Principal = Depends(require("editor"))):
    """Queue a ``label.suggest`` job: the next batch to label on an image dataset version (active learning with a
    random control arm), hard examples flagged, and the learning curves so far. Its result is
    ``modelyard.label-suggest/1``."""
    return _submit(request, "label.suggest", body, principal)


@router.post("/labeling/groups", status_code=201, responses=documented(Job, 404, 413, 422, status=201))
def group(body: GroupSpec, request: Request, principal: Principal = Depends(require("editor"))):
    """Queue a ``label.group`` job: cluster the version's unlabeled images into k groups (2-200). Its result is
    ``modelyard.label-groups/1``."""
    return _submit(request, "label.group", body, principal)
