"""Models and evaluations: the registry (versions, aliases, signature, metrics, card, lineage from the dataset version
through the run and job to the services that serve it), deploy and evaluate from a version, and evaluation reports.
REST twins: ``/api/v1/models...``, ``POST /api/v1/services``, ``POST /api/v1/jobs`` (kind ``evaluate``),
``GET /api/v1/jobs/{id}`` (an evaluation's result)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.server.console.charts import line_chart
from modelyard.server.console.web import Paging, Viewer, action, page, redirect, render

router = APIRouter()
MODEL_SORTS = ("name", "latest", "versions", "created")


def _registry(request: Request):
    from modelyard.registry.versions import ModelRegistry

    return ModelRegistry(request.app.state.workspace)


@router.get("/models")
def models_page(request: Request, viewer: Viewer = Depends(page())):
    paging = Paging.from_request(request, MODEL_SORTS, "name", default_desc=False)
    search = (request.query_params.get("q") or "").strip()
    items = _registry(request).list_models()
    if search:
        items = [m for m in items if search.lower() in m["name"].lower()]
    key = {"name": "name", "latest": "latest", "versions": "versions", "created": "created_at"}.get(paging.sort, "name")
    items.sort(key=lambda m: (m[key] is None, m[key] or 0), reverse=paging.desc)
    shown = items[paging.offset:paging.offset + paging.per]
    return render(request, "models.html", viewer, title="Models", models=shown, total=len(items), paging=paging,
                  search=search)


@router.get("/models/{name}")
def model_page(request: Request, name: str, viewer: Viewer = Depends(page())):
    registry = _registry(request)
    paging = Paging.from_request(request, ("version",), "version")
    versions, total = registry.versions_page(name, paging.offset, paging.per)
    aliases = {m["name"]: m["aliases"] for m in registry.list_models() if m["name"] == name}.get(name, {})
    return render(request, "model.html", viewer, title=f"Model {name}", nav="models", name=name, versions=versions,
                  total=total, paging=paging, aliases=aliases)


@router.post("/models/{name}/aliases")
def move_alias(request: Request, name: str, alias: str = Form(...), version: int = Form(...),
               viewer: Viewer = Depends(action("editor"))):
    moved = _registry(request).set_alias(name, alias.strip(), version, viewer.name)
    return redirect(f"/models/{name}", f"Alias {alias.strip()} now points at {moved.ref}.")


def _lineage(request: Request, version) -> dict:
    """Dataset version -> run / job -> this version -> services, from what the registry and the runs recorded."""
    from modelyard.deploy.services import ServiceStore

    lineage = version.lineage or {}
    job = lineage.get("job")
    job_id = job.get("id") if isinstance(job, dict) else job
    dataset = lineage.get("dataset") or (version.tags or {}).get("dataset")
    serving = []
    for service in ServiceStore(request.app.state.workspace).list():
        for revision in (service.live, service.desired):
            if revision and any(t.get("version_id") == version.id for t in revision.traffic):
                weight = next(t["weight"] for t in revision.traffic if t.get("version_id") == version.id)
                serving.append({"name": service.name, "weight": weight, "revision": revision.revision,
                                "status": revision.status})
                break
    return {"dataset": dataset, "run": lineage.get("run"), "job": job_id, "services": serving,
            "parent": lineage.get("parent") or lineage.get("source_model")}


@router.get("/models/{name}/versions/{selector}")
def version_page(request: Request, name: str, selector: str, viewer: Viewer = Depends(page())):
    from modelyard.data.datasets import DatasetStore
    from modelyard.jobs.queue import JobQueue

    version = _registry(request).get_version(f"{name}@{selector}")
    evaluations, _ = JobQueue(request.app.state.workspace).browse(kind="evaluate", limit=200)
    evaluations = [j for j in evaluations if j.result and j.result.get("model") == version.ref][:10]
    datasets = [d["latest"] for d in DatasetStore(request.app.state.workspace).list()]
    return render(request, "model_version.html", viewer, title=version.ref, nav="models", v=version,
                  lineage=_lineage(request, version), evaluations=evaluations, datasets=datasets)


@router.post("/models/{name}/versions/{version}/deploy")
def deploy_version(request: Request, name: str, version: int, service: str = Form(""), replicas: int = Form(1),
                   public: bool = Form(False), viewer: Viewer = Depends(action("editor"))):
    from modelyard.deploy.services import DeploySpec, ServiceStore
    from modelyard.server.routes_services import _view

    try:
        spec = DeploySpec(model=f"{name}@{version}", name=service.strip() or None, replicas=replicas, public=public)
    except ValueError as exc:
        raise InvalidInput(str(exc).splitlines()[-1] if str(exc) else "invalid deployment") from exc
    made = ServiceStore(request.app.state.workspace).deploy(spec, created_by=viewer.name)
    _view(request, made)  # starts the supervisor, as POST /api/v1/services does
    return redirect(f"/services/{made.name}", f"Deploying {name}@{version} as service {made.name} "
                                              f"(revision {made.revision}).")


@router.post("/models/{name}/versions/{version}/evaluate")
def evaluate_version(request: Request, name: str, version: int, data: str = Form(...),
                     split: str = Form("validation"), viewer: Viewer = Depends(action("editor"))):
    from modelyard.jobs.queue import JobQueue

    job = JobQueue(request.app.state.workspace).submit(
        "evaluate", {"model": f"{name}@{version}", "dataset": data.strip(), "split": split}, owner=viewer.name,
        caller=viewer.caller)
    return redirect(f"/evaluations/{job.id}", f"Evaluation job {job.id} queued.")


# -- evaluations ----------------------------------------------------------------------------------------------------
@router.get("/evaluations")
def evaluations_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.jobs.queue import JobQueue

    paging = Paging.from_request(request, ("created", "status"), "created")
    items, total = JobQueue(request.app.state.workspace).browse(kind="evaluate", sort=paging.sort, desc=paging.desc,
                                                                offset=paging.offset, limit=paging.per)
    return render(request, "evaluations.html", viewer, title="Evaluations", jobs=items, total=total, paging=paging)


def _heat(matrix: list[list[int]]) -> list[list[tuple[int, int]]]:
    """Each cell with a shade 0-5 relative to its row (rows are true classes, so shading shows recall)."""
    out = []
    for row in matrix:
        top = max(row) or 1
        out.append([(cell, min(5, round(5 * cell / top))) for cell in row])
    return out


@router.get("/evaluations/{job_id}")
def evaluation_page(request: Request, job_id: str, viewer: Viewer = Depends(page())):
    from modelyard.jobs.queue import JobQueue

    job = JobQueue(request.app.state.workspace).get(job_id)
    if job.kind != "evaluate":
        raise NotFound(f"job {job_id} is a {job.kind} job, not an evaluation")
    data = job.result or {}
    charts = []
    curves = data.get("curves") or {}
    if isinstance(curves, list):  # a detector's: one precision-recall curve per class at IoU 0.5
        charts.append(line_chart([(f"{c['class']} (AP50 {c['ap50']:.3f})" if c.get("ap50") is not None
                                   else c["class"], list(zip(c["recall"], c["precision"], strict=True)))
                                  for c in curves[:10]], "Precision-recall at IoU 0.5 (x: recall, y: precision)"))
        curves = {}
    if curves.get("roc"):
        charts.append(line_chart([(f"{c['class']} (AUC {c['auc']:.3f})", list(zip(c["fpr"], c["tpr"], strict=True)))
                                  for c in curves["roc"][:10]], "ROC (x: false positive rate, y: true positive rate)"))
    if curves.get("pr"):
        charts.append(line_chart([(f"{c['class']} (AP {c['average_precision']:.3f})",
                                   list(zip(c["recall"], c["precision"], strict=True))) for c in curves["pr"][:10]],
                                 "Precision-recall (x: recall, y: precision)"))
    if data.get("calibration"):
        bins = data["calibration"]
        charts.append(line_chart([("model", [[b["confidence"], b["accuracy"]] for b in bins]),
                                  ("perfect", [[0, 0], [1, 1]])], "Calibration (x: confidence, y: accuracy)"))
    if data.get("residuals"):
        r = data["residuals"]
        pairs = sorted(zip(r["actual"], r["predicted"], strict=True))
        charts.append(line_chart([("predicted", [list(p) for p in pairs]), ("actual", [[a, a] for a, _ in pairs])],
                                 "Predicted vs actual (sorted by actual)"))
    return render(request, "evaluation.html", viewer, title=f"Evaluation {job_id}", nav="evaluations", job=job,
                  data=data, charts=charts, per_class=_per_class_rows(data),
                  labels=data.get("confusion_classes") or data.get("classes") or [],
                  heat=_heat(data["confusion_matrix"]) if data.get("confusion_matrix") else None)


def _per_class_rows(data: dict) -> dict:
    """Per-class rows of plain numbers: a detector's best-F1 threshold is spread into columns."""
    rows = {}
    for name, row in (data.get("per_class") or {}).items():
        best = row.get("best_f1") if isinstance(row.get("best_f1"), dict) else None
        flat = {k: v for k, v in row.items() if k != "best_f1"}
        if "best_f1" in row:
            flat.update(threshold=best["threshold"] if best else None, f1=best["f1"] if best else None)
        rows[name] = flat
    return rows
