"""One replica's app in-process (no processes, no sockets): a costly body must not stall the replica."""

import asyncio
import io
import json
import threading

import httpx
import pytest

from modelyard.deploy import model_server
from modelyard.deploy.batching import DynamicBatcher
from modelyard.deploy.model_server import LoadedVersion, ModelServer, build_app
from modelyard.registry.signature import Signature, TensorSpec

LINEAR = Signature((TensorSpec("x", "float32", ("batch", 4)),), (TensorSpec("y", "float32", ("batch", 1)),))


@pytest.fixture(scope="module")
def replica_app(tmp_path_factory):
    """One ModelServer per test process: its Prometheus metrics register once in the default registry."""
    folder = tmp_path_factory.mktemp("replica")
    batcher = DynamicBatcher(lambda feeds: {"y": feeds["x"].sum(axis=1, keepdims=True)}, 8, 1.0)
    version = LoadedVersion("sum@1", "mver_1", 100.0, LINEAR, batcher, "null:cpu")
    server = ModelServer("sum", 1, 0, [version], public=True, tokens=None, max_body_bytes=64 * 1024 * 1024,
                         metrics_dir=folder, access_log=None)
    return build_app(server)


def test_readyz_answers_while_a_costly_body_is_being_decoded(replica_app, monkeypatch):
    """Decoding ran inside the async handler: a big JSON body or an 8192x8192 PNG blocked the replica until the
    supervisor's health check killed it (issue 21 item 8a)."""
    real_decode = model_server.decode
    release = threading.Event()
    released = []

    def slow_decode(*args, **kwargs):
        released.append(release.wait(timeout=10))  # the event loop must stay free to answer /readyz meanwhile
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(model_server, "decode", slow_decode)
    body = json.dumps({"inputs": {"x": [[1, 2, 3, 4]] * 8000}}).encode()
    assert len(body) > 64 * 1024

    async def scenario():
        transport = httpx.ASGITransport(app=replica_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            predict = asyncio.create_task(client.post("/v1/predict", content=body,
                                                      headers={"Content-Type": "application/json"}))
            while not released and not predict.done():
                await asyncio.sleep(0.01)
                ready = await client.get("/readyz")
                assert ready.status_code == 200
                release.set()
            return await predict

    answer = asyncio.run(scenario())
    assert released == [True], "the decode was released by its timeout: /readyz waited for it"
    assert answer.status_code == 200 and len(answer.json()["outputs"]["y"]) == 8000


def test_an_image_far_larger_than_the_model_needs_is_refused_before_decoding():
    from PIL import Image

    from modelyard.deploy.protocol import BadRequest, decode

    image = Signature((TensorSpec("image", "float32", ("batch", 3, 8, 8)),),
                      (TensorSpec("mean", "float32", ("batch", 3)),),
                      preprocessing={"input": "image", "size": [8, 8], "scale": 1.0, "mean": [0, 0, 0],
                                     "std": [1, 1, 1], "layout": "NCHW"})
    buffer = io.BytesIO()
    Image.new("L", (4100, 4100)).save(buffer, format="PNG")  # 16.8 Mpx: 64 Mpx were allowed for any model
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(BadRequest, match="4100x4100 pixels is too large: this model takes at most 16777216"):
        decode(buffer.getvalue(), "image/png", image)
    small = io.BytesIO()
    Image.new("RGB", (640, 480)).save(small, format="PNG")
    assert decode(small.getvalue(), "image/png", image).arrays["image"].shape == (1, 3, 8, 8)
