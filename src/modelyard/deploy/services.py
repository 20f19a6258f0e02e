"""Services as data: what should run (the ``services`` row) and every configuration it ever had (numbered
``service_revisions``: traffic split over model versions + batching config). Deploy, traffic changes and rollback
each add a revision; the supervisor makes the newest one live or marks it failed, and the previous live revision
keeps serving until then.

Example::

    store = ServiceStore(workspace)
    store.deploy(DeploySpec(model="resnet@production", name="resnet"), created_by="alice")
    store.set_traffic("resnet", {"resnet@3": 90, "resnet@4": 10})
    store.rollback("resnet")
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelyard.core.errors import Conflict, InvalidInput, ModelyardError, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.registry.refs import check_name, parse_ref
from modelyard.registry.versions import ModelRegistry
from modelyard.store.db import as_utc
from modelyard.store.schema import service_revisions, services
from modelyard.store.workspace import Workspace

MAX_REPLICAS = 16
# the replica process each kind of traffic entry runs in (a module name, not an import: deploy never imports edge)
REPLICA_MODULES = {"model": "modelyard.deploy.replica", "skill": "modelyard.edge.skill_replica"}


def entry_kind(entry: dict) -> str:
    """``model`` (a registry version: ``version_id``, ``format``) or ``skill`` (a market skill: ``skill``,
    ``version``, ``digest``). Entries written before skills existed carry no kind: they are models."""
    return entry.get("kind", "model")


def replica_module(traffic: list[dict]) -> str:
    """The module a revision's replicas run: a revision serves one kind (a skill's revision has one entry)."""
    return REPLICA_MODULES[entry_kind(traffic[0])] if traffic else REPLICA_MODULES["model"]


def skill_entries(traffic: list[dict]) -> list[dict]:
    return [t for t in traffic if entry_kind(t) == "skill"]


class DeploySpec(BaseModel):
    """A deployment, as the CLI, REST and SDK take it.

    Args:
        model: ``N@V``, ``N@alias`` or ``N`` (newest); resolved to a version now.
        name: the service name (default: the model name).
        backend: ``auto`` (ONNX on the GPU when there is one, else onnxruntime:cpu; IR on openvino:cpu, see
            :func:`modelyard.runtime.targets.auto_backend`) or a ``backend:device``.
        replicas: replica processes (1-16). Default 1.
        max_batch: most rows stacked into one inference (1 turns batching off). Default 16.
        max_wait_ms: how long a batch may wait for more requests once traffic is concurrent. Default 5.
        instances: inferences one replica runs at once (ONNX Runtime only; others run one). Default 2.
        port: the service port; 0 picks a free one (kept across restarts). Default 0.
        host: interface to listen on. Default 127.0.0.1.
        public: predict needs no token. Default False.
        follow_alias: when ``model`` names an alias, the service follows it: moving the alias
            (``modelyard models alias``) rolls a running service to the alias's new version as a new revision, with
            the usual guarantee (a version that cannot load leaves the previous one serving). False pins the version
            the alias names now. A traffic split or a rollback pins too. Default True.
        placement: where the replicas run: ``local`` (processes on the supervisor's machine) or ``ray`` (Ray
            places each replica on a node of the cluster at ``ray_address``; see docs/scale-out.md). A traffic
            split or a rollback keeps the placement of the revision it starts from. Default ``local``.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=220)
    name: str | None = Field(default=None, max_length=100)
    backend: str = Field(default="auto", max_length=60)
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    max_batch: int = Field(default=16, ge=1, le=1024)
    max_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    instances: int = Field(default=2, ge=1, le=16)
    port: int = Field(default=0, ge=0, le=65535)
    host: str = Field(default="127.0.0.1", min_length=1, max_length=200)
    public: bool = False
    follow_alias: bool = True
    placement: Literal["local", "ray"] = "local"

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        parse_ref(value)
        return value


@dataclass(frozen=True)
class Revision:
    revision: int
    traffic: list[dict]
    config: dict
    status: str
    message: str
    created_by: str
    created_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict:
        return {"revision": self.revision, "traffic": self.traffic, "config": self.config, "status": self.status,
                "message": self.message, "created_by": self.created_by, "created_at": isoformat(self.created_at),
                "finished_at": isoformat(self.finished_at)}

    def describe(self) -> str:
        return ", ".join(f"{t['ref']}={t['weight']:g}%" for t in self.traffic)


