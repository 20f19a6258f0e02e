"""Compare's machinery on the null backend (milliseconds, no engine): collect then judge, and runners closed on
every path."""

from __future__ import annotations

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.compare import compare_models
from modelyard.migrate.model.layerwise import compare_layers
from modelyard.migrate.model.metrics import ThresholdSet
from modelyard.runtime.null_backend import NullRunner
from modelyard.runtime.registry import get_backend


@pytest.fixture
def closed(monkeypatch):
    """Every NullRunner closed during the test, in order."""
    seen: list[NullRunner] = []
    original = NullRunner._close_impl

    def spy(self):
        seen.append(self)
        original(self)

    monkeypatch.setattr(NullRunner, "_close_impl", spy)
    return seen


def test_null_against_itself_passes_with_a_repeat_floor(cnn_spec, tmp_path, closed):
    result = compare_models(cnn_spec, "null:cpu", "null:cpu", samples=3, cache_dir=tmp_path / "cache")
    assert result.verdict == "pass" and bool(result), str(result)
    assert result.samples == 3 and [o["name"] for o in result.outputs] == ["logits"]
    assert result.outputs[0]["max_abs_err"] == 0.0
    assert result.noise_floor["method"] == "repeat" and result.noise_floor["samples"] == 2
    assert result.task["type"] == "classification" and result.task["top1_agreement"] == 1.0
    assert result.backend_info["target"]["engine"] == "numpy"
    assert len(closed) == 2  # reference and target; the repeat floor reuses the reference


@pytest.mark.parametrize("fail_on_call", [1, 2, 5])
def test_runners_are_closed_when_compare_raises_midway(cnn_spec, tmp_path, monkeypatch, closed, fail_on_call):
    calls = {"n": 0}
    original = NullRunner._infer_impl

    def flaky(self, feeds):
        calls["n"] += 1
        if calls["n"] == fail_on_call:
            raise InvalidInput("null:cpu: the device went away")
        return original(self, feeds)

    monkeypatch.setattr(NullRunner, "_infer_impl", flaky)
    with pytest.raises(InvalidInput, match="device went away"):
        compare_models(cnn_spec, "null:cpu", "null:cpu", samples=4, cache_dir=tmp_path / "cache")
    assert len(closed) == 2 and closed[0] is not closed[1]


def test_runners_are_closed_when_layerwise_raises(cnn_spec, tmp_path, monkeypatch, closed):
    def broken(self, feeds, names):
        raise InvalidInput("null:cpu: no layers today")

    monkeypatch.setattr(NullRunner, "_intermediates_impl", broken)
    with pytest.raises(InvalidInput, match="no layers today"):
        compare_models(cnn_spec, "null:cpu", "null:cpu", samples=2, layerwise=True, cache_dir=tmp_path / "cache")
    assert len(closed) == 2


def test_compare_layers_finds_the_local_divergence_of_a_shifted_head(cnn_spec):
    from modelyard.runtime.feeds import iter_feeds

    backend = get_backend("null:cpu")
    with backend.load(cnn_spec.source()) as reference, backend.load(cnn_spec.source(), offset=0.1) as target:
        result = compare_layers(reference, target, lambda: iter_feeds(cnn_spec, 3, None, 0),
                                ThresholdSet(preset="fp32").base())
    rows = {row["name"]: row for row in result.layers}
    assert rows["embed"]["verdict"] == "pass" and rows["head"]["verdict"] == "fail"
    assert rows["head"]["kind"] == "local" and rows["head"]["kind_method"] == "replay"
    assert rows["head"]["max_abs_err"] == pytest.approx(0.1, abs=1e-6)
    assert result.first_divergence["name"] == "head" and not result
    assert result.summary["compared"] == 2 and result.summary["samples"] == 3 and result.summary["local"] == 1


def test_compare_layers_of_a_runner_without_layers_says_so(cnn_spec, monkeypatch):
    from modelyard.runtime.feeds import iter_feeds

    backend = get_backend("null:cpu")
    with backend.load(cnn_spec.source()) as reference, backend.load(cnn_spec.source()) as target:
        monkeypatch.setattr(target, "_layers_impl", lambda: [])
        result = compare_layers(reference, target, lambda: iter_feeds(cnn_spec, 1, None, 0),
                                ThresholdSet(preset="fp32").base())
    assert result.layers == () and result.summary["compared"] == 0 and "exposes no layers" in result.summary["note"]


def test_a_shifted_target_fails_and_its_divergence_reaches_the_result(cnn_spec, tmp_path, monkeypatch, closed):
    from modelyard.runtime.null_backend import NullBackend

    loaded = []
    original = NullBackend._load_impl

    def second_is_shifted(self, artifact, options):  # reference loads first, the target second
        loaded.append(artifact)
        return original(self, artifact, options.model_copy(update={"offset": 0.1}) if len(loaded) == 2 else options)

    monkeypatch.setattr(NullBackend, "_load_impl", second_is_shifted)
    result = compare_models(cnn_spec, "null:cpu", "null:cpu", samples=2, layerwise=True, cache_dir=tmp_path / "c")
    assert result.verdict == "fail" and not result
    assert result.outputs[0]["max_abs_err"] == pytest.approx(0.1, abs=1e-6)
    assert [row["name"] for row in result.layers] == ["embed", "head"]
    assert result.first_divergence["name"] == "head" and result.first_divergence["kind"] == "local"
    assert result.layerwise["divergent"] == 1 and len(closed) == 2
