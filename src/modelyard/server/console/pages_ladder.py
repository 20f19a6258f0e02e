"""The fine-tuning ladder: the language models in the registry and, for one, its L0 -> L1 -> L2 lineage graph with
the metrics and forgetting gate at each level. REST twin: ``GET /api/v1/models/{name}/versions/{v}/ladder``
(the same :func:`modelyard.registry.ladder.ladder_document`)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request

from modelyard.server.console.web import Viewer, nav_item, page, render

router = APIRouter()
TEXT_FORMATS = ("hf", "gguf", "peft")
nav_item("ladder", "/ladder", "Ladder", before="evaluations")


def _language_models(workspace, limit: int = 200) -> list[dict]:
    from modelyard.store.schema import model_versions, models

    query = (sa.select(models.c.name, model_versions.c.version, model_versions.c.format, model_versions.c.tags)
             .join(models, models.c.id == model_versions.c.model_id)
             .where(model_versions.c.format.in_(TEXT_FORMATS))
             .order_by(model_versions.c.created_at.desc()).limit(limit))
    with workspace.engine.connect() as conn:
        return [{"ref": f"{r.name}@{r.version}", "format": r.format, "level": (r.tags or {}).get("level", "L0"),
                 "gate": (r.tags or {}).get("gate")} for r in conn.execute(query)]


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
    return render(request, "ladder.html", viewer, title="Ladder", items=_language_models(workspace),
                  document=document, selected=ref)
