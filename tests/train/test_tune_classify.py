"""The classify stage of the ladder: a head on a decoder (over an L1) and on an encoder, LoRA and full, registered as
an ONNX classifier with lineage, answered by a classification service (text in, label and probabilities out)."""

from __future__ import annotations

import json

import pytest

from modelyard.core.errors import ModelyardError
from modelyard.core.jobkind import LocalJobContext

pytestmark = pytest.mark.slow  # trains tiny models and deploys one service

# the label is in the words: a head on any backbone learns it in a few steps
TOPICS = {"files": "Open the file with the with statement and read its lines number {i}.",
          "lists": "Append item {i} to the list and sort the list of numbers.",
          "dicts": "Map the key {i} to a value in the dictionary and look it up."}
ROWS = [{"text": template.format(i=i), "label": label} for i in range(12) for label, template in TOPICS.items()]


@pytest.fixture(scope="module")
def classified(ladder, tiny_bert_dir):
    """Classifiers added to the shared tiny ladder (tests/train/conftest.py): a LoRA head on its L1 (a decoder) and a
    fully tuned tiny BERT (an encoder)."""
    from modelyard.client import Client
    from modelyard.train.tune import TUNE, TuneSpec

    home, root = ladder["home"], ladder["root"]
    (root / "topics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    with Client(home=home) as client:
        bert = client.models.register(str(tiny_bert_dir), "enc", hf_task="foundation")
        topics = client.data.import_path(str(root / "topics.jsonl"), "topics", kind="text", validation_fraction=0.25)
    options = {"steps": 8, "batch_size": 8, "learning_rate": 5e-3, "max_length": 32, "eval_every": 4,
               "checkpoint_every": 4}
    decoder = TUNE.run(TuneSpec(base=ladder["l1"]["model"], data="topics@1", stage="classify", name="topic-dec",
                                **options), LocalJobContext(home=home, workdir=root / "c1"))
    encoder = TUNE.run(TuneSpec(base="enc@1", data="topics@1", stage="classify", method="full", name="topic-enc",
                                **{**options, "steps": 16, "learning_rate": 1e-2}),
                       LocalJobContext(home=home, workdir=root / "c2"))
    return {"home": home, "root": root, "l1": ladder["l1"], "decoder": decoder, "encoder": encoder,
            "topics": topics, "bert": bert, "options": options}


def test_classifiers_learn_the_task_on_a_decoder_and_an_encoder(classified):
    for result in (classified["decoder"], classified["encoder"]):
        evaluation = result["evaluation"]
        assert result["stage"] == "classify" and result["level"] == "L2" and result["output"] == "merged"
        assert len(result["losses"]) == result["steps"] and result["gate"] is None
        assert evaluation["classes"] == sorted(TOPICS) and evaluation["validation_items"] == 9
        assert evaluation["accuracy"] > evaluation["majority_accuracy"], (result["model"], evaluation)
    assert classified["decoder"]["hyperparameters"]["target_modules"] == ["q_proj", "v_proj"]


def test_classifier_version_is_onnx_with_classes_and_lineage_down_to_l0(classified):
    from modelyard.client import Client

    with Client(home=classified["home"]) as client:
        version = client.models.version(classified["decoder"]["model"])
        l1 = client.models.version(classified["l1"]["model"])
        tiny = client.models.version("tiny@1")
        document = client.ladder.lineage(version["ref"])
    assert version["format"] == "onnx" and version["tags"]["stage"] == "classify"
    ladder = version["lineage"]["ladder"]
    assert [c["digest"] for c in ladder["chain"]] == [tiny["digest"], l1["digest"]]
    assert ladder["dataset"]["digest"] == classified["topics"]["manifest"]
    assert ladder["export"]["max_abs_diff_vs_torch"] <= 1e-3
    assert [lv["level"] for lv in document["levels"]] == ["L0", "L1", "L2"]
    assert "accuracy" in document["levels"][2]["metrics"]


def test_a_classification_service_answers_text_with_label_and_probabilities(classified):
    from modelyard.client import Client
    from modelyard.deploy import supervisor

    texts = ["Append item 99 to the list and sort the list of numbers.",
             "Open the file with the with statement and read its lines number 99."]
    with Client(home=classified["home"]) as client:
        try:
            client.services.deploy(classified["encoder"]["model"], "topics", timeout=120)
            answer = client.services.predict("topics", {"text": texts})
        finally:
            client.services.stop("topics")
            supervisor.stop(classified["home"])
    probabilities = answer["outputs"]["probabilities"]
    assert probabilities.shape == (2, 3) and abs(float(probabilities.sum()) - 2) < 1e-4
    # the label is the argmax of the row's probabilities, named by the dataset's classes (sorted); which class a
    # 16-step tiny encoder picks for an unseen sentence is the model's business (its held-out accuracy is asserted
    # above), so the service is held to answering the model's own decision for each row
    classes = sorted(TOPICS)
    assert [p["class"] for p in answer["predictions"]] == [classes[int(row.argmax())] for row in probabilities]
    assert float(abs(probabilities[0] - probabilities[1]).max()) > 1e-4  # each row is its own text's answer


def test_classify_refuses_unlabeled_data_and_an_adapter_output(classified):
    from modelyard.train.tune import TUNE, TuneSpec

    context = LocalJobContext(home=classified["home"], workdir=classified["root"] / "c4")
    with pytest.raises(ModelyardError, match="text/label"):
        TUNE.run(TuneSpec(base="tiny@1", data="corpus@1", stage="classify", steps=1), context)
    with pytest.raises(ModelyardError, match="output merged"):
        TUNE.run(TuneSpec(base="tiny@1", data="topics@1", stage="classify", output="adapter", steps=1), context)


def test_batch_classifies_a_text_dataset_and_a_table_of_texts(classified):
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    from modelyard.deploy.batch import BatchSpec, run_batch

    home, root = classified["home"], classified["root"]
    model = classified["encoder"]["model"]
    result = run_batch(BatchSpec(model=model, dataset="topics@1", output=str(root / "topics-out.parquet")),
                       LocalJobContext(home=home, workdir=root / "cb1"))
    out = pq.read_table(root / "topics-out.parquet")
    assert result["rows"] == len(ROWS) and out.num_rows == len(ROWS)
    assert set(out["class"].to_pylist()) <= set(TOPICS) and "probabilities" in result["outputs"]
    labels = [json.loads(line)["label"] for line in (root / "topics.jsonl").read_text().splitlines()]
    assert sum(c == lab for c, lab in zip(out["class"].to_pylist(), labels, strict=True)) > len(ROWS) / 3
    pq.write_table(pa.table({"id": ["a", "b"], "body": ["Append item 99 to the list and sort the list of numbers.",
                                                       "Open the file and read its lines."]}), root / "t.parquet")
    run_batch(BatchSpec(model=model, input=str(root / "t.parquet"), key="id", columns=["body"],
                        output=str(root / "t-out.csv")), LocalJobContext(home=home, workdir=root / "cb2"))
    rows = list(csv.DictReader((root / "t-out.csv").read_text().splitlines()))
    assert [r["id"] for r in rows] == ["a", "b"] and rows[0]["class"] == "lists" and "probabilities_2" in rows[0]
    with pytest.raises(ModelyardError, match="text column"):
        run_batch(BatchSpec(model=model, input=str(root / "t.parquet")), LocalJobContext(home=home,
                                                                                          workdir=root / "cb3"))
