"""Batch inference: the ``batch.predict`` job kind (``modelyard batch N@V --input ... --output ...``).

The input is cut into fixed chunks; each finished chunk is written atomically as a part file under
``<output>.parts/`` before the next starts. A run that crashed (worker killed, machine lost) and is re-queued,
or a job re-submitted with the same spec, skips the parts that exist, so no row is computed twice into the
output and none is lost; the final output is assembled from the parts in order, checked (every key exactly once)
and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelyard.core.errors import IntegrityError, InvalidInput
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.deploy.batch_io import OUTPUT_SUFFIXES, iter_chunks, open_source, read_part, write_output, write_part


class BatchSpec(BaseModel):
    """Args:
        model: ``N@V``, ``N@alias`` or ``N`` (resolved when the job starts and recorded in the result).
        input: a folder of images, a ``.csv``/``.parquet`` table or an ``.npz`` file (absolute path on the
            machine that runs the job).
        output: ``.parquet``, ``.csv`` or ``.npz`` file to write.
        key: table column / npz array naming each row (default: the row number; images: the file name).
        columns: feature columns of a table, in order (default: every column but the key).
        chunk_size: rows per chunk (the unit of progress and of resumption). Default 256.
        backend: ``auto`` or ``backend:device``.
        max_rows_per_second: throttle, to leave cores to real-time services on the same machine.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=220)
    input: str = Field(min_length=1)
    output: str = Field(min_length=1)
    key: str | None = None
    columns: list[str] | None = None
    chunk_size: int = Field(default=256, ge=1, le=100_000)
    backend: str = "auto"
    max_rows_per_second: float | None = Field(default=None, gt=0)

    @field_validator("input", "output")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not Path(value).is_absolute():
            raise ValueError(f"{value!r} must be an absolute path (the job runs in another folder)")
        return value

    @field_validator("output")
    @classmethod
    def _output_format(cls, value: str) -> str:
        if Path(value).suffix.lower() not in OUTPUT_SUFFIXES:
            raise ValueError(f"output must end in {', '.join(OUTPUT_SUFFIXES)}")
        return value


def _fingerprint(spec: BatchSpec, version_id: str) -> str:
    data = spec.model_dump(mode="json")
    data.pop("max_rows_per_second")
    data.pop("backend")
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
    from modelyard.registry.versions import ModelRegistry
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(ctx.home), create=False)
    try:
        version = ModelRegistry(workspace).get_version(spec.model)
        artifact = _artifact(workspace, version)
    finally:
        workspace.close()
    backend, runner = load_served(version, artifact, spec.backend, log=ctx.log)
    source = open_source(Path(spec.input), version.signature, spec.key, spec.columns)
    total = len(source)
    if len(set(map(str, source.keys))) != total:
        raise InvalidInput(f"input keys are not unique ({total} rows); name a unique --key")
    output = Path(spec.output)
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
    ctx.log(f"{version.ref} on {backend.full_name}: {total} rows from {spec.input} ({source.kind}), "
            f"{len(chunks)} chunk(s) of {spec.chunk_size}")
    batchable = version.signature.batchable
    computed, started = 0, time.monotonic()
    for index, start, stop in chunks:
        if index in done:
            continue
        if ctx.cancelled():
            ctx.log(f"cancel requested after {computed} new rows; finished chunks stay for a resumed run")
            raise InvalidInput("cancelled on request", code="cancelled")
        feeds = source.read(start, stop)
        if batchable:
            outputs = runner.infer(feeds)
        else:
            rows = [runner.infer({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(stop - start)]
            outputs = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
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
    key_name = spec.key or ("file" if source.kind == "images" else "row")
    write_output(output, key_name, keys, merged)
    shutil.rmtree(parts)
    ctx.log(f"wrote {total} rows to {output} ({computed} computed in this run)")
    return {"schema": "modelyard.batch/1", "model": version.ref, "input": spec.input, "output": str(output),
            "rows": total, "computed_this_run": computed, "chunks": len(chunks), "backend": backend.full_name,
            "outputs": sorted(merged)}


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
    "batch.predict", BatchSpec, run_batch, idempotent=True, max_attempts=5,
    description="Batch inference with a registered model over images, a CSV/Parquet table or arrays; resumable.",
)
