"""The fine-tuning ladder: the language models (and L2 classifiers) in the registry and, for one, its L0 -> L1 -> L2
lineage graph with the metrics and forgetting gate at each level; a form starts a ``tune`` job and the job page follows
it. REST twins: ``GET /api/v1/models/{name}/versions/{v}/ladder`` (the same
:func:`modelyard.registry.ladder.ladder_document`) and ``POST /api/v1/jobs`` with kind ``tune`` (the same spec)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Request

from modelyard.core.errors import InvalidInput
from modelyard.server.console.web import Viewer, action, nav_item, page, redirect, render

router = APIRouter()
TEXT_FORMATS = ("hf", "gguf", "peft")
nav_item("ladder", "/ladder", "Ladder", before="evaluations")


def _language_models(workspace, limit: int = 200) -> list[dict]:
    from modelyard.store.schema import model_versions, models

    # an L2 classifier is ONNX: it is told apart by the stage tag (JSON queries differ between SQLite and PostgreSQL)
    query = (sa.select(models.c.name, model_versions.c.version, model_versions.c.format, model_versions.c.tags)
             .join(models, models.c.id == model_versions.c.model_id)
             .where(model_versions.c.format.in_((*TEXT_FORMATS, "onnx")))
             .order_by(model_versions.c.created_at.desc()).limit(limit * 4))
    with workspace.engine.connect() as conn:
        rows = [r for r in conn.execute(query)
                if r.format in TEXT_FORMATS or (r.tags or {}).get("stage") == "classify"]
    return [{"ref": f"{r.name}@{r.version}", "format": r.format, "level": (r.tags or {}).get("level", "L0"),
             "stage": (r.tags or {}).get("stage"), "gate": (r.tags or {}).get("gate")} for r in rows[:limit]]


def _text_datasets(workspace) -> list[str]:
    from modelyard.data.datasets import DatasetStore

    return [d["latest"] for d in DatasetStore(workspace).list() if d["kind"] == "text" and d.get("latest")]


@router.get("/ladder")
def ladder_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.registry.ladder import ladder_document
    from modelyard.registry.versions import ModelRegistry

    workspace = request.app.state.workspace
    ref = request.query_params.get("ref")
    document = None
    if ref:
        registry = ModelRegistry(workspace)
        document = ladder_document(registry, registry.get_version(ref))
    items = _language_models(workspace)
    bases = [i["ref"] for i in items if i["stage"] != "classify" and i["gate"] != "failed"]
    return render(request, "ladder.html", viewer, title="Ladder", items=items, document=document, selected=ref,
                  bases=bases, datasets=_text_datasets(workspace))


def _number(text: str, field: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise InvalidInput(f"{field}: {text!r} is not a {'whole ' if kind is int else ''}number") from None


@router.post("/ladder/tune")
def start_tune(request: Request, base: str = Form(...), data: str = Form(...), stage: str = Form("pretrain"),
               method: str = Form("lora"), steps: str = Form("20"), learning_rate: str = Form(""),
               name: str = Form(""), viewer: Viewer = Depends(action())):
    """Submit the ``tune`` spec the CLI and the API submit; a bad field is refused before a job exists."""
    from pydantic import ValidationError

    from modelyard.jobs.queue import JobQueue
    from modelyard.train.tune import TuneSpec

    spec: dict = {"base": base.strip(), "data": data.strip(), "stage": stage, "method": method,
                  "steps": _number(steps.strip(), "steps", int)}
    if learning_rate.strip():  # empty: the method's default (2e-4 LoRA, 2e-5 full)
        spec["learning_rate"] = _number(learning_rate.strip(), "learning rate", float)
    if name.strip():
        spec["name"] = name.strip()
    try:
        TuneSpec.model_validate(spec).resolved_output()
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from None
    job = JobQueue(request.app.state.workspace).submit("tune", spec, owner=viewer.name, caller=viewer.caller)
    return redirect(f"/jobs/{job.id}", f"tune job {job.id} started: {spec['stage']} of {spec['base']} on "
                                       f"{spec['data']}.")