@dataclass(frozen=True)
class Service:
    """A service row with its revisions (newest first)."""

    id: str
    name: str
    state: str
    host: str
    port: int
    public: bool
    replicas: int
    revision: int
    live_revision: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    revisions: tuple[Revision, ...]

    def get_revision(self, number: int | None) -> Revision | None:
        return next((r for r in self.revisions if r.revision == number), None)

    @property
    def desired(self) -> Revision:
        return self.get_revision(self.revision)

    @property
    def live(self) -> Revision | None:
        return self.get_revision(self.live_revision)

    def to_dict(self) -> dict:
        live = self.live
        return {
            "schema": "modelyard.service/1",
            "id": self.id, "name": self.name, "state": self.state, "host": self.host, "port": self.port,
            "url": f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '::') else self.host}:{self.port}"
            if self.port else None,
            "public": self.public, "replicas": self.replicas, "revision": self.revision,
            "live_revision": self.live_revision,
            "traffic": live.traffic if live else [],
            "config": live.config if live else self.desired.config,
            "revisions": [r.to_dict() for r in self.revisions],
            "created_by": self.created_by, "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }


def _resolve_backend(backend: str, formats: set[str]) -> str:
    """Check ``backend`` can run every format in the traffic (no probing: availability is the replica's call)."""
    if backend == "auto":
        return backend
    from modelyard.runtime.registry import BACKENDS, get_backend

    instance = get_backend(backend)
    cls_formats = set(type(instance).formats)
    missing = formats - cls_formats
    if missing:
        raise InvalidInput(f"backend {backend} cannot run {', '.join(sorted(missing))} models "
                           f"(it runs {', '.join(sorted(cls_formats))}; known backends: {', '.join(BACKENDS)})")
    return instance.full_name


