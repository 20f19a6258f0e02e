"""Pre-labeling with any registered model: the ``label.propose`` job kind and the predictions of the Label Studio
ML backend.

Images are decoded once, then a **predictor** feeds them to the loaded runner and turns its outputs into
:class:`~modelyard.data.labeling.model.Proposal` values. Predictors are pluggable by the model's task type
(``PREDICTORS``: ``type -> "module:attr"``), so a detection family adds ``"detection"`` (with its own letterboxing
and box decoding) without touching this file's loop. A predictor is
``predict(runner, signature, images, classes, task) -> list[Proposal]`` where ``images`` are ``(item id, pixels)``
(``H x W x C`` uint8) of one batch and ``classes`` the label set the proposals must stay within; boxes are in the
original image's pixels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import InvalidInput
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.data.annotations import Annotated, Box
from modelyard.data.labeling.model import Proposal

# the model's task type -> the predictor turning its outputs into proposals
PREDICTORS: dict[str, str] = {
    "classification": "modelyard.deploy.prelabel:classification_proposals",
    "detection": "modelyard.deploy.prelabel:detection_proposals",
}
# a multi-label proposal names every class at least this probable (and the best one when none is)
MULTILABEL_THRESHOLD = 0.5


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def infer_preprocessed(runner, signature, pixels: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``runner`` on images preprocessed as the signature says (resize, scale, mean/std, layout): the path a
    service and a batch job take, so a proposal is what the deployed model would answer."""
    from modelyard.deploy.images import preprocess

    target = signature.input(signature.image_input)
    batch = np.concatenate([preprocess(p, signature.preprocessing, target) for p in pixels])
    if signature.batchable:
        return runner.infer({target.name: batch})
    rows = [runner.infer({target.name: batch[i:i + 1]}) for i in range(len(batch))]
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def classification_proposals(runner, signature, images: Sequence[tuple[str, np.ndarray]], classes: Sequence[str],
                             task: str) -> list[Proposal]:
    """The classification predictor: the signature's preprocessing, then :func:`class_scores_to_proposals`."""
    if task == "detection":
        raise InvalidInput("a classification model cannot propose boxes; use a detection model")
    if signature.image_input is None:
        raise InvalidInput("the model declares no image preprocessing: it cannot look at images (register it with "
                           "--preprocessing)")
    outputs = infer_preprocessed(runner, signature, [pixels for _, pixels in images])
    items = [(item, int(pixels.shape[1]), int(pixels.shape[0])) for item, pixels in images]
    return class_scores_to_proposals(outputs, signature, items, classes, task)


