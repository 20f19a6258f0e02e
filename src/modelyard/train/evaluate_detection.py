"""``modelyard evaluate DET@V --data DS@V`` for detectors: a registered detection model over an ``object-detection``
dataset version, on the deployable ONNX artifact, through the same preprocessing and declared post-processor a
service uses (letterboxing undone: predictions are in each image's own pixels, like its labels).

The result (``modelyard.evaluation/1``, ``task: detection``) has COCO mAP@0.5 / @0.75 / @[.5:.95], per-class AP with
a best-F1 score threshold each, precision-recall curves at IoU 0.5, a confusion matrix with a background row and
column at the suggested threshold, and sample images with true (green) and predicted boxes drawn into the HTML
report (:mod:`modelyard.train.detection_eval` computes the numbers).

Predictions are kept down to the score :data:`EVAL_SCORE_FLOOR` (below the served threshold: a PR curve and mAP
need the low-scoring tail), at most the post-processor's ``max_detections`` per image.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.train import report_html as h

EVAL_SCORE_FLOOR = 0.001  # COCO evaluations keep detections down to ~0.001
SAMPLE_IMAGES = 6
TRUTH_COLOR = (46, 160, 67)


def _items(store, dataset, split: str):
    """``(Annotated, digest, split code)`` of every usable item (the manifest entries of an object-detection
    version: ``path``, ``digest``, ``split`` and the labels of :meth:`Annotated.to_entry`)."""
    from modelyard.data.annotations import Annotated

    entries = [e for e in store.manifest(dataset)["entries"] if not e.get("error")]
    codes = {"train": "t", "validation": "v"}
    chosen = [e for e in entries if split == "all" or e.get("split") == codes[split]]
    if not chosen:
        raise InvalidInput(f"{dataset.ref} has no {split} images" if split != "all" else f"{dataset.ref} is empty")
    return ([Annotated.from_entry(e["path"], e) for e in chosen], [e["digest"] for e in chosen],
            np.array([e.get("split", "t") for e in chosen], dtype="<U1"))


def _decode(data: bytes, item: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            array = np.asarray(img.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - Pillow raises several types for a broken file
        raise InvalidInput(f"{item}: not a readable image ({type(exc).__name__})") from None
    return array


def _predict(sess, signature, pixels: np.ndarray, item: str, classes: list[str]):
    """The model's boxes for one image, in its own pixels, as an Annotated with scores."""
    from modelyard.data.annotations import Annotated, Box
    from modelyard.runtime.detection import class_name, decode, geometry, image_tensor

    pre = signature.preprocessing
    target = signature.input(signature.image_input)
    layout = pre.get("layout", "NCHW")
    size = tuple(pre["size"]) if pre.get("size") else ((target.shape[2], target.shape[3]) if layout == "NCHW"
                                                       else (target.shape[1], target.shape[2]))
    channels = target.shape[1] if layout == "NCHW" else target.shape[3]
    feeds = {target.name: image_tensor(pixels, pre, size, channels, target.dtype)}
    names = [o.name for o in sess.get_outputs()]
    outputs = dict(zip(names, sess.run(names, feeds), strict=True))
    boxes, scores, labels = decode(signature.task, outputs, threshold=EVAL_SCORE_FLOOR)[0]
    boxes = geometry(pre, pixels.shape[0], pixels.shape[1], size).to_original(boxes)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # a box squeezed to nothing by clipping
    found = [Box(*map(float, b), str(class_name(classes, int(c))), float(s))
             for b, s, c in zip(boxes[keep], scores[keep], labels[keep], strict=True)]
    return Annotated.make(item, pixels.shape[1], pixels.shape[0], found)


def evaluate_detection(resolved, store, dataset, split: str, base: dict,
                       mark_in_sample: Callable[[dict, np.ndarray], None]) -> tuple[dict, list[tuple[str, str]]]:
    """The result data and the report's sections for detector ``resolved`` (a ``ResolvedModel``) on ``dataset``'s
    ``split`` images; ``base`` holds the result's common fields, ``mark_in_sample(data, split_values)`` adds
    ``in_sample`` and ``warnings`` (``modelyard.train.evaluate`` wraps both into its ``Evaluation``)."""
    from modelyard.train.detection_eval import detection_report
    from modelyard.train.latency import session

    version = resolved.version
    signature = version.signature
    if dataset.kind != "object-detection":
        raise InvalidInput(f"{version.ref} is a detector; {dataset.ref} holds {dataset.kind} data (evaluate it on "
                           "an object-detection dataset: data import a COCO, VOC or YOLO folder)")
    if version.format != "onnx":
        raise InvalidInput(f"{version.ref} is {version.format}; evaluate needs an ONNX model")
    if signature.preprocessing is None:
        raise InvalidInput(f"{version.ref} declares no image preprocessing; register it with --preprocessing")
    truths, digests, split_values = _items(store, dataset, split)
    model_classes = list(signature.task.get("classes") or [])
    data_classes = list(dataset.schema.get("classes") or [])
    unknown = [c for c in data_classes if c not in model_classes] if model_classes else data_classes
    warnings = []
    if unknown:
        warnings.append(f"{dataset.ref} has class(es) the model does not name: {', '.join(unknown[:10])}; their AP "
                        "is 0 unless the model's class names match the dataset's")
    sess = session(resolved.path.read_bytes(), threads=1)
    predictions, thumbnails = [], {}
    for truth, digest in zip(truths, digests, strict=True):
        pixels = _decode(store.blobs.read_bytes(digest), truth.item)
        predictions.append(_predict(sess, signature, pixels, truth.item, model_classes))
        if len(thumbnails) < 64:
            thumbnails[truth.item] = pixels
    report = detection_report(predictions, truths, classes=model_classes or data_classes)
    data = {**base, "task": "detection", "rows": len(truths), **report}
    mark_in_sample(data, split_values)
    data["warnings"] = data["warnings"] + warnings
    threshold = report["confusion_threshold"]
    chosen = _samples(predictions, truths, threshold, thumbnails)
    data["samples"] = [{"item": t.item, "true_boxes": len(t.boxes),
                        "predicted_boxes": sum(1 for b in p.boxes if b.score >= threshold)} for p, t in chosen]
    return data, _sections(data, [(p, t, thumbnails[t.item]) for p, t in chosen], threshold)


