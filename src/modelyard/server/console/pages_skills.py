"""Skills: the market (every built-in and published skill with license, offline status and measured figures) and one
skill's page (inputs/outputs, config schemas, models with hashes, figures; editors can measure it here).
REST twins: ``/api/v1/skills``, ``/api/v1/skills/{name}``, ``/api/v1/skills/{name}/measure``; the pages call the
same functions."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request

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
