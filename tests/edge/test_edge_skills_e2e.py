"""Issue 16's done-when, with real processes on 127.0.0.1: a ``modelyard server`` and two ``modelyard-agent`` processes
(separate homes), each running a code-free detection skill (a tiny Modelyard-contract detector + the zone-count rule,
published to the market and packaged as a signed bundle) on four H.264 video channels. Events (with thumbnails) and
hard examples arrive on the platform per device and channel (REST, CLI and the console's device page), the hard
examples queued for labeling, and a per-channel config change reaches one device's running skill without a restart
(same skill process id).
"""

from __future__ import annotations

import copy

import httpx
import pytest
from test_edge_fleet import Fleet, wait_for

pytestmark = pytest.mark.slow
DEVICES = ("yard-a", "yard-b")


def _channels(video) -> dict:
    # the untrained detector's 20 boxes all score >= 0 and lie inside the whole frame: one "count 20" event per
    # channel; every frame of cam3 is a hard example (any box score in [0, 1]), bounded by the upload gate
    channels = {f"cam{i}": {"source": str(video), "fps": 5, "loop": True,
                            "config": {"zone": [0, 0, 1, 1], "min_score": 0.0, "thumbnail": True}} for i in range(4)}
    channels["cam3"]["config"]["hard_examples"] = {"filter": "csf", "low": 0.0, "high": 1.0, "max_per_minute": 3}
    return channels


def _skill(fleet, device: str) -> dict | None:
    skills = fleet.client.edge.twin(device)["reported"].get("skills") or []
    return next((s for s in skills if s["name"] == "yard-zone"), None)


def test_two_agents_run_a_detection_skill_on_four_channels_and_report_events_and_hard_examples(tmp_path):
    from modelyard.edge.agent.agent import activate
    from modelyard.edge.agent.home import AgentHome
    from modelyard.edge.skills.media import write_tiny_detector, write_video

    fleet = Fleet(tmp_path)
    try:
        video = write_video(tmp_path / "clip.mp4", width=160, height=90, fps=10, seconds=2)
        detector = write_tiny_detector(tmp_path / "det.onnx", size=64, width=4)
        client = fleet.client
        client.models.register(detector, "tiny-det")
        client.skills.publish_template("zone-count", "yard-zone", "tiny-det@1", input_size=(64, 64))
        bundle = client.edge.package_skill("yard-zone")
        assert bundle["model"] == "skill:yard-zone@1.0"
        for name in DEVICES:
            device = client.edge.register(name, {"site": "yard"})
            activate(AgentHome(fleet.agent_home(name)), fleet.url, device["activation_code"])
            fleet.start_agent(name)
        channels = _channels(video)
        deployment = client.edge.deploy(bundle["id"], selector={"site": "yard"}, canary=0, skill="yard-zone",
                                        channels=channels, gate={"watch_s": 0.5, "max_latency_ms": 10_000})

        def everywhere():
            for name in DEVICES:
                events = client.edge.events(name, limit=100)
                if set(events["per_channel"]) != set(channels):
                    return False
                hard = client.edge.hard_examples(name)["items"]
                if not hard or not all(h["labeling_job"] for h in hard):  # queued for labeling right after storing
                    return False
            return True

        wait_for(everywhere, 60, "events on every channel and hard examples from both devices")
        for name in DEVICES:
            events = client.edge.events(name, limit=100)
            assert all(e["event"] == {"rule": "zone-count", "count": 20} for e in events["items"])
            assert all(e["thumbnail"] for e in events["items"])
            assert client.edge.event_thumbnail(events["items"][0]["id"])[:2] == b"\xff\xd8"
            hard = client.edge.hard_examples(name)["items"]
            # (more keep arriving: the newest may be a moment short of its labeling item)
            assert {h["channel"] for h in hard} == {"cam3"}
            assert {h["labeling_job"] for h in hard} - {None} == {"edge-hard-yard-zone"}
            skill = wait_for(lambda n=name: (s := _skill(fleet, n)) and s["status"] == "running"
                             and s["processed"] > 0 and len(s["channels"]) == 4 and s, 30, f"{name}'s skill report")
            assert all(c["state"] == "running" and c["errors"] == 0 for c in skill["channels"].values())
        assert fleet.wait_deployment(deployment["id"], ("succeeded", "failed"))["status"] == "succeeded"
        job = client.label.get("edge-hard-yard-zone")
        assert job["task"] == "detection" and sum(job["counts"].values()) >= 2

        # a per-channel config change on one device: cam0's zone shrinks to nothing, so its count drops to 0 -- in
        # the same skill process, while the other device and channels keep their config
        pid = _skill(fleet, "yard-a")["pid"]
        changed = copy.deepcopy(channels)
        changed["cam0"]["config"]["zone"] = [0, 0, 0.001, 0.001]
        client.edge.deploy(bundle["id"], device="yard-a", canary=0, skill="yard-zone", channels=changed,
                           gate={"watch_s": 0.5, "max_latency_ms": 10_000})
        wait_for(lambda: any(e["event"]["count"] == 0 for e in
                             client.edge.events("yard-a", channel="cam0")["items"]), 30, "cam0's new zone in effect")
        after = _skill(fleet, "yard-a")
        assert after["pid"] == pid and after["crashes"] == 0 and after["status"] == "running"
        assert all(e["event"]["count"] == 20 for e in client.edge.events("yard-b", channel="cam0")["items"])
        assert not [e for e in client.edge.events("yard-a", channel="cam1")["items"] if e["event"]["count"] != 20]
        # a channel config the skill's schema refuses: one alarm naming the channel, the previous config keeps running
        pid_b = _skill(fleet, "yard-b")["pid"]
        bad = copy.deepcopy(channels)
        bad["cam2"]["config"]["zone"] = [0, 0, 1]
        client.edge.deploy(bundle["id"], device="yard-b", canary=0, skill="yard-zone", channels=bad,
                           gate={"watch_s": 0.5, "max_latency_ms": 10_000})
        refused = wait_for(lambda: [a for a in client.edge.alarms("yard-b")["items"] if a["kind"] == "config_refused"],
                           30, "the refused config's alarm")
        assert "channel cam2" in refused[0]["message"] and "previous config kept" in refused[0]["message"]
        assert _skill(fleet, "yard-b")["pid"] == pid_b and _skill(fleet, "yard-b")["status"] == "running"

        # the console's device page on the live server: the events per channel with their thumbnails
        with httpx.Client(base_url=fleet.url) as browser:
            login = browser.get("/login")
            csrf = login.text.split('name="csrf" value="')[1].split('"')[0]
            browser.post("/login", data={"token": fleet.server.token, "csrf": csrf, "next": "/"})
            page = browser.get("/edge/devices/yard-b")
        assert page.status_code == 200
        assert all(f"Channel cam{i}" in page.text for i in range(4)) and "/thumbnail" in page.text
        assert "edge-hard-yard-zone" in page.text
        listed = fleet.json("edge", "events", "yard-a", "--channel", "cam0")
        assert listed["schema"] == "modelyard.edge-events/1" and listed["per_channel"]["cam0"] >= 2
    finally:
        fleet.close()
