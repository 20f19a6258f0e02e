"""What a user's training script (``modelyard train submit script.py``) imports: its rank, data, params, metrics
and checkpoints. Light on purpose (standard library only; torch is imported by the caller that uses it).

Inside a script::

    from modelyard.train.script_context import context
    ctx = context()
    ctx.init_process_group()          # torch.distributed with gloo (NCCL on GPUs), when world_size > 1
    state = ctx.load_checkpoint()     # None on a fresh start, the last saved object after a restart
    ...
    ctx.log_metrics(step, loss=0.1)   # rank 0's metrics become the run's metrics
    ctx.save_checkpoint(step, {"model": model.state_dict(), "step": step})   # rank 0 only; atomic

The launcher sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` as ``torchrun`` does,
plus ``MODELYARD_DATA_DIR`` (the dataset version, mounted as files), ``MODELYARD_PARAMS`` (JSON of ``--param``),
``MODELYARD_CHECKPOINT_DIR``, ``MODELYARD_METRICS_FILE`` and ``MODELYARD_RESTART`` (how many times the group was
restarted after a worker died).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class ScriptContext:
    rank: int
    local_rank: int
    world_size: int
    data_dir: Path
    params: dict
    checkpoint_dir: Path
    metrics_file: Path
    restart: int
    run_id: str | None = None  # set under Ray Train: metrics and checkpoints go straight to the run and the blobs

    def init_process_group(self) -> None:
        """Join the job's process group (gloo on CPU, NCCL on GPU); nothing for a single worker."""
        if self.world_size <= 1:
            return
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend, rank=self.rank, world_size=self.world_size)

    def log_metrics(self, step: int, **metrics: float) -> None:
        """Record metrics at ``step`` (rank 0 only; other ranks' calls are ignored)."""
        if self.rank != 0:
            return
        if self.run_id:
            _record(self.run_id, metrics=[{"key": k, "value": float(v), "step": int(step)} for k, v in metrics.items()])
            return
        line = json.dumps({"step": int(step), "metrics": {k: float(v) for k, v in metrics.items()}})
        with open(self.metrics_file, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    def save_checkpoint(self, step: int, state) -> None:
        """Save ``state`` (anything ``torch.save`` takes) as the latest checkpoint, atomically (rank 0 only)."""
        if self.rank != 0:
            return
        import torch

        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_dir / f".{CHECKPOINT_NAME}.tmp"
        torch.save({"step": int(step), "state": state}, tmp)
        os.replace(tmp, self.checkpoint_dir / CHECKPOINT_NAME)
        if self.run_id:
            _record(self.run_id, checkpoint=self.checkpoint_dir / CHECKPOINT_NAME)

    def load_checkpoint(self):
        """The latest checkpoint's ``state``, or None when training starts fresh."""
        path = self.checkpoint_dir / CHECKPOINT_NAME
        if not path.is_file():
            return None
        import torch

        return torch.load(path, weights_only=True)["state"]


def context() -> ScriptContext:
    """The context the launcher set up (``torchrun``-style variables plus Modelyard's)."""
    return ScriptContext(
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        data_dir=Path(os.environ.get("MODELYARD_DATA_DIR", "data")),
        params=json.loads(os.environ.get("MODELYARD_PARAMS", "{}")),
        checkpoint_dir=Path(os.environ.get("MODELYARD_CHECKPOINT_DIR", "checkpoints")),
        metrics_file=Path(os.environ.get("MODELYARD_METRICS_FILE", "metrics.jsonl")),
        restart=int(os.environ.get("MODELYARD_RESTART", "0")),
        run_id=os.environ.get("MODELYARD_RUN_ID") or None,
    )


def _record(run_id: str, metrics: list[dict] | None = None, checkpoint: Path | None = None) -> None:
    """Under Ray Train rank 0 may run on any node: it writes metrics and checkpoints to the run itself."""
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace
    from modelyard.train.tracking import RunStore

    global _WORKSPACE
    if _WORKSPACE is None:  # one per process: a script logs metrics every step
        _WORKSPACE = Workspace.open(Settings.load(os.environ["MODELYARD_HOME"]), create=True, migrate=False)
    runs = RunStore(_WORKSPACE)
    if metrics:
        runs.log_metrics(run_id, metrics)
    if checkpoint is not None:
        info = _WORKSPACE.blobs.put_file(checkpoint)
        runs.add_artifact(run_id, CHECKPOINT_NAME, "sha256:" + info.digest, info.size)


_WORKSPACE = None
