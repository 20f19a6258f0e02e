"""The ``automl.train`` job: check the dataset version, search, register the winner, track the run.

The job is the unit the CLI, the API and the console all see: its progress is the search's, its log has one line
per candidate, its result is the ``modelyard.automl/1`` document, and a tracked run (experiment ``automl``) keeps
the per-trial scores and the artifacts. The winner becomes a version of the registry model ``name`` with its
signature, metrics, dataset lineage and a model card, ready for ``modelyard deploy``.
"""

from __future__ import annotations

import json
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import InvalidInput, ModelyardError
from modelyard.core.jobkind import JobContext, JobKind

RESULT_SCHEMA = "modelyard.automl/1"


class AutomlSpec(BaseModel):
    """Args:
        dataset: the dataset version to train on, ``NAME@VERSION``.
        name: the registry model the winner is registered as.
        task: ``auto`` (from the dataset), ``classification``, ``regression``, ``image-classification`` or
            ``detection`` (an ``object-detection`` dataset).
        time_budget_s: wall-clock budget of the search and refit (default 60).
        max_trials: stop after this many candidates (tabular: Optuna trials; images: CNN candidates, each trained
            for a fixed number of steps), or at the time budget, whichever comes first. With a seed and a budget
            that is not reached, the search does the same work and returns the same model however busy the
            machine is. Default: no limit (the budget alone decides).
        max_latency_ms: reject candidates whose p95 single-request latency on onnxruntime exceeds this.
        metric: what to optimise (default accuracy for classification, r2 for regression, map50_95 for
            detection; detection also takes map50).
        input_size: detection: the detector's square input side in pixels (a multiple of 16); default: searched
            around the dataset's median image side.
        backbone: detection: ``sha256:...`` of a safetensors file in the blob store (``modelyard blobs put``) with
            backbone weights to fine-tune from (saved by ``train.detectors.network.save_backbone``; it fixes the
            width and depth). Nothing is downloaded.
        ensemble: try a soft-voting ensemble of the best few tabular candidates.
        refit: tabular: refit the winner on train + validation when the budget allows (default true). False keeps
            the validation split held out, for ``evaluate --split validation``.
        families: tabular model families to search (default all: lightgbm, linear, random_forest, extra_trees).
        seed: seeds the search and the models.
        register_winner: register the winner in the model registry (default true).
        description: text for the model card.
    """

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=100)
    task: Literal["auto", "classification", "regression", "image-classification", "detection"] = "auto"
    time_budget_s: float = Field(default=60.0, gt=0, le=7 * 24 * 3600)
    max_trials: int | None = Field(default=None, ge=1, le=100_000)
    max_latency_ms: float | None = Field(default=None, gt=0)
    metric: str | None = None
    input_size: int | None = Field(default=None, ge=32, le=1024, multiple_of=16)
    backbone: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    ensemble: bool = True
    refit: bool = True
    families: list[str] | None = None
    seed: int = 0
    register_winner: bool = True
    description: str = Field(default="", max_length=10_000)


def _open_workspace(ctx: JobContext):
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    return Workspace.open(Settings.load(ctx.home), create=False, migrate=False)


def _resolve_task(spec: AutomlSpec, version) -> str:
    actual = {"image-classification": "image-classification", "object-detection": "detection"}.get(
        version.kind) or version.schema["task"]
    if spec.task not in ("auto", actual):
        hint = " (re-import it with --task classification)" if spec.task == "classification" else ""
        raise InvalidInput(f"task {spec.task!r} does not fit {version.ref}, which holds {actual} data{hint}")
    return actual


def run_automl(spec: AutomlSpec, ctx: JobContext) -> dict:
    """Run one AutoML job; returns the ``modelyard.automl/1`` result."""
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.refs import check_name
    from modelyard.train.tracking import RunStore

    check_name(spec.name, "model name")
    workspace = _open_workspace(ctx)
    try:
        store = DatasetStore(workspace)
        version = store.get(spec.dataset)
        task = _resolve_task(spec, version)
        verdict = store.check(version)
        if not verdict:
            raise InvalidInput(str(verdict).splitlines()[0])
        for warning in verdict.warnings:
            ctx.log(f"warning: {warning}")
        runs = RunStore(workspace)
        run = runs.create(f"automl-{spec.name}", experiment="automl", params=spec.model_dump(mode="json"),
                          tags={"task": task, "kind": "automl.train"}, dataset=version.ref, job_id=ctx.job_id)
        ctx.log(f"run {run.id}: AutoML on {version.ref} ({task}), budget {spec.time_budget_s}s"
                + (f", at most {spec.max_trials} trials" if spec.max_trials else "")
                + (f", max latency {spec.max_latency_ms} ms" if spec.max_latency_ms else ""))
        try:
            result = _train(spec, ctx, workspace, store, version, task, runs, run.id)
        except BaseException as exc:
            status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
            runs.finish(run.id, status, str(exc) if isinstance(exc, ModelyardError) else f"{type(exc).__name__}: {exc}")
            raise
        runs.finish(run.id)
        return result
    finally:
        workspace.close()


