"""Batch inference: the ``batch.predict`` job kind (``modelyard batch N@V --input ... --output ...``).

The input comes from the blob store (files the CLI/SDK uploaded) or a dataset version, and the output goes into the
job's own folder and the blob store, for the client to download; only the admin role may name paths on the server
(``modelyard.core.trust``). The input is cut into fixed chunks; each finished chunk is written atomically as a
part file under ``<output>.parts/`` before the next starts. A run that crashed (worker killed, machine lost) and is
re-queued, or a job re-submitted with the same output path, skips the parts that exist, so no row is computed twice
into the output and none is lost; the final output is assembled from the parts in order, checked (every key exactly
once) and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelyard.core.errors import IntegrityError, InvalidInput
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.deploy.batch_io import OUTPUT_SUFFIXES, iter_chunks, open_source, read_part, write_output, write_part
from modelyard.deploy.classes import class_column
from modelyard.deploy.detection import box_rows, is_detector, padded

OUTPUT_FORMATS = tuple(suffix.lstrip(".") for suffix in OUTPUT_SUFFIXES)


class BatchSpec(BaseModel):
    """Args (exactly one of ``input_files``, ``dataset`` or ``input``):
        model: ``N@V``, ``N@alias`` or ``N`` (resolved when the job starts and recorded in the result).
        input_files: uploaded input, ``relative name -> sha256 digest`` (``POST /api/v1/blobs``): one ``.csv``/
            ``.parquet`` table or ``.npz`` file, or the images of a folder (``img1.png``, ...).
        dataset: a dataset version ``NAME@VERSION``: a table (every column but the label) or an image dataset.
        input: a folder of images, a ``.csv``/``.parquet`` table or an ``.npz`` file on the server (absolute path;
            admin role only).
        output_format: ``parquet`` (default), ``csv`` or ``npz``: the output is written into the job's own folder
            and stored as a blob (``result.output_blob``), which ``GET /api/v1/blobs/{digest}`` downloads.
        output: instead, a file to write on the server (absolute path; admin role only).
        key: table column / npz array naming each row (default: the row number; images: the file name).
        columns: feature columns of a table, in order (default: every column but the key).
        chunk_size: rows per chunk (the unit of progress and of resumption). Default 256.
        backend: ``auto`` or ``backend:device``.
        max_rows_per_second: throttle, to leave cores to real-time services on the same machine.
        threshold: for a detector, the score a box needs (default: the model's ``score_threshold``); a detector
            writes one row per box.
        workers: with ``executor = "ray"``, chunks are spread over this many Ray actors (each loads the model once);
            the job writes every finished chunk itself, so rows are still written once and a rerun resumes.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=220)
    input_files: dict[str, str] = Field(default_factory=dict)
    dataset: str | None = Field(default=None, min_length=1, max_length=220)
    input: str | None = Field(default=None, min_length=1)
    output_format: Literal["parquet", "csv", "npz"] | None = None
    output: str | None = Field(default=None, min_length=1)
    key: str | None = None
    columns: list[str] | None = None
    chunk_size: int = Field(default=256, ge=1, le=100_000)
    backend: str = "auto"
    max_rows_per_second: float | None = Field(default=None, gt=0)
    threshold: float | None = Field(default=None, ge=0, le=1)
    workers: int = Field(default=1, ge=1, le=256)

    @field_validator("input", "output")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_absolute():
            raise ValueError(f"{value!r} must be an absolute path on the server (or upload the input as "
                             "input_files and leave output unset to get it back as a blob)")
        return value

    @field_validator("output")
    @classmethod
    def _output_format(cls, value: str | None) -> str | None:
        if value is not None and Path(value).suffix.lower() not in OUTPUT_SUFFIXES:
            raise ValueError(f"output must end in {', '.join(OUTPUT_SUFFIXES)}")
        return value

    @field_validator("input_files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        from modelyard.core.trust import check_files

        try:
            return check_files(value, "input_files")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _one_input(self) -> BatchSpec:
        given = [name for name in ("input_files", "dataset", "input") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of input_files (uploaded), dataset (NAME@VERSION) or input (a "
                             f"server path){' (got ' + ', '.join(given) + ')' if given else ''}")
        if self.output is not None and self.output_format is not None \
                and Path(self.output).suffix.lower() != "." + self.output_format:
            raise ValueError(f"output {self.output!r} does not end in .{self.output_format}")
        return self


def authorize_batch(spec: BatchSpec, caller, workspace) -> None:
    """Server paths need the admin role; uploaded files must be in the blob store; the model must exist."""
    from modelyard.core.errors import NotFound
    from modelyard.core.trust import check_path

    check_path(spec.input, caller, "spec.input")
    check_path(spec.output, caller, "spec.output")
    missing = workspace.blobs.missing(list(spec.input_files.values()))
    if missing:
        raise NotFound(f"spec.input_files: {len(missing)} file(s) are not in the blob store (upload them first "
                       f"with POST /api/v1/blobs), e.g. {missing[0]}")
    _check_names(spec, workspace)


def _check_names(spec: BatchSpec, workspace) -> None:
    """The model (and dataset) the spec names exist: an unknown one is a 404 at submit, not a failed job."""
    from modelyard.registry.versions import ModelRegistry

    ModelRegistry(workspace).get_version(spec.model)
    if spec.dataset is not None:
        from modelyard.data.datasets import DatasetStore

        DatasetStore(workspace).get(spec.dataset)


def _fingerprint(spec: BatchSpec, version_id: str) -> str:
    data = spec.model_dump(mode="json")
    data.pop("max_rows_per_second")
    data.pop("backend")
    data.pop("workers")  # how many shards computed the parts does not change them
    data["version_id"] = version_id
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _artifact(workspace, version):
    """The version's verified local files as a runtime Artifact."""
    from modelyard.registry.resolve import ResolvedModel, materialize, version_spec
    from modelyard.registry.versions import ModelRegistry
    from modelyard.runtime.spec import Artifact

    folder = materialize(ModelRegistry(workspace), version)
    return Artifact(version.format, folder / version.entry, version_spec(ResolvedModel(version, folder)))


def run_batch(spec: BatchSpec, ctx: JobContext) -> dict:
    from modelyard.core.settings import Settings
    from modelyard.deploy.loading import load_served
    from modelyard.deploy.text import text_encoder
    from modelyard.registry.versions import ModelRegistry
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(ctx.home), create=False)
    try:
        version = ModelRegistry(workspace).get_version(spec.model)
        artifact = _artifact(workspace, version)
        input_path, columns = _input(spec, workspace, Path(ctx.workdir))
    finally:
        workspace.close()
    backend, runner = load_served(version, artifact, spec.backend, log=ctx.log)
    encoder = text_encoder(version.signature, Path(artifact.path).parent)
    source = open_source(input_path, version.signature, spec.key, columns, encoder)
    total = len(source)
    if len(set(map(str, source.keys))) != total:
        raise InvalidInput(f"input keys are not unique ({total} rows); name a unique --key")
    output = Path(spec.output) if spec.output else Path(ctx.workdir) / f"output.{spec.output_format or 'parquet'}"
    parts = output.with_name(output.name + ".parts")
    fingerprint = _fingerprint(spec, version.id)
    marker = parts / "spec.json"
    if parts.is_dir() and (not marker.is_file() or json.loads(marker.read_text())["fingerprint"] != fingerprint):
        ctx.log(f"{parts} holds parts of a different run: starting over")
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": fingerprint, "model": version.ref, "rows": total}))
    chunks = list(iter_chunks(total, spec.chunk_size))
    done = {int(p.stem.split("-")[1]) for p in parts.glob("part-*.npz")}
    if done:
        ctx.log(f"resuming: {len(done)} of {len(chunks)} chunks already done")
    shown_input = spec.input or spec.dataset or f"{len(spec.input_files)} uploaded file(s)"
    ctx.log(f"{version.ref} on {backend.full_name}: {total} rows from {shown_input} ({source.kind}), "
            f"{len(chunks)} chunk(s) of {spec.chunk_size}")
    batchable = version.signature.batchable
    detector = is_detector(version.signature)
    computed, started = 0, time.monotonic()
    todo = [(index, start, stop) for index, start, stop in chunks if index not in done]
    # detectors write one row per box, which the Ray actors' row-per-input parts do not model: they run here
    if spec.workers > 1 and not detector and Settings.load(ctx.home).executor == "ray" and todo:
        computed = _infer_on_ray(spec, ctx, version.ref, source, todo, parts, done, len(chunks))
        todo = []
    for index, start, stop in todo:
        if ctx.cancelled():
            ctx.log(f"cancel requested after {computed} new rows; finished chunks stay for a resumed run")
            raise InvalidInput("cancelled on request", code="cancelled")
        feeds = source.read(start, stop)
        if batchable:
            outputs = runner.infer(feeds)
        else:
            rows = [runner.infer({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(stop - start)]
            outputs = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
        if detector:  # boxes in the original images' pixels, one padded row per image (see detection.padded)
            outputs = padded(version.signature, outputs, source.sizes[start:stop] if source.sizes else None,
                             spec.threshold)
        write_part(parts / f"part-{index:06d}.npz", source.keys[start:stop], outputs)
        computed += stop - start
        finished = len(done) + 1
        done.add(index)
        ctx.progress(finished / len(chunks), f"{min(total, finished * spec.chunk_size)}/{total} rows")
        if spec.max_rows_per_second:
            ahead = computed / spec.max_rows_per_second - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    keys, merged = _assemble(parts, len(chunks))
    if len(keys) != total or len(set(map(str, keys))) != total:
        raise IntegrityError(f"batch parts hold {len(keys)} rows ({len(set(map(str, keys)))} distinct keys) for "
                             f"{total} input rows; delete {parts} and run again")
    names = class_column(version.signature, merged)
    if names is not None and "class" not in merged:
        merged["class"] = names.astype(str)
    key_name = spec.key or ("file" if source.kind == "images" else "row")
    inputs = len(keys)
    if detector:
        keys, merged = box_rows(version.signature, keys, merged)
    write_output(output, key_name, keys, merged)
    shutil.rmtree(parts)
    result = {"schema": "modelyard.batch/1", "model": version.ref, "input": shown_input, "output": str(output),
              "rows": total, "computed_this_run": computed, "chunks": len(chunks), "backend": backend.full_name,
              "outputs": sorted(merged)}
    if detector:
        result.update(rows=len(keys), inputs=inputs, boxes=len(keys))
    if spec.output is None:  # the job's own file: hand it back through the blob store, name no server path
        workspace = Workspace.open(Settings.load(ctx.home), create=False)
        try:
            blob = workspace.blobs.put_file(output)
        finally:
            workspace.close()
        result["output"] = output.name
        result["output_blob"] = {"digest": "sha256:" + blob.digest, "size": blob.size, "name": output.name}
    ctx.log(f"wrote {result['rows']} rows to {result['output']} ({computed} computed in this run)")
    return result


class _ShardWorker:
    """A Ray actor holding the model once; infers the chunks the job sends it."""

    def __init__(self, home: str, model_ref: str, backend: str):
        from modelyard.core.settings import Settings
        from modelyard.deploy.loading import load_served
        from modelyard.registry.versions import ModelRegistry
        from modelyard.store.workspace import Workspace

        workspace = Workspace.open(Settings.load(home), create=True, migrate=False)
        try:
            self.version = ModelRegistry(workspace).get_version(model_ref)
            artifact = _artifact(workspace, self.version)
        finally:
            workspace.close()
        _, self.runner = load_served(self.version, artifact, backend)

    def ready(self) -> bool:
        """Answers once the actor has started and loaded the model (the job hands chunks only to ready actors)."""
        return True

    def infer(self, index: int, feeds: dict) -> tuple[int, dict]:
        if self.version.signature.batchable:
            return index, self.runner.infer(feeds)
        count = len(next(iter(feeds.values())))
        rows = [self.runner.infer({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(count)]
        return index, {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def _infer_on_ray(spec: BatchSpec, ctx: JobContext, model_ref: str, source, todo, parts: Path, done: set,
                  total_chunks: int) -> int:
    """Spread the chunks still to do over ``spec.workers`` Ray actors; this process writes each finished chunk
    (atomically, once), so a crash or cancel leaves only whole parts and a rerun computes just the rest."""
    import ray

    if not ray.is_initialized():
        ray.init(logging_level="ERROR")  # inside a Ray Job: the job's cluster
    actor = ray.remote(num_cpus=1)(_ShardWorker)
    workers = [actor.remote(str(ctx.home), model_ref, spec.backend) for _ in range(spec.workers)]
    ctx.log(f"{len(todo)} chunk(s) over {spec.workers} Ray worker(s)")
    bounds = {index: (start, stop) for index, start, stop in todo}
    # chunks go only to actors that have started, two in flight each: an actor the cluster has no free CPU for
    # (the job's own driver holds one) must not hold chunks back, or the job would wait for it forever
    starting = {worker.ready.remote(): worker for worker in workers}
    queue, pending, computed = list(bounds), {}, 0

    def feed(worker) -> None:
        if queue:
            index = queue.pop(0)
            start, stop = bounds[index]
            pending[worker.infer.remote(index, source.read(start, stop))] = (index, worker)

    try:
        while queue or pending:
            ready, _ = ray.wait([*pending, *starting], num_returns=1)
            for ref in ready:
                if ref in starting:
                    worker = starting.pop(ref)
                    ray.get(ref)  # an actor that failed to start (the model does not load) fails the job
                    feed(worker)
                    feed(worker)
                    continue
                _, worker = pending.pop(ref)
                index, outputs = ray.get(ref)
                start, stop = bounds[index]
                write_part(parts / f"part-{index:06d}.npz", source.keys[start:stop], outputs)
                computed += stop - start
                done.add(index)
                ctx.progress(len(done) / total_chunks, f"{len(done)}/{total_chunks} chunks on Ray")
                feed(worker)
            if ctx.cancelled():
                ctx.log(f"cancel requested after {computed} new rows; finished chunks stay for a resumed run")
                raise InvalidInput("cancelled on request", code="cancelled")
    finally:
        for worker in workers:
            ray.kill(worker)
    return computed


def _input(spec: BatchSpec, workspace, workdir: Path) -> tuple[Path, list[str] | None]:
    """The input as a local path (uploaded files and dataset versions are copied into the job's folder, verified)
    and the feature columns to read."""
    if spec.input:
        return Path(spec.input), spec.columns
    folder = workdir / "input"
    if spec.input_files:
        workspace.blobs.materialize(spec.input_files, folder)
        names = list(spec.input_files)
        single = len(names) == 1 and Path(names[0]).suffix.lower() in (".csv", ".parquet", ".npz")
        return (folder / names[0] if single else folder), spec.columns
    from modelyard.data.datasets import DatasetStore

    store = DatasetStore(workspace)
    version = store.get(spec.dataset)
    if version.kind == "tabular":
        frame, _ = store.load_table(version)
        label = version.schema.get("label")
        table = folder / "table.parquet"
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(table, index=False)
        return table, spec.columns or [c for c in frame.columns if c not in (label, spec.key)]
    if version.kind == "text-classification":  # texts live in the manifest: there are no files to run on
        raise InvalidInput(f"{version.ref} holds texts; batch inference runs on tables and images")
    if version.kind == "text":  # a text model's input: the records' texts as a table (labels stay out of it)
        import pyarrow as pa
        import pyarrow.parquet as pq

        records = [r for r in store.load_texts(version) if "text" in r]
        if not records:
            raise InvalidInput(f"{version.ref} holds {version.schema.get('layout')} records, no texts to classify")
        table = folder / "texts.parquet"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"text": [r["text"] for r in records]}), table)
        return table, ["text"]
    # image datasets: one flat folder (keys are the stored paths with "/" as "__", so names stay unique)
    entries = [e for e in store.manifest(version)["entries"] if not e.get("error")]
    workspace.blobs.materialize({e["path"].replace("/", "__"): e["digest"] for e in entries}, folder)
    return folder, spec.columns


def _assemble(parts: Path, count: int):
    keys: list = []
    pieces: dict[str, list] = {}
    for index in range(count):
        part_keys, outputs = read_part(parts / f"part-{index:06d}.npz")
        keys.extend(part_keys)
        for name, value in outputs.items():
            pieces.setdefault(name, []).append(value)
    return keys, {name: np.concatenate(values, axis=0) for name, values in pieces.items()}


BATCH_PREDICT = JobKind(
    "batch.predict", BatchSpec, run_batch, idempotent=True, max_attempts=5, authorize=authorize_batch,
    description="Batch inference with a registered model over images, a CSV/Parquet table or arrays; resumable.",
)
