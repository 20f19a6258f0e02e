"""Labeling: the jobs list and create form, a job's page (progress, team, per-labeler figures, whether pre-labeling
helps, publish), the queue (filters, sorts, paging), the editor (boxes, classes, text) and the review page.

REST twins: ``/api/v1/labeling/jobs...`` (``server/routes_labeling.py``). Every page and action calls
``LabelingStore``, which holds the rules (who may label or review what, which state may change to which); the
editor saves through ``POST /labeling/{name}/annotations`` here, a cookie-session twin of the API route that calls
the same ``annotate``.
"""

from __future__ import annotations

import math
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, Response

from modelyard.core.errors import InvalidInput, ModelyardError, NotFound
from modelyard.server.console import web
from modelyard.server.console.web import Viewer, action, page, redirect, render

router = APIRouter()
web.nav_item("labeling", "/labeling", "Labeling", before="runs")

STATES = ("unlabeled", "proposed", "labeled", "in_review", "accepted", "rejected")
SORTS = {"position": "dataset order", "-score": "model score, high first", "score": "model score, low first",
         "-uncertainty": "most uncertain first", "uncertainty": "least uncertain first", "hard": "hard examples first"}
TASKS = ("classification", "multilabel", "detection", "text")
PER_PAGE = 50
REVIEW_PAGE = 50
IMAGE_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"BM": "image/bmp", b"GIF8": "image/gif",
               b"RIFF": "image/webp"}


def _store(request: Request):
    from modelyard.data.labeling import LabelingStore

    return LabelingStore(request.app.state.workspace)


def _actor(viewer: Viewer):
    from modelyard.server.auth import Principal

    return Principal(viewer.name, viewer.role, viewer.session.token_id)


def _datasets(request: Request) -> list[str]:
    """Dataset versions a job can be opened on (image and text kinds), newest first, for the create form."""
    from modelyard.data.datasets import DatasetStore

    kinds = ("image-classification", "multilabel-classification", "object-detection", "text-classification")
    return [d["latest"] for d in DatasetStore(request.app.state.workspace).list() if d.get("kind") in kinds]


# -- jobs -------------------------------------------------------------------------------------------------------------
def _jobs_page(request: Request, viewer: Viewer, status_code: int = 200, error: str | None = None,
               form: dict | None = None):
    jobs = []
    for job in _store(request).list():
        total = sum(job.counts.values())
        done = sum(job.counts.get(s, 0) for s in ("labeled", "in_review", "accepted"))
        jobs.append({"job": job, "total": total, "done": done, "percent": round(100 * done / total) if total else 0})
    return render(request, "labeling.html", viewer, status_code=status_code, title="Labeling", nav="labeling",
                  jobs=jobs, tasks=TASKS, datasets=_datasets(request) if viewer.can("editor") else [],
                  error=error, form=form or {})


@router.get("/labeling")
def jobs_page(request: Request, viewer: Viewer = Depends(page())):
    return _jobs_page(request, viewer)


@router.post("/labeling")
def create_job(request: Request, name: str = Form(...), task: str = Form(...), dataset: str = Form(...),
               classes: str = Form(""), description: str = Form(""), viewer: Viewer = Depends(action("editor"))):
    form = {"name": name, "task": task, "dataset": dataset, "classes": classes, "description": description}
    label_set = [c.strip() for c in classes.split(",") if c.strip()] or None
    try:
        job = _store(request).create(name.strip(), _actor(viewer), task=task, classes=label_set,
                                     dataset=dataset.strip(), description=description)
    except ModelyardError as exc:
        return _jobs_page(request, viewer, status_code=exc.status, error=exc.message, form=form)
    return redirect(f"/labeling/{job.name}", f"Opened labeling job {job.name} with {sum(job.counts.values())} items.")


@router.get("/labeling/{name}")
def job_page(request: Request, name: str, viewer: Viewer = Depends(page())):
    store = _store(request)
    job = store.get(name)
    total = sum(job.counts.values())
    done = sum(job.counts.get(s, 0) for s in ("labeled", "in_review", "accepted"))
    stats = store.stats(name)
    can_manage = viewer.can("admin") or (viewer.can("editor") and viewer.name == job.owner)
    suggest, curve = _learning_curve(request, job.name)
    return render(request, "labeling_job.html", viewer, title=f"Labeling {job.name}", nav="labeling", job=job,
                  total=total, done=done, percent=round(100 * done / total) if total else 0, states=STATES,
                  stats=stats, prelabel=_prelabel_bars(stats["prelabeling"]), can_manage=can_manage,
                  suggest=suggest, curve=curve, error=request.query_params.get("error"))


