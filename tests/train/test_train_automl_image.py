"""Image AutoML end to end on a small MNIST subset: search, latency gate, registration, evaluation with saliency."""

import numpy as np
import pytest
from trainfixtures import make_context  # noqa: F401  (fixtures)

from modelyard.core.errors import InvalidInput


@pytest.fixture(scope="module")
def image_home(tmp_path_factory):
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.samples import load_mnist, write_image_folder
    from modelyard.store.workspace import Workspace

    root = tmp_path_factory.mktemp("images")
    x, y = load_mnist()["train"]
    picks = np.concatenate([np.flatnonzero(y == c)[:40] for c in (0, 1, 7)])
    folder = write_image_folder(x[picks], y[picks], root / "digits", classes=[str(i) for i in range(10)])
    workspace = Workspace.open(Settings.load(root / "home"))
    DatasetStore(workspace).import_path(folder, "digits")
    workspace.close()
    return root / "home"


@pytest.mark.slow
def test_image_automl_registers_an_onnx_cnn_and_evaluates_with_saliency(image_home, make_context):
    from modelyard.core.settings import Settings
    from modelyard.registry.versions import ModelRegistry
    from modelyard.store.workspace import Workspace
    from modelyard.train.automl import AutomlSpec, run_automl
    from modelyard.train.evaluate import evaluate

    ctx = make_context(image_home)
    result = run_automl(AutomlSpec(dataset="digits@1", name="digits-cnn", time_budget_s=600, max_trials=1,
                                   max_latency_ms=20), ctx)
    assert result["task"] == "image-classification" and result["model"] == "digits-cnn@1"
    assert result["classes"] == ["0", "1", "7"] and result["latency_ms"] <= 20
    assert result["leaderboard"][0]["family"] == "cnn" and result["score"] >= 0.6
    assert result["trials"] == 1 and result["stop_reason"] == "max trials (1)"
    assert any("training on" in line for line in ctx.lines)
    workspace = Workspace.open(Settings.load(image_home))
    try:
        version = ModelRegistry(workspace).get_version("digits-cnn@1")
        assert version.signature.preprocessing["size"] == [28, 28]
        assert version.signature.inputs[0].name == "image"
        assert version.signature.class_names == ["0", "1", "7"]  # replies name the digit, not its index
        assert version.lineage["fit_splits"] == ["train"]  # the CNN never trains on the validation split
        evaluation = evaluate(workspace, "digits-cnn@1", "digits@1", split="validation")
        everything = evaluate(workspace, "digits-cnn@1", "digits@1").to_dict()
    finally:
        workspace.close()
    data = evaluation.to_dict()
    assert data["task"] == "image-classification" and data["rows"] == 24
    assert data["in_sample"] is None and everything["in_sample"]["rows"] == everything["rows"] - 24
    assert len(data["saliency"]) >= 3 and data["saliency"][0]["method"] == "occlusion"
    assert evaluation.html.count("data:image/png;base64,") >= 3


@pytest.mark.slow
def test_image_latency_gate_rejects_before_training(image_home, make_context):
    from modelyard.train.automl import AutomlSpec, run_automl

    with pytest.raises(InvalidInput, match=r"max latency 1e-06 ms: no CNN met it"):
        run_automl(AutomlSpec(dataset="digits@1", name="never", time_budget_s=600, max_trials=2,
                              max_latency_ms=1e-6),
                   make_context(image_home))


@pytest.mark.slow
def test_max_trials_makes_the_image_search_step_bounded_and_repeatable():
    """Same data, seed and max_trials under a budget never reached: the same candidates, scores and weights."""
    from modelyard.data.samples import load_mnist
    from modelyard.train.automl_image import search_image_arrays
    from modelyard.train.latency import session

    x, y = load_mnist()["train"]
    picks = np.concatenate([np.flatnonzero(y == c)[:30] for c in (0, 1)])
    x, y = x[picks].reshape(-1, 1, 28, 28), (y[picks] == 1).astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, val = order[:45], order[45:]
    lines = []
    first, second = (search_image_arrays(x[train], y[train], x[val], y[val], ("0", "1"), time_budget_s=600,
                                         max_trials=1, seed=2, log=lines.append) for _ in range(2))
    assert first.trials == 1 and first.stop_reason == "max trials (1)"
    assert any("step-bounded search" in line for line in lines)
    assert [(e["params"], e["score"]) for e in first.leaderboard] == [(e["params"], e["score"]) for e in
                                                                       second.leaderboard]
    feeds = {"image": x[val].astype(np.float32) / 255.0}
    assert np.array_equal(session(first.onnx).run(None, feeds)[0], session(second.onnx).run(None, feeds)[0])


def test_occlusion_map_finds_the_evidence():
    from modelyard.train.saliency import occlusion_map

    def run(batch):  # "class 1" probability is the brightness of the top-left quarter
        score = batch[:, 0, :4, :4].mean(axis=(1, 2))
        return np.stack([1 - score, score], axis=1)

    image = np.zeros((1, 8, 8), dtype=np.float32)
    image[0, :4, :4] = 1.0
    heat = occlusion_map(run, image, 1, patch=2)
    assert heat[:4, :4].mean() > 0.5 and heat[5:, 5:].max() == 0


def test_a_schedule_of_four_steps_trains_instead_of_dividing_by_zero():
    """A slow machine sizes the one-cycle schedule from the measured step time: a run that fits four steps crashed
    inside OneCycleLR (its warm-up phase ends at step 0)."""
    from modelyard.train.automl_image import BATCH, _train, build_cnn

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(80 * BATCH, 1, 8, 8), dtype=np.uint8)  # 80 steps an epoch: the minimum
    y = rng.integers(0, 2, size=len(x)).astype(np.int64)  # 0.05 epoch of it is exactly 4 steps
    model = build_cnn(1, 2, 4, 1, [0.5], [0.25])
    model, epochs, best = _train(model, x, y, 1e-3, "none", 0.0, seed=0)
    assert epochs >= 0 and best == -1.0
