"""Detectors served: an image in, boxes out in the original image's pixels; bad input is a JSON 4xx; batch jobs
write one row per box."""

import asyncio
import io

import httpx
import numpy as np
import pytest
from deploy_models import (  # noqa: F401 - fixtures
    DETECTOR_PREPROCESSING,
    DETECTOR_TASK,
    deploy_models,
    platform,
)

from modelyard.core.errors import InvalidInput
from modelyard.deploy.batching import DynamicBatcher
from modelyard.deploy.model_server import LoadedVersion, ModelServer, build_app
from modelyard.registry.signature import read_signature

# a 64 x 32 (w x h) image letterboxed into 32 x 32: scale 0.5, 8 rows of padding above and below
DOG = {"box": [8.0, 8.0, 40.0, 24.0], "score": 0.9, "class": "dog"}
CAT_BOX = [0.0, 0.0, 16.0, 16.0]


def png(value: int, width: int = 64, height: int = 32, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detector_app(tmp_path_factory, deploy_models):
    import onnxruntime as ort

    path = deploy_models / "detector.onnx"
    signature = read_signature(path, "onnx", DETECTOR_PREPROCESSING, DETECTOR_TASK)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    batcher = DynamicBatcher(lambda feeds: dict(zip(names, session.run(None, feeds), strict=True)), 1, 1.0,
                             batchable=False)
    version = LoadedVersion("det@1", "mver_det", 100.0, signature, batcher, "onnxruntime:cpu")
    server = ModelServer("det", 1, 0, [version], public=True, tokens=None, max_body_bytes=1 << 24,
                         metrics_dir=tmp_path_factory.mktemp("det-metrics"), access_log=None)
    app = build_app(server)
    loop = asyncio.new_event_loop()  # one loop for the module: the batcher's queue lives on the loop it started on

    def post(body: bytes, content_type: str, query: str = "") -> httpx.Response:
        async def call():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica") as client:
                return await client.post("/v1/predict" + query, content=body,
                                         headers={"Content-Type": content_type})

        return loop.run_until_complete(call())

    yield post
    loop.run_until_complete(batcher.close())
    loop.close()


def test_an_image_gets_boxes_in_its_own_pixels(detector_app):
    post = detector_app
    dark = post(png(0), "image/png")
    assert dark.status_code == 200, dark.text
    assert dark.json() == {"detections": [DOG], "model": "det@1"}
    bright = post(png(255, fmt="JPEG"), "image/jpeg").json()["detections"]
    assert [d["class"] for d in bright] == ["dog", "cat"]
    assert bright[1]["box"] == CAT_BOX
    assert bright[1]["score"] == pytest.approx(0.5 + 0.5 * 114 / 255, abs=0.01)  # half image, half padding


def test_threshold_filters_and_a_bad_threshold_is_a_400(detector_app):
    post = detector_app
    assert post(png(255), "image/png", "?threshold=0.95").json()["detections"] == []
    assert len(post(png(0), "image/png", "?threshold=0.1").json()["detections"]) == 2
    for bad in ("high", "1.5", "nan"):
        answer = post(png(0), "image/png", f"?threshold={bad}")
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "bad_request" and "threshold" in answer.json()["error"]["message"]


def test_corrupt_images_and_wrong_content_types_are_json_errors(detector_app):
    post = detector_app
    corrupt = post(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png")
    assert corrupt.status_code == 400
    assert "not a readable PNG or JPEG" in corrupt.json()["error"]["message"]
    wrong = post(png(0), "text/csv")
    assert wrong.status_code == 415 and wrong.json()["error"]["code"] == "unsupported_media_type"
    gif = post(b"GIF89a" + b"\x00" * 20, "image/png")
    assert gif.status_code == 400


def test_a_detection_task_must_match_the_outputs(deploy_models):
    path = deploy_models / "detector.onnx"
    with pytest.raises(InvalidInput, match="no output 'labels'"):
        read_signature(path, "onnx", None, {"type": "detection", "postprocess": {"labels": "labels"}})
    with pytest.raises(InvalidInput, match="yolov8 output"):
        read_signature(path, "onnx", None, {"type": "detection", "postprocess": {"kind": "yolov8",
                                                                                  "output": "scores"}})
    with pytest.raises(InvalidInput, match="postprocess applies to a detection task"):
        read_signature(path, "onnx", None, {"type": "classification", "postprocess": {"kind": "boxes"}})


@pytest.mark.slow  # a workspace, a registration and a batch job: ~4 s
def test_a_detector_modelyard_exported_declares_itself_in_its_metadata(deploy_models, tmp_path):
    """What train.detectors.export writes: task, classes and letterbox as modelyard.* metadata props."""
    import json

    import onnx

    model = onnx.load(str(deploy_models / "detector.onnx"))
    for key, value in {"task": "detection", "classes": ["cat", "dog"],
                       "letterbox": {"pad_value": 114, "align": "center"}}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"modelyard.{key}", json.dumps(value)
    onnx.save(model, str(tmp_path / "exported.onnx"))
    signature = read_signature(tmp_path / "exported.onnx", "onnx", {"size": [32, 32]}, None)
    assert signature.task == {"type": "detection", "top_k": 5, "output": None, "classes": ["cat", "dog"],
                              "postprocess": {"kind": "boxes", "boxes": "boxes", "scores": "scores",
                                              "labels": "classes", "output": None, "score_threshold": 0.25,
                                              "iou_threshold": 0.45, "max_detections": 100}}
    assert signature.preprocessing["resize"] == "letterbox" and signature.preprocessing["pad_value"] == 114


def test_batch_over_an_image_folder_writes_one_row_per_box(deploy_models, tmp_path):
    import pyarrow.parquet as pq
    from test_deploy_batch import job_context

    from modelyard.client import Client
    from modelyard.deploy.batch import BatchSpec, run_batch

    home = tmp_path / "home"
    with Client(home=home) as client:
        client.models.register(deploy_models / "detector.onnx", "det", preprocessing=DETECTOR_PREPROCESSING,
                               task=DETECTOR_TASK)
    images = tmp_path / "images"
    images.mkdir()
    (images / "dark.png").write_bytes(png(0))
    (images / "bright.png").write_bytes(png(255))
    (images / "tall.png").write_bytes(png(0, width=16, height=64))
    result = run_batch(BatchSpec(model="det@1", input=str(images), output=str(tmp_path / "boxes.parquet"),
                                 chunk_size=2, threshold=0.5), job_context(home))
    assert result["inputs"] == 3 and result["boxes"] == result["rows"] == 4
    table = pq.read_table(tmp_path / "boxes.parquet").to_pylist()
    by_file = {}
    for row in table:
        by_file.setdefault(row["file"], []).append(row)
    assert [r["class"] for r in by_file["bright.png"]] == ["dog", "cat"]
    assert [r["class"] for r in by_file["dark.png"]] == ["dog"]
    dark = by_file["dark.png"][0]
    assert [dark["x1"], dark["y1"], dark["x2"], dark["y2"]] == DOG["box"]
    # 16 x 64 letterboxed into 32 x 32: scale 0.5, 12 columns of padding left and right
    tall = by_file["tall.png"][0]
    assert [tall["x1"], tall["y1"], tall["x2"], tall["y2"]] == [0.0, 24.0, 16.0, 40.0]
    assert tall["class_index"] == 1


@pytest.mark.slow
def test_a_deployed_detector_answers_boxes_over_http(platform, deploy_models, tmp_path):
    platform.client.models.register(deploy_models / "detector.onnx", "det", preprocessing=DETECTOR_PREPROCESSING,
                                    task=DETECTOR_TASK)
    service = platform.client.services.deploy("det@1", "det", public=True, timeout=60)
    try:
        url = service["url"] + "/v1/predict"
        answer = httpx.post(url, content=png(0), headers={"Content-Type": "image/png"}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["detections"] == [DOG]
        corrupt = httpx.post(url, content=b"\xff\xd8\xff broken", headers={"Content-Type": "image/jpeg"}, timeout=30)
        assert corrupt.status_code == 400 and corrupt.json()["error"]["code"] == "bad_request"
        assert httpx.post(url + "?threshold=0.1", content=png(0), headers={"Content-Type": "image/png"},
                          timeout=30).json()["detections"][1]["class"] == "cat"
        photo = tmp_path / "dark.png"
        photo.write_bytes(png(0))  # the SDK through the platform's proxy, ?threshold= passed along
        assert [d["class"] for d in platform.client.services.predict_file("det", photo)["detections"]] == ["dog"]
        assert len(platform.client.services.predict_file("det", photo, threshold=0.1)["detections"]) == 2
    finally:
        platform.client.services.stop("det")
