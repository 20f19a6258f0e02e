"""Services: status and replicas, the traffic-split editor (canary) with rollback, scale, stop/start, charts of
requests/s, p50/p95 latency, errors and rows per request, the access-log tail, and a "try it" form.
REST twins: ``/api/v1/services...`` (``PUT .../traffic``, ``POST .../rollback``, ``.../scale``, ``.../stop``,
``.../start``, ``GET .../stats``, ``GET .../logs``, ``POST .../predict``); the console calls the same functions."""

from __future__ import annotations

import contextlib
import json

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from modelyard.core.errors import InvalidInput, ModelyardError
from modelyard.server.console.charts import line_chart
from modelyard.server.console.web import Paging, Viewer, action, page, redirect, render

router = APIRouter()
SERVICE_SORTS = ("name", "status", "replicas", "updated")
MAX_TRY_BYTES = 8 * 1024 * 1024


def _store(request: Request):
    from modelyard.deploy.services import ServiceStore

    return ServiceStore(request.app.state.workspace)


def _view(request: Request, service) -> dict:
    from modelyard.server.routes_services import _view as view

    return view(request, service)


@router.get("/services")
def services_page(request: Request, viewer: Viewer = Depends(page())):
    paging = Paging.from_request(request, SERVICE_SORTS, "name", default_desc=False)
    search = (request.query_params.get("q") or "").strip()
    items = [_view(request, s) for s in _store(request).list() if search.lower() in s.name.lower()]
    key = {"updated": "updated_at"}.get(paging.sort, paging.sort)
    items.sort(key=lambda s: s[key], reverse=paging.desc)
    return render(request, "services.html", viewer, title="Services", services=items[paging.offset:paging.offset
                  + paging.per], total=len(items), paging=paging, search=search)


def _example_body(request: Request, service) -> str:
    """A JSON body that fits the live version's signature, to start the "try it" form from."""
    from modelyard.deploy.services import skill_entries
    from modelyard.registry.versions import ModelRegistry

    traffic = (service.live or service.desired).traffic
    if not traffic:
        return ""
    if skill_entries(traffic):  # a skill's REST body, not a model's tensors: a sentence for a text skill
        from modelyard.edge.skills.market import SAMPLE_TEXT

        return json.dumps({"text": SAMPLE_TEXT}) if "text" in traffic[0].get("inputs", []) else ""
    try:
        version = ModelRegistry(request.app.state.workspace).get_version_by_id(traffic[0]["version_id"])
    except ModelyardError:
        return ""
    inputs = {}
    for tensor in version.signature.inputs:
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in tensor.shape] or [1]
        value = "" if tensor.dtype == "string" else 0.0
        for dim in reversed(dims):
            value = [value] * min(dim, 64)
        inputs[tensor.name] = value
    text = json.dumps({"inputs": inputs})
    return text if len(text) < 20_000 else ""


def _charts(stats: dict) -> list[dict]:
    series = stats["series"]
    if not series:
        return []
    t0 = series[0]["t"]

    def points(key):
        return [[round(s["t"] - t0, 1), s[key]] for s in series if s[key] is not None]

    note = f"{stats['requests']:,} requests, {stats['bucket_s']} s buckets, x: seconds"
    size = {"width": 600, "height": 240}  # three to a row on a wide screen: text stays legible
    return [line_chart([("req/s", points("rps")), ("errors/bucket", points("errors"))], "Requests", note=note, **size),
            line_chart([("p50 ms", points("p50_ms")), ("p95 ms", points("p95_ms"))], "Latency", note=note, **size),
            line_chart([("rows/request", points("rows"))], "Rows per request", note=note, **size)]


def _batching(request: Request, service) -> dict[str, dict]:
    """Mean rows per (batched) inference per model version, from the replicas' Prometheus metrics (empty when the
    service does not run or does not answer)."""
    import re

    from modelyard.server.routes_services import _forward

    if service.state != "running" or not service.port:
        return {}
    try:
        text = _forward(request, service, "GET", "/metrics").body.decode("utf-8", errors="replace")
    except ModelyardError:
        return {}
    totals: dict[str, dict] = {}
    for kind, version, value in re.findall(
            r'^modelyard_batch_size_(sum|count)\{[^}]*version="([^"]+)"[^}]*\} ([0-9.eE+-]+)$', text, re.M):
        totals.setdefault(version, {"sum": 0.0, "count": 0.0})[kind] += float(value)
    return {v: {"inferences": int(t["count"]), "mean_rows": t["sum"] / t["count"]}
            for v, t in totals.items() if t["count"]}


