"""The built-in skills' self-checks, which devices also run as health checks."""

from __future__ import annotations

import pytest

from modelyard.edge.skills.builtin.registry import builtin_dirs, load_builtin
from modelyard.edge.skills.manifest import load_logic, load_manifest


def test_every_builtin_manifest_is_valid_and_offline():
    for name, folder in builtin_dirs().items():
        manifest = load_manifest(folder)
        assert manifest.name == name and manifest.offline and manifest.license
        assert callable(getattr(load_logic(folder, manifest), "self_check", None))


@pytest.mark.slow
def test_ocr_reads_rendered_text_back():
    result = load_builtin("ocr").self_check()
    assert result["ok"], result


@pytest.mark.slow
def test_speech_round_trip_tts_then_asr_with_the_speech_found_by_vad():
    import numpy as np

    asr = load_builtin("speech-recognition")
    result = asr.self_check()
    assert result["ok"] and result["wer"] <= 0.2, result
    # the same sentence between 1.5 s of quiet noise on each side: silero-vad hands the recogniser the speech only
    audio, rate = load_builtin("speech-synthesis").synthesize("please open the front door")
    noise = np.random.default_rng(0).normal(0, 30, int(1.5 * rate)).astype(np.int16)
    padded = np.concatenate([noise, audio.astype(np.int16), noise])
    event = asr.process({"audio": padded, "sample_rate": rate}, {"id": "mic", "config": {}})[0]
    speech = audio.size / rate
    assert event["seconds"] == pytest.approx(speech + 3, abs=0.01)
    assert 0.5 * speech <= event["speech_seconds"] <= speech + 1.0, event
    assert event["text"] == result["got"], event
    assert asr.speech_segments(np.zeros(16000, np.int16)) == []  # silence: nothing to recognise


def test_sentiment_and_keywords_self_checks():
    assert load_builtin("sentiment").self_check()["ok"]
    assert load_builtin("keywords").self_check()["ok"]


def test_face_detection_finds_a_drawn_face_and_none_on_a_blank_frame():
    result = load_builtin("face-detection").self_check()
    assert result["ok"] and result["faces"] >= 1 and result["faces_on_blank"] == 0, result
