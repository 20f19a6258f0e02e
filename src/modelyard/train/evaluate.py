"""``modelyard evaluate MODEL@V --data DATASET@V``: metrics and a self-contained HTML report for a registered model
on a dataset version, run on the deployable ONNX artifact (what is evaluated is what is served).

Classification: accuracy, macro precision/recall/F1, per-class precision/recall/F1, confusion matrix, ROC and PR
curves with AUC / average precision, calibration (reliability bins, ECE), the most confidently wrong examples.
Regression: MAE, MSE, RMSE, R², residual and predicted-vs-actual plots. Tables: permutation feature importance on
the ONNX model. Images: occlusion saliency heat maps for sample images. Detectors (a version whose task is
``detection``) on an object-detection dataset: COCO mAP, per-class AP and thresholds, PR curves, a confusion matrix
with background and sample images with boxes drawn (:mod:`modelyard.train.evaluate_detection`).

Evaluating on a version never seen in training (a held-out test set imported separately) is the normal case;
``split`` picks the train or validation rows of a version instead. The model version's lineage says which dataset
version and splits it was fitted on (AutoML refits tables on train + validation unless told ``refit: false``); when
evaluated rows are among them the evaluation still runs, but the result says so (``in_sample``, ``warnings``) and
the report carries the warning, since such numbers overstate how the model does on new data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from modelyard.core.errors import InvalidInput
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.train import metrics as m
from modelyard.train import report_html as h

RESULT_SCHEMA = "modelyard.evaluation/1"
MAX_CURVE_POINTS = 200
MAX_WORST = 12
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 2
SALIENCY_SAMPLES = 6
BATCH = 512


def _finite(value):
    """JSON (and PostgreSQL's JSONB) has no NaN: an undefined metric (ROC AUC of one class) becomes null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class Evaluation:
    """An evaluation: ``to_dict()`` is the ``modelyard.evaluation/1`` JSON, ``html`` the report."""

    data: dict
    html: str = field(repr=False)

    def to_dict(self) -> dict:
        return self.data

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={h.fmt(v)}" for k, v in self.data["metrics"].items())
        return f"{self.data['model']} on {self.data['dataset']} ({self.data['rows']} rows): {shown}"


def _downsample(xs: np.ndarray, ys: np.ndarray) -> tuple[list[float], list[float]]:
    if len(xs) > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(xs) - 1, MAX_CURVE_POINTS).astype(int))
        xs, ys = xs[keep], ys[keep]
    return [round(float(v), 5) for v in xs], [round(float(v), 5) for v in ys]


def _curves(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    targets = [1] if len(classes) == 2 else [c for c in range(len(classes)) if (y_true == c).any()]
    roc, pr = [], []
    for c in targets[:20]:
        positive = y_true == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, c])
        precision, recall, _ = precision_recall_curve(positive, proba[:, c])
        fx, fy = _downsample(fpr, tpr)
        rx, ry = _downsample(recall[::-1], precision[::-1])
        roc.append({"class": classes[c], "auc": float(auc(fpr, tpr)), "fpr": fx, "tpr": fy})
        pr.append({"class": classes[c], "average_precision": float(average_precision_score(positive, proba[:, c])),
                   "recall": rx, "precision": ry})
    return {"roc": roc, "pr": pr}


def _model(resolved):
    from modelyard.train.tabular_model import read_metadata

    if resolved.version.format != "onnx":
        raise InvalidInput(f"{resolved.version.ref} is {resolved.version.format}; evaluate needs an ONNX model")
    model = resolved.path.read_bytes()
    meta = read_metadata(model)
    if "task" not in meta:
        raise InvalidInput(f"{resolved.version.ref} carries no Modelyard training metadata (task, classes, inputs); "
                           "evaluate models trained by 'modelyard automl train'")
    return resolved.version, model, meta


def _label_indices(labels: list[str], model_classes: list[str], data_ref: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(model_classes)}
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        raise InvalidInput(f"{data_ref} has label(s) the model never learned: {', '.join(unknown[:10])}; the model "
                           f"knows {', '.join(model_classes[:20])}")
    return np.array([index[label] for label in labels], dtype=np.int64)


def _rows(split_values: np.ndarray, split: str) -> np.ndarray:
    if split == "all":
        return np.ones(len(split_values), dtype=bool)
    mask = split_values == ("t" if split == "train" else "v")
    if not mask.any():
        raise InvalidInput(f"the {split} split is empty")
    return mask


