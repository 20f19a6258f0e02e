"""The market through the SDK (in-process REST), the CLI and the EI-style service app."""

from __future__ import annotations

import base64
import io
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

BRIGHTNESS = Path(__file__).parent / "brightness_skill"
BUILTINS = {"ocr", "speech-synthesis", "speech-recognition", "sentiment", "keywords", "language-id",
            "text-embeddings", "face-detection", "object-counting"}


def test_the_market_lists_every_builtin_and_shows_verified_models(client):
    rows = {row["name"]: row for row in client.skills.list()}
    assert set(rows) >= BUILTINS
    assert all(rows[n]["offline"] and rows[n]["builtin"] and rows[n]["license"] for n in BUILTINS)
    ocr = client.skills.show("ocr")
    assert ocr["schema"] == "modelyard.skill/1" and ocr["size_bytes"] > 1_000_000
    assert [m["verified"] for m in ocr["models"]] == [True, True, True]
    assert all(len(m["sha256"]) == 64 for m in ocr["models"])


def test_measure_stores_figures_the_market_shows(client):
    figures = client.skills.measure("sentiment")
    assert figures["self_check"] is True and figures["latency_ms"] > 0
    row = next(r for r in client.skills.list() if r["name"] == "sentiment")
    assert row["self_check"] is True and row["latency_ms"] == figures["latency_ms"]


def test_publish_then_show_and_install(client, tmp_path):
    published = client.skills.publish(BRIGHTNESS)
    assert published["name"] == "brightness" and not published["builtin"]
    assert "brightness" in {r["name"] for r in client.skills.list()}
    from modelyard.core.errors import Conflict

    with pytest.raises(Conflict, match="already published"):
        client.skills.publish(BRIGHTNESS)
    renamed = tmp_path / "ocr_clone"
    shutil.copytree(BRIGHTNESS, renamed)
    (renamed / "skill.yaml").write_text((renamed / "skill.yaml").read_text().replace("name: brightness", "name: ocr"))
    with pytest.raises(Conflict, match="built-in skill's name"):
        client.skills.publish(renamed)


def test_cli_errors_are_one_line(tmp_path, capfd):
    from modelyard.cli.main import main

    assert main(["--home", str(tmp_path), "skills", "show", "nope"]) == 1
    assert capfd.readouterr().err.strip().splitlines() == [
        "error: no skill 'nope' in the market (modelyard skills list)"]


def test_publishing_a_folder_that_is_not_a_skill(client, tmp_path):
    from modelyard.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="skill.yaml is missing"):
        client.skills.publish(tmp_path)


def _service():
    from starlette.testclient import TestClient

    from modelyard.edge.skills.service import create_app

    # language-id is left out: langid takes ~15 s to unpack its model on these cores (benchmarks/skills.py calls it)
    return TestClient(create_app(["sentiment", "keywords", "speech-recognition"]))


def test_ei_style_service_answers_text_skills_and_rejects_bad_input():
    with _service() as http:
        answer = http.post("/v1/skills/sentiment", json={"text": "What a wonderful, helpful release!"})
        assert answer.status_code == 200 and answer.json()["events"][0]["label"] == "positive"
        keywords = http.post("/v1/skills/keywords", json={"text": "Edge skills batch camera frames for detectors."})
        assert keywords.json()["events"][0]["keywords"]
        missing = http.post("/v1/skills/ocr", json={"text": "x"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        bad = http.post("/v1/skills/keywords", json={"text": "  "})
        assert bad.status_code == 422 and "non-empty" in bad.json()["error"]["message"]
        not_json = http.post("/v1/skills/sentiment", content=b"{nope")
        assert not_json.status_code == 422 and "not JSON" in not_json.json()["error"]["message"]


def test_speech_recognition_refuses_the_wrong_audio_format():
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:  # 8-bit PCM: not what the recognizer takes
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(np.zeros(800, dtype=np.uint8).tobytes())
    with _service() as http:
        for payload, message in ((buffer.getvalue(), "16-bit PCM"), (b"RIFF not a wave", "PCM WAV")):
            answer = http.post("/v1/skills/speech-recognition", json={"wav_b64": base64.b64encode(payload).decode()})
            assert answer.status_code == 422 and message in answer.json()["error"]["message"]
