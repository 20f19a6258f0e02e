"""What ``services list/show`` report: the service row joined with the supervisor's live view (replicas, health),
and the service's logs."""

from __future__ import annotations

import time
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.deploy.state import read_json, service_dir, services_root, tail

STALE_AFTER_S = 10.0
LOG_SOURCES = ("events", "access", "replica")


def _alive(pid: int | None) -> bool:
    import psutil

    try:
        return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def service_view(home: Path, service) -> dict:
    """``service.to_dict()`` plus ``status``, ``message``, ``replica_states`` and ``supervisor``."""
    from modelyard.deploy.supervisor import is_running

    data = service.to_dict()
    state = read_json(service_dir(home, service.name) / "state.json") or {}
    supervisor = is_running(home)
    pid = (read_json(services_root(home) / "supervisor.json") or {}).get("pid")
    # fresh only when written by the supervisor that runs now: a killed one leaves its last state file behind
    fresh = (supervisor and state.get("supervisor_pid") == pid and _alive(pid)
             and time.time() - float(state.get("updated_at") or 0) < STALE_AFTER_S)
    if service.state == "stopped":
        status, message = "stopped", ""
    elif not fresh:
        status, message = "starting", "waiting for the supervisor"
    elif state.get("status") == "stopped":
        # started again a moment ago: the supervisor has not picked it up yet
        status, message = "starting", "waiting for the supervisor"
    else:
        status, message = state.get("status", "starting"), state.get("message", "")
    replicas = state.get("replicas", []) if fresh and service.state == "running" else []
    ready = sum(1 for r in replicas if r["state"] == "ready" and r["revision"] == service.live_revision)
    if status == "deploying" and service.desired.status != "pending":
        # the database moved on (live or failed) a moment before the supervisor rewrote its state file
        status = "ready" if ready >= service.replicas else ("degraded" if ready else "starting")
        message = ""
    data.update({
        "status": status,
        "message": message,
        "replica_states": replicas,
        "healthy_replicas": ready,
        "supervisor": {"running": supervisor, "pid": pid},
    })
    return data


def service_logs(home: Path, name: str, source: str = "events", replica: int | None = None,
                 lines: int = 200, revision: int | None = None) -> str:
    """The last ``lines`` lines of the events log, the access log, or a replica's own log."""
    if source not in LOG_SOURCES:
        raise InvalidInput(f"log source must be one of {', '.join(LOG_SOURCES)}, not {source!r}")
    if not 1 <= lines <= 100_000:
        raise InvalidInput("lines must be between 1 and 100000")
    folder = service_dir(home, name)
    if source == "events":
        return tail(folder / "events.log", lines)
    if source == "access":
        return tail(folder / "access.log", lines)
    logs = sorted(folder.glob("replica-*-*.log"), key=lambda p: p.stat().st_mtime)
    if revision is not None:
        logs = [p for p in logs if p.name.startswith(f"replica-{revision}-")]
    if replica is not None:
        logs = [p for p in logs if p.stem.endswith(f"-{replica}")]
    return "".join(f"==> {p.name} <==\n{tail(p, lines)}" for p in logs[-4:])