SPLIT_CODES = {"train": "t", "validation": "v"}


def _fit_rows(version, dataset, split_values: np.ndarray) -> dict | None:
    """How many evaluated rows the model was fitted on, from its lineage (the dataset version it was trained on and
    ``fit_splits``); None when none were (another version, or only held-out splits)."""
    lineage = version.lineage or {}
    same = (lineage.get("dataset_id") == dataset.id or
            (lineage.get("dataset_manifest") and lineage.get("dataset_manifest") == dataset.manifest_digest))
    if not same:
        return None
    # versions AutoML registered before fit_splits was recorded: image CNNs never train on the validation split;
    # tables were refitted on train + validation whenever the budget allowed (assume it did: warn rather than not)
    fit_splits = lineage.get("fit_splits") or (
        ["train"] if (version.tags or {}).get("automl") == "image-classification" else ["train", "validation"])
    codes = [SPLIT_CODES[s] for s in fit_splits if s in SPLIT_CODES]
    rows = int(np.isin(split_values, codes).sum())
    if not rows:
        return None
    return {"rows": rows, "of": int(len(split_values)), "fit_splits": list(fit_splits), "dataset": dataset.ref}


def _in_sample_warning(model_ref: str, in_sample: dict) -> str:
    held = [s for s in ("validation", "train") if s not in in_sample["fit_splits"]]
    where = (f"evaluate --split {held[0]} for the rows it was not fitted on" if held else
             "evaluate it on a separately imported test set (every row of this version was used to fit it)")
    return (f"{in_sample['rows']} of the {in_sample['of']} rows evaluated were used to fit {model_ref} (its "
            f"{' + '.join(in_sample['fit_splits'])} split of {in_sample['dataset']}): these numbers are in-sample and "
            f"overstate how it does on new data; {where}")


def evaluate(workspace, model_ref: str, data_ref: str, split: str = "all") -> Evaluation:
    """Evaluate registered model ``model_ref`` on dataset version ``data_ref`` (``split``: all, train, validation)."""
    from modelyard.data.datasets import DatasetStore
    from modelyard.train.latency import session

    if split not in ("all", "train", "validation"):
        raise InvalidInput(f"split {split!r}: expected all, train or validation")
    from modelyard.registry.resolve import resolve

    resolved = resolve(workspace, model_ref)
    store = DatasetStore(workspace)
    dataset = store.get(data_ref)
    if (resolved.version.signature.task or {}).get("type") == "detection":
        from modelyard.train.evaluate_detection import evaluate_detection

        base = {"schema": RESULT_SCHEMA, "model": resolved.version.ref, "dataset": dataset.ref, "split": split}
        data, sections = evaluate_detection(
            resolved, store, dataset, split, base,
            lambda data, split_values: _mark_in_sample(data, resolved.version, dataset, split_values))
        data = _finite(data)
        return Evaluation(data, h.page(f"{base['model']} on {base['dataset']}", sections, data))
    if dataset.kind == "object-detection":
        raise InvalidInput(f"{dataset.ref} holds object-detection data; {resolved.version.ref} is not a detector "
                           "(its task is not detection)")
    version, model, meta = _model(resolved)
    sess = session(model, threads=max(1, os.cpu_count() or 1))
    task = meta["task"]
    if (task == "image-classification") != (dataset.kind == "image-classification"):
        raise InvalidInput(f"{version.ref} is a {task} model; {dataset.ref} holds {dataset.kind} data")
    base = {"schema": RESULT_SCHEMA, "model": version.ref, "dataset": dataset.ref, "split": split, "task": task}
    if task == "image-classification":
        return _evaluate_images(sess, meta, store, dataset, split, base, version)
    return _evaluate_table(sess, meta, store, dataset, split, base, version)


def _mark_in_sample(data: dict, version, dataset, split_values: np.ndarray) -> None:
    """``in_sample`` (null when every evaluated row is held out) and ``warnings`` in the result."""
    in_sample = _fit_rows(version, dataset, split_values)
    data["in_sample"] = in_sample
    data["warnings"] = [_in_sample_warning(version.ref, in_sample)] if in_sample else []


