"""OTA deployments: a bundle to one device, a label selector or a group, canary first, watched against a health gate,
then the rest; devices that fail the gate roll back automatically and the rollout stops.

Per device: ``queued`` (waits for the canary) -> ``pending`` (in its desired state) -> ``downloading`` ->
``verifying`` -> ``activating`` -> ``healthy`` | ``failed`` -> ``rolled_back``; ``superseded`` / ``cancelled`` end
a row early. Nothing blocks: a newer deployment to a device supersedes every older one at once, any deployment can
be cancelled in any state, and the machine advances on every agent report (no background thread to get stuck).
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.edge.devices import check_labels, matches, set_desired, write_transaction
from modelyard.store.db import as_utc
from modelyard.store.schema_edge import edge_bundles, edge_deployment_devices, edge_deployments, edge_devices

ACTIVE = ("canary", "rolling")
IN_FLIGHT = ("pending", "downloading", "verifying", "activating")
AGENT_STATES = ("downloading", "verifying", "activating")
DONE = ("healthy", "rolled_back", "superseded", "cancelled")


# built once: this runs on every report of a fleet, and a statement built per call costs more CPU in SQLAlchemy
# than SQLite takes to answer it; the statuses are plain comparisons, as an IN list is re-rendered per execution
_IN_FLIGHT = sa.select(sa.func.count()).select_from(edge_deployment_devices).join(
    edge_deployments, edge_deployments.c.id == edge_deployment_devices.c.deployment_id).where(
    sa.or_(*(edge_deployments.c.status == status for status in ACTIVE), edge_deployment_devices.c.state == "failed"))
_IN_FLIGHT_FOR_DEVICE = _IN_FLIGHT.where(edge_deployment_devices.c.device_id == sa.bindparam("device_id"))


class HealthGate(BaseModel):
    """Args:
    watch_s: how long a device must stay healthy before it counts as healthy. Default 30.
    max_error_rate: share of failed inferences allowed. Default 0.05.
    max_latency_ms: median inference latency allowed; default: 10x the bundle's measured batch-1 latency + 50 ms
        (devices are slower than the packaging machine, and a device shares its CPU).
    """

    model_config = ConfigDict(extra="forbid")
    watch_s: float = Field(default=30.0, ge=0, le=86400)
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    max_latency_ms: float | None = Field(default=None, gt=0)


class DeploymentSpec(BaseModel):
    """A deployment: ``bundle`` to ``device`` | ``selector`` | ``group`` (one of them)."""

    model_config = ConfigDict(extra="forbid")
    bundle: str
    device: str | None = None
    selector: dict[str, str] | None = None
    group: str | None = None
    canary: int | None = Field(default=None, ge=0, description="canary device count (default 1)")
    canary_percent: float | None = Field(default=None, gt=0, le=100)
    gate: HealthGate = Field(default_factory=HealthGate)
    skill: str = Field(default="inference", min_length=1, max_length=100)
    config: dict = Field(default_factory=dict)
    channels: dict[str, dict] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_target(self):
        given = [x for x in (self.device, self.selector, self.group) if x]
        if len(given) != 1:
            raise ValueError("name exactly one of device, selector or group")
        if self.canary is not None and self.canary_percent is not None:
            raise ValueError("give canary or canary_percent, not both")
        return self


def _skill_entry(spec: DeploymentSpec, bundle_id: str) -> dict:
    return {"name": spec.skill, "version": bundle_id, "bundle": bundle_id, "config": spec.config,
            "channels": spec.channels}


class Rollouts:
    def __init__(self, engine):
        self.engine = engine

    def create(self, spec: DeploymentSpec, created_by: str = "") -> dict:
        now = utcnow()
        with write_transaction(self.engine) as conn:
            if conn.execute(sa.select(edge_bundles.c.id).where(edge_bundles.c.id == spec.bundle)).first() is None:
                raise NotFound(f"bundle {spec.bundle} not found")
            rows = conn.execute(sa.select(edge_devices).where(edge_devices.c.status == "active")
                                .order_by(edge_devices.c.name)).all()
            if spec.device:
                targets = [r for r in rows if spec.device in (r.id, r.name)]
                if not targets:
                    raise NotFound(f"no active device {spec.device}")
            else:
                selector = check_labels(spec.selector or {"group": spec.group})
                targets = [r for r in rows if matches(r.labels, selector)]
                if not targets:
                    raise InvalidInput(f"no active device matches {selector}")
            count = spec.canary if spec.canary is not None else 1
            if spec.canary_percent is not None:
                count = max(1, round(len(targets) * spec.canary_percent / 100))
            count = min(count, len(targets))
            deployment_id = new_id("edp")
            previous = self._supersede(conn, [t.id for t in targets], deployment_id)
            status = "canary" if count else "rolling"
            conn.execute(edge_deployments.insert().values(
                id=deployment_id, bundle_id=spec.bundle, spec=spec.model_dump(mode="json"), status=status,
                message="", created_by=created_by, created_at=now, updated_at=now))
            for index, device in enumerate(targets):
                canary = index < count
                conn.execute(edge_deployment_devices.insert().values(
                    deployment_id=deployment_id, device_id=device.id, canary=canary,
                    state="queued", previous=previous.get(device.id, device.desired), updated_at=now))
                if canary or status == "rolling":
                    self._release(conn, deployment_id, device.id, spec)
        return self.get(deployment_id)

    def _supersede(self, conn, device_ids: list[str], by: str) -> dict[str, dict]:
        """End older deployments' rows on these devices; returns each device's last good desired state."""
        previous: dict[str, dict] = {}
        older = conn.execute(sa.select(edge_deployment_devices).join(
            edge_deployments, edge_deployments.c.id == edge_deployment_devices.c.deployment_id).where(
            edge_deployment_devices.c.device_id.in_(device_ids),
            edge_deployment_devices.c.state.not_in(DONE + ("failed",)))).all()
        touched = set()
        for row in older:
            if row.state != "queued":
                previous[row.device_id] = row.previous  # the in-flight bundle never proved itself
            conn.execute(edge_deployment_devices.update().where(
                edge_deployment_devices.c.deployment_id == row.deployment_id,
                edge_deployment_devices.c.device_id == row.device_id).values(
                state="superseded", message=f"superseded by {by}", updated_at=utcnow()))
            touched.add(row.deployment_id)
        for deployment_id in touched:
            conn.execute(edge_deployments.update().where(edge_deployments.c.id == deployment_id,
                                                         edge_deployments.c.status.in_(ACTIVE)).values(
                status="superseded", message=f"superseded by {by}", updated_at=utcnow()))
        return previous

    def _release(self, conn, deployment_id: str, device_id: str, spec: DeploymentSpec) -> None:
        device = conn.execute(sa.select(edge_devices.c.desired).where(edge_devices.c.id == device_id)).first()
        skills = [s for s in device.desired.get("skills", []) if s.get("name") != spec.skill]
        desired = {**device.desired, "skills": [*skills, _skill_entry(spec, spec.bundle)],
                   "deployment": deployment_id}
        set_desired(conn, device_id, desired)
        self._set(conn, deployment_id, device_id, "pending", "in the device's desired state")

    def _set(self, conn, deployment_id, device_id, state, message="", **values) -> None:
        conn.execute(edge_deployment_devices.update().where(
            edge_deployment_devices.c.deployment_id == deployment_id,
            edge_deployment_devices.c.device_id == device_id).values(
            state=state, message=message[:2000], updated_at=utcnow(), **values))

    def cancel(self, deployment_id: str) -> dict:
        """Stop a deployment in any state: queued devices never get it, in-flight ones go back to their last good
        state; devices already healthy keep it."""
        with write_transaction(self.engine) as conn:
            row = self._row(conn, deployment_id)
            if row.status not in ACTIVE:
                raise Conflict(f"deployment {deployment_id} is already {row.status}")
            for target in self._targets(conn, deployment_id):
                if target.state == "queued":
                    self._set(conn, deployment_id, target.device_id, "cancelled", "deployment cancelled")
                elif target.state in IN_FLIGHT:
                    set_desired(conn, target.device_id, target.previous)
                    self._set(conn, deployment_id, target.device_id, "cancelled",
                              "deployment cancelled; back to the previous state")
            conn.execute(edge_deployments.update().where(edge_deployments.c.id == deployment_id).values(
                status="cancelled", message="cancelled", updated_at=utcnow()))
        return self.get(deployment_id)

    def _row(self, conn, deployment_id: str):
        row = conn.execute(sa.select(edge_deployments).where(edge_deployments.c.id == deployment_id)).first()
        if row is None:
            raise NotFound(f"deployment {deployment_id} not found")
        return row

    def _targets(self, conn, deployment_id: str):
        return conn.execute(sa.select(edge_deployment_devices, edge_devices.c.name, edge_devices.c.reported).join(
            edge_devices, edge_devices.c.id == edge_deployment_devices.c.device_id).where(
            edge_deployment_devices.c.deployment_id == deployment_id).order_by(edge_devices.c.name)).all()

    def get(self, deployment_id: str) -> dict:
        with self.engine.connect() as conn:
            row = self._row(conn, deployment_id)
            targets = self._targets(conn, deployment_id)
        return _view(row, targets)

    def list(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(edge_deployments).order_by(edge_deployments.c.created_at.desc())).all()
            return [_view(r, self._targets(conn, r.id)) for r in rows]

    # -- the state machine ------------------------------------------------------------------------------------------
    def advance(self, device_id: str | None = None) -> None:
        """Move every active deployment (touching ``device_id`` when given) as far as the reports allow."""
        with self.engine.connect() as conn:
            if device_id is None:
                active = conn.execute(_IN_FLIGHT).scalar_one()
            else:
                active = conn.execute(_IN_FLIGHT_FOR_DEVICE, {"device_id": device_id}).scalar_one()
        if not active:
            return  # the common case of a fleet's reports: nothing in flight, no write transaction
        with write_transaction(self.engine) as conn:
            query = sa.select(edge_deployments).where(edge_deployments.c.status.in_(ACTIVE))
            if device_id is not None:
                query = query.where(edge_deployments.c.id.in_(
                    sa.select(edge_deployment_devices.c.deployment_id)
                    .where(edge_deployment_devices.c.device_id == device_id)))
            for deployment in conn.execute(query).all():
                self._advance_one(conn, deployment)
            # rows that failed in a deployment that has since ended still need to see their rollback land
            failed = sa.select(edge_deployment_devices, edge_devices.c.reported).join(
                edge_devices, edge_devices.c.id == edge_deployment_devices.c.device_id).where(
                edge_deployment_devices.c.state == "failed")
            if device_id is not None:
                failed = failed.where(edge_deployment_devices.c.device_id == device_id)
            for row in conn.execute(failed).all():
                if _runs(row.reported or {}, row.previous):
                    self._set(conn, row.deployment_id, row.device_id, "rolled_back",
                              f"{row.message}; rolled back to the previous state")

    def _advance_one(self, conn, deployment) -> None:
        spec = DeploymentSpec.model_validate(deployment.spec)
        bundle = conn.execute(sa.select(edge_bundles.c.manifest).where(
            edge_bundles.c.id == deployment.bundle_id)).scalar_one()
        gate = spec.gate
        max_latency = gate.max_latency_ms or (
            10 * float(bundle.get("figures", {}).get("final", {}).get("latency_ms_batch1", 1.0)) + 50)
        now = utcnow()
        for target in self._targets(conn, deployment.id):
            if target.state not in IN_FLIGHT:
                continue
            reported = target.reported or {}
            progress = reported.get("deployment") or {}
            if progress.get("id") != deployment.id:
                continue
            state = progress.get("state")
            if state in AGENT_STATES and state != target.state:
                self._set(conn, deployment.id, target.device_id, state, progress.get("message", ""))
            elif state == "failed":
                self._fail(conn, deployment.id, target, progress.get("message") or "the device refused the bundle")
            elif state == "active":
                skill = next((s for s in reported.get("skills", []) if s.get("name") == spec.skill
                              and s.get("bundle") == deployment.bundle_id), None)
                problem = _unhealthy(skill, gate.max_error_rate, max_latency)
                if problem:
                    self._fail(conn, deployment.id, target, problem)
                elif skill is not None and skill.get("processed", 0) > 0:
                    since = as_utc(target.active_since)
                    if since is None:
                        self._set(conn, deployment.id, target.device_id, "activating",
                                  f"active; watching for {gate.watch_s:g} s", active_since=now)
                        since = now
                    if now - since >= timedelta(seconds=gate.watch_s):
                        self._set(conn, deployment.id, target.device_id, "healthy",
                                  f"healthy: {_health_text(skill)}")
        targets = self._targets(conn, deployment.id)
        canaries = [t for t in targets if t.canary]
        bad = [t for t in targets if t.state in ("failed", "rolled_back")]
        if bad:
            for t in targets:
                if t.state == "queued":
                    self._set(conn, deployment.id, t.device_id, "cancelled", "rollout stopped: a device failed")
            names = ", ".join(t.name for t in bad)
            phase = "canary" if deployment.status == "canary" else "rollout"
            conn.execute(edge_deployments.update().where(edge_deployments.c.id == deployment.id).values(
                status="failed", message=f"{phase} failed the health gate on {names}: {bad[0].message}; "
                                         "failed devices rolled back, rollout stopped", updated_at=now))
        elif deployment.status == "canary" and all(t.state == "healthy" for t in canaries) and \
                any(t.state == "queued" for t in targets):
            for t in targets:
                if t.state == "queued":
                    self._release(conn, deployment.id, t.device_id, spec)
            conn.execute(edge_deployments.update().where(edge_deployments.c.id == deployment.id).values(
                status="rolling", message="canary healthy; rolling out to the rest", updated_at=now))
        elif all(t.state == "healthy" for t in targets):
            conn.execute(edge_deployments.update().where(edge_deployments.c.id == deployment.id).values(
                status="succeeded", message=f"{len(targets)} device(s) healthy", updated_at=now))

    def _fail(self, conn, deployment_id: str, target, why: str) -> None:
        """Fail one device and roll it back to its last good desired state at once."""
        set_desired(conn, target.device_id, target.previous)
        self._set(conn, deployment_id, target.device_id, "failed", why)


def _unhealthy(skill: dict | None, max_error_rate: float, max_latency_ms: float) -> str | None:
    if skill is None:
        return None  # not reported yet
    if skill.get("status") in ("crashed", "failed"):
        return f"skill {skill.get('name')} crashed: {skill.get('error', '')}".strip()
    processed = skill.get("processed", 0)
    if processed <= 0:
        return None
    error_rate = skill.get("errors", 0) / processed
    if error_rate > max_error_rate:
        return f"error rate {error_rate:.1%} > {max_error_rate:.1%}"
    latency = skill.get("latency_ms_p50")
    if latency is not None and latency > max_latency_ms:
        return f"median latency {latency:.3f} ms > {max_latency_ms:g} ms"
    return None


def _health_text(skill: dict) -> str:
    return (f"{skill.get('processed', 0)} inferences, {skill.get('errors', 0)} errors, "
            f"median {skill.get('latency_ms_p50')} ms")


def _runs(reported: dict, desired: dict) -> bool:
    """Whether the device reports it runs exactly the skills/bundles of ``desired``."""
    if (reported.get("deployment") or {}).get("state") not in ("active", None):
        return False
    wanted = {(s["name"], s["bundle"]) for s in desired.get("skills", [])}
    running = {(s.get("name"), s.get("bundle")) for s in reported.get("skills", []) if s.get("status") == "running"}
    return wanted == running


def _view(row, targets) -> dict:
    return {"schema": "modelyard.edge-deployment/1", "id": row.id, "bundle": row.bundle_id, "status": row.status,
            "message": row.message, "spec": row.spec, "created_by": row.created_by,
            "created_at": isoformat(as_utc(row.created_at)), "updated_at": isoformat(as_utc(row.updated_at)),
            "devices": [{"device_id": t.device_id, "device": t.name, "canary": t.canary, "state": t.state,
                         "message": t.message, "updated_at": isoformat(as_utc(t.updated_at))} for t in targets]}
