"""The skill market: list, show, measure (self-check + latency on this machine), publish.

Invoking a skill (the EI-style ready API) is a separate small app, ``modelyard skills serve`` (edge/skills/service.py),
so the models never load into the platform server.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import InvalidInput
from modelyard.edge.skill_services import SkillDeploySpec
from modelyard.server.auth import Principal, require
from modelyard.server.responses import Service, documented

router = APIRouter(tags=["skills"])


class SkillSummary(BaseModel):
    name: str
    version: str
    description: str
    builtin: bool
    inputs: list[str]
    license: str
    offline: bool
    latency_ms: float | None = None
    self_check: bool | None = None


class SkillList(BaseModel):
    skills: list[SkillSummary]


class SkillInfo(BaseModel):
    """``modelyard.skill/1``: manifest fields, models with verification, size and figures."""

    model_config = ConfigDict(extra="allow")
    schema_: str = Field(alias="schema")
    name: str
    version: str
    inputs: list[str]
    models: list[dict]
    size_bytes: int
    figures: dict | None = None


class SkillFigures(BaseModel):
    model_config = ConfigDict(extra="allow")
    latency_ms: float
    self_check: bool
    self_check_detail: dict


class SkillPublish(BaseModel):
    """A skill package as text: its ``skill.yaml`` and its ``logic.py``."""

    model_config = ConfigDict(extra="forbid")
    manifest: str = Field(min_length=1, max_length=256_000)
    logic: str = Field(min_length=1, max_length=2_000_000)


class SkillFromTemplate(BaseModel):
    """A code-free skill: a registered ONNX detector (boxes, scores, classes) or classifier plus a rule template."""

    model_config = ConfigDict(extra="forbid")
    template: str = Field(description="zone-count, line-crossing or class-seen (a detector); classifier-seen (an "
                                      "image classifier)")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,62}$")
    model: str = Field(min_length=1, max_length=300, description="NAME@VERSION or NAME@ALIAS")
    version: str = Field(default="1.0", pattern=r"^\d+\.\d+(\.\d+)?$")
    input_size: tuple[int, int] = (320, 320)


@router.get("/skills", response_model=SkillList, responses=documented(SkillList))
def list_skills(request: Request, _: Principal = Depends(require("viewer"))):
    """Every skill in the market (built-in first), with its measured figures when measured."""
    from modelyard.edge.skills.market import list_skills as rows

    return {"skills": rows(request.app.state.workspace.home)}


@router.get("/skills/{name}", responses=documented(SkillInfo, 404, 422))
def show_skill(name: str, request: Request, version: str | None = None, _: Principal = Depends(require("viewer"))):
    """One skill: manifest, config schemas, models with hashes (verified), size, license, figures."""
    from modelyard.edge.skills.market import describe

    return describe(request.app.state.workspace.home, name, version)


@router.post("/skills/{name}/measure", responses=documented(SkillFigures, 404, 422, 500, 503))
def measure_skill(name: str, request: Request, _: Principal = Depends(require("editor"))):
    """Run the skill's self-check and time it on a sample input on this machine; the market shows the figures."""
    from modelyard.edge.skills.market import measure

    return measure(request.app.state.workspace.home, name)


@router.post("/skills", status_code=201, responses=documented(SkillInfo, 409, 422, status=201))
def publish_skill(body: SkillPublish, request: Request, _: Principal = Depends(require("editor"))):
    """Publish a user skill (manifest + logic code) to the market."""
    from modelyard.edge.skills.market import publish

    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "skill.yaml").write_text(body.manifest)
        Path(folder, "logic.py").write_text(body.logic)
        try:
            compile(body.logic, "logic.py", "exec")
        except SyntaxError as exc:
            raise InvalidInput(f"logic.py line {exc.lineno}: {exc.msg}") from exc
        return publish(request.app.state.workspace.home, folder)


@router.post("/skills/{name}/deploy", status_code=201,
             responses=documented(Service, 404, 409, 413, 422, status=201))
def deploy_skill(name: str, body: SkillDeploySpec, request: Request,
                 principal: Principal = Depends(require("editor"))):
    """Deploy the market skill as a service (or a new revision of it): its REST API at the service's URL and at
    ``/api/v1/services/{service}/predict``, with the token rules, ``/metrics`` and lifecycle of a model service.
    Answers at once with status ``deploying``; poll ``GET /services/{service}`` until the revision is ``live``."""
    from modelyard.edge.skill_services import deploy_skill as deploy
    from modelyard.server.routes_services import _view

    return _view(request, deploy(request.app.state.workspace, name, body, created_by=principal.name))


@router.post("/skills/templates", status_code=201, responses=documented(SkillInfo, 404, 409, 422, status=201))
def publish_from_template(body: SkillFromTemplate, request: Request, _: Principal = Depends(require("editor"))):
    """Publish a code-free skill from a registered detector and a template (count in a zone, line crossing, class
    seen for N frames)."""
    from modelyard.edge.skills.market import publish_template
    from modelyard.registry.resolve import resolve

    workspace = request.app.state.workspace
    resolved = resolve(workspace, body.model)
    ref = f"{resolved.version.name}@{resolved.version.version}"
    return publish_template(workspace.home, body.template, body.name, resolved.path, model_ref=ref,
                            version=body.version, input_size=body.input_size)