def _train(spec, ctx, workspace, store, version, task, runs, run_id) -> dict:
    started = time.monotonic()

    def on_trial(entry: dict) -> None:
        if entry["score"] is not None and entry["trial"] >= 0:
            points = [{"key": "trial_score", "value": entry["score"], "step": entry["trial"]}]
            if entry["latency_ms"] is not None:
                points.append({"key": "trial_latency_ms", "value": entry["latency_ms"], "step": entry["trial"]})
            runs.log_metrics(run_id, points)
        runs.log_lines(run_id, [json.dumps(entry)])

    if task == "image-classification":
        from modelyard.train.automl_image import search_images

        search = search_images(store, version, time_budget_s=spec.time_budget_s, max_trials=spec.max_trials,
                               max_latency_ms=spec.max_latency_ms, metric=spec.metric, seed=spec.seed,
                               progress=ctx.progress, log=ctx.log, cancelled=ctx.cancelled, on_trial=on_trial)
        source_format = "torch"
        task_info = {"type": "classification", "output": "probabilities", "classes": list(search.classes)}
        preprocessing = search.preprocessing
    elif task == "detection":
        from modelyard.train.automl_detection import search_detection

        backbone = None
        if spec.backbone:
            backbone = ctx.workdir / "backbone.safetensors"
            backbone.write_bytes(workspace.blobs.read_bytes(spec.backbone.removeprefix("sha256:")))
        search = search_detection(store, version, time_budget_s=spec.time_budget_s, max_trials=spec.max_trials,
                                  max_latency_ms=spec.max_latency_ms, metric=spec.metric,
                                  input_size=spec.input_size, backbone=backbone, seed=spec.seed,
                                  progress=ctx.progress, log=ctx.log, cancelled=ctx.cancelled, on_trial=on_trial)
        source_format = "torch"
        # the graph decodes: boxes (N, K, 4) xyxy in input pixels, scores (N, K), classes (N, K) into `classes`
        task_info = {"type": "detection", "output": "boxes", "classes": list(search.classes)}
        preprocessing = search.preprocessing
    else:
        from modelyard.train.automl_tabular import search_tabular
        from modelyard.train.tabular_families import FAMILIES

        frame, split = store.load_table(version)
        search = search_tabular(frame, split, version.schema, metric=spec.metric, time_budget_s=spec.time_budget_s,
                                max_trials=spec.max_trials,
                                max_latency_ms=spec.max_latency_ms, families=tuple(spec.families or FAMILIES),
                                ensemble=spec.ensemble, refit=spec.refit, seed=spec.seed, progress=ctx.progress,
                                log=ctx.log,
                                cancelled=ctx.cancelled, on_trial=on_trial,
                                on_ray=workspace.settings.executor == "ray")
        family = search.winner["family"]
        source_format = "lightgbm" if family == "lightgbm" else "sklearn"
        task_info = ({"type": "classification", "output": "probabilities", "classes": list(search.classes)}
                     if task == "classification" else {"type": "regression", "output": "variable"})
        preprocessing = None
    ctx.log(f"winner: {search}")
    # which rows of the version the registered model was fitted on: evaluate warns when it is asked to measure them
    fit_splits = (["train", "validation"] if search.refitted and task not in ("image-classification", "detection")
                  else ["train"])
    model_path = ctx.workdir / "model.onnx"
    model_path.write_bytes(search.onnx)
    summary = search.to_dict()
    summary_path = ctx.workdir / "automl.json"
    summary_path.write_text(json.dumps({"dataset": version.ref, **summary}, indent=2))
    model_blob = workspace.blobs.put_file(model_path)
    summary_blob = workspace.blobs.put_file(summary_path)
    runs.add_artifact(run_id, "model.onnx", model_blob.digest)
    runs.add_artifact(run_id, "automl.json", summary_blob.digest)
    score = search.winner["score"]
    final_metrics = {f"val_{search.metric}": score, "latency_p95_ms": search.latency["p95_ms"],
                     "latency_p50_ms": search.latency["p50_ms"], "trials": search.trials}
    if task == "detection":
        final_metrics.update(val_map50=search.winner["map50"], val_map50_95=search.winner["map50_95"],
                             parameters=search.winner["parameters"])
    runs.log_metrics(run_id, [{"key": k, "value": float(v)} for k, v in final_metrics.items()])
    model_ref = None
    if spec.register_winner:
        from modelyard.registry.versions import ModelRegistry

        ctx.progress(0.97, "registering the winner")
        registered = ModelRegistry(workspace).create_version(
            spec.name,
            {"model.onnx": "sha256:" + model_blob.digest, "automl.json": "sha256:" + summary_blob.digest},
            "model.onnx",
            source_format,
            preprocessing=preprocessing,
            task=task_info,
            metrics={f"val_{search.metric}": float(score), "latency_p95_ms": search.latency["p95_ms"],
                     **({"val_map50": float(search.winner["map50"])} if task == "detection" else {})},
            tags={"automl": task, "family": search.winner["family"], "dataset": version.ref,
                  "classes": ",".join(search.classes)[:1000],
                  **({"input_size": str(search.preprocessing["size"][0]), "letterbox": "center,pad=114"}
                     if task == "detection" else {})},
            lineage={"dataset": version.ref, "dataset_id": version.id, "dataset_manifest": version.manifest_digest,
                     "fit_splits": fit_splits, "selected_on": "validation", "job": ctx.job_id, "run": run_id},
            description=_card(spec, version, search),
            created_by=f"automl job {ctx.job_id}",
        )
        model_ref = registered.ref
        runs.set_model(run_id, model_ref)
        ctx.log(f"registered {model_ref}")
    return {
        "schema": RESULT_SCHEMA,
        "model": model_ref,
        "task": task,
        "dataset": version.ref,
        "metric": search.metric,
        "score": score,
        "higher_is_better": search.higher_is_better,
        "latency_ms": search.latency["p95_ms"],
        "max_latency_ms": spec.max_latency_ms,
        "winner": search.winner,
        "leaderboard": [
            {"family": e["family"], "params": e["params"], "score": e["score"], "latency_ms": e["latency_ms"],
             "accepted": e["accepted"], **({"error": e["error"]} if e.get("error") else {})}
            for e in search.leaderboard
        ],
        "classes": list(search.classes),
        "trials": search.trials,
        "refitted": search.refitted,
        "fit_splits": fit_splits,
        "stop_reason": search.stop_reason,
        "max_trials": spec.max_trials,
        "seconds": round(time.monotonic() - started, 2),
        "run": run_id,
        "artifacts": {"model": "sha256:" + model_blob.digest, "summary": "sha256:" + summary_blob.digest},
    }


