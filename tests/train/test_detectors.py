"""The detectors: targets, augmentation that moves boxes with pixels, a few training steps that lower the loss,
backbone files, and ONNX export whose decoded outputs equal torch's."""

import json

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput

_CACHE: dict = {}


def tiny_set(count: int = 12, size: int = 64, seed: int = 0):
    from modelyard.train.detectors.synthetic import make_shapes

    key = (count, size, seed)
    if key not in _CACHE:
        _CACHE[key] = make_shapes(count, size=size, seed=seed, max_objects=3)
    return _CACHE[key]


def test_heatmap_targets_peak_at_each_centre_on_its_class():
    import torch

    from modelyard.train.detectors.targets import heatmap_targets

    boxes = torch.tensor([[[8.0, 8.0, 24.0, 24.0, 1.0], [40.0, 4.0, 60.0, 12.0, 0.0], [0, 0, 0, 0, -1.0]]])
    heat = heatmap_targets(boxes, 3, 16, 16, 4)
    assert heat.shape == (1, 3, 16, 16)
    assert heat[0, 1, 4, 4] == 1.0 and heat[0, 0, 2, 12] == 1.0
    assert heat[0, 2].max() == 0.0  # padding adds nothing
    assert int((heat == 1.0).sum()) == 2
    assert 0 < heat[0, 0, 2, 13] < heat[0, 0, 2, 12] and heat[0, 0, 3, 12] < heat[0, 0, 2, 13]  # wide box, wide peak


def test_augmented_boxes_still_frame_their_objects():
    """A white square on grey: after random zoom, shift, flip and mosaic the transformed box still holds white."""
    import torch

    from modelyard.train.detectors.augment import augment_batch

    images = torch.full((6, 3, 64, 64), 114, dtype=torch.uint8)
    boxes = torch.full((6, 1, 5), -1.0)
    for i in range(6):
        x, y = 6 + 7 * i, 30 - 3 * i
        images[i, :, y:y + 16, x:x + 16] = 255
        boxes[i, 0] = torch.tensor([x, y, x + 16, y + 16, 0.0])
    generator = torch.Generator().manual_seed(3)
    checked = 0
    for _ in range(4):
        out, moved = augment_batch(images, boxes, 48, "mosaic+scale+flip", generator)
        assert out.shape == (6, 3, 48, 48)
        for n, m in zip(*torch.nonzero(moved[..., 4] >= 0, as_tuple=True), strict=True):
            x1, y1, x2, y2 = moved[n, m, :4].tolist()
            inner = out[n, :, int(y1) + 1:int(np.ceil(y2)) - 1, int(x1) + 1:int(np.ceil(x2)) - 1]
            if inner.numel():
                assert float(inner.mean()) > 0.85, (x1, y1, x2, y2)
                checked += 1
    assert checked >= 10


@pytest.mark.slow
def test_a_tiny_detector_learns_a_few_steps():
    import torch

    from modelyard.train.detectors.network import build_detector, parameter_count
    from modelyard.train.detectors.training import predict, prepare, train_detector

    images, annotations = tiny_set()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_detector(len(annotations.classes), width=8, depth=1)
    assert 10_000 < parameter_count(model) < 50_000
    data = prepare(images, annotations.items, annotations.classes, 64)
    assert data.images.shape == (12, 3, 64, 64) and data.boxes.shape[2] == 5
    run = train_detector(model, data, size=64, policy="flip", lr=5e-3, seconds=600, steps=30, batch=12)
    assert run["steps"] == 30 and run["last_loss"] < 0.6 * run["first_loss"]
    found = predict(model, data, annotations.items, annotations.classes)
    assert [f.item for f in found] == [a.item for a in annotations.items]
    assert all(b.score is not None and b.label in annotations.classes for f in found for b in f.boxes)


@pytest.fixture(scope="module")
def exported():
    import torch

    from modelyard.train.detectors.export import detector_metadata, export_detector
    from modelyard.train.detectors.network import build_detector

    torch.manual_seed(1)
    net = build_detector(3, width=8, depth=1).eval()
    return net, export_detector(net, 64, detector_metadata(("a", "b", "c"), 64, 100), top_k=100)


def test_onnx_outputs_equal_torch_with_the_decoding_in_the_graph(exported):
    import onnx
    import torch

    from modelyard.train.detectors.network import with_decoding
    from modelyard.train.latency import session

    net, model = exported
    proto = onnx.load_model_from_string(model)
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["modelyard.task"] == "detection" and meta["modelyard.classes"] == ["a", "b", "c"]
    assert meta["modelyard.input"]["size"] == [64, 64] and meta["modelyard.letterbox"]["pad_value"] == 114
    assert [o.name for o in proto.graph.output] == ["boxes", "scores", "classes"]
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)  # batch 2: the batch axis is dynamic
    boxes, scores, classes = session(model).run(None, {"image": x})
    with torch.inference_mode():
        ref_boxes, ref_scores, ref_classes = (t.numpy() for t in with_decoding(net)(torch.from_numpy(x)))
    assert boxes.shape == (2, 100, 4) and scores.shape == (2, 100) and classes.dtype == np.int64
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-5)
    live = ref_scores > 1e-4  # slots past the last peak score 0 and may come in any order
    assert live.sum() >= 20
    np.testing.assert_allclose(boxes[live], ref_boxes[live], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(classes[live], ref_classes[live])
    assert (ref_boxes >= 0).all() and (ref_boxes <= 64).all()
    assert (np.diff(ref_scores, axis=1) <= 0).all()  # best first


def test_backbone_weights_round_trip_through_safetensors(tmp_path, exported):
    import torch

    from modelyard.train.detectors.network import build_detector, load_backbone, save_backbone

    net, _ = exported
    save_backbone(net, tmp_path / "backbone.safetensors")
    fresh = build_detector(5, width=8, depth=1)  # another class count: the heads differ, the backbone fits
    assert load_backbone(fresh, tmp_path / "backbone.safetensors") > 10
    for name, tensor in net.backbone.state_dict().items():
        assert torch.equal(fresh.backbone.state_dict()[name], tensor)
    with pytest.raises(InvalidInput, match="same width and depth"):
        load_backbone(build_detector(3, width=16, depth=1), tmp_path / "backbone.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(InvalidInput, match="not a readable safetensors file"):
        load_backbone(fresh, tmp_path / "junk.safetensors")


def test_the_one_cycle_schedule_warms_up_then_decays_over_the_fraction_done():
    from modelyard.train.detectors.training import one_cycle

    assert one_cycle(0.0, 1.0) == pytest.approx(1 / 25) and one_cycle(0.15, 1.0) == pytest.approx(1.0)
    assert one_cycle(1.0, 1.0) == pytest.approx(1 / 2500)
    rates = [one_cycle(f / 100, 1.0) for f in range(101)]
    assert rates[:16] == sorted(rates[:16]) and rates[15:] == sorted(rates[15:], reverse=True)