def _evaluate_table(sess, meta, store, dataset, split, base, version) -> Evaluation:
    from modelyard.data.tabular import class_name
    from modelyard.train.tabular_model import Features

    spec = meta["features"]
    features = Features(tuple(spec["numeric"]), tuple(spec["categorical"]), dict(spec["inputs"]))
    if dataset.schema["task"] != meta["task"]:
        raise InvalidInput(f"{base['model']} is a {meta['task']} model; {dataset.ref} is a {dataset.schema['task']} "
                           "table")
    table, split_values = store.load_table(dataset)
    missing = [c for c in features.columns if c not in table.columns]
    if missing:
        raise InvalidInput(f"{dataset.ref} lacks the model's feature column(s) {', '.join(missing[:10])}")
    mask = _rows(split_values, split)
    table = table[mask].reset_index(drop=True)
    label = dataset.schema["label"]
    x = features.frame(table)
    task = meta["task"]

    def predict(frame) -> np.ndarray:
        feeds = features.feeds(frame)
        outputs = []
        for start in range(0, len(frame), 50_000):
            chunk = {k: v[start:start + 50_000] for k, v in feeds.items()}
            outputs.append(sess.run(["probabilities" if task == "classification" else "variable"], chunk)[0])
        out = np.concatenate(outputs)
        return out.astype(np.float64) if task == "classification" else out.reshape(-1).astype(np.float64)

    prediction = predict(x)
    data = {**base, "rows": len(table)}
    _mark_in_sample(data, version, dataset, split_values[mask])
    sections: list[tuple[str, str]] = []
    if task == "classification":
        classes = meta["classes"]
        y = _label_indices([class_name(v) for v in table[label].tolist()], classes, dataset.ref)
        report = m.classification_report(y, prediction, classes)
        primary = "accuracy"
        data.update(_classification_data(report, y, prediction, classes))
        pred = prediction.argmax(axis=1)
        wrong = np.flatnonzero(pred != y)
        order = wrong[np.argsort(-prediction[wrong, pred[wrong]])][:MAX_WORST]
        data["worst"] = [{"row": int(i), "true": classes[y[i]], "predicted": classes[pred[i]],
                          "confidence": round(float(prediction[i, pred[i]]), 4)} for i in order]
        y_eval = y
    else:
        y_eval = table[label].astype(np.float64).to_numpy()
        report = m.regression_report(y_eval, prediction)
        primary = "r2"
        data["metrics"] = report
        residuals = y_eval - prediction
        sample = np.linspace(0, len(y_eval) - 1, min(len(y_eval), 2000)).astype(int)
        data["residuals"] = {"predicted": [round(float(v), 5) for v in prediction[sample]],
                             "residual": [round(float(v), 5) for v in residuals[sample]],
                             "actual": [round(float(v), 5) for v in y_eval[sample]]}
        worst = np.argsort(-np.abs(residuals))[:MAX_WORST]
        data["worst"] = [{"row": int(i), "actual": float(y_eval[i]), "predicted": float(prediction[i]),
                          "error": float(residuals[i])} for i in worst]
    data["feature_importance"] = _permutation_importance(features, x, y_eval, predict, primary, task,
                                                         len(meta.get("classes") or []))
    sections += _common_sections(data)
    if data["feature_importance"]:
        sections.append(("Feature importance (permutation, on the ONNX model)", h.bar_chart_svg(
            [(f["feature"], f["importance"]) for f in data["feature_importance"]],
            f"drop in {primary} when the column is shuffled")))
    if task == "classification":
        head = '<tr><th>row</th><th class="l">true</th><th class="l">predicted</th><th>confidence</th></tr>'
        rows = "".join(f'<tr><td>{w["row"]}</td><td class="l">{h.esc(w["true"])}</td><td class="l">'
                       f'{h.esc(w["predicted"])}</td><td>{w["confidence"]:.3f}</td></tr>' for w in data["worst"])
        sections.append(("Most confidently wrong rows", f"<table>{head}{rows}</table>" if rows else
                         '<p class="muted">none: every row was classified correctly</p>'))
    data = _finite(data)
    return Evaluation(data, h.page(f"{base['model']} on {base['dataset']}", sections, data))