class ServiceStore:
    """Service rows of one workspace. Constructing it does no I/O."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.engine = workspace.engine
        self.registry = ModelRegistry(workspace)

    # -- reading ------------------------------------------------------------------------------------------------
    def _revisions(self, conn, service_id: str) -> tuple[Revision, ...]:
        rows = conn.execute(sa.select(service_revisions).where(service_revisions.c.service_id == service_id)
                            .order_by(service_revisions.c.revision.desc())).all()
        return tuple(Revision(r.revision, r.traffic, r.config, r.status, r.message, r.created_by,
                              as_utc(r.created_at), as_utc(r.finished_at)) for r in rows)

    def _service(self, conn, row) -> Service:
        return Service(row.id, row.name, row.state, row.host, row.port, bool(row.public), row.replicas,
                       row.revision, row.live_revision, row.created_by, as_utc(row.created_at),
                       as_utc(row.updated_at), self._revisions(conn, row.id))

    def get(self, name: str) -> Service:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(services).where(services.c.name == name)).first()
            if row is None:
                raise NotFound(f"service {name!r} not found")
            return self._service(conn, row)

    def get_row(self, name: str) -> Service:
        """The service without its revisions (one query: what the predict proxy needs per call)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(services).where(services.c.name == name)).first()
        if row is None:
            raise NotFound(f"service {name!r} not found")
        return Service(row.id, row.name, row.state, row.host, row.port, bool(row.public), row.replicas,
                       row.revision, row.live_revision, row.created_by, as_utc(row.created_at),
                       as_utc(row.updated_at), ())

    def list(self, state: str | None = None) -> list[Service]:
        query = sa.select(services).order_by(services.c.name)
        if state:
            query = query.where(services.c.state == state)
        with self.engine.connect() as conn:
            return [self._service(conn, row) for row in conn.execute(query).all()]

    def any_running(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(services)
                                .where(services.c.state == "running")).scalar_one() > 0

    # -- traffic ------------------------------------------------------------------------------------------------
    def _traffic(self, weights: dict[str, float]) -> list[dict]:
        if not weights:
            raise InvalidInput("traffic: give at least one N@V=PERCENT")
        entries, seen = [], set()
        for ref, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 100:
                raise InvalidInput(f"traffic {ref}: weight {weight!r} must be a percentage between 0 and 100")
            version = self.registry.get_version(ref)
            if version.id in seen:
                raise InvalidInput(f"traffic: {version.ref} is named twice")
            seen.add(version.id)
            entries.append({"ref": version.ref, "model": version.name, "version": version.version,
                            "version_id": version.id, "format": version.format, "weight": float(weight),
                            "requested": ref})
        total = sum(e["weight"] for e in entries)
        if abs(total - 100.0) > 1e-6:
            raise InvalidInput(f"traffic: weights add up to {total:g}, not 100")
        if all(e["weight"] == 0 for e in entries):
            raise InvalidInput("traffic: at least one version needs a weight above 0")
        names = {e["model"] for e in entries}
        signatures = {str(self.registry.get_version_by_id(e["version_id"]).signature.to_dict()["inputs"])
                      for e in entries}
        if len(signatures) > 1:
            raise InvalidInput(f"traffic: the versions take different inputs ({', '.join(sorted(names))}); a "
                               "request must fit every version it may be routed to")
        return entries

    def _add_revision(self, conn, service_id: str, number: int, traffic: list[dict], config: dict,
                      created_by: str) -> None:
        conn.execute(service_revisions.insert().values(
            id=new_id("srev"), service_id=service_id, revision=number, traffic=traffic, config=config,
            status="pending", message="waiting for the supervisor", created_by=created_by, created_at=utcnow()))

    # -- writing ------------------------------------------------------------------------------------------------
    def deploy(self, spec: DeploySpec, created_by: str = "") -> Service:
        """Create the service, or add a revision serving ``spec.model`` at 100% to an existing one."""
        from modelyard.deploy.ray_replicas import check_placement

        version = self.registry.get_version(spec.model)
        name = check_name(spec.name or version.name.replace(".", "-"), "service name")
        backend = _resolve_backend(spec.backend, {version.format})
        check_placement(self.workspace.settings, spec.placement)
        traffic = self._traffic({version.ref: 100.0})
        traffic[0]["requested"] = spec.model
        config = {"backend": backend, "max_batch": spec.max_batch, "max_wait_ms": spec.max_wait_ms,
                  "instances": spec.instances, "placement": spec.placement,
                  "follows": str(parse_ref(spec.model)) if spec.follow_alias and parse_ref(spec.model).alias
                  else None}
        return self.deploy_revision(name, traffic, config, replicas=spec.replicas, host=spec.host, port=spec.port,
                                    public=spec.public, created_by=created_by)

    def deploy_revision(self, name: str, traffic: list[dict], config: dict, *, replicas: int, host: str, port: int,
                        public: bool, created_by: str = "") -> Service:
        """Create the service ``name`` serving ``traffic`` with ``config``, or add that as a new revision to an
        existing one (a model deploy, or a skill's: :mod:`modelyard.edge.skill_services` builds its entry)."""
        name = check_name(name, "service name")
        now = utcnow()
        try:
            with self.engine.begin() as conn:
                row = conn.execute(sa.select(services).where(services.c.name == name)).first()
                if row is None:
                    service_id = new_id("svc")
                    conn.execute(services.insert().values(
                        id=service_id, name=name, state="running", host=host, port=port,
                        public=public, replicas=replicas, revision=1, live_revision=None,
                        created_by=created_by, created_at=now, updated_at=now))
                    self._add_revision(conn, service_id, 1, traffic, config, created_by)
                else:
                    if host != row.host or (port and port != row.port):
                        raise Conflict(f"service {name!r} listens on {row.host}:{row.port}; to move it, stop and "
                                       "delete it first ('modelyard services delete')")
                    number = self._next_revision(conn, row.id)
                    self._add_revision(conn, row.id, number, traffic, config, created_by)
                    conn.execute(services.update().where(services.c.id == row.id).values(
                        state="running", public=public, replicas=replicas, revision=number,
                        updated_at=now))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"service {name!r} changed concurrently; try again") from exc
        return self.get(name)

    @staticmethod
    def _next_revision(conn, service_id: str) -> int:
        latest = conn.execute(sa.select(sa.func.max(service_revisions.c.revision))
                              .where(service_revisions.c.service_id == service_id)).scalar()
        return (latest or 0) + 1

    def _new_revision(self, name: str, traffic: list[dict], config: dict, created_by: str) -> Service:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(services).where(services.c.name == name)).first()
            if row is None:
                raise NotFound(f"service {name!r} not found")
            number = self._next_revision(conn, row.id)
            self._add_revision(conn, row.id, number, traffic, config, created_by)
            conn.execute(services.update().where(services.c.id == row.id).values(
                state="running", revision=number, updated_at=utcnow()))
        return self.get(name)

    def set_traffic(self, name: str, weights: dict[str, float], created_by: str = "") -> Service:
        """A new revision splitting traffic by percentage (``{"resnet@3": 90, "resnet@4": 10}``)."""
        service = self.get(name)
        base = service.live or service.desired
        served = skill_entries(base.traffic)
        if served:
            raise InvalidInput(f"service {name!r} serves the skill {served[0]['skill']}; a traffic split is between "
                               "model versions (deploy another skill with 'modelyard skills deploy')")
        traffic = self._traffic(weights)
        config = {**base.config, "follows": None}  # an explicit split is what the user wants now: pinned
        _resolve_backend(config["backend"], {t["format"] for t in traffic})
        return self._new_revision(name, traffic, config, created_by)

    def rollback(self, name: str, to_revision: int | None = None, created_by: str = "") -> Service:
        """A new revision copying an earlier live one: ``to_revision``, or the one live before the current."""
        service = self.get(name)
        if to_revision is not None:
            target = service.get_revision(to_revision)
            if target is None:
                raise NotFound(f"service {name!r} has no revision {to_revision}")
            if target.status == "failed":
                raise Conflict(f"revision {to_revision} of {name!r} failed to start; roll back to one that served")
        else:
            current = service.live_revision or service.revision
            target = next((r for r in service.revisions if r.revision < current
                           and r.status in ("live", "superseded")), None)
            if target is None:
                raise Conflict(f"service {name!r} has no earlier revision that served to roll back to")
        for entry in target.traffic:
            if entry_kind(entry) == "model":  # NotFound when a version was deleted since
                self.registry.get_version_by_id(entry["version_id"])
            # a skill entry carries its content digest: its replica refuses a skill that changed or went (the
            # revision fails, the live one keeps serving)
        # pinned: following the alias again would undo the rollback at once
        return self._new_revision(name, [dict(t) for t in target.traffic], {**target.config, "follows": None},
                                  created_by)

    def follow_alias(self, model: str, alias: str, created_by: str = "") -> list[str]:
        """Roll every running service that follows ``model@alias`` to the version the alias names now (a new
        revision each; the supervisor swaps it in only once it loads). Returns the services that got one."""
        target = self.registry.get_version(f"{model}@{alias}")
        followed = f"{model}@{alias}"
        moved = []
        for service in self.list():
            desired = service.desired
            if (service.state != "running" or desired is None or desired.config.get("follows") != followed
                    or [t.get("version_id") for t in desired.traffic] == [target.id]):
                continue
            try:
                _resolve_backend(desired.config["backend"], {target.format})
                traffic = self._traffic({target.ref: 100.0})
                traffic[0]["requested"] = followed
                self._new_revision(service.name, traffic, dict(desired.config), created_by)
            except ModelyardError as exc:
                # the alias moved all the same; this service keeps what it serves, and its events say why
                from modelyard.deploy.state import append_event

                append_event(self.workspace.home, service.name, f"not following {followed} to {target.ref}: {exc}")
                continue
            moved.append(service.name)
        return moved

    def scale(self, name: str, replicas: int) -> Service:
        if not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidInput(f"replicas must be between 1 and {MAX_REPLICAS}, not {replicas}")
        self._update(name, replicas=replicas)
        return self.get(name)

    def stop(self, name: str) -> Service:
        self._update(name, state="stopped")
        return self.get(name)

    def start(self, name: str) -> Service:
        service = self.get(name)
        if service.live_revision is None and service.desired.status == "failed":
            raise Conflict(f"service {name!r} never started successfully; deploy a version that loads")
        self._update(name, state="running")
        return self.get(name)

    def delete(self, name: str) -> bool:
        """Delete the service; a running one is stopped first (the supervisor stops its replicas when it sees
        the row gone, in-flight requests finish). Its monitoring goes with it (settings, rules, alerts, the index of
        captured segments, whose blobs the next ``blobs gc`` frees), so a new service of that name starts clean.
        Returns whether it was running."""
        from modelyard.store import schema_monitoring as monitoring

        service = self.get(name)
        with self.engine.begin() as conn:
            conn.execute(service_revisions.delete().where(service_revisions.c.service_id == service.id))
            conn.execute(services.delete().where(services.c.id == service.id))
            for table in (monitoring.monitor_settings, monitoring.monitor_segments, monitoring.monitor_rules,
                          monitoring.monitor_alerts):
                conn.execute(table.delete().where(table.c.service == name))
        return service.state == "running"

    def _update(self, name: str, **values) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(services.update().where(services.c.name == name)
                                .values(updated_at=utcnow(), **values))
        if not done.rowcount:
            raise NotFound(f"service {name!r} not found")

    # -- the supervisor's side ----------------------------------------------------------------------------------
    def set_port(self, name: str, port: int) -> None:
        self._update(name, port=port)

    def mark_live(self, name: str, revision: int) -> None:
        """``revision`` now serves: it becomes live, the previous live one superseded."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(services).where(services.c.name == name)).first()
            if row is None:
                return
            conn.execute(service_revisions.update().where(
                service_revisions.c.service_id == row.id, service_revisions.c.status == "live",
                service_revisions.c.revision != revision).values(status="superseded"))
            conn.execute(service_revisions.update().where(
                service_revisions.c.service_id == row.id, service_revisions.c.revision == revision)
                .values(status="live", message="serving", finished_at=now))
            conn.execute(services.update().where(services.c.id == row.id)
                         .values(live_revision=revision, updated_at=now))

    def mark_failed(self, name: str, revision: int, message: str) -> None:
        """``revision`` could not start: record why, and point the service back at its live revision."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(services).where(services.c.name == name)).first()
            if row is None:
                return
            conn.execute(service_revisions.update().where(
                service_revisions.c.service_id == row.id, service_revisions.c.revision == revision)
                .values(status="failed", message=message[:4000], finished_at=now))
            if row.revision == revision and row.live_revision is not None:
                conn.execute(services.update().where(services.c.id == row.id)
                             .values(revision=row.live_revision, updated_at=now))
