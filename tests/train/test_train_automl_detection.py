"""Detection AutoML on a tiny synthetic set: a step-bounded search end to end, the latency gate, input sizes."""

import json

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput


def _tiny(count: int, seed: int, prefix: str):
    from modelyard.train.detectors.synthetic import make_shapes

    return make_shapes(count, size=64, seed=seed, max_objects=3, prefix=prefix)


def test_input_sizes_come_from_the_median_side_or_the_fixed_size():
    from modelyard.train.automl_detection import input_sizes

    assert input_sizes(640) == (320,) and input_sizes(400) == (320, 288)  # past the largest side searched
    assert input_sizes(128) == (128, 96) and input_sizes(20) == (64,)
    assert input_sizes(500, fixed=320) == (320,)
    with pytest.raises(InvalidInput, match="multiple of 16"):
        input_sizes(500, fixed=100)


@pytest.mark.slow
def test_a_step_bounded_detection_search_exports_a_decoding_onnx_model(monkeypatch):
    from modelyard.train import automl_detection
    from modelyard.train.automl_detection import search_detection_arrays
    from modelyard.train.latency import session

    monkeypatch.setattr(automl_detection, "MIN_CANDIDATE_STEPS", 10)  # a test needs the plumbing, not accuracy
    monkeypatch.setattr(automl_detection, "MIN_FINAL_STEPS", 12)
    train_images, train_set = _tiny(24, 0, "t")
    val_images, val_set = _tiny(8, 1, "v")
    lines, trials = [], []
    result = search_detection_arrays(train_images, train_set.items, val_images, val_set.items, train_set.classes,
                                     time_budget_s=600, max_trials=1, input_size=64, seed=0, log=lines.append,
                                     on_trial=trials.append)
    assert result.task == "detection" and result.metric == "map50_95" and result.trials == 1
    assert result.stop_reason == "max trials (1)"
    winner = result.winner
    assert winner["family"] == "centernet" and winner["params"]["size"] == 64 and winner["accepted"]
    assert 0.0 <= winner["map50_95"] <= winner["map50"] <= 1.0 and set(winner["per_class"]) == set(train_set.classes)
    assert 50_000 < winner["parameters"] < 2_000_000
    assert trials[0]["latency_ms"] > 0 and any(t["family"] == "centernet-final" for t in trials)
    assert any("step-bounded search" in line for line in lines)
    assert result.preprocessing["size"] == [64, 64] and str(result).startswith("centernet ")
    sess = session(result.onnx)
    meta = {k: json.loads(v) for k, v in sess.get_modelmeta().custom_metadata_map.items()}
    assert meta["modelyard.task"] == "detection" and meta["modelyard.classes"] == list(train_set.classes)
    boxes, scores, classes = sess.run(None, {"image": np.zeros((1, 3, 64, 64), dtype=np.float32)})
    assert boxes.shape == (1, 100, 4) and scores.shape == (1, 100) and classes.max() < len(train_set.classes)


@pytest.mark.slow
def test_the_latency_gate_rejects_every_contender_before_training():
    from modelyard.train.automl_detection import search_detection_arrays

    train_images, train_set = _tiny(8, 2, "t")
    val_images, val_set = _tiny(4, 3, "v")
    with pytest.raises(InvalidInput, match=r"max latency 1e-06 ms: no detector met it"):
        search_detection_arrays(train_images, train_set.items, val_images, val_set.items, train_set.classes,
                                time_budget_s=600, max_trials=1, max_latency_ms=1e-6, input_size=64)


def test_a_search_without_boxes_or_validation_images_is_refused():
    from modelyard.data.annotations import Annotated
    from modelyard.train.automl_detection import search_detection_arrays

    images, labeled = _tiny(2, 4, "t")
    empty = [Annotated.make(a.item, a.width, a.height) for a in labeled.items]
    with pytest.raises(InvalidInput, match="needs labeled boxes in the train split"):
        search_detection_arrays(images, empty, images, labeled.items, labeled.classes, time_budget_s=10)
    with pytest.raises(InvalidInput, match="needs labeled boxes in the validation split"):
        search_detection_arrays(images, labeled.items, images, empty, labeled.classes, time_budget_s=10)
    with pytest.raises(InvalidInput, match="both the train and validation"):
        search_detection_arrays(images, labeled.items, [], [], labeled.classes, time_budget_s=10)
    with pytest.raises(InvalidInput, match="map50_95 or map50"):
        search_detection_arrays(images, labeled.items, images, labeled.items, labeled.classes, time_budget_s=10,
                                metric="accuracy")


