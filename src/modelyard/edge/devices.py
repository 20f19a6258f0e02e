"""Devices and their twins: register (one-time activation code that expires), activate (the code becomes a device
credential scoped to that device), desired vs reported state, logs, metrics, alarms and remote actions.

A device credential is a random secret (``myd_dev_...``) stored only as its sha256. It authenticates the agent
routes for its own device and nothing else: the user API refuses it with 403 (``server/auth.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.store.db import as_utc
from modelyard.store.schema_edge import edge_alarms, edge_devices, edge_logs

DEVICE_CREDENTIAL_PREFIX = "myd_dev_"
ACTIVATION_PREFIX = "act_"
DEFAULT_ACTIVATION_TTL_S = 24 * 3600
# a device that has not polled for this long shows offline (agents long-poll at most every 30 s)
OFFLINE_AFTER = timedelta(seconds=90)
# last-seen times a server notes in memory are written together, at most this long after the request
LAST_SEEN_FLUSH_S = 1.0
MAX_LOG_LINES_PER_REPORT = 500
MAX_LOG_LINE_CHARS = 2000
KEEP_LOG_LINES = 5000
ALARM_KINDS = ("skill_crashed", "disk_nearly_full", "source_lost", "bundle_refused", "agent_error",
               "config_refused")
_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


_SQLITE_WRITES = threading.Lock()
# the reads of a fleet's polls and reports, built once (SQLAlchemy caches a statement object's compiled form)
_POLL_READ = sa.select(edge_devices.c.credential_hash, edge_devices.c.status, edge_devices.c.desired,
                       edge_devices.c.desired_version, edge_devices.c.actions).where(
    edge_devices.c.id == sa.bindparam("device_id"))
_REPORT_READ = sa.select(edge_devices.c.credential_hash, edge_devices.c.status, edge_devices.c.reported,
                         edge_devices.c.actions).where(edge_devices.c.id == sa.bindparam("device_id"))
log = logging.getLogger("modelyard.edge")


@contextlib.contextmanager
def write_transaction(engine: Engine):
    """``engine.begin()``, one writer at a time within this process on SQLite.

    A fleet reports all at once; SQLite lets one writer in and puts the rest in its busy handler, which sleeps in
    growing steps (up to 100 ms) while the lock may already be free: the server idles while latency climbs to seconds.
    Queuing the writers on a lock here hands the write lock over at once. PostgreSQL needs no such thing.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _SQLITE_WRITES, engine.begin() as conn:
        yield conn


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_labels(labels: dict) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise InvalidInput("labels must be a mapping of key to value")
    for key, value in labels.items():
        if not _LABEL.match(str(key)) or not _LABEL.match(str(value)):
            raise InvalidInput(f"label {key}={value} is invalid: keys and values are 1-63 of A-Z a-z 0-9 _ . -")
    return {str(k): str(v) for k, v in labels.items()}