def _learning_curve(request: Request, name: str) -> tuple[dict | None, dict | None]:
    """The latest succeeded ``label.suggest`` job on this labeling job (active learning), and its learning curves
    (held-out accuracy against labels: the strategy, and the random control arm) as a chart."""
    from modelyard.jobs.queue import JobQueue
    from modelyard.server.console.charts import line_chart

    found, _ = JobQueue(request.app.state.workspace).list(status="succeeded", kind="label.suggest", limit=200)
    latest = next((j for j in found if (j.spec or {}).get("labeling_job") == name and j.result), None)
    if latest is None:
        return None, None
    result = latest.result
    curves = result.get("learning_curve") or {}
    series = [(f"{result.get('strategy', 'strategy')} (all labels)",
               [[p["labels"], p["score"]] for p in curves.get("strategy", [])]),
              ("random control arm", [[p["labels"], p["score"]] for p in curves.get("random", [])])]
    series = [(label, points) for label, points in series if points]
    gain = result.get("gain") or {}
    note = ("fell back to random picks" if gain.get("fallback") else
            f"advantage {gain['advantage']:+.3f}" if gain.get("advantage") is not None else gain.get("reason", ""))
    chart = line_chart(series, "held-out accuracy by labels", note=note) if series else None
    return {"id": latest.id, "round": result.get("round"), "strategy": result.get("strategy"),
            "fallback": gain.get("fallback"), "reason": gain.get("reason")}, chart


def _prelabel_bars(figures: dict) -> list[dict]:
    """Seconds per label, manual against assisted (and accepted proposals alone), as bar widths in percent."""
    rows = [("manual", figures.get("manual_seconds_per_label"), figures.get("manual_labels")),
            ("from a proposal", figures.get("assisted_seconds_per_label"), figures.get("assisted_labels")),
            ("proposal accepted", figures.get("accepted_seconds_per_label"), None)]
    top = max((v for _, v, _ in rows if v), default=0)
    return [{"label": label, "seconds": value, "labels": count,
             "width": round(100 * value / top, 1) if top and value else 0} for label, value, count in rows
            if value is not None]


def _back_with_error(name: str, exc: ModelyardError, where: str = ""):
    return redirect(f"/labeling/{name}{where}?" + urlencode({"error": exc.message}))


@router.post("/labeling/{name}/members")
def set_member(request: Request, name: str, principal: str = Form(...), role: str = Form(...),
               viewer: Viewer = Depends(action("editor"))):
    try:
        if role == "remove":
            _store(request).remove_member(name, _actor(viewer), principal.strip())
        else:
            _store(request).set_member(name, _actor(viewer), principal.strip(), role)
    except ModelyardError as exc:
        return _back_with_error(name, exc)
    return redirect(f"/labeling/{name}", f"Team updated: {principal.strip()} {role}.")


@router.post("/labeling/{name}/assign")
def assign(request: Request, name: str, labelers: str = Form(...), count: str = Form(""),
           viewer: Viewer = Depends(action("editor"))):
    try:
        people = [p.strip() for p in labelers.split(",") if p.strip()]
        if not people:
            raise InvalidInput("labelers: name at least one labeler")
        result = _store(request).assign(name, _actor(viewer), people, count=_positive(count, "count"))
    except ModelyardError as exc:
        return _back_with_error(name, exc)
    return redirect(f"/labeling/{name}", f"Assigned {result.get('assigned', 0)} items.")


def _positive(value: str, what: str) -> int | None:
    if not value.strip():
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{what}: a whole number, got {value!r}") from None
    if number < 1:
        raise InvalidInput(f"{what}: at least 1")
    return number


@router.post("/labeling/{name}/publish")
def publish(request: Request, name: str, mode: str = Form("overwrite"), dataset: str = Form(""),
            accepted_only: bool = Form(False), description: str = Form(""),
            viewer: Viewer = Depends(action("editor"))):
    try:
        if mode not in ("overwrite", "keep"):
            raise InvalidInput(f"mode {mode!r}: overwrite or keep")
        version = _store(request).publish(name, _actor(viewer), mode=mode, dataset=dataset.strip() or None,
                                          accepted_only=accepted_only, description=description)
    except ModelyardError as exc:
        return _back_with_error(name, exc)
    return redirect(f"/labeling/{name}", f"Published {version.ref}.")