def _samples(predictions, truths, threshold: float, thumbnails: dict) -> list:
    """The images to draw: those where prediction and truth disagree most (box counts at the threshold), then the
    rest, among the decoded ones kept for drawing."""
    pairs = [(p, t) for p, t in zip(predictions, truths, strict=True) if t.item in thumbnails]
    disagreement = [abs(sum(1 for b in p.boxes if b.score >= threshold) - len(t.boxes)) for p, t in pairs]
    order = np.argsort(-np.asarray(disagreement), kind="stable")[:SAMPLE_IMAGES]
    return [pairs[i] for i in order]


def draw_boxes(pixels: np.ndarray, truth, predicted, threshold: float, classes: list[str], width: int = 256) -> bytes:
    """A PNG thumbnail with the true boxes in green and the predictions scoring at least ``threshold`` in their
    class's colour, labelled with class and score."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(pixels)
    scale = min(1.0, width / max(1, image.width))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for box in truth.boxes:
        draw.rectangle([box.x1 * scale, box.y1 * scale, box.x2 * scale, box.y2 * scale], outline=TRUTH_COLOR, width=2)
    for box in predicted.boxes:
        if box.score < threshold:
            continue
        color = h.PALETTE[(classes.index(box.label) if box.label in classes else 0) % len(h.PALETTE)]
        draw.rectangle([box.x1 * scale, box.y1 * scale, box.x2 * scale, box.y2 * scale], outline=color, width=1)
        draw.text((box.x1 * scale + 2, box.y1 * scale + 1), f"{box.label} {box.score:.2f}", fill=color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _fmt(value) -> str:
    return "n/a" if value is None else h.fmt(value)


def _sections(data: dict, samples: list, threshold: float) -> list[tuple[str, str]]:
    warnings = "".join(f'<p class="warn"><b>Note:</b> {h.esc(w)}</p>' for w in data.get("warnings", []))
    suggested = data.get("suggested_threshold")
    summary = (f'<p>{h.esc(data["model"])} evaluated on {h.esc(data["dataset"])} (split: {h.esc(data["split"])}, '
               f'{data["rows"]} images, {data["ground_truth_boxes"]} labeled boxes, {data["predicted_boxes"]} '
               f'predicted down to score {EVAL_SCORE_FLOOR})</p>' + warnings + h.metrics_table(data["metrics"]))
    if suggested:
        summary += (f'<p>Suggested score threshold: <b>{suggested["threshold"]:.3f}</b> (best F1 over all classes: '
                    f'{suggested["f1"]:.3f}, precision {suggested["precision"]:.3f}, recall '
                    f'{suggested["recall"]:.3f}); serve with <code>?threshold={suggested["threshold"]:.2f}</code>.</p>')
    head = ('<tr><th class="l">class</th><th>AP50</th><th>AP75</th><th>AP50-95</th><th>labeled</th>'
            '<th>predicted</th><th>best-F1 threshold</th><th>F1</th><th>precision</th><th>recall</th></tr>')
    rows = []
    for name, stats in data["per_class"].items():
        best = stats.get("best_f1") or {}
        rows.append(f'<tr><td class="l">{h.esc(name)}</td><td>{_fmt(stats["ap50"])}</td><td>{_fmt(stats["ap75"])}'
                    f'</td><td>{_fmt(stats["ap50_95"])}</td><td>{stats["ground_truth"]}</td>'
                    f'<td>{stats["predictions"]}</td><td>{_fmt(best.get("threshold"))}</td>'
                    f'<td>{_fmt(best.get("f1"))}</td><td>{_fmt(best.get("precision"))}</td>'
                    f'<td>{_fmt(best.get("recall"))}</td></tr>')
    curves = [{"name": f"{c['class']} (AP50 {_fmt(c['ap50'])})", "x": c["recall"], "y": c["precision"]}
              for c in data["curves"]]
    classes = [c for c in data["confusion_classes"] if c != "background"]
    cards = "".join(
        f'<div class="card"><img src="{h.png_data_uri(draw_boxes(pixels, truth, predicted, threshold, classes))}">'
        f'<br>{h.esc(truth.item)}<br>{len(truth.boxes)} labeled, '
        f'{sum(1 for b in predicted.boxes if b.score >= threshold)} predicted</div>'
        for predicted, truth, pixels in samples)
    return [
        ("Summary", summary),
        ("Per class", f"<table>{head}{''.join(rows)}</table>"),
        ("Precision-recall at IoU 0.5", h.line_chart_svg(curves, "Precision-recall (IoU 0.5)", "recall",
                                                         "precision") if curves else
         '<p class="muted">no class has both labeled and predicted boxes</p>'),
        (f"Confusion matrix (IoU 0.5, score >= {threshold:.3f})",
         h.heatmap_svg(data["confusion_matrix"], data["confusion_classes"],
                       "rows: true class, columns: predicted; background = missed / false alarm")),
        (f"Sample images (green: labeled; coloured: predicted, score >= {threshold:.2f})",
         f'<div class="grid">{cards}</div>'),
    ]