def parse_labels(items: list[str]) -> dict[str, str]:
    """``["site=plant-3", "kind=camera"]`` -> a dict (the CLI's and selector's syntax)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"label {item!r} must look like key=value")
        out[key.strip()] = value.strip()
    return check_labels(out)


def is_online(last_seen: datetime | None, now: datetime | None = None) -> bool:
    return last_seen is not None and (now or utcnow()) - last_seen <= OFFLINE_AFTER


def device_view(row, now: datetime | None = None) -> dict:
    last_seen = as_utc(row.last_seen_at)
    reported = row.reported or {}
    return {
        "id": row.id, "name": row.name, "labels": row.labels, "status": row.status,
        "online": row.status == "active" and is_online(last_seen, now),
        "last_seen_at": isoformat(last_seen),
        "activation_expires_at": isoformat(as_utc(row.activation_expires_at)) if row.status == "registered" else None,
        "agent_version": reported.get("agent_version"),
        "skills": [{k: s.get(k) for k in ("name", "bundle", "status")} for s in reported.get("skills", [])],
        "created_by": row.created_by, "created_at": isoformat(as_utc(row.created_at)),
    }


class Devices:
    def __init__(self, engine: Engine):
        self.engine = engine

    # -- user side ----------------------------------------------------------------------------------------------
    def register(self, name: str, labels: dict | None = None, created_by: str = "",
                 activation_ttl_s: int = DEFAULT_ACTIVATION_TTL_S) -> tuple[dict, str]:
        """A new device in state ``registered``; returns it and its one-time activation code (shown once)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput("device name must be 1-100 of A-Z a-z 0-9 _ . - (starting with a letter or digit)")
        if not 1 <= activation_ttl_s <= 30 * 24 * 3600:
            raise InvalidInput("activation_ttl_s must be between 1 second and 30 days")
        labels = check_labels(labels or {})
        code = ACTIVATION_PREFIX + secrets.token_urlsafe(18)
        now = utcnow()
        row = {"id": new_id("dev"), "name": name, "labels": labels, "status": "registered",
               "activation_hash": _hash(code), "activation_expires_at": now + timedelta(seconds=activation_ttl_s),
               "credential_hash": None, "desired": {"skills": [], "config": {}}, "desired_version": 0,
               "reported": {}, "actions": [], "created_by": created_by, "created_at": now}
        with self.engine.begin() as conn:
            if conn.execute(sa.select(edge_devices.c.id).where(edge_devices.c.name == name)).first():
                raise Conflict(f"a device named {name} already exists")
            conn.execute(edge_devices.insert().values(**row))
        return self.get(row["id"]), code

    def row(self, conn, ref: str):
        row = conn.execute(sa.select(edge_devices).where(
            sa.or_(edge_devices.c.id == ref, edge_devices.c.name == ref))).first()
        if row is None:
            raise NotFound(f"device {ref} not found")
        return row

    def get(self, ref: str) -> dict:
        with self.engine.connect() as conn:
            return device_view(self.row(conn, ref))

    def list(self, selector: dict | None = None) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(edge_devices).order_by(edge_devices.c.name)).all()
        now = utcnow()
        return [device_view(r, now) for r in rows if matches(r.labels, selector or {})]

    def twin(self, ref: str) -> dict:
        with self.engine.connect() as conn:
            row = self.row(conn, ref)
        return {"schema": "modelyard.edge-twin/1", **device_view(row), "desired": row.desired,
                "desired_version": row.desired_version, "reported": row.reported, "pending_actions": row.actions}

    def deregister(self, ref: str) -> dict:
        """Revoke the credential at once; the device's history stays."""
        with self.engine.begin() as conn:
            row = self.row(conn, ref)
            if row.status == "deregistered":
                raise Conflict(f"device {row.name} is already deregistered")
            conn.execute(edge_devices.update().where(edge_devices.c.id == row.id).values(
                status="deregistered", credential_hash=None, activation_hash=None))
        return self.get(row.id)

    def request_action(self, ref: str, kind: str, skill: str | None = None) -> dict:
        """Queue a remote action (``restart_skill`` or ``collect_logs``); the agent runs it on its next poll."""
        if kind not in ("restart_skill", "collect_logs"):
            raise InvalidInput("action must be restart_skill or collect_logs")
        if kind == "restart_skill" and not skill:
            raise InvalidInput("restart_skill needs the skill's name")
        action = {"id": new_id("act"), "kind": kind, "skill": skill, "requested_at": isoformat(utcnow())}
        with self.engine.begin() as conn:
            row = self.row(conn, ref)
            if row.status != "active":
                raise Conflict(f"device {row.name} is {row.status}, not active")
            conn.execute(edge_devices.update().where(edge_devices.c.id == row.id).values(
                actions=[*row.actions, action], desired_version=row.desired_version + 1))
        return action

    def logs(self, ref: str, tail: int = 200) -> dict:
        if not 1 <= tail <= KEEP_LOG_LINES:
            raise InvalidInput(f"tail must be between 1 and {KEEP_LOG_LINES}")
        with self.engine.connect() as conn:
            row = self.row(conn, ref)
            lines = conn.execute(sa.select(edge_logs.c.at, edge_logs.c.line)
                                 .where(edge_logs.c.device_id == row.id)
                                 .order_by(edge_logs.c.id.desc()).limit(tail)).all()
        return {"schema": "modelyard.edge-logs/1", "device": row.name,
                "lines": [{"at": isoformat(as_utc(at)), "line": line} for at, line in reversed(lines)]}

    def alarms(self, ref: str | None = None, include_acknowledged: bool = False) -> list[dict]:
        query = sa.select(edge_alarms, edge_devices.c.name).join(
            edge_devices, edge_devices.c.id == edge_alarms.c.device_id).order_by(edge_alarms.c.created_at)
        with self.engine.connect() as conn:
            if ref is not None:
                query = query.where(edge_alarms.c.device_id == self.row(conn, ref).id)
            if not include_acknowledged:
                query = query.where(edge_alarms.c.acknowledged_at.is_(None))
            rows = conn.execute(query).all()
        return [_alarm_view(r) for r in rows]

    def acknowledge(self, alarm_id: str, by: str) -> dict:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(edge_alarms).where(edge_alarms.c.id == alarm_id)).first()
            if row is None:
                raise NotFound(f"alarm {alarm_id} not found")
            if row.acknowledged_at is not None:
                raise Conflict(f"alarm {alarm_id} is already acknowledged")
            conn.execute(edge_alarms.update().where(edge_alarms.c.id == alarm_id).values(
                acknowledged_at=utcnow(), acknowledged_by=by))
            row = conn.execute(sa.select(edge_alarms, edge_devices.c.name).join(
                edge_devices, edge_devices.c.id == edge_alarms.c.device_id)
                .where(edge_alarms.c.id == alarm_id)).first()
        return _alarm_view(row)

    # -- device side ----------------------------------------------------------------------------------------------
    def activate(self, code: str, hardware: dict | None = None) -> tuple[dict, str]:
        """Exchange a one-time activation code for a device credential (the code is spent either way it is used)."""
        if not isinstance(code, str) or not code:
            raise Unauthorized("missing activation code")
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(edge_devices).where(edge_devices.c.activation_hash == _hash(code))).first()
            if row is None:
                raise Unauthorized("invalid or already used activation code")
            if as_utc(row.activation_expires_at) < now:
                raise Unauthorized(f"activation code of device {row.name} has expired; register it again")
            credential = DEVICE_CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
            conn.execute(edge_devices.update().where(edge_devices.c.id == row.id).values(
                status="active", activation_hash=None, credential_hash=_hash(credential), last_seen_at=now,
                reported={**(row.reported or {}), "hardware": hardware or {}}))
        return self.get(row.id), credential

    def authenticate(self, secret: str | None, device_id: str | None = None):
        """The active device whose credential this is (401 otherwise); 403 when ``device_id`` names another."""
        return self._credential_row(secret, device_id).id

    def authenticated_version(self, secret: str | None, device_id: str) -> int:
        """``authenticate`` and the device's desired-state version in one query (a poll's first step)."""
        return self._credential_row(secret, device_id).desired_version

    def _credential_row(self, secret: str | None, device_id: str | None):
        if not secret or not secret.startswith(DEVICE_CREDENTIAL_PREFIX):
            raise Unauthorized("missing device credential: send 'Authorization: Bearer <device credential>'")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(edge_devices.c.id, edge_devices.c.status, edge_devices.c.desired_version)
                               .where(edge_devices.c.credential_hash == _hash(secret))).first()
        if row is None or row.status != "active":
            raise Unauthorized("invalid or revoked device credential")
        if device_id is not None and device_id != row.id:
            raise Forbidden("a device credential can only act for its own device")
        return row

    def _check_credential(self, row, secret: str | None, device_id: str) -> None:
        """Authenticate with the device's own row, read by id with the data the request needs (one query, and no
        cache to outlive a revocation). A row that does not match ends in the lookup by the secret's hash, which
        says precisely why: no credential, revoked (401) or another device's (403)."""
        if row is not None and row.status == "active" and row.credential_hash and isinstance(secret, str) \
                and hmac.compare_digest(row.credential_hash, _hash(secret)):
            return
        self._credential_row(secret, device_id)
        raise Unauthorized("invalid or revoked device credential")  # pragma: no cover - the lookup raised already

    def poll(self, secret: str | None, device_id: str, last_seen: LastSeen | None = None) -> dict:
        """The desired state for an authenticated device (``modelyard.edge-desired/1``): one read, and last seen
        noted in ``last_seen`` (written with the others of the second) or, without one, written now."""
        with self.engine.connect() as conn:
            row = conn.execute(_POLL_READ, {"device_id": device_id}).first()
        self._check_credential(row, secret, device_id)
        self._seen(device_id, last_seen)
        return {"schema": "modelyard.edge-desired/1", "version": row.desired_version, "desired": row.desired,
                "actions": row.actions}

    def _seen(self, device_id: str, last_seen: LastSeen | None) -> None:
        if last_seen is not None:
            last_seen.note(device_id)
            return
        with write_transaction(self.engine) as conn:
            conn.execute(edge_devices.update().where(edge_devices.c.id == device_id).values(last_seen_at=utcnow()))

    def desired(self, device_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(edge_devices.c.desired, edge_devices.c.desired_version,
                                         edge_devices.c.actions).where(edge_devices.c.id == device_id)).first()
        return {"schema": "modelyard.edge-desired/1", "version": row.desired_version, "desired": row.desired,
                "actions": row.actions}

    def desired_version(self, device_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(edge_devices.c.desired_version)
                                .where(edge_devices.c.id == device_id)).scalar_one()

    def report(self, device_id: str, body: dict, secret: str | None = None, last_seen: LastSeen | None = None) -> None:
        """Store one report: reported state (replaces), log lines (bounded), alarms, actions done.

        With ``secret``, the device is authenticated from the row this reads (401/403 before anything is stored).
        A report that changes nothing -- the same reported state, no logs, alarms or actions done, most of an idle
        fleet's -- takes no write transaction: only its last seen is noted (in ``last_seen`` when given). The
        reported state's ``reported_at`` says when it last changed.
        """
        with self.engine.connect() as conn:
            row = conn.execute(_REPORT_READ, {"device_id": device_id}).first()
        if secret is not None:
            self._check_credential(row, secret, device_id)
        done = set(body.get("actions_done") or [])
        lines = [str(line)[:MAX_LOG_LINE_CHARS] for line in (body.get("logs") or [])][-MAX_LOG_LINES_PER_REPORT:]
        alarms = [a for a in (body.get("alarms") or [])[:50] if isinstance(a, dict) and a.get("kind") in ALARM_KINDS]
        reported = body.get("reported")
        if isinstance(reported, dict):
            stored = row.reported or {}
            reported = {**reported, "hardware": reported.get("hardware") or stored.get("hardware", {})}
            if reported == {k: v for k, v in stored.items() if k != "reported_at"}:
                reported = None
        else:
            reported = None
        if reported is None and not lines and not alarms and not done & {a["id"] for a in row.actions}:
            self._seen(device_id, last_seen)
            return
        now = utcnow()
        with write_transaction(self.engine) as conn:
            values: dict = {"last_seen_at": now}
            if reported is not None:
                values["reported"] = {**reported, "reported_at": isoformat(now)}
            if done:
                # read in the transaction: an action queued since the read above must not be dropped
                actions = conn.execute(sa.select(edge_devices.c.actions)
                                       .where(edge_devices.c.id == device_id)).scalar_one()
                values["actions"] = [a for a in actions if a["id"] not in done]
            conn.execute(edge_devices.update().where(edge_devices.c.id == device_id).values(**values))
            if lines:
                conn.execute(edge_logs.insert(), [{"device_id": device_id, "at": now, "line": ln} for ln in lines])
                cutoff = conn.execute(sa.select(edge_logs.c.id).where(edge_logs.c.device_id == device_id)
                                      .order_by(edge_logs.c.id.desc()).offset(KEEP_LOG_LINES).limit(1)).scalar()
                if cutoff is not None:
                    conn.execute(edge_logs.delete().where(edge_logs.c.device_id == device_id,
                                                          edge_logs.c.id <= cutoff))
            for alarm in alarms:
                conn.execute(edge_alarms.insert().values(
                    id=new_id("alm"), device_id=device_id, kind=alarm["kind"],
                    message=str(alarm.get("message", ""))[:2000], created_at=now))


