"""Real services: a supervisor process and replica processes on 127.0.0.1, exercised over HTTP."""

import io
import os
import signal
import time

import httpx
import numpy as np
import pytest
from deploy_models import deploy_models, linear_expected, platform  # noqa: F401 - fixtures

from modelyard.client.services import DeployFailed

pytestmark = pytest.mark.slow  # every test deploys services: a supervisor and replica processes


X = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], dtype=np.float32)


def predict_url(service: dict) -> str:
    return service["url"] + "/v1/predict"


def post_json(service, inputs, headers=None, key=None):
    body = {"inputs": inputs} if key is None else {"inputs": inputs, "key": key}
    return httpx.post(predict_url(service), json=body, headers=headers, timeout=30)


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def linear_service(platform):
    """linear@1 with two replicas, needing a token."""
    service = platform.client.services.deploy("linear@1", "lin", replicas=2, timeout=60)
    yield service
    platform.client.services.stop("lin")


def test_deploy_predict_and_observability(platform, linear_service, linear_expected):
    service = linear_service
    assert service["status"] == "ready" and service["healthy_replicas"] == 2 and service["live_revision"] == 1
    assert httpx.get(service["url"] + "/healthz").json()["status"] == "ok"
    assert "models" not in httpx.get(service["url"] + "/readyz").json()  # open, but says what it serves to callers
    assert httpx.get(service["url"] + "/readyz", headers=platform.auth()).json()["models"] == ["linear@1"]
    answer = post_json(service, {"x": X.tolist()}, platform.auth())
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "linear@1"
    np.testing.assert_allclose(answer.json()["outputs"]["y"], linear_expected(X), rtol=1e-6)
    binary = httpx.post(predict_url(service), content=npy(X), headers={
        **platform.auth(), "Content-Type": "application/x-npy", "Accept": "application/x-npy"})
    np.testing.assert_allclose(np.load(io.BytesIO(binary.content)), linear_expected(X), rtol=1e-6)
    via_platform = platform.client.services.predict("lin", {"x": X})
    assert via_platform["model"] == "linear@1"
    np.testing.assert_allclose(via_platform["outputs"]["y"], linear_expected(X), rtol=1e-6)
    assert httpx.get(service["url"] + "/metrics").status_code == 401
    metrics = httpx.get(service["url"] + "/metrics", headers=platform.auth()).text
    for family in (
        "modelyard_requests_total",
        "modelyard_request_latency_seconds_bucket",
        "modelyard_batch_size_bucket",
        "modelyard_queue_depth",
        "modelyard_inference_seconds_bucket",
    ):
        assert family in metrics, family
    assert 'version="linear@1"' in metrics
    access = platform.client.services.logs("lin", source="access")
    assert '"status":200' in access and '"model":"linear@1"' in access
    assert "revision 1 is live" in platform.client.services.logs("lin")


def test_predict_needs_a_token_unless_public(platform, linear_service):
    response = post_json(linear_service, {"x": X.tolist()})
    assert response.status_code == 401 and "token" in response.json()["error"]["message"]
    bad = post_json(linear_service, {"x": X.tolist()}, {"Authorization": "Bearer myd_wrong"})
    assert bad.status_code == 401
    public = platform.client.services.deploy("linear@1", "lin-public", public=True, timeout=60)
    try:
        assert post_json(public, {"x": X.tolist()}).status_code == 200
    finally:
        platform.client.services.stop("lin-public")


