"""Capture: the request path only queues (a full queue drops and counts, never waits or raises); the thread turns
requests into records (table columns, image summaries and embeddings, predicted classes) and writes Parquet
segments into the blob store that reports read back; settings switch it on and off."""

import numpy as np
import pytest

from modelyard.deploy.monitoring.capture import Capture, parse_feedback
from modelyard.deploy.monitoring.segments import load_columns
from modelyard.deploy.monitoring.store import MonitorStore
from modelyard.registry.signature import Signature, TensorSpec

SIGNATURE = Signature((TensorSpec("x", "float32", ("batch", 1)),), (TensorSpec("p", "float32", ("batch", 2)),),
                      task={"type": "classification", "output": "p", "classes": ["no", "yes"]})


def _capture(workspace, **settings) -> Capture:
    MonitorStore(workspace.engine).set_settings("svc", {"enabled": True, **settings})
    return Capture("svc", "replica-0", workspace.engine, workspace.blobs, {"m@1": SIGNATURE})


def test_requests_become_records_in_parquet_segments(sqlite_workspace):
    capture = _capture(sqlite_workspace, flush_s=60).start()
    image = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    capture.offer("req-1", "m@1", {"x": np.array([[1.5], [2.5]], np.float32)},
                  {"p": np.array([[0.2, 0.8], [0.9, 0.1]], np.float32)}, 2, 0.004, 200)
    capture.offer("req-2", "m@1", {"x": np.array([[3.0]], np.float32), "image": image[:1]}, None, 1, 0.002, 200)
    capture.offer("req-3", "none", None, None, 0, 0.001, 400)
    capture.close()  # writes what is queued
    columns = load_columns(sqlite_workspace, "svc", "traffic")
    assert columns["request_id"].tolist() == ["req-1", "req-1", "req-2", "req-3"]
    assert columns["row"].tolist() == [0, 1, 0, 0] and columns["status"].tolist() == [200, 200, 200, 400]
    assert columns["f.x"][:3].tolist() == [1.5, 2.5, 3.0] and np.isnan(columns["f.x"][3])
    assert columns["p.class"][:2].tolist() == ["yes", "no"] and columns["p.score"][:2] == pytest.approx([0.8, 0.9])
    assert columns["e.image"].shape == (4, 32) and columns["s.image.width"][2] == 32
    assert columns["s.image.brightness"][2] == pytest.approx(float(image[0].mean()), rel=1e-5)
    assert capture.counters["captured"] == 3 and capture.counters["segments"] == 1
    assert capture.counters["summarized"] == 1  # 12 KB of image per row is over the 4 KB record limit


def test_a_full_queue_drops_and_counts_and_capture_off_takes_nothing(sqlite_workspace):
    capture = _capture(sqlite_workspace, queue_size=5)
    capture._refresh_settings(force=True)  # no thread: nothing drains the queue
    feeds = {"x": np.ones((1, 1), np.float32)}
    for i in range(20):
        capture.offer(f"r{i}", "m@1", feeds, None, 1, 0.001, 200)
    assert len(capture._queue) == 5 and capture.counters["dropped_full"] == 15
    MonitorStore(sqlite_workspace.engine).set_settings("svc", {"enabled": False})
    capture._refresh_settings(force=True)
    capture.offer("late", "m@1", feeds, None, 1, 0.001, 200)
    assert capture.counters["offered"] == 20


def test_sampling_keeps_about_the_rate(sqlite_workspace):
    capture = _capture(sqlite_workspace, sample_rate=0.25, queue_size=100_000)
    capture._refresh_settings(force=True)
    for i in range(4000):
        capture.offer(f"r{i}", "m@1", None, None, 1, 0.001, 200)
    assert 800 < len(capture._queue) < 1200


def test_feedback_bodies_are_checked_item_by_item():
    assert parse_feedback({"request_id": "a", "label": "cat"}) == [{"request_id": "a", "label": "cat", "row": 0}]
    assert len(parse_feedback({"items": [{"request_id": "a", "label": 1.5, "row": 2}] * 3})) == 3
    for body, message in [([], "JSON object"), ({"items": []}, "non-empty"), ({"request_id": 3, "label": "x"},
                          "request_id"), ({"request_id": "a", "label": None}, "label"),
                          ({"items": [{"request_id": "a", "label": "x", "row": -1}]}, "item 0: row"),
                          ({"request_id": "a", "label": "x", "extra": 1}, "takes request_id")]:
        with pytest.raises(Exception, match=message):
            parse_feedback(body)


def test_large_inputs_are_bounded_by_bytes_held_not_only_by_requests(sqlite_workspace, monkeypatch):
    monkeypatch.setattr("modelyard.deploy.monitoring.capture.MAX_HELD_BYTES", 10 * 1024 * 1024)
    capture = _capture(sqlite_workspace, queue_size=1000)
    capture._refresh_settings(force=True)
    image = {"image": np.zeros((1, 3, 512, 512), np.float32)}  # 3 MiB
    for i in range(5):
        capture.offer(f"r{i}", "m@1", image, None, 1, 0.001, 200)
    assert len(capture._queue) == 3 and capture.counters["dropped_full"] == 2
