"""``client.active_learning``: each call submits its job kind with a spec the kind accepts, and returns the result
(the jobs themselves are tested in tests/train/test_train_label_suggest.py)."""

import pytest

from modelyard.core.errors import ModelyardError
from modelyard.train.label_suggest import GroupSpec, SuggestSpec


@pytest.fixture
def submitted(client, monkeypatch):
    calls = []

    def run(kind, spec, timeout=None):
        calls.append((kind, spec))
        return {"id": "job_x", "kind": kind, "status": "succeeded", "result": {"kind": kind}, "error": None}

    monkeypatch.setattr(client.jobs, "run", run)
    return calls


def test_suggest_and_group_submit_specs_their_kinds_accept(client, submitted):
    assert client.active_learning.suggest("d@1", strategy="kcenter", batch=5, patience=4) == {"kind": "label.suggest"}
    assert client.active_learning.group("d@1", k=7) == {"kind": "label.group"}
    (suggest_kind, suggest_spec), (group_kind, group_spec) = submitted
    assert suggest_kind == "label.suggest" and group_kind == "label.group"
    assert SuggestSpec.model_validate(suggest_spec).patience == 4
    assert SuggestSpec.model_validate(suggest_spec).strategy == "kcenter"
    assert GroupSpec.model_validate(group_spec).k == 7


def test_a_failed_job_raises_its_error(client, monkeypatch):
    monkeypatch.setattr(client.jobs, "run", lambda kind, spec, timeout=None: {
        "id": "job_y", "kind": kind, "status": "failed", "result": None, "error": "d@1: no decodable images"})
    with pytest.raises(ModelyardError, match="no decodable images"):
        client.active_learning.suggest("d@1")