def _card(spec: AutomlSpec, version, search) -> str:
    """The description part of the registry's model card: how the model was found and how good it is."""
    lines = [
        spec.description or f"Trained by Modelyard AutoML on {version.ref}.",
        "",
        f"- **Task:** {search.task}; optimised **{search.metric}** on the validation split of {version.ref} "
        f"({version.split['counts'].get('validation', 0)} items, seed {version.split.get('seed')}).",
        f"- **Winner:** {search.winner['family']} with validation {search.metric} {search.winner['score']:.4f}; "
        f"single-request latency p95 {search.latency['p95_ms']:.3f} ms on onnxruntime CPU (batch 1, one thread)"
        + (f", limit {spec.max_latency_ms} ms" if spec.max_latency_ms else "") + ".",
        f"- **Search:** {search.trials} candidates in {search.seconds:.1f}s (budget {spec.time_budget_s}s"
        + (f", at most {spec.max_trials} trials" if spec.max_trials else "") + "), stopped by "
        f"{search.stop_reason}; " + ("refitted on train + validation." if search.refitted else "trained on the train "
                                                                                                 "split."),
    ]
    if search.classes:
        lines.append(f"- **Classes:** {', '.join(search.classes[:50])}")
    if search.task == "detection":
        size = search.preprocessing["size"][0]
        winner = search.winner
        lines += [
            f"- **Detector:** CenterNet-style, width {winner['params']['width']}, depth {winner['params']['depth']}, "
            f"{winner['parameters']:,} parameters; validation mAP50 {winner['map50']:.4f}, mAP50-95 "
            f"{winner['map50_95']:.4f}.",
            f"- **Input:** `image` float32 (N, 3, {size}, {size}), RGB scaled to 0..1, letterboxed: scaled by "
            f"{size} / max(height, width), centred on a grey (114) canvas.",
            "- **Outputs (decoded in the graph):** `boxes` (N, K, 4) xyxy in input pixels, `scores` (N, K) best "
            "first, `classes` (N, K) indices into the classes above; undo the letterbox to get image pixels.",
        ]
    lines += ["", "| rank | family | score | latency p95 ms | accepted |", "|---|---|---|---|---|"]
    for rank, entry in enumerate(search.leaderboard[:5], start=1):
        latency = "-" if entry["latency_ms"] is None else f"{entry['latency_ms']:.3f}"
        lines.append(f"| {rank} | {entry['family']} | {entry['score']} | {latency} | {entry['accepted']} |")
    return "\n".join(lines)


def authorize_automl(spec: AutomlSpec, _caller, workspace) -> None:
    """At submit: the model name is valid and the dataset version exists (an unknown one is a 404, not a failed
    job)."""
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.refs import check_name

    check_name(spec.name, "model name")
    DatasetStore(workspace).get(spec.dataset)
    if spec.backbone:
        workspace.blobs.info(spec.backbone.removeprefix("sha256:"))  # an unknown blob is a 404 at submit


AUTOML = JobKind(
    "automl.train",
    AutomlSpec,
    run_automl,
    idempotent=False,
    authorize=authorize_automl,
    description="AutoML on a dataset version (tabular, image classification or detection) under a time budget, an "
                "optional trial count and a latency limit measured on onnxruntime; registers the winner.",
)