@router.post("/labeling/{name}/proposals")
def propose(request: Request, name: str, model: str = Form(...), limit: str = Form(""),
            viewer: Viewer = Depends(action("editor"))):
    """Queue the ``label.propose`` job through the REST route's function (its spec checks and authorization: the
    job's owner or an admin, a registered model), then follow it on its job page."""
    from pydantic import ValidationError

    from modelyard.server.routes_labeling import Propose
    from modelyard.server.routes_labeling import propose as queue_proposals

    try:
        try:
            body = Propose(model=model.strip(), limit=_positive(limit, "limit"))
        except ValidationError as exc:
            raise InvalidInput(f"model: {exc.errors()[0].get('msg')}") from None
        job = queue_proposals(name, body, request, _actor(viewer))
    except ModelyardError as exc:
        return _back_with_error(name, exc)
    return redirect(f"/jobs/{job['id']}", f"Pre-labeling {name} with {body.model}.")


# -- queue ------------------------------------------------------------------------------------------------------------
def _queue_query(request: Request) -> dict:
    """The queue's filters from the query string, checked (unknown values are dropped, not guessed)."""
    query = request.query_params
    states = [s for s in query.getlist("state") if s in STATES]
    sort = query.get("sort", "position")
    hard = {"true": True, "false": False}.get(query.get("hard", ""))
    # the form's empty field means anyone; "-" means nobody (unassigned items)
    assignee = (query.get("assignee") or "").strip()[:200]
    return {"state": states or None, "sort": sort if sort in SORTS else "position", "hard": hard,
            "assignee": "" if assignee == "-" else assignee or None}


def _queue_params(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k in ("state", "sort", "hard", "assignee")]


@router.get("/labeling/{name}/queue")
def queue_page(request: Request, name: str, viewer: Viewer = Depends(page())):
    store = _store(request)
    job = store.get(name)
    filters = _queue_query(request)
    try:
        number = max(1, min(int(request.query_params.get("page", 1)), 10_000_000))
    except ValueError:
        number = 1
    found = store.items(name, **filters, offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
    pages = max(1, math.ceil(found["total"] / PER_PAGE))
    params = _queue_params(request)
    base = f"/labeling/{name}/queue?" + urlencode(params)
    return render(request, "labeling_queue.html", viewer, title=f"Queue of {job.name}", nav="labeling", job=job,
                  found=found, filters=filters, states=STATES, sorts=SORTS, page_number=number, pages=pages,
                  base=base, edit_query=urlencode(params), offset=(number - 1) * PER_PAGE)


# -- editor -----------------------------------------------------------------------------------------------------------
@router.get("/labeling/{name}/edit")
def editor_page(request: Request, name: str, at: int = Query(0, ge=0, le=2**31 - 1),
                viewer: Viewer = Depends(page())):
    """The item at position ``at`` of the queue as filtered and sorted in the query string."""
    store = _store(request)
    job = store.get(name)
    filters = _queue_query(request)
    found = store.items(name, **filters, offset=at, limit=1)
    if not found["items"]:
        if at and found["total"]:
            return redirect(f"/labeling/{name}/edit?" + urlencode([*_queue_params(request),
                                                                    ("at", found["total"] - 1)]))
        return redirect(f"/labeling/{name}/queue?" + urlencode(_queue_params(request)),
                        "Nothing left in this queue.")
    item = found["items"][0]
    params = _queue_params(request)

    def at_url(index: int) -> str:
        return f"/labeling/{name}/edit?" + urlencode([*params, ("at", index)])

    # after a save the item is 'labeled': when the filter leaves that state out, the next item moves up to `at`
    stays = filters["state"] is None or "labeled" in filters["state"]
    data = {"job": job.name, "task": job.task, "classes": list(job.classes), "item": item,
            "save_url": f"/labeling/{name}/annotations", "csrf": viewer.csrf,
            "image_url": f"/labeling/{name}/image?" + urlencode({"id": item["item"]}) if item["digest"] else None,
            "next_url": at_url(at + 1) if at + 1 < found["total"] else None,
            "prev_url": at_url(at - 1) if at > 0 else None,
            "after_save_url": at_url(at + 1 if stays else at) if (at + 1 < found["total"] or not stays) else
            f"/labeling/{name}/queue?" + urlencode(params)}
    return render(request, "labeling_edit.html", viewer, title=f"{item['item']} · {job.name}", nav="labeling",
                  job=job, item=item, at=at, total=found["total"], data=data,
                  queue_url=f"/labeling/{name}/queue?" + urlencode(params))


@router.get("/labeling/{name}/image")
def item_image(request: Request, name: str, id: str = Query(min_length=1, max_length=1000),  # noqa: A002
               _: Viewer = Depends(page())):
    """An item's image from the blob store; served only when its bytes are an image format (nosniff is set)."""
    found = _store(request).item(name, id)
    if not found.digest:
        raise NotFound(f"item {id!r} of {name!r} has no image")
    data = request.app.state.workspace.blobs.read_bytes(found.digest)
    media = next((t for magic, t in IMAGE_TYPES.items() if data.startswith(magic)), None)
    if media is None:
        raise NotFound(f"item {id!r} is not an image the console can show")
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


@router.post("/labeling/{name}/annotations")
def annotate(request: Request, name: str, body: dict = Body(...), viewer: Viewer = Depends(action("editor"))):
    """The editor's save (JSON, CSRF header): the API's ``Annotate`` body, checked by the same model, then
    ``LabelingStore.annotate``. Errors come back as the API's ``{"error": {...}}`` for the editor to show."""
    from pydantic import ValidationError

    from modelyard.server.routes_labeling import Annotate

    try:
        checked = Annotate.model_validate(body)
        saved = _store(request).annotate(name, checked.item, _actor(viewer), labels=checked.labels,
                                         boxes=checked.boxes, seconds=checked.seconds,
                                         accept_proposal=checked.accept_proposal)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        return JSONResponse({"error": {"code": "invalid_input", "message": f"{where}: {first.get('msg')}"}}, 422)
    except ModelyardError as exc:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, exc.status)
    return {"schema": "modelyard.labeling-item/1", **saved.to_dict()}


