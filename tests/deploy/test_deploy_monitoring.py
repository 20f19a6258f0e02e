"""Monitoring end to end on a real service: a table classifier trained on a dataset version (its lineage names it)
is deployed, its traffic captured by the replica into Parquet segments, labels come back by request id (through
the replica and through the platform), a shift of one feature is reported as drift of that feature (and stationary
windows are not), and an alert rule posts the alert to a webhook on 127.0.0.1, once."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
from deploy_models import TABULAR_CLASSES, TABULAR_ISLANDS, deploy_models, expected_tabular  # noqa: F401

from modelyard.cli.main import main
from support import stop_supervisor

pytestmark = pytest.mark.slow  # a supervisor and a replica process


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps what it was sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _rows(rng, count, shift=0.0):
    islands = rng.choice(TABULAR_ISLANDS, count).tolist()
    bills = (rng.normal(45.0, 5.0, count) + shift).round(1).tolist()
    return islands, bills


def _truth(rng, islands, bills):
    """The model's own answer, with 10 % of labels flipped: accuracy about 0.9."""
    predicted = expected_tabular(islands, bills).argmax(axis=1)
    flip = rng.random(len(predicted)) < 0.1
    truth = np.where(flip, (predicted + 1) % 3, predicted)
    return [TABULAR_CLASSES[i] for i in truth]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, deploy_models):  # noqa: F811 - the fixture imported above
    from modelyard.client import Client

    folder = tmp_path_factory.mktemp("monitoring")
    home = folder / "home"
    rng = np.random.default_rng(7)
    islands, bills = _rows(rng, 600)
    lines = ["island,bill_length_mm,species"] + [f"{i},{b},{s}" for i, b, s in
                                                  zip(islands, bills, _truth(rng, islands, bills), strict=True)]
    (folder / "penguins.csv").write_text("\n".join(lines) + "\n")
    client = Client(home=home)
    dataset = client.data.import_path(folder / "penguins.csv", "peng", label="species")
    client.models.register(deploy_models / "tabular.onnx", "penguin", lineage={"dataset": dataset["ref"]},
                           task={"type": "classification", "output": "probabilities", "classes": TABULAR_CLASSES})
    service = client.services.deploy("penguin@1", "penguin", timeout=60)
    receiver = Receiver()
    yield client, home, service["url"], receiver
    receiver.close()
    stop_supervisor(home)
    client.close()


