"""Every registrable format ends as files a runtime serves, with outputs equal to the original model's."""

import pickle

import numpy as np
import pytest
from registry_models import model_dir  # noqa: F401 - fixtures

from modelyard.core.errors import InvalidInput
from modelyard.registry.resolve import resolve_spec


def run(client, ref, feeds):
    from modelyard.runtime.registry import get_backend

    spec = resolve_spec(client._workspace, ref)
    return get_backend("onnxruntime:cpu").load(spec.source()).infer(feeds)


@pytest.fixture(scope="session")
def tabular():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return x, y


def test_onnx_with_metrics_tags_lineage_through_the_sdk(client, model_dir):
    version = client.models.register(model_dir / "linear.onnx", "lin", metrics={"acc": 0.5}, tags={"k": "v"},
                                      lineage={"dataset": "toy@2"})
    assert version["schema"] == "modelyard.model-version/1" and version["uri"] == "modelyard://lin@1"
    assert version["lineage"]["dataset"] == "toy@2" and version["lineage"]["source"]["format"] == "onnx"
    assert "## Metrics" in client.models.card("lin@1")
    target = client.models.download("lin@1", client._workspace.home / "dl")
    assert target.read_bytes() == (model_dir / "linear.onnx").read_bytes()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_openvino_ir(client, model_dir, tmp_path):
    import openvino as ov

    ov.save_model(ov.convert_model(str(model_dir / "linear.onnx")), str(tmp_path / "linear.xml"))
    version = client.models.register(tmp_path / "linear.xml", "lin-ir")
    assert version["format"] == "openvino" and sorted(version["files"]) == ["model.bin", "model.xml"]
    assert version["signature"]["inputs"][0]["name"] == "x"
    spec = resolve_spec(client._workspace, "lin-ir@1")
    assert spec.source_format == "openvino" and spec.resolve(spec.openvino).with_suffix(".bin").is_file()


def test_scikit_learn_estimator_is_converted(client, tabular):
    from sklearn.linear_model import LogisticRegression

    x, y = tabular
    model = LogisticRegression().fit(x, y)
    version = client.models.register(model, "logreg", metrics={"train_acc": model.score(x, y)})
    assert version["source_format"] == "sklearn"
    assert [o["name"] for o in version["signature"]["outputs"]] == ["label", "probabilities"]
    out = run(client, "logreg@1", {"input": x[:20]})
    np.testing.assert_array_equal(out["label"], model.predict(x[:20]))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(x[:20]), atol=1e-5)


def test_lightgbm_text_model_and_trusted_pickle(client, tabular, tmp_path):
    import lightgbm

    x, y = tabular
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 4}, lightgbm.Dataset(x, y),
                             num_boost_round=5)
    booster.save_model(str(tmp_path / "model.txt"))
    version = client.models.register(tmp_path / "model.txt", "gbm")
    assert version["source_format"] == "lightgbm"
    out = run(client, "gbm@1", {"input": x[:10]})
    np.testing.assert_allclose(out["probabilities"][:, 1], booster.predict(x[:10]), atol=1e-5)

    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(max_depth=3).fit(x, y)
    (tmp_path / "tree.pkl").write_bytes(pickle.dumps(tree))
    with pytest.raises(InvalidInput, match="--trust-pickle"):
        client.models.register(tmp_path / "tree.pkl", "tree")
    version = client.models.register(tmp_path / "tree.pkl", "tree", trust_pickle=True)
    np.testing.assert_array_equal(run(client, "tree@1", {"input": x[:10]})["label"], tree.predict(x[:10]))


def test_unknown_files_are_refused(client, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(InvalidInput, match="cannot register weights.bin"):
        client.models.register(tmp_path / "weights.bin", "w")


def test_an_empty_model_file_is_called_empty(client, tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(InvalidInput, match=r"^model.onnx: the file is empty \(0 bytes\)"):
        client.models.register(tmp_path / "model.onnx", "empty")


@pytest.mark.slow
def test_pytorch_spec_is_exported_to_onnx_with_its_preprocessing(client, tmp_path):
    import torch

    from modelyard.runtime.spec import load_spec
    from modelyard.runtime.torch_backend import build_torch_model

    (tmp_path / "cnn.yaml").write_text(
        "entrypoint: modelyard.runtime.zoo:tiny_cnn\n"
        "kwargs: {channels: 4, num_classes: 5}\n"
        "inputs: [{name: image, shape: [batch, 3, 16, 16], dtype: float32}]\n"
        "outputs: [logits]\n"
        "preprocessing: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n"
        "task: {type: classification}\n")
    version = client.models.register(tmp_path / "cnn.yaml", "cnn")
    assert version["source_format"] == "torch" and version["signature"]["batchable"]
    assert version["signature"]["preprocessing"]["input"] == "image"
    assert version["signature"]["task"]["type"] == "classification"
    x = np.random.default_rng(1).normal(size=(3, 3, 16, 16)).astype(np.float32)
    model = build_torch_model(load_spec(tmp_path / "cnn.yaml"))
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(client, "cnn@1", {"image": x})["logits"], expected, atol=1e-4)
