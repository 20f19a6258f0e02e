"""Code-free skills: a detector (any ONNX model with the boxes/scores/classes contract) plus one rule template.

``market.publish_template`` writes a skill whose ``logic.py`` is three lines naming a rule and whose ``model.onnx`` is
the registered model's file; the rule's code lives here, on every device that has the skill runtime.

Rules (per-channel settings in the channel config):

- ``zone-count``: boxes (optionally of ``classes``, above ``min_score``) whose centre lies in ``zone``
  ([x0, y0, x1, y1] as shares of the frame); an event when the count changes.
- ``line-crossing``: centres matched frame to frame (nearest, within ``max_step`` of the frame); an event when one
  crosses ``line`` ([x0, y0, x1, y1]), with the running total.
- ``class-seen``: an event when class ``class_id`` is seen in ``frames`` consecutive frames (once per streak).
- ``classifier-seen`` (on a classifier): an event when the frame's top class is ``class_id`` with a probability of at
  least ``min_score`` in ``frames`` consecutive frames (once per streak). Its inference carries ``probabilities``, so
  the ``cross_entropy`` hard-example filter applies.

Every rule takes ``thumbnail: true`` (events carry a small JPEG of the frame) and ``hard_examples`` (a filter,
``filters.is_hard``) in the channel config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TEMPLATES = ("zone-count", "line-crossing", "class-seen", "classifier-seen")
# templates on an image classifier (any ONNX model: one [N, 3, H, W] input, one [N, classes] output of logits or
# probabilities); the others take a detector
CLASSIFIER_TEMPLATES = ("classifier-seen",)
CHANNEL_SCHEMAS = {
    "zone-count": {"zone": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}},
    "line-crossing": {"line": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
                      "max_step": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
    "class-seen": {"class_id": {"type": "integer", "minimum": 0}, "frames": {"type": "integer", "minimum": 1}},
    "classifier-seen": {"class_id": {"type": "integer", "minimum": 0}, "frames": {"type": "integer", "minimum": 1}},
}
COMMON_SCHEMA = {"classes": {"type": "array", "items": {"type": "integer"}},
                 "min_score": {"type": "number", "minimum": 0, "maximum": 1}, "hard_examples": {"type": "object"},
                 "thumbnail": {"type": "boolean"}}


def _side(point, line) -> float:
    x0, y0, x1, y1 = line
    return float(np.sign((x1 - x0) * (point[1] - y0) - (y1 - y0) * (point[0] - x0)))


class RuleSkill:
    """The logic of a template skill; ``logic.py`` binds its methods as the skill's hooks."""

    def __init__(self, rule: str, model_path: Path, input_size: tuple[int, int] = (320, 320)):
        if rule not in TEMPLATES:
            raise ValueError(f"unknown template {rule!r} (one of {', '.join(TEMPLATES)})")
        self.rule, self.model_path, self.size = rule, Path(model_path), input_size
        self.runner = None
        self.state: dict[str, dict] = {}

    def setup(self, config: dict) -> None:
        from modelyard.runtime.registry import get_backend
        from modelyard.runtime.spec import ModelSpec

        width, height = self.size
        self.input_name = "images"
        if self.rule in CLASSIFIER_TEMPLATES:
            self.input_name, self.output_name = classifier_io(self.model_path)
        spec = ModelSpec(name="model", onnx=str(self.model_path), inputs=[
            {"name": self.input_name, "shape": ["batch", 3, height, width], "dtype": "float32"}])
        self.runner = get_backend("onnxruntime:cpu").load(spec.source())
        self.min_score = float(config.get("min_score", 0.5))

    def infer_batch(self, frames: list[np.ndarray]) -> list[dict]:
        width, height = self.size
        resized = []
        for frame in frames:
            rows = (np.arange(height) * frame.shape[0] / height).astype(int)
            cols = (np.arange(width) * frame.shape[1] / width).astype(int)
            resized.append(frame[rows][:, cols])
        batch = np.stack(resized).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        out = self.runner.infer({self.input_name: batch})
        if self.rule in CLASSIFIER_TEMPLATES:
            return [{"probabilities": probabilities(out[self.output_name][i])} for i in range(len(frames))]
        return [{"boxes": out["boxes"][i], "scores": out["scores"][i], "classes": out["classes"][i]}
                for i in range(len(frames))]

    def _centres(self, inference: dict, config: dict) -> tuple[np.ndarray, np.ndarray]:
        keep = inference["scores"] >= float(config.get("min_score", self.min_score))
        if config.get("classes"):
            keep &= np.isin(inference["classes"], config["classes"])
        boxes = inference["boxes"][keep]
        return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1), \
            inference["classes"][keep]

    def process(self, item: dict, channel: dict) -> list[dict]:
        events = self._rule(item, channel)
        if channel["config"].get("thumbnail"):  # the runtime attaches a small JPEG of the frame to each event
            events = [{**event, "thumbnail": True} for event in events]
        return events

    def _rule(self, item: dict, channel: dict) -> list[dict]:
        inference = item.get("inference") or self.infer_batch([item["frame"]])[0]
        config, state = channel["config"], self.state.setdefault(channel["id"], {})
        if self.rule in CLASSIFIER_TEMPLATES:
            return self._classifier_seen(inference["probabilities"], config, state)
        centres, classes = self._centres(inference, config)
        if self.rule == "zone-count":
            x0, y0, x1, y1 = config.get("zone", (0, 0, 1, 1))
            inside = int(((centres[:, 0] >= x0) & (centres[:, 0] <= x1) & (centres[:, 1] >= y0)
                          & (centres[:, 1] <= y1)).sum()) if len(centres) else 0
            changed = state.get("count") != inside
            state["count"] = inside
            return [{"rule": self.rule, "count": inside}] if changed else []
        if self.rule == "line-crossing":
            line = config.get("line", (0.5, 0, 0.5, 1))
            previous = state.get("centres", np.zeros((0, 2)))
            crossed = 0
            for centre in centres:
                if len(previous):
                    distances = np.linalg.norm(previous - centre, axis=1)
                    nearest = int(distances.argmin())
                    if distances[nearest] <= float(config.get("max_step", 0.15)) and \
                            _side(previous[nearest], line) * _side(centre, line) < 0:
                        crossed += 1
            state["centres"] = centres
            state["total"] = state.get("total", 0) + crossed
            return [{"rule": self.rule, "crossed": crossed, "total": state["total"]}] if crossed else []
        class_id, needed = int(config.get("class_id", 0)), int(config.get("frames", 3))
        streak = state.get("streak", 0) + 1 if np.any(classes == class_id) else 0
        state["streak"] = streak
        return [{"rule": self.rule, "class_id": class_id, "frames": streak}] if streak == needed else []

    def _classifier_seen(self, probs: np.ndarray, config: dict, state: dict) -> list[dict]:
        class_id, needed = int(config.get("class_id", 0)), int(config.get("frames", 3))
        top = int(np.argmax(probs))
        probability = float(probs[top])
        seen = top == class_id and probability >= float(config.get("min_score", self.min_score))
        streak = state.get("streak", 0) + 1 if seen else 0
        state["streak"] = streak
        return [{"rule": self.rule, "class_id": class_id, "frames": streak,
                 "probability": round(probability, 4)}] if streak == needed else []

    def self_check(self) -> dict:
        width, height = self.size
        if self.rule in CLASSIFIER_TEMPLATES:
            result = self.infer_batch([np.zeros((height, width, 3), dtype=np.uint8)])[0]["probabilities"]
            return {"ok": result.ndim == 1 and result.size >= 2 and abs(float(result.sum()) - 1) < 1e-3,
                    "classes": int(result.size)}
        result = self.infer_batch([np.zeros((height, width, 3), dtype=np.uint8)])[0]
        return {"ok": result["boxes"].ndim == 2 and result["boxes"].shape[-1] == 4,
                "boxes_per_frame": int(result["scores"].shape[0])}


def classifier_io(model_path: Path) -> tuple[str, str]:
    """The input and output names of an image classifier; ValueError unless it has one [N, 3, H, W] input and one
    [N, classes] output."""
    import onnxruntime  # what a device has (the skills extra); the onnx package may not be there

    try:
        session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for an unreadable model
        raise ValueError(f"{model_path.name}: not a readable ONNX model ({exc})") from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise ValueError(f"{model_path.name}: a classifier template needs one [N, 3, H, W] image input and one "
                         "[N, classes] output")
    return inputs[0].name, outputs[0].name


def probabilities(row: np.ndarray) -> np.ndarray:
    """Class probabilities from one output row: kept when it already is a distribution, else a softmax of logits."""
    row = np.asarray(row, dtype=np.float64).reshape(-1)
    if (row >= 0).all() and abs(row.sum() - 1) < 1e-3:
        return row.astype(np.float32)
    shifted = np.exp(row - row.max())
    return (shifted / shifted.sum()).astype(np.float32)