def test_bad_requests_are_answered_and_the_service_keeps_serving(platform, linear_service):
    auth = platform.auth()
    url = predict_url(linear_service)
    cases = [
        (httpx.post(url, content=b"{oops", headers={**auth, "Content-Type": "application/json"}), 400, "malformed"),
        (post_json(linear_service, {"x": [[1, 2, 3]]}, auth), 400, "input 'x' has shape [1, 3]"),
        (post_json(linear_service, {"x": [["a", "b", "c", "d"]]}, auth), 400, "holds text"),
        (post_json(linear_service, {"wrong": X.tolist()}, auth), 400, "unexpected input"),
        (httpx.post(url, content=b"\x89PNG\r\n\x1a\nnope", headers={**auth, "Content-Type": "image/png"}), 400,
         "no images"),
        (httpx.post(url, content=b"0" * (65 * 1024 * 1024), headers={**auth, "Content-Type": "application/json"}),
         413, "exceeds the limit"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert message in response.json()["error"]["message"]
    assert post_json(linear_service, {"x": X.tolist()}, auth).status_code == 200


def test_kill_9_of_one_replica_requests_keep_succeeding_and_it_returns(platform, linear_service):
    auth = platform.auth()
    before = platform.client.services.get("lin")
    victim = before["replica_states"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    failures, successes = 0, 0
    deadline = time.monotonic() + 20
    with httpx.Client(timeout=10) as http:  # keep-alive connections, as a real client would use
        while time.monotonic() < deadline:
            try:
                ok = http.post(predict_url(linear_service), json={"inputs": {"x": X.tolist()}},
                               headers=auth).status_code == 200
            except httpx.TransportError:
                ok = False  # a keep-alive connection that the killed replica held
            successes += ok
            failures += not ok
            state = platform.client.services.get("lin")
            if successes >= 50 and state["healthy_replicas"] == 2 and any(
                    r["restarts"] >= 1 for r in state["replica_states"]):
                break
    assert successes >= 50
    assert failures <= 1, f"{failures} requests failed after the kill"
    after = platform.client.services.get("lin")
    assert after["healthy_replicas"] == 2
    assert victim["pid"] not in {r["pid"] for r in after["replica_states"]}
    assert "stopped: exited with code -9 (signal SIGKILL)" in platform.client.services.logs("lin")


def test_a_version_that_cannot_load_leaves_the_previous_one_serving(platform, linear_service):
    with pytest.raises(DeployFailed) as info:
        platform.client.services.deploy("linear@3", "lin", replicas=2, timeout=60)
    assert "could not start" in str(info.value) and "revision 1" in str(info.value)
    service = platform.client.services.get("lin")
    assert service["live_revision"] == 1 and service["revision"] == 1 and service["status"] == "ready"
    assert [r["status"] for r in service["revisions"][:2]] == ["failed", "live"]
    response = post_json(linear_service, {"x": X.tolist()}, platform.auth())
    assert response.status_code == 200 and response.json()["model"] == "linear@1"


def test_canary_split_is_sticky_by_key_and_rollback_is_one_command(platform, linear_service):
    service = platform.client.services.traffic("lin", {"linear@1": 50, "linear@2": 50}, timeout=60)
    assert service["live_revision"] > 1 and {t["ref"] for t in service["traffic"]} == {"linear@1", "linear@2"}
    auth = platform.auth()
    seen = {}
    for i in range(24):
        key = f"user-{i}"
        first = post_json(service, {"x": X.tolist()}, auth, key=key).json()["model"]
        again = httpx.post(predict_url(service), json={"inputs": {"x": X.tolist()}},
                           headers={**auth, "X-Modelyard-Key": key}).json()["model"]
        assert first == again, f"key {key} moved from {first} to {again}"
        seen[first] = seen.get(first, 0) + 1
    assert set(seen) == {"linear@1", "linear@2"} and min(seen.values()) >= 4, seen
    rolled = platform.client.services.rollback("lin", timeout=60)
    assert [t["ref"] for t in rolled["traffic"]] == ["linear@1"]
    assert all(post_json(service, {"x": X.tolist()}, auth, key=f"user-{i}").json()["model"] == "linear@1"
               for i in range(10))


def test_image_bytes_when_the_signature_declares_preprocessing(platform):
    from PIL import Image

    service = platform.client.services.deploy("image@1", "img", public=True, timeout=60)
    try:
        buffer = io.BytesIO()
        pixels = np.zeros((8, 8, 3), np.uint8)
        pixels[:, :, 1] = 100
        Image.fromarray(pixels).save(buffer, format="PNG")
        answer = httpx.post(predict_url(service), content=buffer.getvalue(), headers={"Content-Type": "image/png"})
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(answer.json()["outputs"]["mean"], [[0.0, 100.0, 0.0]])
        junk = httpx.post(predict_url(service), content=b"GIF89a not really", headers={"Content-Type": "image/png"})
        assert junk.status_code == 400
        assert httpx.post(predict_url(service), content=buffer.getvalue(),
                          headers={"Content-Type": "image/png"}).status_code == 200
    finally:
        platform.client.services.stop("img")


def test_soak_a_few_thousand_requests_zero_errors_no_memory_growth(platform):
    import concurrent.futures

    import psutil

    service = platform.client.services.deploy("linear@1", "soak", public=True, max_batch=8, timeout=60)
    try:
        pid = service["replica_states"][0]["pid"]
        body = {"inputs": {"x": X.tolist()}}

        def burst(n):
            errors = 0
            with httpx.Client(timeout=30) as http:
                for _ in range(n):
                    errors += http.post(predict_url(service), json=body).status_code != 200
            return errors

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert sum(pool.map(burst, [150] * 4)) == 0  # warm: allocator pools and caches settle
            rss_warm = psutil.Process(pid).memory_info().rss
            assert sum(pool.map(burst, [500] * 4)) == 0
        rss_after = psutil.Process(pid).memory_info().rss
        assert rss_after - rss_warm < 20 * 1024 * 1024, (rss_warm, rss_after)
        text = platform.client.services.metrics("soak")
        assert "modelyard_requests_total" in text
    finally:
        platform.client.services.stop("soak")


def test_scale_up_and_down(platform, linear_service):
    platform.client.services.scale("lin", 3)
    deadline = time.monotonic() + 30
    while platform.client.services.get("lin")["healthy_replicas"] < 3:
        assert time.monotonic() < deadline, platform.client.services.get("lin")
        time.sleep(0.2)
    platform.client.services.scale("lin", 2)
    deadline = time.monotonic() + 30
    while len(platform.client.services.get("lin")["replica_states"]) != 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert post_json(linear_service, {"x": X.tolist()}, platform.auth()).status_code == 200


def test_services_come_back_after_the_platform_restarts(platform, linear_service):
    from modelyard.core.settings import Settings
    from modelyard.deploy import supervisor
    from modelyard.deploy.state import read_json, services_root

    port = platform.client.services.get("lin")["port"]
    pid = read_json(services_root(platform.home) / "supervisor.json")["pid"]
    os.kill(pid, signal.SIGKILL)  # the platform dies; its replicas die with it
    deadline = time.monotonic() + 20
    while supervisor.is_running(platform.home):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert supervisor.ensure_running(Settings.load(platform.home))  # what a starting server does
    service = platform.client.services.wait("lin", timeout=60)
    assert service["port"] == port and service["healthy_replicas"] == 2
    assert post_json(linear_service, {"x": X.tolist()}, platform.auth()).status_code == 200


def _served_backends(service: dict, headers: dict) -> set[str]:
    described = httpx.get(service["url"] + "/v1/models", headers=headers, timeout=10).json()
    return {v["backend"] for v in described["versions"]}


def test_an_onnx_version_serves_on_torch_kernels(platform, linear_expected):
    """``--backend torch:<device>`` runs the ONNX graph with torch operators: how ONNX reaches GPUs and NPUs that
    have a torch device plugin but no onnxruntime build."""
    service = platform.client.services.deploy("linear@1", "lin-torch", backend="torch:cpu", max_batch=8,
                                              timeout=60)
    try:
        assert _served_backends(service, platform.auth()) == {"torch:cpu"}
        shown = platform.client.services.get("lin-torch")
        assert {r["index"]: r["backends"] for r in shown["replica_states"]} == {0: {"linear@1": "torch:cpu"}}
        answer = post_json(service, {"x": X.tolist()}, platform.auth())
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(answer.json()["outputs"]["y"], linear_expected(X), rtol=1e-6)
        wrong = post_json(service, {"x": [[1.0, 2.0]]}, platform.auth())
        assert wrong.status_code == 400 and "x" in wrong.json()["error"]["message"]
    finally:
        platform.client.services.stop("lin-torch")
    with pytest.raises(DeployFailed, match="no torch kernel for com.example.missing::Frobnicate"):
        platform.client.services.deploy("linear@3", "broken-torch", backend="torch:cpu", timeout=60)
    platform.client.services.stop("broken-torch")


@pytest.mark.gpu
def test_auto_serves_onnx_on_the_gpu(platform, linear_expected):
    from modelyard.runtime.registry import get_backend

    if not get_backend("torch:cuda").available()[0]:
        pytest.skip("no CUDA device: auto serves onnxruntime:cpu here")
    service = platform.client.services.deploy("linear@1", "lin-gpu", timeout=120)
    try:
        assert _served_backends(service, platform.auth()) & {"torch:cuda", "onnxruntime:cuda"}
        answer = post_json(service, {"x": X.tolist()}, platform.auth())
        np.testing.assert_allclose(answer.json()["outputs"]["y"], linear_expected(X), rtol=1e-5)
    finally:
        platform.client.services.stop("lin-gpu")
