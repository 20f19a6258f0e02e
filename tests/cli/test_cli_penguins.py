"""The bundled penguins sample from import to a deployed service and a batch CSV, as the README tells a new user
(issue 21): a table with text columns, an AutoML winner with one input per column, class names in the answers."""

import json

import pytest

from support import run_cli, stop_supervisor

CLASSES = {"Adelie", "Chinstrap", "Gentoo"}
ROW = {"island": [["Biscoe"]], "bill_length_mm": [[46.5]], "bill_depth_mm": [[14.8]],
       "flipper_length_mm": [[217.0]], "body_mass_g": [[5200.0]], "sex": [["female"]], "year": [[2008]]}


@pytest.mark.slow
def test_penguins_from_import_to_a_service_and_a_batch_csv(tmp_path):
    import pyarrow.csv as pacsv

    from modelyard.client import Client

    home, sample, out = tmp_path / "w", tmp_path / "p.csv", tmp_path / "out.csv"
    run_cli("data", "sample", "penguins", "-o", str(sample), home=home, check=True)
    run_cli("data", "import", str(sample), "--name", "penguins", home=home, check=True)
    trained = run_cli("automl", "train", "penguins@1", "--name", "pc", "--time-budget", "600", "--max-trials", "6",
                      home=home, check=True, timeout=300).stdout
    # the hint points at held-out data: the validation split, or (after a refit on train + validation) a test set
    assert "modelyard evaluate pc@1 --data penguins@1 --split validation" in trained or "--data TEST@1" in trained
    version = json.loads(run_cli("models", "show", "pc@1", "--json", home=home, check=True).stdout)
    assert {t["name"]: t["dtype"] for t in version["signature"]["inputs"]}["island"] == "string"
    assert set(version["signature"]["task"]["classes"]) == CLASSES
    try:
        run_cli("deploy", "pc@1", "--name", "pc", home=home, check=True, timeout=300)
        reply = json.loads(run_cli("services", "predict", "pc", "--data", json.dumps({"inputs": ROW}), home=home,
                                   check=True).stdout)
        [prediction] = reply["predictions"]
        assert prediction["class"] in CLASSES and reply["outputs"]["label"] == [prediction["index"]]
        assert prediction["score"] == pytest.approx(max(reply["outputs"]["probabilities"][0]))
        with Client(home=home) as client:  # the SDK takes the REST body as it is, or the inputs alone
            for inputs in ({"inputs": ROW}, ROW):
                answer = client.services.predict("pc", inputs)
                assert answer["predictions"] == reply["predictions"] and answer["model"] == "pc@1"
        bad = run_cli("services", "predict", "pc", "--data", json.dumps({"inputs": {**ROW, "island": [[3]]}}),
                      home=home)
        assert bad.returncode == 1 and "input 'island' takes text" in bad.stderr
    finally:
        problems = stop_supervisor(home)
        assert not problems, problems
    run_cli("batch", "pc@1", "--input", str(sample), "--output", str(out), home=home, check=True, timeout=300)
    table = pacsv.read_csv(out)
    assert table.num_rows == 344 and table["row"].to_pylist() == list(range(344))
    names = sorted(CLASSES)  # the dataset's classes, in the model's order
    predicted = table["class"].to_pylist()
    assert set(predicted) <= CLASSES
    probabilities = [[table[f"probabilities_{j}"][i].as_py() for j in range(3)] for i in range(344)]
    assert predicted == [names[max(range(3), key=p.__getitem__)] for p in probabilities]
    truth = pacsv.read_csv(sample)["label"].to_pylist()
    assert sum(p == t for p, t in zip(predicted, truth, strict=True)) / 344 > 0.6  # majority class: 0.44
