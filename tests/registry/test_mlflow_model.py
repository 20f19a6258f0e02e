"""MLflow model directories written by MLflow itself register (signature and flavour kept, predictions equal to the
original model's), export back as MLflow models that MLflow loads, and unsafe or broken ones are refused."""

import json
import logging
import warnings

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput

mlflow = pytest.importorskip("mlflow", reason="mlflow-skinny is in the dev extra")

pytestmark = pytest.mark.slow  # MLflow writes four models (about 20 s)


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def mlflow_models(tmp_path_factory, iris):
    """One MLflow model per flavour, saved by MLflow 3 with its defaults (skops for sklearn, torch.export for
    PyTorch), plus the fitted originals to compare with."""
    import mlflow.onnx
    import mlflow.pytorch
    import mlflow.sklearn
    import torch
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    x, y = iris
    root = tmp_path_factory.mktemp("mlflow")
    estimator = LogisticRegression(max_iter=500).fit(x, y)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    with torch.no_grad():
        net_out = net(torch.from_numpy(x)).numpy()
    # explicit requirements: inferring them makes MLflow import the model in a subprocess (about 10 s a model)
    reqs = {"pip_requirements": ["numpy"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own deprecation chatter
        mlflow.sklearn.save_model(estimator, root / "sk", signature=infer_signature(x, estimator.predict(x)),
                                  input_example=x[:2], **reqs)
        mlflow.pytorch.save_model(net, root / "pt", signature=infer_signature(x, net_out), input_example=x[:2],
                                  **reqs)
        onnx_model = to_onnx(estimator, x[:1], options={id(estimator): {"zipmap": False}})
        mlflow.onnx.save_model(onnx_model, root / "ox", signature=infer_signature(x, estimator.predict_proba(x)),
                               **reqs)
        mlflow.sklearn.save_model(estimator, root / "sk-pickle", serialization_format="cloudpickle", **reqs)
    return {"root": root, "estimator": estimator, "net_out": net_out}


def _run_onnx(client, ref, tmp_path, x):
    import onnxruntime as ort

    entry = client.models.download(ref, tmp_path / ref.replace("@", "-"))
    session = ort.InferenceSession(str(entry), providers=["CPUExecutionProvider"])
    return {o.name: v for o, v in zip(session.get_outputs(), session.run(None, {session.get_inputs()[0].name: x}),
                                      strict=True)}


def test_the_onnx_flavour_registers_with_its_signature_and_mlflow_metadata(client, mlflow_models, iris, tmp_path):
    version = client.models.register(str(mlflow_models["root"] / "ox"), "iris-ox")
    assert version["source_format"] == "mlflow-onnx"
    source = version["lineage"]["source"]
    assert source["mlflow"]["signature"]["inputs"][0]["tensor-spec"]["shape"] == [-1, 4]
    assert source["mlflow"]["model_uuid"] and "onnx" in source["mlflow"]["flavors"]
    outputs = _run_onnx(client, "iris-ox@1", tmp_path, iris[0][:10])
    np.testing.assert_allclose(outputs["probabilities"], mlflow_models["estimator"].predict_proba(iris[0][:10]),
                               atol=1e-5)


def test_the_skops_sklearn_flavour_converts_without_trusting_a_pickle(client, mlflow_models, iris, tmp_path):
    version = client.models.register(str(mlflow_models["root"] / "sk"), "iris-sk")
    assert version["source_format"] == "mlflow-sklearn"
    assert "skops" in version["lineage"]["source"]["notes"][0]
    outputs = _run_onnx(client, "iris-sk@1", tmp_path, iris[0])
    assert (outputs["label"] == mlflow_models["estimator"].predict(iris[0])).mean() > 0.99


def test_the_pytorch_flavour_exports_its_torch_export_program(client, mlflow_models, iris, tmp_path):
    version = client.models.register(str(mlflow_models["root"] / "pt"), "iris-pt")
    assert version["source_format"] == "mlflow-pytorch"
    assert version["signature"]["inputs"][0]["shape"][1] == 4
    outputs = _run_onnx(client, "iris-pt@1", tmp_path, iris[0][:7])
    np.testing.assert_allclose(next(iter(outputs.values())), mlflow_models["net_out"][:7], atol=1e-4)


def test_a_pickled_sklearn_flavour_needs_trust(client, mlflow_models):
    with pytest.raises(InvalidInput, match="cloudpickle file: loading it runs code"):
        client.models.register(str(mlflow_models["root"] / "sk-pickle"), "iris-pickle")
    assert client.models.list()["items"] == []
    version = client.models.register(str(mlflow_models["root"] / "sk-pickle"), "iris-pickle", trust_pickle=True)
    assert version["source_format"] == "mlflow-sklearn"


def test_a_broken_mlflow_folder_is_refused_in_one_line(client, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  onnx:\n    data: ../../etc/passwd\n")
    with pytest.raises(InvalidInput, match="outside the model folder"):
        client.models.register(str(folder), "broken")
    (folder / "MLmodel").write_text("flavors:\n  keras:\n    data: model.keras\n")
    with pytest.raises(InvalidInput, match="MLflow flavours keras"):
        client.models.register(str(folder), "broken")
    (folder / "MLmodel").write_text("flavors: [\n")
    with pytest.raises(InvalidInput, match="not readable YAML"):
        client.models.register(str(folder), "broken")
    (folder / "MLmodel").unlink()
    with pytest.raises(InvalidInput, match="not an MLflow model"):
        client.models.register(str(folder), "broken")


def test_a_skops_file_with_a_foreign_type_is_refused(tmp_path):
    import skops.io as sio

    from modelyard.registry.mlflow_model import _load_skops

    path = tmp_path / "model.skops"
    sio.dump({"weights": np.ones(3), "thing": logging.Formatter()}, str(path))
    with pytest.raises(InvalidInput, match="logging.Formatter"):
        _load_skops(path)


@pytest.mark.parametrize(("module", "name"), [("builtins", "eval"), ("numpy", "load"), ("numpy", "memmap")])
def test_a_skops_file_that_calls_a_function_of_a_trusted_package_is_refused(tmp_path, module, name):
    # skops builds a ConstructorFromReduceNode by calling module.name(*args): a trusted function runs with the
    # file's arguments (builtins.eval runs code; numpy.load unpickles; numpy.memmap writes a file)
    import zipfile

    import skops.io as sio

    from modelyard.registry.mlflow_model import _load_skops

    marker = tmp_path / "ran"
    sio.dump((f"__import__('pathlib').Path({str(marker)!r}).write_text('x')",), str(tmp_path / "args.skops"))
    with zipfile.ZipFile(tmp_path / "args.skops") as source:
        args = json.loads(source.read("schema.json"))
    schema = {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode", "content": args,
              "__id__": 1, "protocol": args["protocol"], "_skops_version": args["_skops_version"]}
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("schema.json", json.dumps(schema))
    with pytest.raises(InvalidInput, match=f"{module}.{name}"):
        _load_skops(path)
    assert not marker.exists()


def test_a_torch_export_program_with_a_pickle_beyond_tensors_is_refused(mlflow_models, tmp_path):
    # torch.export.load retries a failed tensors-only load of the program's pickles (sample inputs, constants)
    # with a full unpickle, which runs code from the file
    import io
    import os
    import shutil
    import zipfile

    import torch

    from modelyard.registry.mlflow_model import prepare_mlflow

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.makedirs, (str(marker),)

    folder = shutil.copytree(mlflow_models["root"] / "pt", tmp_path / "pt")
    program = next(folder.rglob("*.pt2"))
    with zipfile.ZipFile(io.BytesIO(program.read_bytes())) as source, zipfile.ZipFile(program, "w") as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if "sample_inputs/" in info.filename:
                buffer = io.BytesIO()
                torch.save(Payload(), buffer)
                data = buffer.getvalue()
            out.writestr(info, data)
    with pytest.raises(InvalidInput, match="--trust-pickle"):
        prepare_mlflow(folder, tmp_path / "work")
    assert not marker.exists()


def test_a_version_exports_as_an_mlflow_model_that_mlflow_loads(client, mlflow_models, iris, tmp_path):
    import mlflow.pyfunc

    client.models.register(str(mlflow_models["root"] / "sk"), "iris-sk")
    result = client.models.export("iris-sk@1", tmp_path / "out", "mlflow")
    assert result["schema"] == "modelyard.model-export/1"
    model = mlflow.models.Model.load(str(tmp_path / "out"))
    assert json.loads(model.to_dict()["signature"]["inputs"])[0]["tensor-spec"]["shape"] == [-1, 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = mlflow.pyfunc.load_model(str(tmp_path / "out"))
        predicted = loaded.predict(iris[0][:5])
    probabilities = predicted["probabilities"] if isinstance(predicted, dict) else predicted
    np.testing.assert_allclose(np.asarray(probabilities), mlflow_models["estimator"].predict_proba(iris[0][:5]),
                               atol=1e-5)
    with pytest.raises(InvalidInput, match="not an empty folder"):
        client.models.export("iris-sk@1", tmp_path / "out", "mlflow")


def test_a_conversion_that_answers_differently_is_refused(client, mlflow_models, iris, monkeypatch):
    import modelyard.registry.export as export

    real = export.estimator_to_onnx

    def wrong_model(estimator, target, n_features=None):
        from sklearn.linear_model import LogisticRegression

        other = LogisticRegression(max_iter=1000).fit(iris[0], (iris[1] + 1) % 3)  # a different classifier
        return real(other, target, n_features)

    monkeypatch.setattr(export, "estimator_to_onnx", wrong_model)
    with pytest.raises(InvalidInput, match="answers differently from the original"):
        client.models.register(str(mlflow_models["root"] / "sk"), "iris-wrong")
    assert client.models.list()["items"] == []