class LastSeen:
    """Last-seen times of one database noted in memory and written together, at most ``flush_s`` later: one
    transaction a second for a whole fleet instead of one per poll or report (SQLite has a single writer).

    A server holds one (``create_app``) and closes it (``close_app``) before its workspace. One that dies, or whose
    workspace is closed first, loses at most ``flush_s`` of last-seen times, which only say whether a device is
    online (after ``OFFLINE_AFTER``).
    """

    def __init__(self, engine: Engine, flush_s: float = LAST_SEEN_FLUSH_S):
        self.engine = engine
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._pending: dict[str, datetime] = {}
        self._timer: threading.Timer | None = None
        self._closed = False
        # a workspace closed without close_app: no timer may reopen its database afterwards
        sa.event.listen(engine, "engine_disposed", self._drop)

    def note(self, device_id: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending[device_id] = utcnow()
            if self._timer is None:
                self._timer = threading.Timer(self.flush_s, self._flush_from_timer)
                self._timer.daemon = True
                self._timer.start()

    def _flush_from_timer(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - a courtesy write; the next batch carries the times again
            log.warning("could not write devices' last-seen times; retrying with the next batch", exc_info=True)

    def close(self) -> None:
        """Write what is pending; later notes are dropped."""
        self.flush()
        self._drop()
        if sa.event.contains(self.engine, "engine_disposed", self._drop):
            sa.event.remove(self.engine, "engine_disposed", self._drop)

    def _drop(self, *_) -> None:
        with self._lock:
            self._closed = True
            self._pending.clear()
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def flush(self) -> None:
        """Write what is pending now (and stop the timer)."""
        with self._lock:
            batch, self._pending = self._pending, {}
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if not batch:
            return
        at = sa.bindparam("at")
        statement = edge_devices.update().where(
            edge_devices.c.id == sa.bindparam("device"),
            sa.or_(edge_devices.c.last_seen_at.is_(None), edge_devices.c.last_seen_at < at)).values(last_seen_at=at)
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(statement, [{"device": device, "at": when} for device, when in batch.items()])
        except Exception:
            with self._lock:  # keep the times for the next batch (newer ones noted meanwhile win)
                self._pending = {**batch, **self._pending}
            raise


def set_desired(conn, device_id: str, desired: dict) -> None:
    """Replace a device's desired state and bump its version (agents long-polling on the version wake up)."""
    conn.execute(edge_devices.update().where(edge_devices.c.id == device_id).values(
        desired=desired, desired_version=edge_devices.c.desired_version + 1))


def matches(labels: dict, selector: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _alarm_view(row) -> dict:
    return {"id": row.id, "device_id": row.device_id, "device": row.name, "kind": row.kind, "message": row.message,
            "created_at": isoformat(as_utc(row.created_at)),
            "acknowledged_at": isoformat(as_utc(row.acknowledged_at)), "acknowledged_by": row.acknowledged_by}
