"""The skill host end to end: a real skill process on four channels of a generated H.264 video."""

from __future__ import annotations

import threading
import time

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.edge.skills.host import SkillHost

pytestmark = pytest.mark.slow
BRIGHTNESS = "tests/edge/skills/brightness_skill"


def _channels(video, threshold=100, n=4, **extra):
    return {f"cam{i}": {"source": str(video), "fps": 5, "realtime": False, "config": {"threshold": threshold}, **extra}
            for i in range(n)}


def test_four_channels_batched_and_per_channel_config_without_restart(video, tmp_path):
    events, alarms, hard = [], [], []
    channels = _channels(video, loop=True)
    # dim frames (mean ~45/255) fall inside the CSF band: hard examples, deduplicated and at most 6 a minute
    channels["cam3"]["config"]["hard_examples"] = {"filter": "csf", "low": 0.1, "high": 0.4}
    host = SkillHost(BRIGHTNESS, {}, channels, events.append, alarms.append, hard.append)
    with host:
        deadline = time.monotonic() + 20
        while {e["channel"] for e in events} != set(channels) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {e["channel"] for e in events} == set(channels)
        pid = host.status()["pid"]
        # cam0 now needs a brightness above the maximum: its events stop, the others go on, same process
        channels["cam0"]["config"]["threshold"] = 255
        host.update_config(channels=channels)
        assert host.config_applied.wait(10)
        mark = len(events)
        deadline = time.monotonic() + 20
        while sum(e["channel"] == "cam1" for e in events[mark:]) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        after = events[mark:]
        assert sum(e["channel"] == "cam1" for e in after) >= 3
        assert not [e for e in after if e["channel"] == "cam0"]
        deadline = time.monotonic() + 10
        while host.status().get("batches", 0) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)  # the process reports its counters twice a second
        status = host.status()
        assert status["pid"] == pid and status["restarts"] == 0
        assert status["batched_frames"] > status["batches"]  # frames of several channels went through one call
    assert host.state == "stopped" and not alarms
    assert 1 <= len(hard) <= 6 and {h["channel"] for h in hard} == {"cam3"}
    assert hard[0]["image_jpeg"][:2] == b"\xff\xd8" and "box score" in hard[0]["reason"]


def test_bad_channel_config_is_refused_naming_the_channel(video):
    with pytest.raises(InvalidInput, match="channel cam2: config: threshold"):
        bad = {"source": str(video), "config": {"threshold": -1}}
        SkillHost(BRIGHTNESS, {}, {**_channels(video, n=2), "cam2": bad}, print, print)


def test_a_skill_raising_on_every_frame_is_restarted_then_failed_while_another_keeps_running(video):
    alarms, good_events = [], []
    failing = SkillHost(BRIGHTNESS, {"fail": "always"}, _channels(video, n=2, loop=True), print, alarms.append,
                        max_restarts=1, backoff_s=(0.05, 0.2), options={"fatal_after": 5})
    healthy = SkillHost(BRIGHTNESS, {}, _channels(video, n=4, loop=True), good_events.append, alarms.append)
    with healthy, failing:
        assert failing.wait(40) == "failed"
        mark = len(good_events)
        deadline = time.monotonic() + 10
        while len(good_events) == mark and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(good_events) > mark and healthy.status()["state"] == "running"
    assert failing.restarts == 1
    assert [a["severity"] for a in alarms] == ["critical"]
    assert "raises on every frame" in alarms[0]["message"] and "failed after 1 restart" in alarms[0]["message"]


def test_bad_sources_are_per_channel_errors_and_the_rest_serve(video, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(video.read_bytes()[:1500])  # stops mid-way: header and a few packets
    alarms, events = [], []
    channels = {"good": {"source": str(video), "fps": 5, "realtime": False, "config": {"threshold": 100}},
                "missing": {"source": str(tmp_path / "nope.mp4"), "fps": 5},
                "stream": {"source": "rtsp://127.0.0.1:9/none", "fps": 5},
                "truncated": {"source": str(broken), "fps": 5, "realtime": False}}
    done = threading.Event()
    host = SkillHost(BRIGHTNESS, {}, channels, events.append, lambda a: (alarms.append(a), done.set()),
                     options={"reader": {"alarm_after": 2, "backoff_s": (0.05, 0.1)}})
    with host:
        assert done.wait(20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
                events and host.status().get("channels", {}).get("stream", {}).get("failures", 0) >= 2):
            time.sleep(0.05)
        status = host.status()
    assert {e["channel"] for e in events} == {"good"}
    assert {a["channel"] for a in alarms} >= {"missing"}
    assert "no such file" in status["channels"]["missing"]["last_error"]
    assert status["channels"]["stream"]["state"] == "reconnecting"
    assert status["state"] == "running"
