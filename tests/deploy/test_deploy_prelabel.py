"""Pre-labeling with a registered model: the ``label.propose`` job kind proposes the right class with its score for
every unlabeled item, leaves labeled items alone, and refuses models that cannot propose for the job."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from labelfixtures import colour_folder, register_colour_classifier
from modelyard.core.errors import Forbidden, InvalidInput
from modelyard.core.jobkind import LocalJobContext


@dataclass(frozen=True)
class Who:
    name: str
    role: str


OWNER = Who("owner", "editor")


@pytest.fixture(scope="module")
def labeling(tmp_path_factory):
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.labeling import LabelingStore
    from modelyard.store.workspace import Workspace

    folder = tmp_path_factory.mktemp("prelabel")
    workspace = Workspace.open(Settings.load(folder / "home"))
    DatasetStore(workspace).import_path(colour_folder(folder / "colours", per_class=3), "colours")
    register_colour_classifier(workspace, folder)
    yield workspace, LabelingStore(workspace), folder
    workspace.close()


def test_proposals_name_each_items_colour_with_a_score(labeling):
    from modelyard.deploy.prelabel import PROPOSE

    workspace, store, folder = labeling
    store.create("p1", OWNER, task="classification", dataset="colours@1")
    labeled = store.items("p1", limit=1)["items"][0]["item"]
    store.annotate("p1", labeled, OWNER, labels=["blue"])
    ctx = LocalJobContext(home=workspace.home)
    spec = PROPOSE.validate_spec({"job": "p1", "model": "colours", "batch_size": 4})
    result = PROPOSE.run(spec, ctx)
    assert result["proposed"] == 8 and result["items"] == 8 and result["model"] == "colours@1"
    assert ctx.progress_events[-1][0] == 1.0
    for item in store.items("p1", state=["proposed"])["items"]:
        colour = item["item"].split("/")[0]
        assert item["proposal"]["labels"] == [colour] and item["proposal"]["model"] == "colours@1"
        assert item["score"] > 0.9 and item["proposal"]["scores"][colour] == pytest.approx(item["score"], abs=1e-6)
        assert item["uncertainty"] < 0.2 and item["hard"] is False
    assert store.item("p1", labeled).state == "labeled" and store.item("p1", labeled).proposal is None


def test_a_label_set_without_the_models_classes_and_strangers_are_refused(labeling):
    from modelyard.core.trust import Caller
    from modelyard.deploy.prelabel import PROPOSE, Predictor

    workspace, store, _ = labeling
    store.create("p2", OWNER, task="classification", classes=["cat", "dog"], dataset="colours@1")
    with pytest.raises(Forbidden, match="only the owner"):
        PROPOSE.authorize(PROPOSE.validate_spec({"job": "p2", "model": "colours"}), Caller("mallory", "editor"),
                          workspace)
    predictor = Predictor(workspace, "colours")
    try:
        with pytest.raises(InvalidInput, match="share none with the label set"):
            predictor.propose([("x.png", workspace.blobs.read_bytes(store.items("p2", limit=1)["items"][0]["digest"]))],
                              ["cat", "dog"], "classification")
        with pytest.raises(InvalidInput, match="x.png: not a readable image"):
            predictor.propose([("x.png", b"nope")], ["red"], "classification")
    finally:
        predictor.close()


def _signature(classes):
    from modelyard.registry.signature import Signature, TensorSpec

    return Signature((TensorSpec("image", "float32", ("batch", 3, 8, 8)),),
                     (TensorSpec("logits", "float32", ("batch", len(classes))),),
                     task={"type": "classification", "classes": list(classes)})


def test_raw_scores_become_probabilities_within_the_label_set():
    import numpy as np

    from modelyard.deploy.prelabel import class_scores_to_proposals

    logits = {"logits": np.array([[2.0, 0.0, -1.0], [0.1, 0.2, 5.0]], np.float32)}
    # "c" is not in the label set: its score is left out and the rest renormalised
    single = class_scores_to_proposals(logits, _signature("abc"), [("x", 4, 4), ("y", 4, 4)], ["a", "b"],
                                       "classification")
    expected = np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum()
    assert single[0].annotated.labels == ("a",) and single[0].score == pytest.approx(expected[0], abs=1e-6)
    assert set(single[1].scores) == {"a", "b"} and single[1].annotated.labels == ("b",)
    probabilities = {"logits": np.array([[0.6, 0.3, 0.1], [0.15, 0.3, 0.55]], np.float32)}
    multi = class_scores_to_proposals(probabilities, _signature("abc"), [("x", 4, 4), ("y", 4, 4)], ["a", "b", "c"],
                                      "multilabel")
    assert multi[0].annotated.labels == ("a",) and multi[0].score == pytest.approx(0.6)
    assert multi[1].annotated.labels == ("c",) and multi[1].hard is False
    assert multi[1].uncertainty == pytest.approx(0.75)  # 1 - (0.55 - 0.3)
    with pytest.raises(InvalidInput, match="shape"):
        class_scores_to_proposals({"logits": np.zeros((2, 2), np.float32)}, _signature("abc"),
                                  [("x", 4, 4), ("y", 4, 4)], ["a"], "classification")


def test_a_detection_model_proposes_boxes_in_the_images_pixels(labeling):
    from modelyard.data.annotations import Annotated
    from modelyard.deploy.prelabel import PROPOSE
    from modelyard.registry.versions import ModelRegistry
    from support import DETECTOR_PREPROCESSING, DETECTOR_TASK, detector_onnx

    workspace, store, folder = labeling
    digest = "sha256:" + workspace.blobs.put_file(detector_onnx(folder / "detector.onnx")).digest
    ModelRegistry(workspace).create_version("boxes", {"model.onnx": digest}, "model.onnx", "onnx",
                                            preprocessing=DETECTOR_PREPROCESSING, task=DETECTOR_TASK)
    store.create("d1", OWNER, task="detection", dataset="colours@1", classes=["dog", "bird"])
    result = PROPOSE.run(PROPOSE.validate_spec({"job": "d1", "model": "boxes"}), LocalJobContext(home=workspace.home))
    assert result["proposed"] == 9
    for item in store.items("d1", state=["proposed"])["items"]:
        proposal = Annotated.from_entry(item["item"], item["proposal"])
        # the model's cat box is left out (not in the label set); its dog box is mapped back from the 32x32 input
        assert [b.label for b in proposal.boxes] == ["dog"] and proposal.boxes[0].score == pytest.approx(0.9)
        box = proposal.boxes[0]
        assert 0 <= box.x1 < box.x2 <= proposal.width and 0 <= box.y1 < box.y2 <= proposal.height
        assert item["score"] == pytest.approx(0.9)


def test_an_image_of_more_pixels_than_serving_takes_is_refused_before_decoding():
    import io

    from PIL import Image

    from modelyard.deploy.images import MAX_PIXELS
    from modelyard.deploy.prelabel import decode_pixels

    side = int(MAX_PIXELS ** 0.5) + 8  # a 1-bit PNG of a few kB that would decode to ~200 MB of RGB
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG")
    with pytest.raises(InvalidInput, match=f"{side}x{side} pixels is too large"):
        decode_pixels(buffer.getvalue())
