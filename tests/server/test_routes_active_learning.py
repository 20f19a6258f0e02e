"""The labeling-assistance routes: each queues its job with the body as the spec; bad bodies and unknown datasets
are refused before anything is queued."""

import pytest

from modelyard.core.errors import InvalidInput, NotFound


@pytest.fixture
def digits_client(client, tmp_path):
    from sklearn.datasets import load_digits

    from modelyard.data.images import encode_png

    digits = load_digits()
    for index in range(24):
        name = "unlabeled" if index >= 12 else str(digits.target[index] % 2)
        (tmp_path / "d" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / name / f"{index}.png").write_bytes(encode_png((digits.images[index] * 15).astype("uint8")))
    client.data.import_path(tmp_path / "d", "d")
    return client


def test_suggest_and_groups_queue_their_jobs(digits_client):
    job = digits_client.request("POST", "/api/v1/labeling/suggest",
                                json={"dataset": "d@1", "strategy": "entropy", "batch": 4}).json()
    assert job["kind"] == "label.suggest" and job["status"] == "queued"
    assert job["spec"]["strategy"] == "entropy" and job["spec"]["control_fraction"] == 0.1
    groups = digits_client.request("POST", "/api/v1/labeling/groups", json={"dataset": "d@1", "k": 3}).json()
    assert groups["kind"] == "label.group" and groups["spec"]["k"] == 3


def test_bad_labeling_requests_are_refused(digits_client):
    with pytest.raises(NotFound, match="dataset 'nope' not found"):
        digits_client.request("POST", "/api/v1/labeling/suggest", json={"dataset": "nope@1"})
    with pytest.raises(InvalidInput, match="strategy"):
        digits_client.request("POST", "/api/v1/labeling/suggest", json={"dataset": "d@1", "strategy": "smart"})
    with pytest.raises(InvalidInput, match="k"):
        digits_client.request("POST", "/api/v1/labeling/groups", json={"dataset": "d@1", "k": 500})
    assert digits_client.jobs.list()["items"] == []
