"""Edge bundles: ``package(MODEL@V, target)`` turns a registered ONNX model into one signed file for a device class.

Packaging reuses the migration passes: structured channel pruning (fine-tuned on the model's training images when it
came from Modelyard's own training), magnitude pruning and INT8 static quantisation (the ``int8-static`` pass,
calibrated on a registered dataset version), each kept only when the compare engine's gate
(``migrate.optimize.gate``) accepts it against the float model (max accuracy drop, default 1 %). The manifest carries
size and batch-1 latency before/after, the gate's verdicts, the input/output signature and the runtime the device
needs. The platform's Ed25519 key (created on first use, ``<home>/edge/signing-key.pem``, owner-only) signs it;
agents trust its public key from activation.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.edge.agent.bundle_file import write_bundle
from modelyard.store.db import as_utc
from modelyard.store.schema_edge import edge_bundles
from modelyard.store.workspace import Workspace

# device classes: the runtime each needs on the device, and whether this machine can produce its artifact
TARGETS: dict[str, dict] = {
    "cpu-x86": {"runtime": "onnxruntime:cpu", "arch": "x86_64"},
    "cpu-arm": {"runtime": "onnxruntime:cpu", "arch": "aarch64"},
    "openvino-cpu": {"runtime": "openvino:cpu", "arch": "x86_64"},
    "ascend-310": {"runtime": "acl:npu", "arch": "aarch64"},
}
ASCEND_REFUSAL = ("target ascend-310 needs an offline model (.om) built by Huawei's ATC compiler from the CANN "
                  "toolkit (atc --model=model.onnx --framework=5 --soc_version=Ascend310 --output=model), which this "
                  "machine does not have; see docs/edge.md for the steps")
PRUNE_SPARSITY = 0.3
# share of each qualifying Conv's output channels structured pruning removes (edge/channel_pruning.py)
CHANNEL_PRUNE_RATIO = 0.25
# the compare engine's numeric class for pruned models: pruning is lossy by design, so it is judged on the accuracy
# drop with the tolerances of a lossy conversion (INT8's), not fp32's exactness (an SQNR of 80 dB refused a pruned
# model whose outputs moved by 0.002 %)
LOSSY = "int8"
LATENCY_RUNS = 20


def signing_key(home: Path) -> bytes:
    """The platform's Ed25519 private key (PEM), created atomically on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(home) / "edge" / "signing-key.pem"
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # unique per caller, not per process: the server activates devices on several threads at once
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    fd = os.open(scratch, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        os.link(scratch, path)  # first writer wins; a concurrent one reads the winner's key
    except FileExistsError:
        pass
    finally:
        scratch.unlink()
    return path.read_bytes()


def public_key_hex(home: Path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(signing_key(home), password=None).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _latency_ms(runtime: str, artifact, feeds: dict) -> float:
    from modelyard.runtime.registry import get_backend

    with get_backend(runtime).load(artifact) as runner:
        runner.infer(feeds)
        times = []
        for _ in range(LATENCY_RUNS):
            started = time.perf_counter()
            runner.infer(feeds)
            times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 4)


def magnitude_prune(source: Path, dest: Path, sparsity: float) -> int:
    """Zero the ``sparsity`` share of smallest-magnitude weights of every MatMul/Gemm/Conv weight initializer.
    Returns the number of weights zeroed."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    weights = {node.input[1] for node in model.graph.node if node.op_type in ("MatMul", "Gemm", "Conv")
               and len(node.input) > 1}
    zeroed = 0
    for index, init in enumerate(model.graph.initializer):
        if init.name not in weights:
            continue
        array = numpy_helper.to_array(init)
        if array.dtype != np.float32 or array.size < 4:
            continue
        threshold = np.quantile(np.abs(array), sparsity)
        mask = np.abs(array) <= threshold
        zeroed += int(mask.sum())
        model.graph.initializer[index].CopyFrom(numpy_helper.from_array(np.where(mask, 0, array).astype(np.float32),
                                                                        init.name))
    onnx.save(model, str(dest))
    return zeroed


def _gate(spec, reference, runtime: str, artifact, numeric_class: str, max_drop: float) -> dict:
    from modelyard.migrate.optimize.gate import gate
    from modelyard.runtime.registry import get_backend

    with get_backend(runtime).load(artifact) as runner:
        result = gate(spec, reference, runner, numeric_class, max_drop)
    return {k: result.get(k) for k in ("accepted", "reason", "metric", "value", "drop", "verdict", "samples")}


def optimise(spec, onnx_path: Path, runtime: str, work: Path, int8: bool, prune: bool, max_drop: float,
             samples: int = 16, progress=None, data: Path | None = None, training=None) -> tuple[Path, dict]:
    """Run pruning then INT8 on ``onnx_path``, each kept only when the gate accepts it; returns the chosen file and
    the figures (size and latency before/after, each step's verdict). ``data`` (an ``.npz`` of real inputs)
    calibrates INT8 and is what the gate judges on; without it both use seeded random inputs. ``training``
    (``(x, y)``, the labelled images a classifier was trained on) fine-tunes the channel-pruned model, or says why
    not (a string)."""
    from modelyard.migrate.model.passes import get_pass
    from modelyard.migrate.optimize.gate import ReferenceOutputs
    from modelyard.runtime.feeds import random_feeds
    from modelyard.runtime.spec import Artifact

    float_artifact = Artifact("onnx", onnx_path, spec)
    one = next(random_feeds(spec, 1))
    figures: dict = {"float": {"size_bytes": onnx_path.stat().st_size,
                               "latency_ms_batch1": _latency_ms(runtime, float_artifact, one)},
                     "max_accuracy_drop": max_drop, "steps": []}
    reference = ReferenceOutputs.collect(spec, runtime, float_artifact, samples, data=data)
    chosen = onnx_path
    step = progress or (lambda *_: None)
    if prune:
        from modelyard.edge.channel_pruning import structured_prune

        step(0.15, "pruning channels (structured), gated against the float model")
        slim = work / "model.channels.onnx"
        removed = structured_prune(chosen, slim, CHANNEL_PRUNE_RATIO)
        if removed["layers"]:
            tuned = None
            if isinstance(training, tuple):
                from modelyard.edge.fine_tune import fine_tune_classifier

                step(0.2, "fine-tuning the channel-pruned model on its training data")
                try:
                    tuned = fine_tune_classifier(slim, slim, *training)
                except InvalidInput as exc:  # e.g. an operator the torch runner lacks: gate it untuned
                    tuned = {"skipped": str(exc)}
            else:
                tuned = {"skipped": training or "no training data: the model's lineage names no image dataset"}
            verdict = _gate(spec, reference, runtime, Artifact("onnx", slim, spec), LOSSY, max_drop)
            figures["steps"].append({"step": "prune-channels", "ratio": CHANNEL_PRUNE_RATIO, **removed,
                                     "fine_tuned": tuned, "size_bytes": slim.stat().st_size, **verdict})
            if verdict["accepted"]:
                chosen = slim
        step(0.3, "pruning (magnitude), gated against the float model")
        pruned = work / "model.pruned.onnx"
        zeroed = magnitude_prune(chosen, pruned, PRUNE_SPARSITY)
        verdict = _gate(spec, reference, runtime, Artifact("onnx", pruned, spec), LOSSY, max_drop)
        figures["steps"].append({"step": "prune-magnitude", "sparsity": PRUNE_SPARSITY, "zeroed": zeroed, **verdict})
        if verdict["accepted"]:
            chosen = pruned
    if int8:
        step(0.5, "INT8 static quantisation, gated against the float model")
        config = {"samples": samples, **({"calibration": str(data)} if data is not None else {})}
        result = get_pass("int8-static").run(Artifact("onnx", chosen, spec), config, work / "int8")
        candidate = result.artifact.path
        verdict = _gate(spec, reference, runtime, Artifact("onnx", candidate, spec), "int8", max_drop)
        figures["steps"].append({"step": "int8-static", **verdict})
        if verdict["accepted"]:
            chosen = candidate
    final = Artifact("onnx", chosen, spec)
    figures["final"] = {"size_bytes": chosen.stat().st_size, "latency_ms_batch1": _latency_ms(runtime, final, one)}
    figures["applied"] = [s["step"] for s in figures["steps"] if s["accepted"]]
    return chosen, figures


class Bundles:
    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.engine = workspace.engine

    def package(self, model_ref: str, target: str, *, int8: bool = True, prune: bool = True,
                max_accuracy_drop: float = 0.01, created_by: str = "", progress=None,
                calibration: str | None = None) -> dict:
        """Package ``model_ref`` for ``target`` into a signed bundle stored in the blob store (the ``edge.package``
        job kind runs this; ``progress(fraction, message)`` hears each step).

        INT8 is calibrated on a dataset version: ``calibration`` (``NAME@VERSION``) or the one in the model's
        lineage (a clear error when there is neither); the gate judges every step on those samples."""
        import numpy as np

        from modelyard.registry.resolve import resolve, version_spec
        from modelyard.runtime.feeds import random_feeds

        if target not in TARGETS:
            raise InvalidInput(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
        if target == "ascend-310":
            raise InvalidInput(ASCEND_REFUSAL)
        if not 0 <= max_accuracy_drop <= 1:
            raise InvalidInput("max_accuracy_drop must be between 0 and 1")
        runtime = TARGETS[target]["runtime"]
        resolved = resolve(self.workspace, model_ref)
        version = resolved.version
        if version.format != "onnx":
            raise InvalidInput(f"{version.ref} is a {version.format} model; edge bundles package ONNX models "
                               "(convert it with 'modelyard migrate model convert' and register the result)")
        spec = version_spec(resolved)
        from modelyard.edge.calibration import calibration_ref, dataset_feeds, training_images

        data_ref = calibration_ref(version, calibration) if int8 else (
            calibration or (version.lineage or {}).get("dataset"))
        with tempfile.TemporaryDirectory(prefix="edge-package-") as tmp:
            work = Path(tmp)
            data, calibrated_on = None, {"dataset": None, "kind": "seeded random inputs"}
            if data_ref:
                data = work / "calibration.npz"
                try:
                    calibrated_on = dataset_feeds(self.workspace, data_ref, spec, data)
                except InvalidInput as exc:
                    if int8:
                        raise
                    # without INT8 the samples only feed the gate: the lineage's data not fitting is no reason to stop
                    data, calibrated_on = None, {**calibrated_on, "why": exc.message}
            training = None
            trained_on = (version.lineage or {}).get("dataset")
            if prune and trained_on:
                # the model came from Modelyard's training: the channel-pruned model is fine-tuned on that data
                classes = [c for c in (version.tags.get("classes") or "").split(",") if c] or None
                training = training_images(self.workspace, trained_on, spec, classes) or (
                    f"{trained_on} is not an image-classification dataset: fine-tuning covers classifiers")
            chosen, figures = optimise(spec, resolved.path, runtime, work, int8, prune, max_accuracy_drop,
                                       samples=calibrated_on["samples"] if data is not None else 16, progress=progress,
                                       data=data, training=training)
            figures["samples_from"] = calibrated_on
            if progress is not None:
                progress(0.9, "signing the bundle")
            model_file = work / "model.onnx"
            shutil.copyfile(chosen, model_file)
            samples_file = work / "samples.npz"
            feeds = list(random_feeds(spec, 4, seed=1))
            np.savez(samples_file, **{name: np.stack([f[name] for f in feeds]) for name in feeds[0]})
            bundle_id = new_id("bdl")
            manifest = {
                "bundle": bundle_id, "model": version.ref, "target": target, "runtime": runtime,
                "arch": TARGETS[target]["arch"], "created_at": isoformat(utcnow()),
                "model_files": {name: info["digest"] for name, info in version.files.items()},
                "spec": {"onnx": "model.onnx", "inputs": [i.model_dump(mode="json", exclude_none=True, exclude={"data"})
                                                          for i in spec.inputs],
                         "outputs": list(spec.outputs or [])},
                "signature": {"inputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)}
                                         for t in version.signature.inputs],
                              "outputs": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)}
                                          for t in version.signature.outputs]},
                "preprocessing": version.signature.preprocessing or None,
                "samples": "samples.npz",
                "figures": figures,
            }
            out = work / "bundle.myb"
            write_bundle(out, manifest, {"model.onnx": model_file, "samples.npz": samples_file},
                         signing_key(self.workspace.home))
            info = self.workspace.blobs.put_file(out)
            from modelyard.edge.agent.bundle_file import read_manifest

            signed = read_manifest(out, public_key_hex(self.workspace.home))
        with self.engine.begin() as conn:
            conn.execute(edge_bundles.insert().values(
                id=bundle_id, model_ref=version.ref, target=target, digest=info.digest, size=info.size,
                manifest=signed, created_by=created_by, created_at=utcnow()))
        return self.get(bundle_id)

    def get(self, bundle_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(edge_bundles).where(edge_bundles.c.id == bundle_id)).first()
        if row is None:
            raise NotFound(f"bundle {bundle_id} not found")
        return _view(row)

    def list(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(edge_bundles).order_by(edge_bundles.c.created_at)).all()
        return [_view(r) for r in rows]

    def path(self, bundle_id: str) -> Path:
        bundle = self.get(bundle_id)
        return self.workspace.blobs.path_for(bundle["digest"])


def _view(row) -> dict:
    figures = row.manifest.get("figures", {})
    return {"schema": "modelyard.edge-bundle/1", "id": row.id, "model": row.model_ref, "target": row.target,
            "digest": row.digest, "size": row.size, "runtime": row.manifest.get("runtime"),
            "figures": figures, "manifest": row.manifest, "created_by": row.created_by,
            "created_at": isoformat(as_utc(row.created_at))}
