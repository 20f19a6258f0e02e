"""Table models as AutoML exports them (one ``[batch, 1]`` input per column, text columns as ``string`` tensors):
they resolve to a ModelSpec, load and warm up for serving, take JSON strings, run in batch over CSV/Parquet by
column name; classifiers that name their classes answer with names as well as indices."""

import numpy as np
import pytest
from deploy_models import TABULAR_CLASSES, deploy_models, expected_tabular  # noqa: F401 - fixtures

from modelyard.core.jobkind import LocalJobContext
from modelyard.deploy.batch import BatchSpec, run_batch

ISLANDS = ["Torgersen", "Biscoe", "Dream", "Nowhere", "Biscoe", "Dream"]
BILLS = [39.1, 46.5, 49.0, 40.0, 50.2, 36.3]




def _ctx(home):
    return LocalJobContext(home=home)


@pytest.fixture(scope="module")
def tabular_home(tmp_path_factory, deploy_models):
    from modelyard.client import Client

    home = tmp_path_factory.mktemp("tabular") / "home"
    with Client(home=home) as client:
        client.models.register(deploy_models / "tabular.onnx", "penguin",
                               task={"type": "classification", "output": "probabilities",
                                     "classes": TABULAR_CLASSES})
        client.models.register(deploy_models / "tabular.onnx", "unnamed")  # no task: no class names
        client.models.register(deploy_models / "linear.onnx", "linear")
    return home


def _version(home, ref):
    from modelyard.core.settings import Settings
    from modelyard.registry.resolve import resolve, version_spec
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(home), create=False)
    try:
        resolved = resolve(workspace, ref)
        return resolved, version_spec(resolved)
    finally:
        workspace.close()


def test_a_version_with_text_inputs_resolves_loads_and_warms_up(tabular_home):
    from modelyard.deploy.loading import load_served, warm_feeds
    from modelyard.runtime.spec import Artifact

    resolved, spec = _version(tabular_home, "penguin@1")
    assert {i.name: i.dtype for i in spec.inputs} == {"island": "string", "bill_length_mm": "float32"}
    assert spec.task.classes == TABULAR_CLASSES
    warm = warm_feeds(resolved.version.signature)
    assert warm["island"].dtype == object and warm["island"].tolist() == [[""]]
    artifact = Artifact("onnx", resolved.path, spec)
    _, runner = load_served(resolved.version, artifact, "auto")
    outputs = runner.infer({"island": np.array([["Dream"], ["Biscoe"]]),  # numpy text arrays are taken as they are
                            "bill_length_mm": np.array([[49.0], [46.5]], np.float32)})
    np.testing.assert_allclose(outputs["probabilities"], expected_tabular(["Dream", "Biscoe"], [49.0, 46.5]),
                               rtol=1e-5)
    assert outputs["label"].tolist() == outputs["probabilities"].argmax(axis=1).tolist()


def test_predict_json_takes_strings_for_text_inputs_and_names_the_input_otherwise(tabular_home):
    import json

    from modelyard.deploy.protocol import BadRequest, decode, validate

    signature = _version(tabular_home, "penguin@1")[0].version.signature
    body = json.dumps({"inputs": {"island": [["Dream"], ["Nowhere"]], "bill_length_mm": [[49.0], [40]]}}).encode()
    feeds, rows = validate(signature, decode(body, "application/json", signature))
    assert rows == 2 and feeds["island"].dtype == object and feeds["island"].tolist() == [["Dream"], ["Nowhere"]]
    assert feeds["bill_length_mm"].dtype == np.float32
    for inputs, message in [
        ({"island": [[3]], "bill_length_mm": [[1.0]]}, "input 'island' takes text"),
        ({"island": [["Dream"]], "bill_length_mm": [["long"]]}, "input 'bill_length_mm' holds text"),
        ({"island": [["Dream"], ["a", "b"]], "bill_length_mm": [[1.0]]}, "input 'island' is not a rectangular array"),
    ]:
        body = json.dumps({"inputs": inputs}).encode()
        with pytest.raises(BadRequest, match=message):
            validate(signature, decode(body, "application/json", signature))


def test_replies_name_the_predicted_class_with_its_index_and_score(tabular_home):
    import json

    from modelyard.deploy.classes import class_predictions
    from modelyard.deploy.protocol import encode_json, encode_safetensors

    signature = _version(tabular_home, "penguin@1")[0].version.signature
    assert signature.class_names == TABULAR_CLASSES
    probabilities = expected_tabular(["Dream", "Torgersen"], [49.0, 60.0]).astype(np.float32)
    outputs = {"label": probabilities.argmax(axis=1), "probabilities": probabilities}
    predictions = class_predictions(signature, outputs)
    assert [p["class"] for p in predictions] == [TABULAR_CLASSES[i] for i in probabilities.argmax(axis=1)]
    assert [p["index"] for p in predictions] == probabilities.argmax(axis=1).tolist()
    assert predictions[0]["score"] == pytest.approx(float(probabilities[0].max()))
    body = json.loads(encode_json(outputs, "penguin@1", predictions))
    assert body["predictions"] == predictions and body["outputs"]["label"] == outputs["label"].tolist()
    header = encode_safetensors(outputs, predictions)
    size = int.from_bytes(header[:8], "little")
    assert json.loads(json.loads(header[8:8 + size])["__metadata__"]["predictions"]) == predictions
    unnamed = _version(tabular_home, "unnamed@1")[0].version.signature
    assert class_predictions(unnamed, outputs) is None and "predictions" not in json.loads(encode_json(outputs, "u"))


