"""The null backend: deterministic numpy outputs from the feeds, a seam for tests of the machinery."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.runtime.feeds import random_feeds
from modelyard.runtime.registry import BACKENDS, get_backend, list_backends


def test_null_is_registered_available_and_deterministic(mlp_spec):
    assert BACKENDS["null"].endswith(":NullBackend")
    assert any(s.name == "null:cpu" and s.available for s in list_backends())
    feeds = next(random_feeds(mlp_spec, 1, seed=5))
    backend = get_backend("null")
    with backend.load(mlp_spec.source()) as one, backend.load(mlp_spec.source()) as two:
        first = one.infer(feeds)["logits"]
        np.testing.assert_array_equal(first, two.infer(feeds)["logits"])
        assert first.shape == (3, 4) and first.dtype == np.float32
        other = one.infer(next(random_feeds(mlp_spec, 1, seed=6)))["logits"]
        assert not np.allclose(first, other)  # computed from the feeds, not a constant


def test_null_options_shift_the_outputs_by_a_known_amount(mlp_spec):
    feeds = next(random_feeds(mlp_spec, 1, seed=5))
    backend = get_backend("null:cpu")
    base = backend.load(mlp_spec.source()).infer(feeds)["logits"]
    shifted = backend.load(mlp_spec.source(), offset=0.5).infer(feeds)["logits"]
    np.testing.assert_allclose(shifted - 0.5, base, rtol=0, atol=1e-6)
    assert backend.load(mlp_spec.source(), {"width": 6}).infer(feeds)["logits"].shape == (3, 6)
    with pytest.raises(InvalidInput, match="width"):
        backend.load(mlp_spec.source(), width=0)
    with pytest.raises(InvalidInput, match="unknown runtime option.*precision"):
        backend.load(mlp_spec.source(), precision="bf16")


def test_null_layers_replay_and_say_no_coverage(mlp_spec):
    feeds = next(random_feeds(mlp_spec, 1, seed=5))
    reference = get_backend("null").load(mlp_spec.source())
    target = get_backend("null").load(mlp_spec.source(), offset=0.25)
    assert [layer.name for layer in target.layers()] == ["embed", "head"]
    calls = reference.layer_calls(feeds, ["embed", "head"])
    replayed = target.replay(feeds, calls)
    ref_values = reference.intermediates(feeds, ["embed", "head"])
    np.testing.assert_array_equal(replayed["embed"], ref_values["embed"])
    np.testing.assert_allclose(replayed["head"] - ref_values["head"], 0.25, atol=1e-6)
    assert reference.profile(feeds, iterations=3).method == "null timer"
    with pytest.raises(Unavailable, match="null:cpu cannot report operator coverage"):
        get_backend("null").coverage(mlp_spec.source())
