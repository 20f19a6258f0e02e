"""The supervisor: one daemon per workspace that makes the ``services`` table true.

For every running service it holds the service's listening socket and runs the replica processes of its live
revision (sharing that socket), health-checks each one on a private control port, restarts crashed or hung ones
with backoff, and rolls deployments: a new revision's replicas load and warm up beside the live ones, and only
when all are ready do they take over (the old ones drain gracefully); if they cannot load, the revision is marked
failed and the live one never stopped serving.

It is started on demand (``ensure_running``: by the API's service routes and by a network-facing API server at
start-up, so services come back after a platform restart), holds ``supervisor.lock`` so there is only one, and
exits by itself a few seconds after the last service stopped. Replicas die with it (parent-death signal).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.core.lifetime import die_with_parent
from modelyard.core.settings import Settings
from modelyard.deploy.state import (
    INTERNAL_HEADER,
    append_event,
    internal_key,
    read_json,
    service_dir,
    services_root,
    tail,
    write_json_atomic,
)

log = logging.getLogger("modelyard.supervisor")
LOOP_S = 0.1  # while a replica starts or a deployment is under way
STEADY_LOOP_S = 0.5  # while every replica is ready: the loop costs a database read and a few health checks
HEALTH_INTERVAL_S = 1.0
UNHEALTHY_RESTART_S = 15.0
START_TIMEOUT_S = 300.0
STOP_GRACE_S = 15.0
IDLE_EXIT_S = 5.0
BIND_RETRY_S = 5.0
START_LOCK_WAIT_S = 10.0  # ensure_running waits this long at most for the new supervisor to hold its lock
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
EXIT_LOAD_FAILED = 3
RAY_POLL_S = 0.5  # a starting Ray replica's job status and log: one dashboard call each


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- starting, finding and stopping the supervisor ---------------------------------------------------------------

def _lock_path(home: Path) -> Path:
    return services_root(home) / "supervisor.lock"


def is_running(home: Path) -> bool:
    """True while some process holds the supervisor lock of ``home``."""
    path = _lock_path(home)
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _child_env(settings: Settings) -> dict:
    env = dict(os.environ)
    env["MODELYARD_HOME"] = str(settings.home)
    if settings.db_url:
        env["MODELYARD_DB_URL"] = settings.db_url
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONSAFEPATH"] = "1"  # `python -m` would put the cwd first on sys.path: never import from there
    return env


def ensure_running(settings: Settings, only_if_services: bool = True, workspace=None) -> bool:
    """Start the supervisor of ``settings.home`` unless one runs. Returns True when one runs (or was started).

    Args:
        only_if_services: start it only when some service should be running (cheap to call at every start-up).
        workspace: an open workspace of ``settings`` to check that with (default: open one for the check).
    """
    if is_running(settings.home):
        return True
    if only_if_services:
        from modelyard.deploy.services import ServiceStore
        from modelyard.store.workspace import Workspace

        own = workspace is None
        workspace = Workspace.open(settings, create=False) if own else workspace
        try:
            if not ServiceStore(workspace).any_running():
                return False
        finally:
            if own:
                workspace.close()
    root = services_root(settings.home)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "supervisor.log", "ab") as out:
        # --daemonize forks once more and the first child exits at once: nothing is left for us to reap, and the
        # supervisor (its own session) outlives the process that started it.
        subprocess.run([sys.executable, "-m", "modelyard.deploy.supervisor", "--home", str(settings.home),
                        "--daemonize"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                       env=_child_env(settings), cwd=settings.home, close_fds=True, start_new_session=True,
                       check=False, timeout=60)
    # the daemon takes the lock a moment after its parent exits: until it has, a stop() would find nothing to stop
    # and the supervisor would start afterwards, unasked (it then serves the running services for good)
    deadline = time.monotonic() + START_LOCK_WAIT_S
    while not is_running(settings.home) and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def stop(home: Path, timeout: float = 30.0) -> bool:
    """SIGTERM the supervisor of ``home`` (its replicas stop gracefully) and wait for it. True when it stopped."""
    signalled = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the lock goes when main() returns, a moment before the process has exited: wait for the process too
        if not is_running(home) and (signalled is None or not _alive(signalled)):
            return True
        # a supervisor that holds the lock but has not written its pid yet is signalled once it has
        pid = (read_json(services_root(home) / "supervisor.json") or {}).get("pid")
        if pid and pid != signalled:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            signalled = pid
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the runtime objects ----------------------------------------------------------------------------------------

@dataclass
class Replica:
    index: int
    revision: int
    proc: subprocess.Popen | None = None
    control_port: int | None = None
    state: str = "starting"
    restarts: int = 0
    started_at: float = 0.0
    ready_at: float | None = None
    last_ok: float = 0.0
    last_check: float = 0.0
    last_exit: int | None = None
    last_error: str | None = None
    next_start: float = 0.0
    backoff: int = 0
    backends: dict[str, str] = field(default_factory=dict)  # version ref -> backend:device, as the replica says
    # placed by Ray: its Ray job, and where it listens on its node once it has loaded (its pid is on that node)
    placement: str = "local"
    ray_job: str | None = None
    address: tuple[str, int] | None = None
    remote_pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else self.remote_pid

    @property
    def running(self) -> bool:
        return self.proc is not None or self.ray_job is not None

    def to_dict(self) -> dict:
        return {"index": self.index, "revision": self.revision, "pid": self.pid, "state": self.state,
                "restarts": self.restarts, "started_at": self.started_at or None, "last_exit": self.last_exit,
                "last_error": self.last_error, "control_port": self.control_port, "backends": self.backends,
                "placement": self.placement, "ray_job": self.ray_job,
                "address": f"{self.address[0]}:{self.address[1]}" if self.address else None}


@dataclass
class ReplicaSet:
    revision: int
    traffic: list[dict]
    config: dict
    run_dir: Path
    started: float = field(default_factory=time.monotonic)
    replicas: list[Replica] = field(default_factory=list)

    @property
    def on_ray(self) -> bool:
        return self.config.get("placement") == "ray"


@dataclass
class ServiceRuntime:
    name: str
    sock: socket.socket
    host: str
    port: int
    metrics_dir: Path
    sets: dict[int, ReplicaSet] = field(default_factory=dict)
    draining: list[tuple[subprocess.Popen, float]] = field(default_factory=list)
    ray_draining: list[tuple[str, int | None, float]] = field(default_factory=list)  # (Ray job, pid, next check)
    message: str = ""


class Supervisor:
    def __init__(self, workspace):
        from modelyard.deploy.services import ServiceStore

        self.workspace = workspace
        self.home = workspace.home
        self.internal_key = internal_key(workspace.home)
        self.store = ServiceStore(workspace)
        self.runtimes: dict[str, ServiceRuntime] = {}
        self.bind_failures: dict[str, float] = {}
        self.stopping = False
        self._written: dict[str, str] = {}
        self._failed_message: dict[str, str] = {}
        self._health_client = None
        self._ray = None
        from modelyard.deploy.router import Router

        self.router = Router()  # the service port of services whose replicas Ray placed

    @property
    def ray(self):
        """The Ray cluster of ``ray_address`` (connected on first use: only services placed on Ray need it)."""
        if self._ray is None:
            from modelyard.deploy.ray_replicas import RayReplicas

            self._ray = RayReplicas(self.workspace.settings)
        return self._ray

    @property
    def health_client(self):
        """One pooled HTTP client for every health check.

        NOTE: ``httpx.get`` builds a client (an SSL context: milliseconds of CPU) per call; at one check a second
        per replica that was most of an idle supervisor's ~9 % of a core with 4 services."""
        if self._health_client is None:
            import httpx

            self._health_client = httpx.Client(timeout=1.0, limits=httpx.Limits(max_keepalive_connections=64))
        return self._health_client

    # -- helpers ------------------------------------------------------------------------------------------------
    def event(self, name: str, message: str) -> None:
        append_event(self.home, name, message)
        log.info("%s: %s", name, message)

    def _bind(self, service) -> ServiceRuntime | None:
        family = socket.AF_INET6 if ":" in service.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((service.host, service.port))
        except OSError as exc:
            sock.close()
            self.bind_failures[service.name] = time.monotonic()
            message = f"cannot listen on {service.host}:{service.port}: {exc.strerror}"
            if service.live_revision is None and service.desired.status == "pending":
                self.store.mark_failed(service.name, service.revision, message)
            self.event(service.name, message)
            self._write_state(service.name, {"status": "failed", "message": message, "replicas": []})
            return None
        sock.listen(1024)
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
        if port != service.port:
            self.store.set_port(service.name, port)
        metrics_dir = service_dir(self.home, service.name) / "metrics"
        if metrics_dir.exists():
            for stale in metrics_dir.glob("*.db"):
                stale.unlink(missing_ok=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        self.event(service.name, f"listening on {service.host}:{port}")
        self.bind_failures.pop(service.name, None)
        return ServiceRuntime(service.name, sock, service.host, port, metrics_dir)

    def _replica_config_data(self, service, rt: ServiceRuntime, rset: ReplicaSet) -> dict:
        return {
            "service": service.name, "revision": rset.revision, "home": str(self.home),
            "public": service.public, "traffic": rset.traffic, "config": rset.config, "replicas": service.replicas,
            "max_body_bytes": self.workspace.settings.max_body_bytes, "metrics_dir": str(rt.metrics_dir),
            "access_log": str(service_dir(self.home, service.name) / "access.log"), "run_dir": str(rset.run_dir),
        }

    def _replica_config(self, service, rt: ServiceRuntime, rset: ReplicaSet) -> Path:
        rset.run_dir.mkdir(parents=True, exist_ok=True)
        path = rset.run_dir / "replica.json"
        write_json_atomic(path, self._replica_config_data(service, rt, rset))
        return path

    def _started(self, replica: Replica) -> None:
        replica.state = "starting"
        replica.started_at = time.time()
        replica.ready_at = None
        replica.last_ok = time.monotonic()
        replica.last_check = 0.0

    def _spawn_on_ray(self, service, rt: ServiceRuntime, rset: ReplicaSet, replica: Replica) -> None:
        """Submit the replica to Ray; a cluster that refuses it is a crash like any other (backoff, or the
        deployment fails with the reason)."""
        from modelyard.core.errors import ModelyardError

        config = {**self._replica_config_data(service, rt, rset), "internal_key": self.internal_key}
        replica.placement, replica.address, replica.remote_pid = "ray", None, None
        self._started(replica)
        try:
            replica.ray_job = self.ray.start(service.name, rset.revision, replica.index, config)
        except ModelyardError as exc:
            self._crashed(service.name, rset, replica, exc.message)
            return
        self.event(service.name, f"revision {rset.revision} replica {replica.index} submitted to Ray as "
                                 f"{replica.ray_job}")

    def _crashed(self, service_name: str, rset: ReplicaSet, replica: Replica, reason: str) -> None:
        replica.last_error = reason
        replica.state = "crashed"
        replica.proc = None
        replica.ray_job, replica.address = None, None
        delay = BACKOFF_S[min(replica.backoff, len(BACKOFF_S) - 1)]
        replica.backoff += 1
        replica.next_start = time.monotonic() + delay
        self.event(service_name, f"revision {rset.revision} replica {replica.index} stopped: {reason}")

    def _spawn(self, service, rt: ServiceRuntime, rset: ReplicaSet, replica: Replica) -> None:
        from modelyard.deploy.services import replica_module

        if rset.on_ray:
            self._spawn_on_ray(service, rt, rset, replica)
            return
        config_path = self._replica_config(service, rt, rset)
        control = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        control.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        control.bind(("127.0.0.1", 0))
        control.listen(128)
        control.set_inheritable(True)
        env = _child_env(self.workspace.settings)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(rt.metrics_dir)
        log_path = service_dir(self.home, service.name) / f"replica-{rset.revision}-{replica.index}.log"
        (rset.run_dir / f"replica-{replica.index}.error").unlink(missing_ok=True)
        with open(log_path, "ab") as out:
            replica.proc = subprocess.Popen(
                # a model revision runs deploy/replica.py, a skill's edge/skill_replica.py: same arguments
                [sys.executable, "-m", replica_module(rset.traffic), "--config", str(config_path),
                 "--index", str(replica.index), "--listen-fd", str(rt.sock.fileno()),
                 "--control-fd", str(control.fileno())],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.home,
                pass_fds=(rt.sock.fileno(), control.fileno()), preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509
            )
        replica.control_port = control.getsockname()[1]
        control.close()  # the replica holds its own copy
        self._started(replica)
        self.event(service.name, f"revision {rset.revision} replica {replica.index} started (pid {replica.pid})")

    def _start_set(self, service, rt: ServiceRuntime, revision) -> ReplicaSet:
        rset = ReplicaSet(revision.revision, revision.traffic, revision.config,
                          service_dir(self.home, service.name) / f"rev-{revision.revision}")
        rt.sets[revision.revision] = rset
        for index in range(service.replicas):
            replica = Replica(index, revision.revision)
            rset.replicas.append(replica)
            self._spawn(service, rt, rset, replica)
        return rset

    def _terminate(self, rt: ServiceRuntime, replica: Replica, hard: bool = False) -> None:
        if replica.ray_job is not None:  # Ray sends SIGTERM (in-flight requests finish), SIGKILL after a grace
            self.ray.stop(replica.ray_job)
            rt.ray_draining.append((replica.ray_job, replica.remote_pid, 0.0))
            replica.ray_job, replica.address = None, None
            return
        if replica.proc is None or replica.proc.poll() is not None:
            return
        if hard:
            replica.proc.kill()
        else:
            replica.proc.send_signal(signal.SIGTERM)
        rt.draining.append((replica.proc, time.monotonic() + STOP_GRACE_S))

    def _stop_set(self, rt: ServiceRuntime, revision: int, hard: bool = False) -> None:
        rset = rt.sets.pop(revision, None)
        if rset is not None:
            for replica in rset.replicas:
                self._terminate(rt, replica, hard)

    def _reap_draining(self, rt: ServiceRuntime) -> None:
        from modelyard.deploy.metrics import mark_dead

        keep = []
        for proc, deadline in rt.draining:
            if proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                keep.append((proc, deadline))
            else:
                mark_dead(rt.metrics_dir, proc.pid)
        rt.draining = keep
        still = []
        for job, pid, next_check in rt.ray_draining:
            if time.monotonic() < next_check or not self.ray.ended(job):
                still.append((job, pid, max(next_check, time.monotonic() + 0.5)))
            elif pid is not None:
                mark_dead(rt.metrics_dir, pid)  # where the node shares the home's metrics folder
        rt.ray_draining = still

    # -- health -------------------------------------------------------------------------------------------------
    def _exit_reason(self, rset: ReplicaSet, replica: Replica, service_name: str) -> str:
        error_file = rset.run_dir / f"replica-{replica.index}.error"
        if error_file.is_file():
            return error_file.read_text(encoding="utf-8", errors="replace").strip()
        log_tail = tail(service_dir(self.home, service_name) / f"replica-{rset.revision}-{replica.index}.log", 3)
        code = replica.last_exit
        signal_name = f" (signal {signal.Signals(-code).name})" if code is not None and code < 0 else ""
        return f"exited with code {code}{signal_name}" + (f": {log_tail.strip()}" if log_tail.strip() else "")

    def _ray_ended(self, service_name: str, rset: ReplicaSet, replica: Replica, progress) -> None:
        from modelyard.deploy.metrics import mark_dead

        if replica.remote_pid is not None:
            mark_dead(self.runtimes[service_name].metrics_dir, replica.remote_pid)
        replica.last_exit = EXIT_LOAD_FAILED if progress.error else None
        self._crashed(service_name, rset, replica, progress.error or progress.message)

    def _check_ray_start(self, service_name: str, rset: ReplicaSet, replica: Replica, now: float) -> bool:
        """While a Ray replica has not said where it listens: read its job's log. True once it has."""
        if replica.address is not None:
            return True
        if now - replica.last_check < RAY_POLL_S:
            return False
        replica.last_check = now
        progress = self.ray.progress(replica.ray_job)
        if progress.ended or progress.error:
            if not progress.ended:
                self.ray.stop(replica.ray_job)
            self._ray_ended(service_name, rset, replica, progress)
        elif progress.address is not None:
            replica.address, replica.remote_pid = progress.address, progress.pid
            replica.control_port = progress.address[1]
            replica.last_check = 0.0
            self.event(service_name, f"revision {rset.revision} replica {replica.index} loaded on Ray at "
                                     f"{progress.address[0]}:{progress.address[1]}")
            return True
        return False

    def _check(self, service_name: str, rset: ReplicaSet, replica: Replica) -> None:
        """Update one replica's state from its process (its Ray job) and its control port."""
        import httpx

        if not replica.running:
            return
        code = replica.proc.poll() if replica.proc is not None else None
        if code is not None:
            from modelyard.deploy.metrics import mark_dead

            mark_dead(self.runtimes[service_name].metrics_dir, replica.proc.pid)
            replica.last_exit = code
            self._crashed(service_name, rset, replica, self._exit_reason(rset, replica, service_name))
            return
        now = time.monotonic()
        if replica.ray_job is not None and not self._check_ray_start(service_name, rset, replica, now):
            return
        if now - replica.last_check < (HEALTH_INTERVAL_S if replica.state == "ready" else 0.2):
            return
        replica.last_check = now
        host, port = replica.address or ("127.0.0.1", replica.control_port)
        try:
            # with the internal key: the answer then names the backends each version runs on
            answer = self.health_client.get(f"http://{_url_host(host)}:{port}/readyz",
                                            headers={INTERNAL_HEADER: self.internal_key})
            ok = answer.status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok and replica.ray_job is not None:
            progress = self.ray.progress(replica.ray_job, with_log=False)
            if progress.ended:
                self._ray_ended(service_name, rset, replica, progress)
                return
        if ok:
            if not replica.backends:
                with contextlib.suppress(ValueError, AttributeError, TypeError):  # an older replica's answer
                    replica.backends = dict(answer.json().get("backends") or {})
            if replica.state != "ready":
                replica.ready_at = now
                self.event(service_name, f"revision {rset.revision} replica {replica.index} ready")
            replica.state, replica.last_ok = "ready", now
            if replica.ready_at is not None and now - replica.ready_at > 60:
                replica.backoff = 0
        elif replica.state in ("ready", "unhealthy"):
            replica.state = "unhealthy"
            if now - replica.last_ok > UNHEALTHY_RESTART_S:
                self.event(service_name, f"revision {rset.revision} replica {replica.index} unhealthy for "
                                         f"{UNHEALTHY_RESTART_S:.0f}s: killing it")
                if replica.ray_job is not None:
                    self.ray.stop(replica.ray_job)  # its job ends: the next check restarts it
                else:
                    replica.proc.kill()

    # -- reconciling --------------------------------------------------------------------------------------------
    def reconcile(self) -> None:
        wanted = {s.name: s for s in self.store.list()}
        for name in list(self.runtimes):
            service = wanted.get(name)
            if service is None or service.state != "running":
                self.stop_service(name, "service stopped" if service else "service deleted")
        for service in wanted.values():
            if service.state == "running":
                self.reconcile_service(service)
        for rt in self.runtimes.values():
            self._reap_draining(rt)

    def stop_service(self, name: str, why: str) -> None:
        rt = self.runtimes.pop(name)
        self.router.close(name)
        for revision in list(rt.sets):
            self._stop_set(rt, revision)
        rt.sock.close()
        deadline = time.monotonic() + STOP_GRACE_S
        while rt.draining and time.monotonic() < deadline:
            self._reap_draining(rt)
            time.sleep(0.05)
        for proc, _ in rt.draining:
            proc.kill()
            proc.wait()
        if rt.ray_draining:  # Ray kills a job that outlives its stop grace itself: wait until it has
            left = self.ray.wait_ended([job for job, _, _ in rt.ray_draining], STOP_GRACE_S)
            if left:
                self.event(name, f"Ray has not stopped replica job(s) {', '.join(left)} yet")
        self.event(name, f"stopped ({why})")
        self._write_state(name, {"status": "stopped", "message": why, "replicas": [], "port": rt.port})

    def reconcile_service(self, service) -> None:
        rt = self.runtimes.get(service.name)
        if rt is None:
            last = self.bind_failures.get(service.name)
            if last is not None and time.monotonic() - last < BIND_RETRY_S:
                return
            rt = self._bind(service)
            if rt is None:
                return
            self.runtimes[service.name] = rt
        live, desired = service.live_revision, service.desired
        deploying = desired.revision if desired.revision != live and desired.status == "pending" else None
        serving = live if live is not None else None
        keep = {r for r in (serving, deploying) if r is not None}
        for revision in list(rt.sets):
            if revision not in keep:
                self._stop_set(rt, revision)
        for revision in sorted(keep):
            rset = rt.sets.get(revision) or self._start_set(service, rt, service.get_revision(revision))
            self._supervise(service, rt, rset, restart=revision == serving)
        if deploying is not None:
            serving, deploying = self._advance_deploy(service, rt, rt.sets[deploying], serving)
        self._route(service, rt)
        self._publish(service, rt, serving, deploying)

    def _route(self, service, rt: ServiceRuntime) -> None:
        """Point the service port at the ready replicas Ray placed (none: local replicas accept alone)."""
        ready = [r.address for rset in rt.sets.values() if rset.on_ray for r in rset.replicas
                 if r.state == "ready" and r.address is not None]
        if ready or self.router.routing(service.name):
            self.router.route(service.name, rt.sock, ready)

    def _supervise(self, service, rt: ServiceRuntime, rset: ReplicaSet, restart: bool) -> None:
        for replica in list(rset.replicas):
            self._check(service.name, rset, replica)
            if restart and not replica.running and time.monotonic() >= replica.next_start:
                replica.restarts += 1
                self._spawn(service, rt, rset, replica)
        while len(rset.replicas) < service.replicas:
            replica = Replica(len(rset.replicas), rset.revision)
            rset.replicas.append(replica)
            self._spawn(service, rt, rset, replica)
            self.event(service.name, f"scaled revision {rset.revision} up to {len(rset.replicas)} replica(s)")
        while len(rset.replicas) > service.replicas:
            replica = rset.replicas.pop()
            self._terminate(rt, replica)
            self.event(service.name, f"scaled revision {rset.revision} down to {len(rset.replicas)} replica(s)")

    def _advance_deploy(self, service, rt: ServiceRuntime, rset: ReplicaSet,
                        serving: int | None) -> tuple[int | None, int | None]:
        """Move a deployment on; returns the (serving, deploying) revisions afterwards."""
        failed = next((r for r in rset.replicas if r.state == "crashed"), None)
        timed_out = time.monotonic() - rset.started > START_TIMEOUT_S
        if failed is not None or timed_out:
            message = (f"replica {failed.index} could not start: {failed.last_error}" if failed
                       else f"replicas not ready after {START_TIMEOUT_S:.0f}s")
            self._stop_set(rt, rset.revision, hard=True)
            self.store.mark_failed(service.name, rset.revision, message)
            still = f"; revision {serving} keeps serving" if serving is not None else ""
            self.event(service.name, f"revision {rset.revision} failed: {message}{still}")
            self._failed_message[service.name] = message
            return serving, None
        if rset.replicas and all(r.state == "ready" for r in rset.replicas):
            self.store.mark_live(service.name, rset.revision)
            split = ", ".join(f"{t['ref']}={t['weight']:g}%" for t in rset.traffic)
            self.event(service.name, f"revision {rset.revision} is live ({split})")
            if serving is not None and serving != rset.revision:
                self._stop_set(rt, serving)
            return rset.revision, None
        return serving, rset.revision

    def _publish(self, service, rt: ServiceRuntime, serving: int | None, deploying: int | None) -> None:
        replicas = [r for rset in rt.sets.values() for r in rset.replicas]
        live = rt.sets.get(serving) if serving is not None else None
        ready = sum(1 for r in live.replicas if r.state == "ready") if live else 0
        if deploying is not None:
            status, message = "deploying", f"starting revision {deploying}"
        elif live is None:
            failed = service.desired.message if service.desired.status == "failed" else None
            status = "failed"
            message = failed or self._failed_message.get(service.name) or "no revision to serve"
        elif ready == service.replicas:
            status, message = "ready", ""
        elif ready:
            status, message = "degraded", f"{ready} of {service.replicas} replicas ready"
        else:
            status, message = "unavailable", "no replica is ready"
        self._write_state(service.name, {"status": status, "message": message, "port": rt.port, "host": rt.host,
                                         "live_revision": serving, "deploying_revision": deploying,
                                         "replicas": [r.to_dict() for r in replicas]})

    def _write_state(self, name: str, data: dict) -> None:
        data = {"schema": "modelyard.service-state/1", "service": name, "supervisor_pid": os.getpid(), **data}
        text = json.dumps(data, sort_keys=True, default=str)
        bucket = int(time.time() // 2)  # rewrite at least every 2 s: the timestamp says the supervisor lives
        if self._written.get(name) == f"{bucket}:{text}":
            return
        self._written[name] = f"{bucket}:{text}"
        write_json_atomic(service_dir(self.home, name) / "state.json", {**data, "updated_at": time.time()})

    # -- the loop -----------------------------------------------------------------------------------------------
    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: setattr(self, "stopping", True))
        idle_since = None
        while not self.stopping:
            try:
                self.reconcile()
            except Exception:  # noqa: BLE001 - a database hiccup must not take every service down
                log.error("reconcile failed:\n%s", traceback.format_exc())
            if self.runtimes:
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > IDLE_EXIT_S:
                    break
            steady = all(r.state == "ready" for rt in self.runtimes.values() for rset in rt.sets.values()
                         for r in rset.replicas) and all(len(rt.sets) == 1 for rt in self.runtimes.values())
            time.sleep(STEADY_LOOP_S if steady and self.runtimes else LOOP_S)
        for name in list(self.runtimes):
            self.stop_service(name, "supervisor stopped")
        self.router.shutdown()
        if self._health_client is not None:
            self._health_client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelyard.deploy.supervisor")
    parser.add_argument("--home", required=True)
    parser.add_argument("--daemonize", action="store_true")
    args = parser.parse_args(argv)
    if args.daemonize and os.fork() > 0:
        os._exit(0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from modelyard.store.workspace import Workspace

    settings = Settings.load(args.home)
    root = services_root(settings.home)
    root.mkdir(parents=True, exist_ok=True)
    lock = open(_lock_path(settings.home), "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another supervisor runs
    workspace = Workspace.open(settings, create=False)
    write_json_atomic(root / "supervisor.json", {"pid": os.getpid(), "started_at": time.time()})
    log.info("supervisor %s for %s", os.getpid(), settings.home)
    from modelyard.deploy.monitoring.alerts import RuleChecker

    checker = RuleChecker(workspace).start()  # alert rules fire while services run, unasked
    try:
        Supervisor(workspace).run()
    finally:
        checker.stop()
        (root / "supervisor.json").unlink(missing_ok=True)
        workspace.close()
        log.info("supervisor %s stopped", os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