def test_batch_over_a_csv_feeds_each_input_from_its_column_with_keys_and_class_names(tabular_home, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pacsv.write_csv(pa.table({"id": [f"p{i}" for i in range(len(ISLANDS))], "bill_length_mm": BILLS,
                              "island": ISLANDS, "unused": list(range(len(ISLANDS)))}), tmp_path / "in.csv")
    result = run_batch(BatchSpec(model="penguin@1", input=str(tmp_path / "in.csv"),
                                 output=str(tmp_path / "out.parquet"), key="id", chunk_size=4), _ctx(tabular_home))
    assert result["rows"] == len(ISLANDS) and result["chunks"] == 2
    out = pq.read_table(tmp_path / "out.parquet")
    assert out["id"].to_pylist() == [f"p{i}" for i in range(len(ISLANDS))]
    expected = expected_tabular(ISLANDS, BILLS)
    np.testing.assert_allclose(np.array(out["probabilities"].to_pylist()), expected, rtol=1e-5)
    assert out["class"].to_pylist() == [TABULAR_CLASSES[i] for i in expected.argmax(axis=1)]
    # Parquet in, CSV out; an empty text cell is "" (the unknown category), not an error
    pq.write_table(pa.table({"island": ["Dream", None], "bill_length_mm": [49.0, 40.0]}), tmp_path / "in.parquet")
    run_batch(BatchSpec(model="penguin@1", input=str(tmp_path / "in.parquet"), output=str(tmp_path / "o.csv")),
              _ctx(tabular_home))
    csv = pacsv.read_csv(tmp_path / "o.csv")
    assert csv.column_names == ["row", "label", "probabilities_0", "probabilities_1", "probabilities_2", "class"]
    np.testing.assert_allclose(np.stack([csv[f"probabilities_{j}"].to_numpy() for j in range(3)], axis=1),
                               expected_tabular(["Dream", ""], [49.0, 40.0]), rtol=1e-5)


def test_batch_names_the_columns_a_table_lacks(tabular_home, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from modelyard.core.errors import InvalidInput

    pacsv.write_csv(pa.table({"isle": ISLANDS, "bill_length_mm": BILLS}), tmp_path / "in.csv")
    with pytest.raises(InvalidInput, match=r"in.csv has no column for the model's input\(s\) island"):
        run_batch(BatchSpec(model="penguin@1", input=str(tmp_path / "in.csv"), output=str(tmp_path / "o.csv")),
                  _ctx(tabular_home))
    pacsv.write_csv(pa.table({"island": ISLANDS, "bill_length_mm": ["long"] * len(ISLANDS)}), tmp_path / "t.csv")
    with pytest.raises(InvalidInput, match="column 'bill_length_mm' holds text, input 'bill_length_mm' takes"):
        run_batch(BatchSpec(model="penguin@1", input=str(tmp_path / "t.csv"), output=str(tmp_path / "o.csv")),
                  _ctx(tabular_home))


def test_batch_maps_columns_whose_names_automl_rewrote(tabular_home, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # AutoML names the input of column "bill length-mm" bill_length_mm
    pacsv.write_csv(pa.table({"island": ISLANDS, "bill length-mm": BILLS}), tmp_path / "in.csv")
    run_batch(BatchSpec(model="penguin@1", input=str(tmp_path / "in.csv"), output=str(tmp_path / "o.npz")),
              _ctx(tabular_home))
    with np.load(tmp_path / "o.npz") as data:
        np.testing.assert_allclose(data["probabilities"], expected_tabular(ISLANDS, BILLS), rtol=1e-5)
        assert data["class"].tolist() == [TABULAR_CLASSES[i] for i in data["label"]]


def test_batch_reads_a_class_folder_tree(tmp_path, deploy_models):
    from PIL import Image

    from modelyard.client import Client

    home = tmp_path / "home"
    with Client(home=home) as client:
        client.models.register(deploy_models / "image.onnx", "image", preprocessing={"size": [8, 8], "scale": 1.0})
    tree = tmp_path / "digits"
    for label, value in (("cat", 10), ("dog", 20)):
        (tree / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((12, 12, 3), value + i, np.uint8)).save(tree / label / f"{i}.png")
    (tree / ".hidden").mkdir()
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tree / ".hidden" / "x.png")
    result = run_batch(BatchSpec(model="image@1", input=str(tree), output=str(tmp_path / "o.npz")), _ctx(home))
    assert result["rows"] == 4
    with np.load(tmp_path / "o.npz") as data:
        assert data["key"].tolist() == ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
        np.testing.assert_allclose(data["mean"][:, 0], [10, 11, 20, 21])