def test_a_backbone_file_fixes_the_architecture_it_was_saved_from(tmp_path):
    from modelyard.train.automl_detection import _backbone_architecture
    from modelyard.train.detectors.network import build_detector, save_backbone

    save_backbone(build_detector(4, width=12, depth=2), tmp_path / "b.safetensors")
    assert _backbone_architecture(tmp_path / "b.safetensors", 3) == (12, 2)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(InvalidInput, match="not a readable safetensors file"):
        _backbone_architecture(tmp_path / "junk.safetensors", 3)


def test_the_automl_spec_takes_detection_options_and_checks_them():
    from types import SimpleNamespace

    from pydantic import ValidationError

    from modelyard.train.automl import AutomlSpec, _resolve_task

    spec = AutomlSpec(dataset="shapes@1", name="det", task="detection", input_size=320, backbone="sha256:" + "a" * 64)
    assert spec.input_size == 320
    with pytest.raises(ValidationError, match="multiple of 16"):
        AutomlSpec(dataset="shapes@1", name="det", input_size=100)
    with pytest.raises(ValidationError, match="backbone"):
        AutomlSpec(dataset="shapes@1", name="det", backbone="/etc/passwd")
    detection = SimpleNamespace(kind="object-detection", schema={"classes": ["a"]}, ref="shapes@1")
    assert _resolve_task(AutomlSpec(dataset="shapes@1", name="det"), detection) == "detection"
    table = SimpleNamespace(kind="tabular", schema={"task": "classification"}, ref="iris@1")
    with pytest.raises(InvalidInput, match="task 'detection' does not fit iris@1, which holds classification data"):
        _resolve_task(spec, table)


def _coco_folder(root, images, annotations):
    """A COCO folder (``annotations.json`` + ``images/``) of synthetic shapes."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    category = {name: i + 1 for i, name in enumerate(annotations.classes)}
    document = {"images": [], "annotations": [],
                "categories": [{"id": i, "name": n} for n, i in category.items()]}
    for image_id, (pixels, item) in enumerate(zip(images, annotations.items, strict=True), start=1):
        name = item.item.replace("/", "_")
        Image.fromarray(pixels).save(root / "images" / name)
        document["images"].append({"id": image_id, "file_name": name, "width": item.width, "height": item.height})
        for box in item.boxes:
            document["annotations"].append({"id": len(document["annotations"]) + 1, "image_id": image_id,
                                            "category_id": category[box.label], "bbox": list(box.xywh()),
                                            "area": box.area, "iscrowd": 0})
    (root / "annotations.json").write_text(json.dumps(document))
    return root


@pytest.mark.slow
def test_the_automl_job_trains_and_registers_a_detector_from_a_coco_dataset(tmp_path, monkeypatch):
    """Import a COCO folder -> ``automl.train`` (images read from the blob store by the manifest) -> the registered
    ONNX detector with its classes, size, lineage and card."""
    from modelyard.core.jobkind import LocalJobContext
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.registry.versions import ModelRegistry
    from modelyard.store.workspace import Workspace
    from modelyard.train import automl_detection
    from modelyard.train.automl import AutomlSpec, run_automl

    monkeypatch.setattr(automl_detection, "MIN_CANDIDATE_STEPS", 10)
    monkeypatch.setattr(automl_detection, "MIN_FINAL_STEPS", 12)
    images, annotations = _tiny(30, 5, "img")
    home = tmp_path / "home"
    workspace = Workspace.open(Settings.load(home))
    try:
        version = DatasetStore(workspace).import_path(_coco_folder(tmp_path / "coco", images, annotations), "shapes")
        assert version.kind == "object-detection"
    finally:
        workspace.close()
    ctx = LocalJobContext(home=home, workdir=tmp_path / "job", job_id="job_det")
    ctx.workdir.mkdir()
    result = run_automl(AutomlSpec(dataset="shapes@1", name="shapes-det", time_budget_s=600, max_trials=1,
                                   input_size=64), ctx)
    assert result["task"] == "detection" and result["model"] == "shapes-det@1" and result["metric"] == "map50_95"
    assert result["classes"] == list(annotations.classes) and result["fit_splits"] == ["train"]
    workspace = Workspace.open(Settings.load(home))
    try:
        registered = ModelRegistry(workspace).get_version("shapes-det@1")
        assert registered.signature.task["type"] == "detection"
        assert registered.signature.task["classes"] == list(annotations.classes)
        assert registered.signature.preprocessing["size"] == [64, 64]
        assert [o.name for o in registered.signature.outputs] == ["boxes", "scores", "classes"]
        assert registered.lineage["dataset"] == "shapes@1" and registered.tags["input_size"] == "64"
        assert "letterboxed" in registered.description and "val_map50" in registered.metrics
    finally:
        workspace.close()