# -- review -----------------------------------------------------------------------------------------------------------
@router.get("/labeling/{name}/review")
def review_page(request: Request, name: str, viewer: Viewer = Depends(page())):
    store = _store(request)
    job = store.get(name)
    waiting = store.items(name, state=["in_review"], limit=REVIEW_PAGE)
    labelers = sorted({p["principal"] for p in store.stats(name)["labelers"] if p["labeled"]})
    return render(request, "labeling_review.html", viewer, title=f"Review {job.name}", nav="labeling", job=job,
                  waiting=waiting, labelers=labelers, error=request.query_params.get("error"))


@router.post("/labeling/{name}/review-sample")
def review_sample(request: Request, name: str, labeler: str = Form(""), fraction: str = Form(""),
                  count: str = Form(""), viewer: Viewer = Depends(action("editor"))):
    try:
        share = None
        if fraction.strip():
            try:
                share = float(fraction) / 100
            except ValueError:
                raise InvalidInput(f"percent: a number, got {fraction!r}") from None
            if not 0 < share <= 1:
                raise InvalidInput("percent: more than 0 and at most 100")
        number = _positive(count, "count")
        if (share is None) == (number is None):
            raise InvalidInput("give a percentage or a count of items to review")
        drawn = _store(request).sample_for_review(name, _actor(viewer), labeler=labeler.strip() or None,
                                                  fraction=share, count=number)
    except ModelyardError as exc:
        return _back_with_error(name, exc, "/review")
    return redirect(f"/labeling/{name}/review", f"{len(drawn)} items drawn into review.")


@router.post("/labeling/{name}/reviews")
def review(request: Request, name: str, item: str = Form(...), outcome: str = Form(...), rating: str = Form(""),
           comment: str = Form(""), viewer: Viewer = Depends(action("editor"))):
    try:
        _store(request).review(name, item, _actor(viewer), outcome=outcome, rating=rating or None,
                               comment=comment)
    except ModelyardError as exc:
        return _back_with_error(name, exc, "/review")
    return redirect(f"/labeling/{name}/review", f"{item}: {'passed' if outcome == 'pass' else 'rejected'}.")
