"""The agent's outbox for what skills emit: bounded, hard examples deduplicated by sha256 and size-bounded, drained a
report's worth at a time."""

from __future__ import annotations

import base64

from modelyard.edge.agent import skill_outbox
from modelyard.edge.agent.skill_outbox import SkillOutbox


def test_outbox_bounds_deduplicates_and_drains_a_report_at_a_time(monkeypatch):
    monkeypatch.setattr(skill_outbox, "EVENTS_PER_REPORT", 3)
    outbox = SkillOutbox(max_events=5, max_hard_examples=2, max_image_bytes=100)
    for n in range(7):
        outbox.event({"channel": "cam0", "event": {"n": n}})
    outbox.alarm({"skill": "s", "channel": "cam1", "message": "3 failures in a row"})
    jpeg = b"\xff\xd8" + b"a" * 50
    for image in (jpeg, jpeg, b"\xff\xd8" + b"b" * 200, b"\xff\xd8" + b"c" * 10, b"\xff\xd8" + b"d" * 10):
        outbox.hard_example({"skill": "s", "channel": "cam3", "reason": "csf", "image_jpeg": image})
    assert outbox.has_alarms()
    events, alarms, hard = outbox.drain()
    assert [e["event"]["n"] for e in events] == [2, 3, 4]  # the two oldest were dropped at the bound
    assert len(alarms) == 1 and not outbox.has_alarms()
    # jpeg (a duplicate once), too large, then c and d: the bound of 2 keeps the newest two
    assert [base64.b64decode(h["image_jpeg_b64"])[2:3] for h in hard] == [b"c", b"d"]
    assert all("image_jpeg" not in h and len(h["sha256"]) == 64 for h in hard)
    assert outbox.counters == {"events": 7, "events_dropped": 2, "hard_examples": 3, "hard_examples_duplicate": 1,
                               "hard_examples_too_large": 1, "hard_examples_dropped": 1}
    events, alarms, hard = outbox.drain()
    assert [e["event"]["n"] for e in events] == [5, 6] and alarms == [] and hard == []
