"""The agent's home folder: identity, durable state (written atomically), the report queue, and helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

MAX_QUEUED_REPORTS = 1000


def write_json(path: Path, data) -> None:
    """Atomic and durable: temp file, fsync, rename (a ``kill -9`` leaves the old or the new file, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    with open(scratch, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(scratch, path)


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


class AgentHome:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def identity_path(self) -> Path:
        return self.root / "identity.json"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def queue_dir(self) -> Path:
        return self.root / "queue"

    def bundle_path(self, bundle_id: str) -> Path:
        return self.root / "bundles" / f"{bundle_id}.myb"

    def slot_dir(self, skill: str, slot: str) -> Path:
        return self.root / "slots" / skill / slot

    def stats_path(self, skill: str) -> Path:
        return self.root / "skills" / f"{skill}.stats.json"

    def skill_log(self, skill: str) -> Path:
        return self.root / "skills" / f"{skill}.log"

    def identity(self) -> dict | None:
        return read_json(self.identity_path)

    def state(self) -> dict:
        return read_json(self.state_path, None) or {"skills": {}, "desired": None, "desired_version": -1,
                                                     "refused": [], "pids": {}}

    def save_state(self, state: dict) -> None:
        write_json(self.state_path, state)

    # -- queued reports: one file each, sent oldest first when the platform answers again --------------------------
    def enqueue(self, report: dict) -> None:
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.queue_dir.glob("*.json"))
        for old in existing[: max(0, len(existing) - MAX_QUEUED_REPORTS + 1)]:
            old.unlink(missing_ok=True)
        seq = int(existing[-1].stem) + 1 if existing else 1
        write_json(self.queue_dir / f"{seq:012d}.json", report)

    def queued(self) -> list[Path]:
        return sorted(self.queue_dir.glob("*.json")) if self.queue_dir.is_dir() else []
