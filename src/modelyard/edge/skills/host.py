"""``SkillHost``: runs one installed skill in its own process on the device, restarts it when it crashes.

The device agent makes one host per installed skill::

    host = SkillHost(skill_dir, config, channels, emit_event, emit_alarm, upload_hard_example)
    host.start()
    host.update_config(channels={"cam1": {"source": "rtsp://…", "fps": 5, "config": {"zone": [...]}}})
    host.status()      # for the health report
    host.stop()

``channels`` is ``{channel_id: {"source", "fps", "loop", "realtime", "config": {...}}}``; ``config`` is the skill's
global config. Both are validated against the manifest before anything starts, and again on every update (a bad
update raises ``InvalidInput`` naming the channel and changes nothing). A config update reaches the running process
without a restart. A process that exits with an error is restarted after an exponential backoff; after
``max_restarts`` restarts in a row without a healthy minute the skill is marked ``failed`` and one alarm is raised.
The callbacks run on the host's supervisor thread.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from modelyard.edge.skills.manifest import load_manifest, validate_config

HEALTHY_RUN_S = 60.0  # a process that ran this long before crashing starts a fresh backoff series


def _ignore(*_args) -> None:
    return None


class SkillHost:
    """Supervises one skill process. States: created, running, restarting, failed, finished, stopped."""

    def __init__(self, skill_dir: str | Path, config: dict | None, channels: dict | None,
                 emit_event: Callable[[dict], None], emit_alarm: Callable[[dict], None],
                 upload_hard_example: Callable[[dict], None] | None = None, *, max_restarts: int = 3,
                 backoff_s: tuple[float, float] = (0.5, 30.0), options: dict | None = None):
        self.skill_dir = Path(skill_dir)
        self.manifest = load_manifest(self.skill_dir)
        validate_config(self.manifest, config, channels)
        self.config = copy.deepcopy(config or {})
        self.channels = copy.deepcopy(channels or {})
        self.emit_event, self.emit_alarm = emit_event, emit_alarm
        self.upload_hard_example = upload_hard_example or _ignore
        self.max_restarts, self.backoff_s = max_restarts, backoff_s
        self.options = dict(options or {})
        self.state = "created"
        self.restarts = 0
        self.last_error: str | None = None
        self.worker_status: dict = {}
        self.config_applied = threading.Event()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process = None
        self._inbox = None
        self._supervisor: threading.Thread | None = None

    # -- public -----------------------------------------------------------------------------------------------------
    def start(self) -> SkillHost:
        if self._supervisor is not None:
            raise RuntimeError("this host is already started")
        self._supervisor = threading.Thread(target=self._supervise, name=f"skill-{self.manifest.name}", daemon=True)
        self._supervisor.start()
        return self

    def update_config(self, config: dict | None = None, channels: dict | None = None) -> None:
        """Change the global config and/or the channels without restarting the skill (validated first)."""
        new_config = self.config if config is None else config
        new_channels = self.channels if channels is None else channels
        validate_config(self.manifest, new_config, new_channels)
        with self._lock:
            self.config, self.channels = copy.deepcopy(new_config), copy.deepcopy(new_channels)
            self.config_applied.clear()
            if self._inbox is not None:
                self._inbox.put(("config", (self.config if config is not None else None,
                                            self.channels if channels is not None else None)))

    def status(self) -> dict:
        """The health report: state, restarts, last error, per-channel counters from the process."""
        process = self._process
        return {"skill": self.manifest.name, "version": self.manifest.version, "state": self.state,
                "restarts": self.restarts, "last_error": self.last_error,
                "pid": process.pid if process is not None and process.is_alive() else None,
                **copy.deepcopy(self.worker_status)}

    def wait(self, timeout: float | None = None) -> str:
        """Block until the supervisor ends (finished, failed or stopped); returns the state."""
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        return self.state

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._lock:
            if self._inbox is not None:
                self._inbox.put(("stop", None))
        process = self._process
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(5)
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        if self.state not in ("failed", "finished"):
            self.state = "stopped"

    def __enter__(self) -> SkillHost:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- supervisor -------------------------------------------------------------------------------------------------
    def _dispatch(self, kind: str, payload) -> None:
        if kind == "event":
            self.emit_event(payload)
        elif kind == "alarm":
            self.emit_alarm(payload)
        elif kind == "hard_example":
            self.upload_hard_example(payload)
        elif kind == "status":
            self.worker_status = payload
        elif kind == "config_applied":
            self.config_applied.set()
        elif kind == "fatal":
            self.last_error = payload.strip().splitlines()[0] if payload else payload

    def _run_once(self) -> int:
        import multiprocessing

        from modelyard.edge.skills import worker

        context = multiprocessing.get_context("spawn")
        outbox, inbox = context.Queue(), context.Queue()
        with self._lock:
            self._inbox = inbox
            process = context.Process(target=worker.main, name=f"skill-{self.manifest.name}", daemon=True,
                                      args=(str(self.skill_dir), self.config, self.channels, outbox, inbox,
                                            self.options))
            process.start()
            self._process = process
        self.state = "running"
        while True:
            try:
                kind, payload = outbox.get(timeout=0.2)
            except queue.Empty:
                if not process.is_alive():
                    break
                continue
            self._dispatch(kind, payload)
        process.join()
        while True:  # what the process said before it exited
            try:
                self._dispatch(*outbox.get(timeout=0.05))
            except queue.Empty:
                break
        with self._lock:
            self._inbox = None
        outbox.close()
        inbox.close()
        return process.exitcode

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            code = self._run_once()
            if self._stopping.is_set():
                break
            if code == 0:
                self.state = "finished"
                return
            if self.last_error is None or code < 0:
                self.last_error = f"the skill process exited with code {code}"
            if time.monotonic() - started >= HEALTHY_RUN_S:
                self.restarts = 0
            if self.restarts >= self.max_restarts:
                self.state = "failed"
                self.emit_alarm({"skill": self.manifest.name, "channel": None, "severity": "critical",
                                 "message": f"skill {self.manifest.name} failed after {self.restarts} restart(s): "
                                            f"{self.last_error}", "ts": time.time()})
                return
            self.restarts += 1
            self.state = "restarting"
            delay = min(self.backoff_s[1], self.backoff_s[0] * 2 ** (self.restarts - 1))
            if self._stopping.wait(delay):
                break
        self.state = "stopped"
