"""INT8 calibration on a registered dataset version (the model's lineage, or one named): real samples reach both
the quantiser and the gate, and a model whose lineage names no dataset gets a clear error when INT8 is asked for."""

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.core.settings import Settings
from modelyard.data.datasets import DatasetStore
from modelyard.edge.bundles import Bundles
from modelyard.edge.calibration import dataset_feeds
from modelyard.registry.resolve import resolve, version_spec
from modelyard.registry.versions import ModelRegistry
from modelyard.store.workspace import Workspace
from support import matmul_onnx


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    workspace = Workspace.open(Settings.load(root / "home"))
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{a:.4f},{b:.4f},{'yes' if a > b else 'no'}" for a, b in rng.normal(50, 10, (40, 2))]
    (root / "t.csv").write_text("\n".join(rows) + "\n")
    DatasetStore(workspace).import_path(root / "t.csv", "table")
    registry = ModelRegistry(workspace)
    weights = np.array([[1.0, 2.0], [3.0, -1.0]], dtype=np.float32)
    blob = workspace.blobs.put_file(matmul_onnx(root / "m.onnx", weights))
    registry.create_version("plain", {"model.onnx": "sha256:" + blob.digest}, "model.onnx", "onnx")
    registry.create_version("trained", {"model.onnx": "sha256:" + blob.digest}, "model.onnx", "onnx",
                            lineage={"dataset": "table@1"})
    yield workspace
    workspace.close()


def test_samples_come_from_the_table_in_the_models_lineage(workspace, tmp_path):
    resolved = resolve(workspace, "trained@1")
    info = dataset_feeds(workspace, "table@1", version_spec(resolved), tmp_path / "c.npz", samples=8)
    assert info == {"dataset": "table@1", "kind": "tabular", "samples": 8}
    with np.load(tmp_path / "c.npz") as archive:
        x = archive["x"]
    assert x.shape == (8, 1, 2) and x.dtype == np.float32 and 20 < float(x.mean()) < 80  # the table's values, not noise

    bundle = Bundles(workspace).package("trained@1", "cpu-x86", prune=False)
    assert bundle["figures"]["samples_from"] == {"dataset": "table@1", "kind": "tabular", "samples": 32}
    step = bundle["figures"]["steps"][0]
    assert step["step"] == "int8-static" and step["samples"] == 32


def test_int8_without_a_dataset_is_refused_with_what_to_do(workspace):
    bundles = Bundles(workspace)
    with pytest.raises(InvalidInput, match=r"no training dataset in its lineage.*--calibration DATASET@VERSION"):
        bundles.package("plain@1", "cpu-x86")
    named = bundles.package("plain@1", "cpu-x86", prune=False, calibration="table@1")
    assert named["figures"]["samples_from"]["dataset"] == "table@1"
    assert bundles.package("plain@1", "cpu-x86", int8=False)["figures"]["samples_from"]["dataset"] is None
    with pytest.raises(InvalidInput, match=r"does not take its 2 numeric.*--no-int8"):
        # a table of two feature columns cannot feed a three-feature input
        dataset_feeds(workspace, "table@1", _spec_with_width(3), workspace.home / "x.npz")


def test_lineage_data_that_does_not_fit_stops_int8_but_not_a_float_bundle(workspace, tmp_path):
    from onnx import TensorProto, helper, save

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(tmp_path / "wide.onnx"))
    blob = workspace.blobs.put_file(tmp_path / "wide.onnx")
    ModelRegistry(workspace).create_version("wide", {"model.onnx": "sha256:" + blob.digest}, "model.onnx", "onnx",
                                            lineage={"dataset": "table@1"})
    bundles = Bundles(workspace)
    with pytest.raises(InvalidInput, match=r"cannot calibrate on table@1.*--no-int8"):
        bundles.package("wide@1", "cpu-x86", prune=False)
    samples_from = bundles.package("wide@1", "cpu-x86", int8=False)["figures"]["samples_from"]
    assert samples_from["dataset"] is None and "does not take its 2 numeric" in samples_from["why"]


def _spec_with_width(width: int):
    from modelyard.runtime.spec import ModelSpec

    return ModelSpec.model_validate({"onnx": "m.onnx", "inputs": [{"name": "x", "shape": ["batch", width]}]})