def class_scores_to_proposals(outputs: dict[str, np.ndarray], signature, items: Sequence[tuple[str, int, int]],
                              classes: Sequence[str], task: str) -> list[Proposal]:
    """A classifier's scores -> one proposal per item ``(id, width, height)``: the best class of the label set
    (``classification``) or every class at least ``MULTILABEL_THRESHOLD`` probable (``multilabel``), with every
    class's score.

    Scores that are not already probabilities (negative, or rows not summing to 1) are passed through a softmax.
    Classes the model knows but the label set lacks are left out (and the rest renormalised); a model sharing no
    class with the label set is refused.
    """
    names = signature.class_names
    if not names:
        raise InvalidInput("the model names no classes (its signature's task.classes); register it with them so "
                           "its outputs can become labels")
    if task == "detection":
        raise InvalidInput("a classification model cannot propose boxes; use a detection model")
    output = signature.task.get("output") or signature.outputs[0].name
    values = np.asarray(outputs[output], dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(names):
        raise InvalidInput(f"output {output!r} has shape {values.shape}; expected one score per class "
                           f"({len(names)}) per image")
    sums = values.sum(axis=1)
    if values.min() < 0 or not np.allclose(sums, 1.0, atol=1e-3):
        values = _softmax(values)
    keep = [i for i, name in enumerate(names) if name in set(classes)]
    if not keep:
        raise InvalidInput(f"the model's classes ({', '.join(names[:10])}) share none with the label set "
                           f"({', '.join(list(classes)[:10])})")
    kept = values[:, keep]
    kept = kept / np.maximum(kept.sum(axis=1, keepdims=True), 1e-12)
    kept_names = [names[i] for i in keep]
    proposals = []
    for row, (item, width, height) in zip(kept, items, strict=True):
        order = np.argsort(-row)
        if task == "multilabel":
            chosen = [kept_names[i] for i in order if row[i] >= MULTILABEL_THRESHOLD] or [kept_names[order[0]]]
            score = float(min(row[kept_names.index(c)] for c in chosen))
        else:
            chosen, score = [kept_names[order[0]]], float(row[order[0]])
        proposals.append(Proposal(Annotated.make(item, width, height, labels=chosen), score,
                                  {n: round(float(v), 6) for n, v in zip(kept_names, row, strict=True)}))
    return proposals


def detection_proposals(runner, signature, images: Sequence[tuple[str, np.ndarray]], classes: Sequence[str],
                        task: str) -> list[Proposal]:
    """The detection predictor: each image through the served preprocessing (letterbox included) and the model's
    declared post-processor, boxes mapped back to the image's pixels; boxes of classes the label set lacks are
    left out. The item's score is its boxes' mean score (0 when the model sees nothing)."""
    from modelyard.deploy.detection import detections

    if task != "detection":
        raise InvalidInput(f"a detection model proposes boxes; this job's task is {task}")
    if signature.image_input is None:
        raise InvalidInput("the model declares no image preprocessing: it cannot look at images")
    wanted = set(classes)
    if not wanted & set((signature.task or {}).get("classes") or []):
        raise InvalidInput(f"the model's classes share none with the label set ({', '.join(list(classes)[:10])})")
    proposals = []
    for item, pixels in images:
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        found = detections(signature, infer_preprocessed(runner, signature, [pixels]), (height, width), None)
        boxes = [Box(*map(float, d["box"]), d["class"], round(float(d["score"]), 6))
                 for d in found if d["class"] in wanted]
        score = float(np.mean([b.score for b in boxes])) if boxes else 0.0
        proposals.append(Proposal(Annotated.make(item, width, height, boxes=boxes), score))
    return proposals


def predictor_for(signature):
    """The predictor registered for the version's task type."""
    from modelyard.core.plugins import load_object

    kind = (signature.task or {}).get("type")
    if kind not in PREDICTORS:
        raise InvalidInput(f"no predictor turns a {kind or 'task-less'} model's outputs into labels (known: "
                           f"{', '.join(PREDICTORS)}); register the model with --task")
    return load_object(PREDICTORS[kind])


def decode_pixels(data: bytes) -> np.ndarray:
    """Encoded image bytes -> ``H x W x C`` uint8 (C is 1 or 3); refused, before decoding, above serving's
    decompression-bomb guard (a few-kB PNG can otherwise decode to gigabytes)."""
    from PIL import Image

    from modelyard.deploy.images import MAX_PIXELS

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InvalidInput(f"an image of {image.width}x{image.height} pixels is too large (at most "
                                   f"{MAX_PIXELS} pixels); resize it first")
            array = np.asarray(image.convert("L" if image.mode in ("L", "I;16", "I") else "RGB"))
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad file
        raise InvalidInput(f"not a readable image ({type(exc).__name__})") from None
    return array[:, :, None] if array.ndim == 2 else array


class Predictor:
    """A loaded version that proposes labels for images. ``close()`` releases the runner."""

    def __init__(self, workspace, model: str, backend: str = "auto", log=None):
        from modelyard.deploy.batch import _artifact
        from modelyard.deploy.loading import load_served
        from modelyard.registry.versions import ModelRegistry

        self.version = ModelRegistry(workspace).get_version(model)
        self.predict = predictor_for(self.version.signature)
        self.backend, self.runner = load_served(self.version, _artifact(workspace, self.version), backend, log=log)

    @property
    def classes(self) -> list[str]:
        return list((self.version.signature.task or {}).get("classes") or [])

    def propose(self, images: Sequence[tuple[str, bytes]], classes: Sequence[str], task: str) -> list[Proposal]:
        """Proposals for ``(item id, encoded bytes)`` images, restricted to ``classes``."""
        if not images:
            return []
        decoded = []
        for item, data in images:
            try:
                decoded.append((item, decode_pixels(data)))
            except InvalidInput as exc:
                raise InvalidInput(f"{item}: {exc}") from None
        proposals = self.predict(self.runner, self.version.signature, decoded, classes, task)
        return [Proposal(p.annotated, p.score, p.scores, model=self.version.ref) for p in proposals]

    def close(self) -> None:
        self.runner.close()


# -- the job kind ---------------------------------------------------------------------------------------------------
class ProposeSpec(BaseModel):
    """Args:
        job: the labeling job whose unlabeled items get proposals.
        model: a registered model, ``N@V``, ``N@alias`` or ``N`` (its latest version).
        backend: ``auto`` or ``backend:device``.
        batch_size: images per inference (also the unit of progress). Default 32.
        limit: propose for at most this many items (queue order); default all unlabeled ones.
    """

    model_config = ConfigDict(extra="forbid")
    job: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=220)
    backend: str = Field(default="auto", max_length=64)
    batch_size: int = Field(default=32, ge=1, le=1024)
    limit: int | None = Field(default=None, ge=1)


