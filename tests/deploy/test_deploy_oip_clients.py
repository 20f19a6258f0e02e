"""The Open Inference Protocol against a real service, spoken by the real clients: Triton's ``tritonclient[http]``
and the KServe SDK's ``InferenceRESTClient``, straight to the replicas and through the platform's service URL with
its token."""

import asyncio
import socket
import threading
import time

import numpy as np
import pytest
from deploy_models import deploy_models, linear_expected, platform  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow  # deploys a service (a supervisor and replica processes) and runs the platform's API

X = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], dtype=np.float32)


@pytest.fixture(scope="module")
def oip(platform):
    """Service ``lin`` (needs a token) splitting traffic linear@1 / linear@2 (2x the weights), and the platform's
    API on a real port."""
    import uvicorn

    from modelyard.server.app import close_app, create_app

    platform.client.services.deploy("linear@1", "lin", timeout=60)
    service = platform.client.services.traffic("lin", {"linear@1": 50, "linear@2": 50}, timeout=60)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(platform.client._workspace)
    api = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=api.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not api.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.started, "the platform's API did not start"
    yield {"replica": f"127.0.0.1:{service['port']}", "platform": f"127.0.0.1:{port}/api/v1/services/lin",
           "api": f"http://127.0.0.1:{port}/api/v1"}
    api.should_exit = True
    thread.join(timeout=30)
    close_app(app)  # its pooled client to the replicas
    platform.client.services.stop("lin")


def triton(url: str):
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(url=url, connection_timeout=30, network_timeout=30)


def triton_infer(client, model: str, x: np.ndarray, binary: bool, version: str = "", headers=None,
                 datatype: str = "FP32", name: str = "x"):
    import tritonclient.http as httpclient

    given = httpclient.InferInput(name, list(x.shape), datatype)
    given.set_data_from_numpy(x, binary_data=binary)
    wanted = httpclient.InferRequestedOutput("y", binary_data=binary)
    # a copy: tritonclient writes its Inference-Header-Content-Length into the headers it is given
    return client.infer(model, [given], model_version=version, outputs=[wanted],
                        headers=None if headers is None else dict(headers))


