"""Skills: the market (every built-in and published skill with license, offline status and measured figures) and one
skill's page (inputs/outputs, config schemas, models with hashes, figures; editors can measure it and deploy it as a
service here). REST twins: ``/api/v1/skills``, ``/api/v1/skills/{name}``, ``/api/v1/skills/{name}/measure``,
``/api/v1/skills/{name}/deploy``; the pages call the same functions."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Form, Request

from modelyard.server.console.web import Viewer, action, nav_item, page, redirect, render

router = APIRouter()
nav_item("skills", "/skills", "Skills", "viewer")


@router.get("/skills")
def skills_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.edge.skills.market import list_skills

    return render(request, "skills.html", viewer, title="Skills", skills=list_skills(request.app.state.workspace.home))


@router.get("/skills/{name}")
def skill_page(request: Request, name: str, viewer: Viewer = Depends(page())):
    from modelyard.edge.skills.market import describe

    skill = describe(request.app.state.workspace.home, name)
    return render(request, "skill.html", viewer, title=f"Skill {name}", skill=skill,
                  outputs_json=json.dumps(skill["outputs"], indent=2),
                  global_json=json.dumps(skill["config"]["global"], indent=2),
                  channel_json=json.dumps(skill["config"]["channel"], indent=2),
                  figures_json=json.dumps(skill["figures"], indent=2) if skill["figures"] else None)


@router.post("/skills/{name}/measure")
def measure(request: Request, name: str, viewer: Viewer = Depends(action())):
    from modelyard.edge.skills.market import measure as measure_skill

    figures = measure_skill(request.app.state.workspace.home, name)
    verdict = "passed" if figures["self_check"] else "FAILED"
    return redirect(f"/skills/{name}", f"Measured {name}: {figures['latency_ms']:g} ms, self-check {verdict}.")


@router.post("/skills/{name}/deploy")
def deploy(request: Request, name: str, service: str = Form(""), replicas: int = Form(1), config: str = Form(""),
           public: bool = Form(False), viewer: Viewer = Depends(action("editor"))):
    """Deploy the skill as a service (the same function as ``POST /api/v1/skills/{name}/deploy``); a bad service
    name, replica count or config is the error page, and nothing is deployed."""
    from modelyard.core.errors import InvalidInput
    from modelyard.edge.skill_services import SkillDeploySpec, deploy_skill
    from modelyard.server.routes_services import _view

    try:
        skill_config = json.loads(config) if config.strip() else {}
    except ValueError as exc:
        raise InvalidInput(f"config is not JSON: {exc}") from exc
    if not isinstance(skill_config, dict):
        raise InvalidInput("config must be a JSON object")
    try:
        spec = SkillDeploySpec(service=service.strip() or None, replicas=replicas, config=skill_config, public=public)
    except ValueError as exc:
        raise InvalidInput(str(exc).splitlines()[-1] if str(exc) else "invalid deployment") from exc
    made = deploy_skill(request.app.state.workspace, name, spec, created_by=viewer.name)
    _view(request, made)  # starts the supervisor, as the REST route does
    return redirect(f"/services/{made.name}", f"Deploying skill {name} as service {made.name} "
                                              f"(revision {made.revision}).")