def _predict(url, headers, islands, bills):
    body = {"inputs": {"island": [[i] for i in islands], "bill_length_mm": [[b] for b in bills]}}
    answer = httpx.post(f"{url}/v1/predict", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["x-modelyard-request-id"]


def test_capture_feedback_drift_report_and_a_webhook_alert(monitored, capsys):
    from modelyard.deploy.state import INTERNAL_HEADER, internal_key

    client, home, url, receiver = monitored
    headers = {INTERNAL_HEADER: internal_key(home)}
    status = client.monitoring.enable("penguin", window=200, min_rows=50, flush_s=0.2)
    assert status["settings"]["enabled"] and status["captured_rows"] == 0
    # the replica re-reads its settings every 2 s: wait until it captures
    deadline = time.monotonic() + 30
    while client.monitoring.status("penguin")["capture"].get("enabled", 0) < 1:
        assert time.monotonic() < deadline, "the replica never turned capture on"
        time.sleep(0.2)
    rng = np.random.default_rng(13)
    labelled = []
    for _ in range(40):  # 400 stationary rows in requests of 10
        islands, bills = _rows(rng, 10)
        request_id = _predict(url, headers, islands, bills)
        labelled += [{"request_id": request_id, "row": r, "label": label}
                     for r, label in enumerate(_truth(rng, islands, bills))]
    for _ in range(20):  # 200 rows with the bill length shifted by 2 standard deviations
        _predict(url, headers, *_rows(rng, 10, shift=10.0))
    # labels come back later, through the platform and through the replica itself
    assert client.monitoring.feedback("penguin", labelled[:300])["accepted"] == 300
    answer = httpx.post(f"{url}/v1/feedback", json={"items": labelled[300:]}, headers=headers)
    assert answer.status_code == 202 and answer.json()["accepted"] == 100
    assert httpx.post(f"{url}/v1/feedback", json={"request_id": 3}, headers=headers).status_code == 422
    deadline = time.monotonic() + 30
    while True:
        status = client.monitoring.status("penguin")
        if status["captured_rows"] >= 600 and status["feedback_rows"] >= 400:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["capture"]["dropped_full"] == 0 and status["capture"]["errors"] == 0

    report = client.monitoring.report("penguin", windows=3)
    assert report["reference"]["source"].startswith("peng@1 (training split")
    stationary, drifted = report["windows"][0], report["windows"][-1]
    assert stationary["drifted_features"] == [] and stationary["quality_issues"] == []
    assert 0.75 <= stationary["performance"]["accuracy"] <= 1.0 and stationary["performance"]["coverage"] == 1.0
    assert stationary["performance"]["estimated_accuracy"] is not None
    assert drifted["drifted_features"][0] == "f.bill_length_mm"
    bill = drifted["features"][0]
    assert bill["drifted"] and bill["effect"] > 1.0 and bill["impact"] > 0
    assert drifted["performance"]["labelled"] == 0  # no labels yet for the shifted rows: only the estimate
    assert drifted["performance"]["estimated_accuracy"] is not None

    rule = client.monitoring.add_rule("penguin", "drift", webhook=receiver.url)
    fired = client.monitoring.check("penguin")
    assert [a["feature"] for a in fired["fired"]][0] == "f.bill_length_mm"
    assert receiver.received and receiver.received[0]["alerts"][0]["feature"] == "f.bill_length_mm"
    assert "normed wasserstein" in receiver.received[0]["alerts"][0]["message"]
    again = client.monitoring.check("penguin")  # still drifting: counted, not sent again
    assert again["fired"] == [] and again["firing"] and len(receiver.received) == 1
    alerts = client.monitoring.alerts("penguin", state="firing")["items"]
    assert alerts[0]["rule_id"] == rule["id"] and alerts[0]["count"] == 2

    client.monitoring.update("penguin", reference="peng@1")  # any dataset version: all of its rows
    assert client.monitoring.report("penguin", windows=1)["reference"]["source"].startswith("peng@1 (all rows, 600")

    capsys.readouterr()
    assert main(["--home", str(home), "monitor", "report", "penguin", "--windows", "2"]) == 0  # the CLI, in-process
    shown = capsys.readouterr().out
    assert "window 2:" in shown and "f.bill_length_mm" in shown.split("latest window")[1].splitlines()[2]


def test_open_inference_protocol_requests_are_captured_too(monitored):
    from modelyard.deploy.state import INTERNAL_HEADER, internal_key

    client, home, url, _ = monitored
    headers = {INTERNAL_HEADER: internal_key(home)}
    client.monitoring.enable("penguin", window=200, min_rows=50, flush_s=0.2)
    deadline = time.monotonic() + 30
    while client.monitoring.status("penguin")["capture"].get("enabled", 0) < 1:
        assert time.monotonic() < deadline, "the replica never turned capture on"
        time.sleep(0.2)
    before = client.monitoring.status("penguin")["captured_rows"]
    body = {"inputs": [{"name": "island", "datatype": "BYTES", "shape": [3, 1], "data": ["Biscoe", "Dream", "Dream"]},
                       {"name": "bill_length_mm", "datatype": "FP32", "shape": [3, 1], "data": [40.0, 45.5, 50.0]}]}
    answer = httpx.post(f"{url}/v2/models/penguin/infer", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-modelyard-request-id"]
    while client.monitoring.status("penguin")["captured_rows"] < before + 3:
        assert time.monotonic() < deadline + 30, client.monitoring.status("penguin")
        time.sleep(0.2)