@router.get("/services/{name}")
def service_page(request: Request, name: str, viewer: Viewer = Depends(page())):
    from modelyard.deploy.access_stats import access_stats
    from modelyard.deploy.services import skill_entries
    from modelyard.deploy.views import service_logs
    from modelyard.registry.versions import ModelRegistry

    service = _store(request).get(name)
    view = _view(request, service)
    home = request.app.state.workspace.home
    stats = access_stats(home, name, buckets=40)
    models = ModelRegistry(request.app.state.workspace).list_models()
    return render(request, "service.html", viewer, title=f"Service {name}", nav="services", s=view, stats=stats,
                  charts=_charts(stats), access=service_logs(home, name, "access", lines=30),
                  events=service_logs(home, name, "events", lines=30), example=_example_body(request, service),
                  batching=_batching(request, service),
                  serves_skill=bool(skill_entries((service.live or service.desired).traffic)),
                  model_refs=[f"{m['name']}@{m['latest']}" for m in models if m["latest"]][:500])


@router.get("/services/{name}/live")
def service_live(request: Request, name: str, viewer: Viewer = Depends(page())):
    """The status fragment htmx polls: status, replicas and revisions."""
    return render(request, "service_live.html", viewer, s=_view(request, _store(request).get(name)))


def _weights(form) -> dict[str, float]:
    weights: dict[str, float] = {}
    refs, values = form.getlist("ref"), form.getlist("weight")
    for ref, value in zip(refs, values, strict=False):
        ref = str(ref).strip()
        if not ref or str(value).strip() == "":
            continue
        try:
            weight = float(value)
        except ValueError as exc:
            raise InvalidInput(f"weight of {ref}: {value!r} is not a number") from exc
        if weight > 0:
            weights[ref] = weights.get(ref, 0.0) + weight
    return weights


@router.post("/services/{name}/traffic")
async def set_traffic(request: Request, name: str, viewer: Viewer = Depends(action("editor"))):
    from starlette.concurrency import run_in_threadpool

    weights = _weights(await request.form())
    if not weights:
        raise InvalidInput("give at least one model version a weight above 0")
    service = await run_in_threadpool(_store(request).set_traffic, name, weights, viewer.name)
    await run_in_threadpool(_view, request, service)
    shown = ", ".join(f"{k} {v:g}%" for k, v in weights.items())
    return redirect(f"/services/{name}", f"Revision {service.revision}: traffic {shown}.")


@router.post("/services/{name}/rollback")
def rollback(request: Request, name: str, revision: int | None = Form(None), viewer: Viewer = Depends(action())):
    service = _store(request).rollback(name, revision, created_by=viewer.name)
    _view(request, service)
    return redirect(f"/services/{name}", f"Rolled back: revision {service.revision} restores the earlier traffic.")


@router.post("/services/{name}/scale")
def scale(request: Request, name: str, replicas: int = Form(...), _: Viewer = Depends(action())):
    if not 1 <= replicas <= 16:
        raise InvalidInput("replicas must be between 1 and 16")
    _view(request, _store(request).scale(name, replicas))
    return redirect(f"/services/{name}", f"Scaling to {replicas} replica(s).")


@router.post("/services/{name}/stop")
def stop(request: Request, name: str, _: Viewer = Depends(action())):
    _store(request).stop(name)
    return redirect(f"/services/{name}", "Stopping the service.")


@router.post("/services/{name}/start")
def start(request: Request, name: str, _: Viewer = Depends(action())):
    _view(request, _store(request).start(name))
    return redirect(f"/services/{name}", "Starting the service.")


@router.post("/services/{name}/try")
def try_it(request: Request, name: str, body: str = Form(""), image: UploadFile | None = File(None),
           viewer: Viewer = Depends(action("viewer"))):
    """Send one request to the service's predict endpoint (the API's proxy, so the same checks) and show the answer.
    Viewers may try a service: predicting changes nothing."""
    from modelyard.server.routes_services import _forward

    service = _store(request).get(name)
    if image is not None and image.filename:
        payload = image.file.read(MAX_TRY_BYTES + 1)
        content_type = image.content_type or "application/octet-stream"
    else:
        payload, content_type = body.encode(), "application/json"
    if not payload:
        raise InvalidInput("paste a JSON body or choose an image to send")
    if len(payload) > MAX_TRY_BYTES:
        raise InvalidInput(f"the try-it form sends at most {MAX_TRY_BYTES // (1024 * 1024)} MiB")
    try:
        answer = _forward(request, service, "POST", "/v1/predict", payload, content_type=content_type)
    except ModelyardError as exc:
        return render(request, "service_try.html", viewer, nav="services", s={"name": name}, status=exc.status,
                      model="", answer=exc.message)
    text = answer.body.decode("utf-8", errors="replace")
    with contextlib.suppress(ValueError):  # not JSON (an error page from a proxy): shown as it came
        text = json.dumps(json.loads(text), indent=2)[:200_000]
    return render(request, "service_try.html", viewer, nav="services", s={"name": name}, status=answer.status_code,
                  model=answer.headers.get("x-modelyard-model", ""), answer=text)
