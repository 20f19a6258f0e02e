"""Box-level agreement between a reference detector and its converted target (the compare engine's task metric
for ``task: detection``).

Both sides' outputs go through the version's declared post-processor (:func:`modelyard.runtime.detection.decode`,
the one services use), so what is compared is what a caller would get: per sample, the target's boxes are matched
one to one to the reference's boxes of the same class, highest IoU first, at IoU >= :data:`MATCH_IOU`.

``box_agreement`` is ``2 * matched / (reference boxes + target boxes)`` over all samples (1.0 when neither side
finds anything), judged with the top-1 agreement thresholds of the preset (int8: pass >= 0.95, fail < 0.7);
``mean_iou`` and ``max_score_diff`` describe the matched pairs.
"""

from __future__ import annotations

import numpy as np

MATCH_IOU = 0.5


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_boxes(reference, target) -> list[tuple[int, int, float]]:
    """``(reference index, target index, IoU)`` of the one-to-one same-class matches, highest IoU first."""
    ref_boxes, _, ref_classes = reference
    tgt_boxes, _, tgt_classes = target
    if not len(ref_boxes) or not len(tgt_boxes):
        return []
    ious = _iou(ref_boxes, tgt_boxes) * (ref_classes[:, None] == tgt_classes[None, :])
    pairs = sorted(((float(ious[r, t]), r, t) for r, t in np.argwhere(ious >= MATCH_IOU)), reverse=True)
    used_r, used_t, matches = set(), set(), []
    for iou, r, t in pairs:
        if r in used_r or t in used_t:
            continue
        used_r.add(r)
        used_t.add(t)
        matches.append((int(r), int(t), iou))
    return matches


class DetectionStats:
    """Accumulates box agreement sample by sample (same surface as ``metrics.TaskStats``)."""

    def __init__(self, task: dict, output: str):
        self.type = "detection"
        self.task = task
        self.output = output
        self.count = 0
        self.reference_boxes = 0
        self.target_boxes = 0
        self.matched = 0
        self.ious: list[float] = []
        self.score_diff = 0.0

    def observe(self, reference: dict[str, np.ndarray], target: dict[str, np.ndarray]) -> None:
        from modelyard.runtime.detection import decode

        ref_rows, tgt_rows = decode(self.task, reference), decode(self.task, target)
        for ref, tgt in zip(ref_rows, tgt_rows, strict=True):
            matches = match_boxes(ref, tgt)
            self.count += 1
            self.reference_boxes += len(ref[1])
            self.target_boxes += len(tgt[1])
            self.matched += len(matches)
            self.ious += [iou for _, _, iou in matches]
            for r, t, _ in matches:
                self.score_diff = max(self.score_diff, abs(float(ref[1][r]) - float(tgt[1][t])))

    def result(self, thresholds) -> dict:
        out: dict = {"type": "detection", "output": self.output, "count": self.count}
        if self.count == 0:
            out.update(verdict="fail", reasons=["no predictions could be compared"])
            return out
        found = self.reference_boxes + self.target_boxes
        agreement = 2 * self.matched / found if found else 1.0
        out.update(box_agreement=agreement, reference_boxes=self.reference_boxes, target_boxes=self.target_boxes,
                   matched_boxes=self.matched, mean_iou=float(np.mean(self.ious)) if self.ious else None,
                   max_score_diff=self.score_diff if self.ious else None,
                   score_threshold=(self.task.get("postprocess") or {}).get("score_threshold", 0.25))
        verdict = "pass" if agreement >= thresholds.pass_top1_agreement else (
            "fail" if agreement < thresholds.fail_top1_agreement else "warn")
        out["reasons"] = [] if verdict == "pass" else [
            f"box agreement {agreement:.3f} ({self.matched} of {self.reference_boxes} reference and "
            f"{self.target_boxes} target boxes matched)"]
        out["verdict"] = verdict
        return out
