"""The reconcile loop: long-poll the desired state, bring each skill to its bundle (download resumably, verify,
unpack into the inactive A/B slot, switch atomically), supervise the skill processes, report (queued while the
platform is unreachable).

Crash safety: every durable step is a rename. A ``.part`` download resumes with an HTTP Range request; a slot is
unpacked into ``<slot>.unpack`` and renamed only once verified; the switch is one atomic write of ``state.json``
preceded by an ``activating`` journal entry, so a restart after ``kill -9`` either finishes the switch (the slot
verifies) or drops it (it does not) and keeps running the last good state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from modelyard.core.lifetime import die_with_parent
from modelyard.edge.agent import AGENT_VERSION
from modelyard.edge.agent.bundle_file import BundleRefused, sha256_file, unpack_verified
from modelyard.edge.agent.home import AgentHome, read_json, write_json
from modelyard.edge.agent.skill_outbox import SkillOutbox

log = logging.getLogger("modelyard.agent")
CHUNK = 16 * 1024
# crash-point injection for the fault tests: the agent SIGKILLs itself at the named point
CRASH_ENV = "MODELYARD_AGENT_CRASH_AT"
LOG_LINES_PER_REPORT = 200


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class PlatformError(Exception):
    """The platform answered with an error the agent cannot retry its way out of (e.g. a revoked credential)."""


def hardware_inventory(home: Path, probe_backends: bool = True) -> dict:
    import platform

    inventory = {"arch": platform.machine(), "cpus": os.cpu_count(), "os": platform.platform(),
                 "python": platform.python_version()}
    inventory.update(_memory())
    usage = shutil.disk_usage(home)
    inventory["disk_total_bytes"] = usage.total
    if not probe_backends:
        return inventory
    try:
        from modelyard.runtime.registry import list_backends

        inventory["backends"] = [{"name": b.name, "available": b.available, "reason": b.reason}
                                 for b in list_backends()]
    except Exception as exc:  # noqa: BLE001 - an inventory never stops the agent
        inventory["backends_error"] = str(exc)
    return inventory


def _memory() -> dict:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                out[f"{key.lower()}_bytes"] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def activate(home: AgentHome, url: str, code: str) -> dict:
    """Exchange ``code`` for this device's credential and the platform's public key; write ``identity.json``."""
    home.root.mkdir(parents=True, exist_ok=True)
    inventory = hardware_inventory(home.root, probe_backends=False)  # the agent's first run adds the backends
    response = httpx.post(url.rstrip("/") + "/edge/v1/activate",
                          json={"code": code, "hardware": inventory,
                                "agent_version": AGENT_VERSION}, timeout=30)
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise PlatformError(f"activation refused ({response.status_code}): {message}")
    body = response.json()
    identity = {"url": url.rstrip("/"), "device_id": body["device_id"], "name": body["name"],
                "credential": body["credential"], "public_key": body["public_key"]}
    write_json(home.identity_path, identity)
    os.chmod(home.identity_path, 0o600)
    return identity


class Agent:
    def __init__(self, home: AgentHome, poll_wait: float = 20.0, report_interval: float = 10.0,
                 max_download_bps: int | None = None):
        self.home = home
        self.identity = home.identity()
        if self.identity is None:
            raise PlatformError(f"no identity in {home.root}: run 'modelyard-agent --home {home.root} activate' first")
        self.poll_wait = poll_wait
        self.report_interval = report_interval
        self.max_download_bps = max_download_bps
        self.state = home.state()
        self.processes: dict[str, subprocess.Popen] = {}
        # skills packaged as skill.yaml + logic.py run under a SkillHost (channels, batching, events)
        self.hosts: dict = {}
        self.host_errors: dict[str, str] = {}
        self.outbox = SkillOutbox()
        self.crashes: dict[str, int] = {}
        self.pending_alarms: list[dict] = []
        self.pending_logs: list[str] = []
        self.actions_done: list[str] = []
        self.progress: dict = self.state.get("progress") or {}
        self.online = True
        self.last_report = 0.0
        self.http = httpx.Client(base_url=self.identity["url"], timeout=httpx.Timeout(poll_wait + 15, connect=5),
                                 headers={"Authorization": f"Bearer {self.identity['credential']}"})
        # probing the backends imports every engine (seconds on a small device): the cached inventory from
        # activation goes out at once, a fresh one is taken in the background
        self.inventory = read_json(home.root / "inventory.json", {}) or {}
        threading.Thread(target=self._refresh_inventory, daemon=True).start()
        self.stopping = False

    def _refresh_inventory(self) -> None:
        inventory = hardware_inventory(self.home.root)
        write_json(self.home.root / "inventory.json", inventory)
        self.inventory = inventory

    # -- logging that also travels to the platform -----------------------------------------------------------------
    def note(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}"
        self.pending_logs.append(line)
        del self.pending_logs[:-2000]
        with open(self.home.root / "agent.log", "a") as handle:
            handle.write(line + "\n")

    def alarm(self, kind: str, message: str) -> None:
        self.note(f"ALARM {kind}: {message}")
        self.pending_alarms.append({"kind": kind, "message": message})

    # -- start-up recovery ------------------------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish or roll back a switch a ``kill -9`` interrupted; stop skill processes a dead agent left behind."""
        for skill, pid in list(self.state.get("pids", {}).items()):
            _kill_if_ours(pid, self.home.root)
            self.state["pids"].pop(skill, None)
        journal = self.state.get("activating")
        if journal:
            slot = self.home.slot_dir(journal["skill"], journal["slot"])
            if _slot_verifies(slot, journal["bundle"]):
                self._switch(journal["skill"], journal["slot"], journal["bundle"])
                self.note(f"finished the interrupted activation of {journal['bundle']} ({journal['skill']})")
            else:
                shutil.rmtree(slot, ignore_errors=True)
                self.state.pop("activating", None)
                self.note(f"rolled back the interrupted activation of {journal['bundle']} ({journal['skill']})")
        for leftover in (self.home.root / "slots").glob("*/*.unpack"):
            shutil.rmtree(leftover, ignore_errors=True)
        self.home.save_state(self.state)

    # -- the loop --------------------------------------------------------------------------------------------------
    def run(self, once: bool = False) -> None:
        self.recover()
        self.note(f"agent {AGENT_VERSION} started for device {self.identity['name']}")
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        try:
            while not self.stopping:
                try:
                    self.poll()
                    self.reconcile()
                    self.supervise()
                    if time.monotonic() - self.last_report >= self.report_interval or self.pending_alarms \
                            or self.outbox.has_alarms():
                        self.report()
                except PlatformError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad step must not stop the device's last good state
                    self.alarm("agent_error", f"{type(exc).__name__}: {exc}"[:500])
                    time.sleep(1.0)
                if once:
                    break
        finally:
            self.stop_all()
            self.http.close()

    def poll(self) -> None:
        """Long-poll for a desired state newer than ours; offline, keep the cached one (the last good state)."""
        wait = max(0.0, min(self.poll_wait, self.report_interval - (time.monotonic() - self.last_report)))
        try:
            response = self.http.get(f"/edge/v1/devices/{self.identity['device_id']}/desired",
                                     params={"since": self.state.get("desired_version", -1), "wait": wait})
        except httpx.TransportError as exc:
            self._offline(type(exc).__name__, wait)
            return
        if response.status_code in (401, 403):
            raise PlatformError(f"the platform refused this device's credential ({response.status_code}); "
                                "it was deregistered or revoked")
        if response.status_code != 200:
            self._offline(f"HTTP {response.status_code}", wait)
            return
        if not self.online:
            self.note("platform reachable again; catching up")
        self.online = True
        body = response.json()
        if body.get("version") != self.state.get("desired_version"):
            self.state["desired"] = body["desired"]
            self.state["desired_version"] = body["version"]
            self.home.save_state(self.state)
        for action in body.get("actions") or []:
            if action["id"] not in self.actions_done:
                self.run_action(action)

    def _offline(self, why: str, wait: float) -> None:
        if self.online:
            self.note(f"platform unreachable ({why}); running the last good state")
        self.online = False
        time.sleep(min(1.0, max(wait, 0.2)))

    def run_action(self, action: dict) -> None:
        if action["kind"] == "restart_skill":
            self.note(f"restarting skill {action['skill']} on request")
            self.stop_skill(action["skill"])
        elif action["kind"] == "collect_logs":
            for skill in self.state.get("skills", {}):
                path = self.home.skill_log(skill)
                if path.is_file():
                    tail = path.read_text(errors="replace").splitlines()[-100:]
                    self.pending_logs += [f"[{skill}] {line}" for line in tail]
            self.note("logs collected on request")
        self.actions_done.append(action["id"])
        self.last_report = 0.0

    # -- desired -> actual ------------------------------------------------------------------------------------------
    def reconcile(self) -> None:
        desired = self.state.get("desired")
        if desired is None:
            return
        deployment = desired.get("deployment")
        wanted = {s["name"]: s for s in desired.get("skills", [])}
        failed = None
        for name, skill in wanted.items():
            current = self.state["skills"].get(name, {})
            if current.get("bundle") == skill["bundle"]:
                if current.get("config") != skill.get("config") \
                        or (current.get("channels") or {}) != (skill.get("channels") or {}):
                    current["config"] = skill.get("config", {})
                    current["channels"] = skill.get("channels") or {}
                    self.home.save_state(self.state)
                    if name in self.hosts:
                        self.update_host(name)  # a config change reaches the running skill: no restart
                    else:
                        self.host_errors.pop(name, None)
                        self.stop_skill(name)
                continue
            if skill["bundle"] in self.state.get("refused", []):
                failed = f"bundle {skill['bundle']} was refused: {self.state.get('refused_reason', '')}"
                continue
            try:
                self.apply(name, skill, deployment)
            except BundleRefused as exc:
                self.state.setdefault("refused", []).append(skill["bundle"])
                self.state["refused_reason"] = str(exc)
                self.home.save_state(self.state)
                self.alarm("bundle_refused", f"bundle {skill['bundle']} refused: {exc}")
                failed = f"bundle {skill['bundle']} refused: {exc}"
            except (httpx.TransportError, DownloadIncomplete) as exc:
                self.note(f"download of {skill['bundle']} interrupted ({exc}); will resume")
                return
        for name in list(self.state["skills"]):
            if name not in wanted:
                self.stop_skill(name)
                self.state["skills"].pop(name)
                self.home.save_state(self.state)
        if failed:
            self.set_progress(deployment, "failed", failed)
        else:
            self.set_progress(deployment, "active", "running the desired state")

    def set_progress(self, deployment: str | None, state: str, message: str = "") -> None:
        progress = {"id": deployment, "state": state, "message": message}
        if progress != self.progress:
            self.progress = progress
            self.state["progress"] = progress
            self.home.save_state(self.state)
            self.note(f"deployment {deployment}: {state} {message}".rstrip())
            if state != "active":
                self.report()

    def apply(self, name: str, skill: dict, deployment: str | None) -> None:
        bundle_id = skill["bundle"]
        current = self.state["skills"].get(name, {})
        active_slot = current.get("slot")
        other = "b" if active_slot == "a" else "a"
        slot = self.home.slot_dir(name, other)
        if not _slot_verifies(slot, bundle_id):
            self.set_progress(deployment, "downloading", f"bundle {bundle_id}")
            path = self.download(bundle_id)
            self.set_progress(deployment, "verifying", f"bundle {bundle_id}")
            shutil.rmtree(slot, ignore_errors=True)
            try:
                unpack_verified(path, slot, self.identity["public_key"])
            except BundleRefused:
                path.unlink(missing_ok=True)
                raise
        self.set_progress(deployment, "activating", f"bundle {bundle_id} in slot {other}")
        self.state["activating"] = {"skill": name, "slot": other, "bundle": bundle_id}
        self.home.save_state(self.state)
        _crash_point("activate")
        self.stop_skill(name)
        self.state["skills"].setdefault(name, {}).update(config=skill.get("config", {}),
                                                         channels=skill.get("channels") or {})
        self.host_errors.pop(name, None)
        self._switch(name, other, bundle_id)
        self.home.save_state(self.state)
        self.start_skill(name)

    def _switch(self, name: str, slot: str, bundle_id: str) -> None:
        entry = self.state["skills"].setdefault(name, {})
        entry.update(slot=slot, bundle=bundle_id, previous=entry.get("bundle"))
        self.state.pop("activating", None)

    def download(self, bundle_id: str) -> Path:
        """Resumable: continue a ``.part`` file with a Range request."""
        final = self.home.bundle_path(bundle_id)
        if final.is_file():
            return final
        part = final.with_name(final.name + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        if offset:
            self.note(f"resuming download of {bundle_id} at byte {offset}")
        url = f"/edge/v1/devices/{self.identity['device_id']}/bundles/{bundle_id}"
        with self.http.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:
                size = response.headers.get("content-range", "").rpartition("/")[2]
                if size.isdigit() and int(size) == offset:  # every byte arrived before the interruption
                    os.replace(part, final)
                    return final
                part.unlink(missing_ok=True)
                raise DownloadIncomplete("stale partial download discarded")
            if response.status_code not in (200, 206):
                response.read()
                raise BundleRefused(f"download answered {response.status_code}: {response.text[:200]}")
            total = int(response.headers.get("x-bundle-size") or 0)
            mode = "ab" if response.status_code == 206 else "wb"
            started, written = time.monotonic(), 0
            with open(part, mode) as handle:
                for chunk in response.iter_bytes(CHUNK):
                    handle.write(chunk)
                    handle.flush()
                    written += len(chunk)
                    _crash_point("download")
                    if self.max_download_bps:
                        ahead = written / self.max_download_bps - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
                os.fsync(handle.fileno())
        if total and part.stat().st_size != total:
            raise DownloadIncomplete(f"{part.stat().st_size} of {total} bytes")
        os.replace(part, final)
        return final

    # -- skill processes --------------------------------------------------------------------------------------------
    def start_skill(self, name: str) -> None:
        entry = self.state["skills"][name]
        slot = self.home.slot_dir(name, entry["slot"])
        if (slot / "skill.yaml").is_file():
            self.start_host(name, slot)
            return
        stats = self.home.stats_path(name)
        stats.parent.mkdir(parents=True, exist_ok=True)
        stats.unlink(missing_ok=True)
        with open(self.home.skill_log(name), "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "modelyard.edge.agent.skill_process", "--slot", str(slot), "--stats",
                 str(stats), "--config", json.dumps(entry.get("config") or {})],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(signal.SIGKILL))  # noqa: PLW1509 - see core/lifetime.py
        self.processes[name] = proc
        self.state.setdefault("pids", {})[name] = proc.pid
        self.home.save_state(self.state)
        self.note(f"skill {name} started (bundle {entry['bundle']}, pid {proc.pid})")

    def start_host(self, name: str, slot: Path) -> None:
        """Run the skill in ``slot`` under a ``SkillHost`` on the channels of the desired state."""
        from modelyard.core.errors import ModelyardError
        from modelyard.edge.skills.host import SkillHost

        entry = self.state["skills"][name]
        try:
            host = SkillHost(slot, entry.get("config") or {}, entry.get("channels") or {}, self.outbox.event,
                             self.outbox.alarm, self.outbox.hard_example)
        except ModelyardError as exc:  # a config or manifest the skill refuses: say so once, keep the rest running
            self.host_errors[name] = str(exc)
            self.alarm("config_refused", f"skill {name} (bundle {entry['bundle']}) not started: {exc}"[:500])
            return
        self.hosts[name] = host.start()
        self.note(f"skill {name} started (bundle {entry['bundle']}, {len(entry.get('channels') or {})} channel(s))")

    def update_host(self, name: str) -> None:
        from modelyard.core.errors import ModelyardError

        entry = self.state["skills"][name]
        if self.hosts[name].state in ("failed", "finished"):  # nothing runs to reconfigure: start it afresh
            self.stop_skill(name)
            self.start_skill(name)
            return
        try:
            self.hosts[name].update_config(entry.get("config") or {}, entry.get("channels") or {})
        except ModelyardError as exc:  # refused as a whole: the skill keeps running its previous config
            self.alarm("config_refused", f"skill {name}: config change refused, previous config kept: {exc}"[:500])
            return
        self.note(f"skill {name}: config updated without a restart")

    def stop_skill(self, name: str) -> None:
        host = self.hosts.pop(name, None)
        if host is not None:
            host.stop()
        proc = self.processes.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.state.get("pids", {}).pop(name, None)

    def stop_all(self) -> None:
        for name in list(self.processes) + list(self.hosts):
            self.stop_skill(name)
        self.home.save_state(self.state)

    def supervise(self) -> None:
        for name in self.state.get("skills", {}):
            if name in self.hosts or name in self.host_errors:
                continue  # a SkillHost restarts its process itself (backoff, then failed with an alarm)
            proc = self.processes.get(name)
            if proc is None:
                self.start_skill(name)
            elif proc.poll() is not None:
                self.crashes[name] = self.crashes.get(name, 0) + 1
                tail = self.home.skill_log(name).read_text(errors="replace").strip().splitlines()[-1:] \
                    if self.home.skill_log(name).is_file() else []
                self.alarm("skill_crashed", f"skill {name} exited {proc.returncode}: {' '.join(tail)}"[:500])
                self.processes.pop(name)
                self.start_skill(name)
        usage = shutil.disk_usage(self.home.root)
        if usage.free / usage.total < 0.05 and not self.state.get("disk_alarm"):
            self.state["disk_alarm"] = True
            self.alarm("disk_nearly_full", f"{usage.free // 2**20} MiB free of {usage.total // 2**20} MiB")
        elif usage.free / usage.total >= 0.1:
            self.state.pop("disk_alarm", None)

    def skills_report(self) -> list[dict]:
        out = []
        for name, entry in self.state.get("skills", {}).items():
            if name in self.hosts or name in self.host_errors:
                out.append(self._host_report(name, entry))
                continue
            proc = self.processes.get(name)
            stats = read_json(self.home.stats_path(name), {}) or {}
            running = proc is not None and proc.poll() is None
            if stats.get("bundle") != entry.get("bundle"):
                stats = {}
            out.append({"name": name, "bundle": entry.get("bundle"), "previous": entry.get("previous"),
                        "status": "running" if running else "crashed" if self.crashes.get(name) else "stopped",
                        "crashes": self.crashes.get(name, 0), "processed": stats.get("processed", 0),
                        "errors": stats.get("errors", 0), "latency_ms_p50": stats.get("latency_ms_p50"),
                        "error": stats.get("last_error")})
        return out

    def _host_report(self, name: str, entry: dict) -> dict:
        """A SkillHost's status in the report's skill shape, plus its channels (state, fps, errors...)."""
        base = {"name": name, "bundle": entry.get("bundle"), "previous": entry.get("previous"), "kind": "skill"}
        if name in self.host_errors:
            return {**base, "status": "failed", "crashes": 0, "processed": 0, "errors": 0, "latency_ms_p50": None,
                    "error": self.host_errors[name], "channels": {}}
        status = self.hosts[name].status()
        channels = status.get("channels") or {}
        return {**base, "status": status["state"], "crashes": status["restarts"], "pid": status["pid"],
                "processed": sum(c.get("processed", 0) for c in channels.values()),
                "errors": sum(c.get("errors", 0) for c in channels.values()),
                "latency_ms_p50": status.get("latency_ms_p50"), "error": status["last_error"],
                "batches": status.get("batches", 0), "channels": channels, "version": status.get("version")}

    def _skill_alarms(self, alarms: list[dict]) -> list[dict]:
        out = []
        for alarm in alarms:
            where = f"skill {alarm.get('skill')}" + (f" channel {alarm['channel']}" if alarm.get("channel") else "")
            kind = "source_lost" if alarm.get("channel") else "skill_crashed"
            self.note(f"ALARM {kind}: {where}: {alarm.get('message')}")
            out.append({"kind": kind, "message": f"{where}: {alarm.get('message')}"[:2000],
                        "skill": alarm.get("skill"), "channel": alarm.get("channel")})
        return out

    def report(self) -> None:
        usage = shutil.disk_usage(self.home.root)
        events, skill_alarms, hard_examples = self.outbox.drain()
        self.pending_alarms += self._skill_alarms(skill_alarms)
        body = {
            "reported": {"agent_version": AGENT_VERSION, "hardware": self.inventory, "skills": self.skills_report(),
                         "deployment": self.progress, "desired_version": self.state.get("desired_version"),
                         "metrics": {"load_1m": os.getloadavg()[0], **_memory(), "disk_free_bytes": usage.free,
                                     "disk_total_bytes": usage.total}},
            "logs": self.pending_logs[-LOG_LINES_PER_REPORT:], "alarms": self.pending_alarms,
            "events": events, "hard_examples": hard_examples, "outbox": dict(self.outbox.counters),
            "actions_done": self.actions_done, "sent_at": time.time(),
        }
        self.pending_logs, self.pending_alarms = [], []
        self.last_report = time.monotonic()
        if not self._send_queued() or not self._send(body):
            self.home.enqueue(body)
            return
        self.actions_done = []

    def _send(self, body: dict) -> bool:
        try:
            response = self.http.post(f"/edge/v1/devices/{self.identity['device_id']}/report", json=body)
        except httpx.TransportError as exc:
            if self.online:
                self.note(f"platform unreachable ({type(exc).__name__}); queueing reports, running the last good "
                          "state")
            self.online = False
            return False
        if response.status_code in (401, 403):
            raise PlatformError(f"the platform refused this device's credential ({response.status_code})")
        return response.status_code == 200

    def _send_queued(self) -> bool:
        """Send queued reports oldest first; False when the platform is still unreachable."""
        for path in self.home.queued():
            body = read_json(path)
            if body is not None and not self._send(body):
                return False
            path.unlink(missing_ok=True)
        return True


class DownloadIncomplete(Exception):
    pass


def _slot_verifies(slot: Path, bundle_id: str) -> bool:
    manifest = read_json(slot / "manifest.json")
    if not manifest or manifest.get("bundle") != bundle_id:
        return False
    for name, info in manifest.get("files", {}).items():
        path = slot / name
        if not path.is_file() or path.stat().st_size != info["size"] or sha256_file(path) != info["sha256"]:
            return False
    return True


def _kill_if_ours(pid: int, home: Path) -> None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return
    if "modelyard.edge.agent.skill_process" in cmdline and str(home) in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