def authorize_propose(spec: ProposeSpec, caller, workspace) -> None:
    """The labeling job and the model exist; only the job's owner or an admin runs proposals on it."""
    from modelyard.data.labeling.rows import require_manager
    from modelyard.data.labeling.service import LabelingStore
    from modelyard.registry.versions import ModelRegistry

    job = LabelingStore(workspace).get(spec.job)
    require_manager(job, caller, "run proposals")
    ModelRegistry(workspace).get_version(spec.model)


def run_propose(spec: ProposeSpec, ctx: JobContext) -> dict:
    from modelyard.core.settings import Settings
    from modelyard.data.labeling.service import LabelingStore
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(ctx.home), create=False)
    try:
        store = LabelingStore(workspace)
        job, items = store.unlabeled(spec.job)
        items = [i for i in items if i.digest][:spec.limit] if spec.limit else [i for i in items if i.digest]
        predictor = Predictor(workspace, spec.model, spec.backend, log=ctx.log)
        try:
            ctx.log(f"{predictor.version.ref} on {predictor.backend.full_name}: proposing for {len(items)} item(s) of "
                    f"{job.name} ({job.task}, {len(job.classes)} classes)")
            proposed = skipped = 0
            for start in range(0, len(items), spec.batch_size):
                if ctx.cancelled():
                    ctx.log(f"cancel requested after {proposed} proposals; they are kept")
                    break
                chunk = items[start:start + spec.batch_size]
                images = [(i.item, workspace.blobs.read_bytes(i.digest)) for i in chunk]
                counts = store.record_proposals(job.name, predictor.propose(images, job.classes, job.task))
                proposed, skipped = proposed + counts["proposed"], skipped + counts["skipped"]
                done = min(len(items), start + spec.batch_size)
                ctx.progress(done / max(1, len(items)), f"{done}/{len(items)} items")
        finally:
            predictor.close()
        result = {"schema": "modelyard.label-propose/1", "job": job.name, "model": predictor.version.ref,
                  "items": len(items), "proposed": proposed, "skipped_labeled_meanwhile": skipped,
                  "hard": store.items(job.name, state=["proposed"], hard=True, limit=1)["total"]}
    finally:
        workspace.close()
    ctx.log(f"proposed labels for {proposed} item(s); {skipped} were labeled meanwhile")
    return result


PROPOSE = JobKind(
    "label.propose",
    ProposeSpec,
    run_propose,
    idempotent=True,  # a rerun replaces proposals of items still unlabeled; labeled items are never touched
    description="Pre-label a labeling job's unlabeled items with a registered model's proposals and scores.",
    authorize=authorize_propose,
)