@pytest.mark.parametrize("route", ["replica", "platform"])
def test_tritonclient_reads_metadata_and_infers_in_json_and_binary(platform, oip, linear_expected, route):
    client = triton(oip[route])
    auth = platform.auth()
    try:
        # the platform's URL needs the token even for health (it says which services exist); a replica's is open
        assert client.is_server_live(headers=auth) and client.is_server_ready(headers=auth)
        assert client.is_model_ready("lin", headers=auth) and client.is_model_ready("linear", "2", headers=auth)
        assert client.get_server_metadata(headers=auth)["name"] == "modelyard"
        metadata = client.get_model_metadata("lin", headers=auth)
        assert metadata["versions"] == ["1", "2"]
        assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        assert metadata["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
        for binary in (False, True):
            for version, scale in (("1", 1.0), ("2", 2.0)):
                answer = triton_infer(client, "linear", X, binary, version, auth)
                np.testing.assert_allclose(answer.as_numpy("y"), linear_expected(X, scale), rtol=1e-6)
                assert answer.get_response()["model_version"] == version
        split = {triton_infer(client, "lin", X, True, headers=auth).get_response()["model_version"]
                 for _ in range(40)}
        assert split == {"1", "2"}  # the canary split applies to the protocol too (1 in 2^39 to fail by chance)
    finally:
        client.close()


@pytest.mark.parametrize("route", ["replica", "platform"])
def test_tritonclient_gets_the_protocols_errors(platform, oip, route):
    from tritonclient.utils import InferenceServerException

    client = triton(oip[route])
    auth = platform.auth()
    cases = [
        (lambda: triton_infer(client, "resnet", X, True, headers=auth), "404", "model 'resnet' is not served"),
        (lambda: triton_infer(client, "linear", X, True, "7", auth), "404", "model 'linear' version '7'"),
        (lambda: triton_infer(client, "lin", X[:, :3].copy(), True, headers=auth), "400",
         "input 'x' has shape [2, 3], the model expects (batch, 4) (dim 1 must be 4)"),
        (lambda: triton_infer(client, "lin", X.astype(np.float64), False, headers=auth, datatype="FP64"), "400",
         "input 'x' has datatype FP64, the model expects FP32"),
        (lambda: triton_infer(client, "lin", X, False, headers=auth, name="z"), "400", "unexpected input 'z'"),
        (lambda: triton_infer(client, "lin", X, True), "401", ""),
    ]
    try:
        for call, status, message in cases:
            with pytest.raises(InferenceServerException) as caught:
                call()
            assert caught.value.status() == status and message in caught.value.message(), str(caught.value)
        assert not client.is_model_ready("nope", headers=auth)
    finally:
        client.close()


@pytest.mark.parametrize("route", ["replica", "platform"])
def test_the_kserve_client_infers_in_json_and_binary(platform, oip, linear_expected, route):
    import httpx
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    base_url = "http://" + oip[route]

    async def scenario():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            assert await client.is_server_live(base_url, headers=platform.auth())
            assert await client.is_server_ready(base_url, headers=platform.auth())
            assert await client.is_model_ready(base_url, "lin", headers=platform.auth())
            answers = []
            for binary in (False, True):
                given = InferInput("x", list(X.shape), "FP32")
                given.set_data_from_numpy(X, binary_data=binary)
                request = InferRequest("linear", [given], request_id=f"kserve-{binary}",
                                       parameters={"binary_data_output": binary})
                # the KServe client takes no version: it goes in the path it builds from the model name
                answers.append(await client.infer(base_url, request, "linear/versions/2", headers=platform.auth()))
            with pytest.raises(httpx.HTTPStatusError, match="input 'x' has datatype FP64, the model expects FP32"):
                wrong = InferInput("x", list(X.shape), "FP64")
                wrong.set_data_from_numpy(X.astype(np.float64), binary_data=True)
                await client.infer(base_url, InferRequest("lin", [wrong]), "lin", headers=platform.auth())
            return answers
        finally:
            await client.close()

    for answer in asyncio.run(scenario()):
        assert answer.model_name == "linear"
        np.testing.assert_allclose(answer.outputs[0].as_numpy(), linear_expected(X, 2.0), rtol=1e-6)


def test_the_platforms_proxy_answers_in_the_protocols_error_shape(platform, oip):
    import httpx

    unknown = httpx.get(oip["api"] + "/services/nope/v2/models/nope", headers=platform.auth(), timeout=30)
    assert unknown.status_code == 404 and unknown.json() == {"error": "service 'nope' not found"}
    anonymous = httpx.get(oip["api"] + "/services/nope/v2/health/live", timeout=30)
    assert anonymous.status_code == 401 and isinstance(anonymous.json()["error"], str)
    route = httpx.post(oip["api"] + "/services/lin/v2/repository/index", headers=platform.auth(), timeout=30)
    assert route.status_code == 404 and "in the Open Inference Protocol" in route.json()["error"]
    for escape in ("%2E%2E/metrics", "%2e%2e/%2e%2e/metrics", "models/%2E%2E/%2E%2E/metrics"):
        outside = httpx.get(oip["api"] + "/services/lin/v2/" + escape, headers=platform.auth(), timeout=30)
        assert outside.status_code == 404 and "modelyard_requests" not in outside.text, escape


def test_protocol_requests_count_in_the_services_metrics_and_access_log(platform, oip):
    client = triton(oip["replica"])
    try:
        triton_infer(client, "linear", X, True, "1", platform.auth())
    finally:
        client.close()
    metrics = platform.client.services.metrics("lin")
    assert 'modelyard_requests_total{code="200",service="lin",version="linear@1"}' in metrics
    access = platform.client.services.logs("lin", source="access", lines=500)
    assert '"path":"/v2/models/linear/versions/1/infer"' in access
