"""The ``train`` job kind: the user's own training script (``modelyard train submit script.py``), data-parallel
over N worker processes with ``torchrun`` semantics, as ModelArts training jobs.

The job (local process or Ray Job, the executor decides) is the launcher: it mounts the dataset version as files,
starts N ranks of the script with ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` (``torch.distributed``
with gloo on CPUs), tracks rank 0's metrics as a run, copies every new checkpoint into the blob store (an artifact
of the run), and when a rank dies restarts the whole group, which resumes from the last checkpoint (torchrun's
elastic restart), up to ``max_restarts`` times. See :mod:`modelyard.train.script_context` for the script's side.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import InvalidInput, ModelyardError
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.core.lifetime import die_with_parent
from modelyard.train.script_context import CHECKPOINT_NAME

RESULT_SCHEMA = "modelyard.train/1"
POLL_S = 0.2


class TrainSpec(BaseModel):
    """Args:
        script: the script's blob digest (``sha256:...``; the CLI uploads the file).
        script_name: its file name, as the script sees it.
        data: dataset version ``NAME@VERSION`` mounted at ``$MODELYARD_DATA_DIR``; optional.
        workers: data-parallel ranks. Default 1.
        params: ``--param k=v`` pairs, as ``$MODELYARD_PARAMS`` (JSON).
        max_restarts: restarts of the whole group after a rank dies. Default 2.
        name: the run's name; default ``train-<script stem>``.
        cpus_per_worker: CPUs Ray reserves for each rank (``executor = "ray"``). Default 1.
    """

    model_config = ConfigDict(extra="forbid")
    script: str = Field(pattern=r"^(sha256:)?[0-9a-f]{64}$")
    script_name: str = Field(default="train.py", pattern=r"^[A-Za-z0-9_.-]{1,100}\.py$")
    data: str | None = None
    workers: int = Field(default=1, ge=1, le=64)
    params: dict[str, str] = Field(default_factory=dict, max_length=200)
    max_restarts: int = Field(default=2, ge=0, le=20)
    name: str | None = Field(default=None, max_length=200)
    cpus_per_worker: float = Field(default=1.0, gt=0, le=1024)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mount_dataset(store, version, dest: Path) -> None:
    """Write a dataset version as files: ``table.parquet`` + ``split.txt`` for tables, ``items/<path>`` for the
    others; ``manifest.json`` and ``dataset.json`` always."""
    from modelyard.data.annotated import digests_of

    dest.mkdir(parents=True, exist_ok=True)
    manifest = store.manifest(version)
    (dest / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (dest / "dataset.json").write_text(json.dumps(version.to_dict(), default=str), encoding="utf-8")
    if version.kind == "tabular":
        store.blobs.copy_to(manifest["table"]["digest"], dest / "table.parquet")
        (dest / "split.txt").write_text("".join(manifest["split"]), encoding="utf-8")
    else:
        store.blobs.materialize(digests_of(manifest), dest / "items", link=True)


class _Group:
    """N ranks of the script, started together and stopped together."""

    def __init__(self, script: Path, workers: int, env: dict[str, str]):
        port = _free_port()
        # each rank in its own session (the launcher stops a rank's whole group), and SIGKILL when the launcher dies:
        # a launcher killed with its worker must not leave ranks training on, writing into a checkpoint folder that
        # the re-queued attempt uses
        tie = die_with_parent(signal.SIGKILL, new_session=True)
        self.procs = []
        for rank in range(workers):
            rank_env = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(workers),
                        "LOCAL_WORLD_SIZE": str(workers), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            self.procs.append(subprocess.Popen([sys.executable, script.name], cwd=script.parent, env=rank_env,
                                               stdin=subprocess.DEVNULL, preexec_fn=tie))

    def failed_rank(self) -> tuple[int, int] | None:
        for rank, proc in enumerate(self.procs):
            code = proc.poll()
            if code not in (None, 0):
                return rank, code
        return None

    def done(self) -> bool:
        return all(proc.poll() == 0 for proc in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def run_user_training(spec: TrainSpec, ctx: JobContext) -> dict:
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.store.workspace import Workspace
    from modelyard.train.tracking import RunStore

    workspace = Workspace.open(Settings.load(ctx.home), create=False, migrate=False)
    try:
        work = Path(ctx.workdir)
        code_dir = work / "code"
        script = workspace.blobs.copy_to(spec.script, code_dir / spec.script_name)
        data_dir, ref = work / "data", None
        if spec.data:
            store = DatasetStore(workspace)
            version = store.get(spec.data)
            ref = version.ref
            mount_dataset(store, version, data_dir)
            ctx.log(f"mounted {ref} ({version.kind}) at {data_dir}")
        runs = RunStore(workspace)
        # a re-queued attempt (its node, worker or job process died) continues the run of the attempt before it,
        # so it resumes from that run's last checkpoint in the blob store instead of starting over
        earlier = [r for r in runs.of_job(ctx.job_id) if r.status == "running"]
        if earlier:
            run = earlier[-1]
            ctx.log(f"continuing run {run.id} of an earlier attempt of this job")
        else:
            run = runs.create(spec.name or f"train-{Path(spec.script_name).stem}", experiment="train",
                              params={**spec.params, "workers": spec.workers, "script": spec.script_name},
                              tags={"kind": "train"}, dataset=ref, job_id=ctx.job_id)
        try:
            if workspace.settings.executor == "ray":
                result = _supervise_ray_train(spec, ctx, runs, run.id, ref)
            else:
                result = _supervise(spec, ctx, workspace, runs, run.id, script, data_dir, work)
        except BaseException as exc:
            runs.finish(run.id, "failed", str(exc) if isinstance(exc, ModelyardError) else f"{type(exc).__name__}: "
                        f"{exc}")
            raise
        runs.finish(run.id)
        return result
    finally:
        workspace.close()


def _supervise(spec, ctx, workspace, runs, run_id, script, data_dir, work) -> dict:
    checkpoint_dir, metrics_file = work / "checkpoints", work / "metrics.jsonl"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    metrics_file.touch()
    env = dict(os.environ)
    env.update({"MODELYARD_DATA_DIR": str(data_dir), "MODELYARD_PARAMS": json.dumps(spec.params),
                "MODELYARD_CHECKPOINT_DIR": str(checkpoint_dir), "MODELYARD_METRICS_FILE": str(metrics_file),
                "PYTHONUNBUFFERED": "1"})
    state = {"offset": metrics_file.stat().st_size, "checkpoint_mtime": 0.0, "checkpoint": None, "last": {},
             "steps": 0}
    resumed = _last_checkpoint(runs, run_id)
    if resumed:  # an earlier attempt's checkpoint, from the blob store (this attempt's scratch may be new)
        path = workspace.blobs.copy_to(resumed, checkpoint_dir / CHECKPOINT_NAME)
        state["checkpoint_mtime"], state["checkpoint"] = path.stat().st_mtime, resumed
        ctx.log(f"resuming from the checkpoint {resumed} of an earlier attempt")

    def collect() -> None:
        with open(metrics_file, encoding="utf-8") as handle:
            handle.seek(state["offset"])
            text = handle.read()
        complete = text[: text.rfind("\n") + 1]
        state["offset"] += len(complete.encode("utf-8"))
        points = []
        for line in filter(None, complete.splitlines()):
            entry = json.loads(line)
            state["last"] = entry["metrics"]
            state["steps"] = max(state["steps"], entry["step"])
            points += [{"key": k, "value": v, "step": entry["step"]} for k, v in entry["metrics"].items()]
        if points:
            runs.log_metrics(run_id, points)
        path = checkpoint_dir / CHECKPOINT_NAME
        if path.is_file() and path.stat().st_mtime != state["checkpoint_mtime"]:
            state["checkpoint_mtime"] = path.stat().st_mtime
            info = workspace.blobs.put_file(path)
            runs.add_artifact(run_id, CHECKPOINT_NAME, "sha256:" + info.digest, info.size)
            state["checkpoint"] = "sha256:" + info.digest

    restarts = 0
    while True:
        env["MODELYARD_RESTART"] = str(restarts + (1 if resumed else 0))
        ctx.log(f"starting {spec.workers} worker(s) of {spec.script_name}" + (f" (restart {restarts})" if restarts
                                                                            else ""))
        group = _Group(script, spec.workers, env)
        try:
            while True:
                time.sleep(POLL_S)
                collect()
                if ctx.cancelled():
                    raise ModelyardError("cancelled on request")
                failed = group.failed_rank()
                if failed or group.done():
                    break
                # the script alone knows how many steps it will take: the message carries the step
                ctx.progress(0.0, f"step {state['steps']}" + (f", restart {restarts}" if restarts else ""))
        finally:
            group.stop()
        collect()
        if not failed:
            break
        rank, code = failed
        if restarts >= spec.max_restarts:
            raise InvalidInput(f"worker rank {rank} of {spec.script_name} exited with code {code}; "
                               f"{restarts} restart(s) used (max_restarts={spec.max_restarts})")
        restarts += 1
        ctx.log(f"worker rank {rank} died (exit code {code}); restarting all {spec.workers} from "
                + (f"the checkpoint {state['checkpoint']}" if state["checkpoint"] else "the start (no checkpoint)"))
    ctx.progress(1.0, "done")
    return {"schema": RESULT_SCHEMA, "run_id": run_id, "workers": spec.workers, "restarts": restarts,
            "steps": state["steps"], "metrics": state["last"], "checkpoint": state["checkpoint"]}


def _last_checkpoint(runs, run_id: str) -> str | None:
    checkpoints = [a for a in runs.get(run_id).artifacts if a.get("name") == CHECKPOINT_NAME]
    return checkpoints[-1]["digest"] if checkpoints else None


def _ray_train_loop(config: dict) -> None:
    """One rank under Ray Train: fetch the script and the data from the store, resume from the run's last
    checkpoint, and run the script in this worker (Ray has joined the process group already)."""
    import runpy
    import tempfile

    import ray.train

    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.store.workspace import Workspace
    from modelyard.train.tracking import RunStore

    context = ray.train.get_context()
    work = Path(tempfile.mkdtemp(prefix="modelyard-rank-"))
    home = work / "home"
    os.environ["MODELYARD_HOME"] = str(home)
    workspace = Workspace.open(Settings.load(home), create=True, migrate=False)
    try:
        script = workspace.blobs.copy_to(config["script"], work / "code" / config["script_name"])
        if config["data"]:
            store = DatasetStore(workspace)
            mount_dataset(store, store.get(config["data"]), work / "data")
        checkpoints = [a for a in RunStore(workspace).get(config["run_id"]).artifacts
                       if a.get("name") == CHECKPOINT_NAME]
        if checkpoints:
            workspace.blobs.copy_to(checkpoints[-1]["digest"], work / "checkpoints" / CHECKPOINT_NAME)
    finally:
        workspace.close()
    os.environ.update({
        "RANK": str(context.get_world_rank()), "LOCAL_RANK": str(context.get_local_rank()),
        "WORLD_SIZE": str(context.get_world_size()), "MODELYARD_DATA_DIR": str(work / "data"),
        "MODELYARD_PARAMS": json.dumps(config["params"]), "MODELYARD_CHECKPOINT_DIR": str(work / "checkpoints"),
        "MODELYARD_METRICS_FILE": str(work / "metrics.jsonl"), "MODELYARD_RUN_ID": config["run_id"],
        # resumed from a checkpoint = a restart (Ray Train restarts the group after a worker dies)
        "MODELYARD_RESTART": "1" if checkpoints else "0"})
    os.chdir(script.parent)
    runpy.run_path(str(script), run_name="__main__")


def _supervise_ray_train(spec, ctx, runs, run_id, ref) -> dict:
    """``executor = "ray"``: the ranks are Ray Train workers (TorchTrainer, gloo on CPUs) placed by Ray; Ray
    restarts the group from the run's last checkpoint after a worker dies."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(logging_level="ERROR")  # inside a Ray Job: the job's cluster
    config = {"script": spec.script, "script_name": spec.script_name, "data": ref, "params": spec.params,
              "run_id": run_id}
    ctx.log(f"Ray Train: {spec.workers} worker(s), {spec.cpus_per_worker} CPU each")
    trainer = TorchTrainer(
        _ray_train_loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=spec.workers, use_gpu=False,
                                     resources_per_worker={"CPU": spec.cpus_per_worker}),
        run_config=RunConfig(name=f"modelyard-{ctx.job_id}", storage_path=str(Path(ctx.workdir) / "ray-train"),
                             failure_config=FailureConfig(max_failures=spec.max_restarts)))
    outcome = trainer.fit()
    if outcome.error is not None:
        raise ModelyardError(f"Ray Train failed: {str(outcome.error).splitlines()[0]}")
    run = runs.get(run_id)
    checkpoints = [a for a in run.artifacts if a.get("name") == CHECKPOINT_NAME]
    history = runs.metric_history(run_id)
    steps = max((point["step"] for points in history.values() for point in points), default=None)
    ctx.progress(1.0, "done")
    # Ray Train restarts the group itself and does not report how often: restarts is None here
    return {"schema": RESULT_SCHEMA, "run_id": run_id, "workers": spec.workers, "restarts": None, "steps": steps,
            "metrics": run.metrics, "checkpoint": checkpoints[-1]["digest"] if checkpoints else None}


def authorize_training(spec: TrainSpec, caller, workspace) -> None:
    """At submit: a training script is code run on the workers, so only callers who may run code submit one
    (``core.trust``); the script blob and the dataset version exist."""
    from modelyard.core.errors import Forbidden
    from modelyard.core.trust import CODE_ROLE
    from modelyard.data.datasets import DatasetStore

    if not caller.trusted:
        raise Forbidden(f"a training script is code run on the server's workers: submitting one needs the "
                        f"{CODE_ROLE} role", code="code_not_allowed")
    workspace.blobs.info(spec.script)
    if spec.data:
        DatasetStore(workspace).get(spec.data)


TRAIN = JobKind(
    "train",
    TrainSpec,
    run_user_training,
    idempotent=True,  # an interrupted attempt is re-queued and continues its run from the last checkpoint
    authorize=authorize_training,
    description="Run the user's training script on N data-parallel workers (torchrun semantics), tracked as a run.",
)
