"""The AutoML wizard (code-free training): dataset version -> task (tabular, image classification or detection, from
the dataset's kind; detection also takes an input size) -> time budget and maximum latency -> start ->
a live leaderboard -> the registered winner and its evaluation. REST twin: ``POST /api/v1/jobs`` with kind
``automl.train`` (the wizard submits exactly that spec), ``GET /api/v1/jobs/{id}``, ``GET /api/v1/runs/{id}/logs``."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Form, Request

from modelyard.core.errors import InvalidInput
from modelyard.server.console.web import Paging, Viewer, action, page, redirect, refresh, render

router = APIRouter()
LEADERBOARD = 25


def _queue(request: Request):
    from modelyard.jobs.queue import JobQueue

    return JobQueue(request.app.state.workspace)


@router.get("/automl")
def wizard(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.data.datasets import DatasetStore

    store = DatasetStore(request.app.state.workspace)
    datasets = store.list()
    chosen = request.query_params.get("dataset") or ""
    check = version = None
    if chosen:
        version = store.get(chosen)
        check = store.check(version).to_dict()
    paging = Paging.from_request(request, ("created", "status"), "created", per=20)
    jobs, total = _queue(request).browse(kind="automl.train", sort=paging.sort, desc=paging.desc,
                                         offset=paging.offset, limit=paging.per)
    return render(request, "automl.html", viewer, title="AutoML", datasets=datasets, chosen=chosen, version=version,
                  check=check, jobs=jobs, total=total, paging=paging)


@router.post("/automl")
def start(request: Request, dataset: str = Form(...), name: str = Form(...), task: str = Form("auto"),
          time_budget_s: float = Form(60), max_latency_ms: str = Form(""), max_trials: str = Form(""),
          input_size: str = Form(""), viewer: Viewer = Depends(action())):
    spec: dict = {"dataset": dataset.strip(), "name": name.strip(), "task": task, "time_budget_s": time_budget_s}
    if max_latency_ms.strip():
        try:
            spec["max_latency_ms"] = float(max_latency_ms)
        except ValueError as exc:
            raise InvalidInput(f"maximum latency {max_latency_ms!r} is not a number of milliseconds") from exc
    if max_trials.strip():  # empty: the search is bounded by the time budget only, as without --max-trials
        try:
            spec["max_trials"] = int(max_trials)
        except ValueError as exc:
            raise InvalidInput(f"max_trials: {max_trials!r} is not a whole number of candidates") from exc
    if input_size.strip():  # detection only; the spec checks the range and the multiple of 16
        try:
            spec["input_size"] = int(input_size)
        except ValueError as exc:
            raise InvalidInput(f"input size {input_size!r} is not a whole number of pixels") from exc
    job = _queue(request).submit("automl.train", spec, owner=viewer.name, caller=viewer.caller)
    return redirect(f"/automl/{job.id}", f"AutoML job {job.id} started on {spec['dataset']}.")


def _leaderboard(request: Request, job) -> tuple[list[dict], dict | None]:
    """Finished job: its result's leaderboard. Running job: the trials its run has logged so far, best first."""
    from modelyard.train.run_queries import runs_of_job
    from modelyard.train.tracking import RunStore

    if job.result and job.result.get("leaderboard") is not None:
        rows = job.result["leaderboard"]
        higher = job.result.get("higher_is_better", True)
    else:
        store = RunStore(request.app.state.workspace)
        found = runs_of_job(store, job.id)
        rows, higher = [], True
        if found:
            for line in store.logs(found[-1].id, 0, 5000)["lines"]:
                try:
                    entry = json.loads(line["line"])
                except ValueError:
                    continue
                if isinstance(entry, dict) and "family" in entry:
                    rows.append(entry)
            metric = (found[-1].params or {}).get("metric") or ""
            higher = not any(word in str(metric) for word in ("rmse", "mae", "mse", "loss"))
    scored = [r for r in rows if r.get("score") is not None]
    scored.sort(key=lambda r: (r.get("accepted") is False, -r["score"] if higher else r["score"]))
    return scored[:LEADERBOARD], {"total": len(rows), "higher": higher}


@router.get("/automl/{job_id}")
def progress_page(request: Request, job_id: str, viewer: Viewer = Depends(page())):
    job = _queue(request).get(job_id)
    if job.kind != "automl.train":
        raise InvalidInput(f"job {job_id} is a {job.kind} job, not AutoML")
    rows, info = _leaderboard(request, job)
    evaluation = None
    model = (job.result or {}).get("model")
    if model:
        evaluations, _ = _queue(request).browse(kind="evaluate", limit=100)
        evaluation = next((e for e in evaluations if e.spec.get("model") == model), None)
    template = "automl_live.html" if request.headers.get("hx-request") else "automl_job.html"
    response = render(request, template, viewer, title=f"AutoML {job.spec.get('name')}", nav="automl", job=job,
                      rows=rows, info=info, evaluation=evaluation)
    if request.headers.get("hx-request") and job.done:
        refresh(request, response)
    return response


@router.post("/automl/{job_id}/evaluate")
def evaluate_winner(request: Request, job_id: str, viewer: Viewer = Depends(action())):
    job = _queue(request).get(job_id)
    model = (job.result or {}).get("model")
    if not model:
        raise InvalidInput(f"job {job_id} has not registered a winner (yet)")
    evaluation = _queue(request).submit("evaluate", {"model": model, "data": job.result["dataset"],
                                                     "split": "validation"}, owner=viewer.name,
                                      caller=viewer.caller)
    return redirect(f"/evaluations/{evaluation.id}", f"Evaluating {model} on {job.result['dataset']}.")