def _classification_data(report: dict, y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    flat = {k: v for k, v in report.items() if isinstance(v, float)}
    return {"metrics": flat, "per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
            "classes": classes, "curves": _curves(y, proba, classes), "calibration": m.calibration_bins(y, proba)}


def _common_sections(data: dict) -> list[tuple[str, str]]:
    warnings = "".join(f'<p class="warn"><b>In-sample:</b> {h.esc(w)}</p>' for w in data.get("warnings", []))
    sections = [("Summary", f'<p>{h.esc(data["model"])} evaluated on {h.esc(data["dataset"])} '
                            f'(split: {h.esc(data["split"])}, {data["rows"]} rows)</p>' + warnings
                 + h.metrics_table(data["metrics"]))]
    if "confusion_matrix" in data:
        sections.append(("Per class", h.per_class_table(data["per_class"])))
        sections.append(("Confusion matrix", h.heatmap_svg(data["confusion_matrix"], data["classes"],
                                                           "rows: true class, columns: predicted")))
        curves = data["curves"]
        roc = [{"name": f"{c['class']} (AUC {c['auc']:.3f})", "x": c["fpr"], "y": c["tpr"]} for c in curves["roc"]]
        pr = [{"name": f"{c['class']} (AP {c['average_precision']:.3f})", "x": c["recall"], "y": c["precision"]}
              for c in curves["pr"]]
        cal = [{"name": "model", "x": [b["confidence"] for b in data["calibration"]],
                "y": [b["accuracy"] for b in data["calibration"]]}]
        sections.append(("ROC, precision-recall and calibration", '<div class="grid">'
                         + h.line_chart_svg(roc, "ROC", "false positive rate", "true positive rate", diagonal=True)
                         + h.line_chart_svg(pr, "Precision-recall", "recall", "precision")
                         + h.line_chart_svg(cal, f"Calibration (ECE {data['metrics']['ece']:.3f})", "confidence",
                                            "accuracy", diagonal=True) + "</div>"))
    if "residuals" in data:
        r = data["residuals"]
        sections.append(("Residuals", '<div class="grid">'
                         + h.scatter_svg(r["predicted"], r["residual"], "Residuals", "predicted", "actual - predicted",
                                         zero_line=True)
                         + h.scatter_svg(r["actual"], r["predicted"], "Predicted vs actual", "actual", "predicted",
                                         identity=True) + "</div>"))
    return sections


def _permutation_importance(features, x, y, predict, primary, task, n_classes) -> list[dict]:
    rng = np.random.default_rng(0)
    if len(x) > IMPORTANCE_ROWS:
        keep = np.sort(rng.choice(len(x), IMPORTANCE_ROWS, replace=False))
        x, y = x.iloc[keep].reset_index(drop=True), y[keep]
    if len(x) < 2:
        return []
    base = m.score(primary, y, predict(x), n_classes or None)
    out = []
    for column in features.columns[:50]:
        name = features.input_names[column]
        drops = []
        for _ in range(IMPORTANCE_REPEATS):
            shuffled = x.copy()
            shuffled[name] = shuffled[name].to_numpy()[rng.permutation(len(shuffled))]
            drops.append(base - m.score(primary, y, predict(shuffled), n_classes or None))
        out.append({"feature": column, "importance": round(float(np.mean(drops)), 6)})
    return sorted(out, key=lambda f: -f["importance"])


def _evaluate_images(sess, meta, store, dataset, split, base, version) -> Evaluation:
    from modelyard.data import images as img
    from modelyard.train.saliency import occlusion_map, overlay_png, thumbnail_scale

    spec = meta["input"]
    size, channels, input_name = tuple(spec["size"]), int(spec["channels"]), spec["name"]
    x, y_data, split_values, paths = store.load_images(dataset, size, channels)
    mask = _rows(split_values, split)
    x, y_data = x[mask], y_data[mask]
    paths = [p for p, keep in zip(paths, mask, strict=True) if keep]
    classes = meta["classes"]
    y = _label_indices([dataset.schema["classes"][i] for i in y_data], classes, dataset.ref)

    def run(batch: np.ndarray) -> np.ndarray:
        outs = [sess.run(["probabilities"], {input_name: batch[i:i + BATCH]})[0] for i in range(0, len(batch), BATCH)]
        return np.concatenate(outs).astype(np.float64)

    proba = run(x.astype(np.float32) / 255.0)
    report = m.classification_report(y, proba, classes)
    data = {**base, "rows": len(y), **_classification_data(report, y, proba, classes)}
    _mark_in_sample(data, version, dataset, split_values[mask])
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    order = wrong[np.argsort(-proba[wrong, pred[wrong]])][:MAX_WORST]
    data["worst"] = [{"path": paths[i], "true": classes[y[i]], "predicted": classes[pred[i]],
                      "confidence": round(float(proba[i, pred[i]]), 4)} for i in order]
    right = np.flatnonzero(pred == y)
    confident = right[np.argsort(-proba[right, pred[right]])]
    samples = list(order[: SALIENCY_SAMPLES // 2]) + list(confident[: SALIENCY_SAMPLES - min(len(order),
                                                                                              SALIENCY_SAMPLES // 2)])
    saliency, cards = [], []
    for i in samples:
        heat = occlusion_map(lambda b: run(b), x[i].astype(np.float32) / 255.0, int(pred[i]))
        saliency.append({"path": paths[i], "true": classes[y[i]], "predicted": classes[pred[i]],
                         "confidence": round(float(proba[i, pred[i]]), 4), "method": "occlusion"})
        scale = thumbnail_scale(size)
        cards.append(f'<div class="card"><img class="px" src="{h.png_data_uri(overlay_png(x[i], heat, scale))}">'
                     f'<br>{h.esc(paths[i])}<br>true {h.esc(classes[y[i]])}, predicted '
                     f'{h.esc(classes[pred[i]])} ({proba[i, pred[i]]:.2f})</div>')
    data["saliency"] = saliency
    sections = _common_sections(data)
    thumbs = "".join(
        f'<div class="card"><img class="px" src="{h.png_data_uri(img.encode_png(x[i]))}" width="128"><br>'
        f'{h.esc(paths[i])}<br>true {h.esc(classes[y[i]])}, predicted {h.esc(classes[pred[i]])} '
        f'({proba[i, pred[i]]:.2f})</div>' for i in order)
    sections.append(("Most confidently wrong images", f'<div class="grid">{thumbs}</div>' if thumbs else
                     '<p class="muted">none: every image was classified correctly</p>'))
    sections.append(("Saliency (occlusion: red = the evidence for the predicted class)",
                     f'<div class="grid">{"".join(cards)}</div>'))
    data = _finite(data)
    return Evaluation(data, h.page(f"{base['model']} on {base['dataset']}", sections, data))


class EvaluateSpec(BaseModel):
    """Args:
        model: the registry model version, ``NAME@VERSION`` or ``NAME@ALIAS``.
        dataset: the dataset version, ``NAME@VERSION`` (the key ``automl.train`` uses too; ``data``, its former
            name, is still accepted).
        split: ``all`` rows (default), or only the ``train`` / ``validation`` split.
    """

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    dataset: str = Field(min_length=1, max_length=200, validation_alias=AliasChoices("dataset", "data"))
    split: Literal["all", "train", "validation"] = "all"


def run_evaluate(spec: EvaluateSpec, ctx: JobContext) -> dict:
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace
    from modelyard.train.tracking import RunStore

    workspace = Workspace.open(Settings.load(ctx.home), create=False, migrate=False)
    try:
        ctx.progress(0.1, f"evaluating {spec.model} on {spec.dataset}")
        result = evaluate(workspace, spec.model, spec.dataset, spec.split)
        report = ctx.workdir / "report.html"
        report.write_text(result.html, encoding="utf-8")
        (ctx.workdir / "evaluation.json").write_text(json.dumps(result.to_dict(), indent=2))
        blob = workspace.blobs.put_file(report)
        runs = RunStore(workspace)
        run = runs.create(f"evaluate-{result.data['model']}", experiment="evaluation", params=spec.model_dump(),
                          dataset=result.data["dataset"], job_id=ctx.job_id)
        runs.log_metrics(run.id, [{"key": k, "value": v} for k, v in result.data["metrics"].items()
                                  if isinstance(v, float)])
        runs.add_artifact(run.id, "report.html", blob.digest)
        runs.set_model(run.id, result.data["model"])
        runs.finish(run.id)
        ctx.log(str(result))
        for warning in result.data["warnings"]:
            ctx.log(f"warning: {warning}")
        return {**result.to_dict(), "report": {"digest": "sha256:" + blob.digest, "size": blob.size}, "run": run.id}
    finally:
        workspace.close()


def authorize_evaluate(spec: EvaluateSpec, _caller, workspace) -> None:
    """At submit: the model version and the dataset version exist (an unknown one is a 404, not a failed job)."""
    from modelyard.data.datasets import DatasetStore
    from modelyard.registry.versions import ModelRegistry

    ModelRegistry(workspace).get_version(spec.model)
    DatasetStore(workspace).get(spec.dataset)


EVALUATE = JobKind(
    "evaluate",
    EvaluateSpec,
    run_evaluate,
    idempotent=True,
    authorize=authorize_evaluate,
    description="Evaluate a registered model on a dataset version: metrics, curves, importance/saliency, HTML report.",
)
