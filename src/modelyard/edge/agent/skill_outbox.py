"""What the skills on the device emit (events, alarms, hard examples), held for the next report.

``SkillHost`` calls these from its supervisor threads, so every method takes the lock. The queue is bounded: when the
platform is away for long, the oldest events are dropped (and counted) rather than the device's memory; a hard
example whose image was already sent (same sha256) or is larger than ``max_image_bytes`` is not queued at all (both
counted). What a report could not deliver is written to the agent's durable report queue with the rest of it.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections import OrderedDict, deque

MAX_EVENTS = 2000
MAX_HARD_EXAMPLES = 40
MAX_IMAGE_BYTES = 256 * 1024
EVENTS_PER_REPORT = 500
HARD_EXAMPLES_PER_REPORT = 8
SEEN_DIGESTS = 10_000


class SkillOutbox:
    def __init__(self, max_events: int = MAX_EVENTS, max_hard_examples: int = MAX_HARD_EXAMPLES,
                 max_image_bytes: int = MAX_IMAGE_BYTES):
        self.max_image_bytes = max_image_bytes
        self._lock = threading.Lock()
        self._events: deque[dict] = deque(maxlen=max_events)
        self._alarms: list[dict] = []
        self._hard: deque[dict] = deque(maxlen=max_hard_examples)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.counters = {"events": 0, "events_dropped": 0, "hard_examples": 0, "hard_examples_duplicate": 0,
                         "hard_examples_too_large": 0, "hard_examples_dropped": 0}

    # -- the SkillHost callbacks -----------------------------------------------------------------------------------
    def event(self, message: dict) -> None:
        # a name of its own: the platform stores a resent event once
        message = {**message, "id": uuid.uuid4().hex}
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self.counters["events_dropped"] += 1
            self._events.append(message)
            self.counters["events"] += 1

    def alarm(self, message: dict) -> None:
        with self._lock:
            del self._alarms[:-200]
            self._alarms.append(message)

    def hard_example(self, message: dict) -> None:
        image = message.get("image_jpeg") or b""
        digest = hashlib.sha256(image).hexdigest()
        with self._lock:
            if digest in self._seen:
                self.counters["hard_examples_duplicate"] += 1
                return
            if len(image) > self.max_image_bytes:
                self.counters["hard_examples_too_large"] += 1
                return
            self._seen[digest] = None
            while len(self._seen) > SEEN_DIGESTS:
                self._seen.popitem(last=False)
            if len(self._hard) == self._hard.maxlen:
                self.counters["hard_examples_dropped"] += 1
            body = {k: v for k, v in message.items() if k != "image_jpeg"}
            self._hard.append({**body, "sha256": digest, "image_jpeg_b64": base64.b64encode(image).decode()})
            self.counters["hard_examples"] += 1

    # -- the agent's report ----------------------------------------------------------------------------------------
    def drain(self) -> tuple[list[dict], list[dict], list[dict]]:
        """Up to one report's worth: (events, alarms, hard examples), oldest first."""
        with self._lock:
            events = [self._events.popleft() for _ in range(min(EVENTS_PER_REPORT, len(self._events)))]
            hard = [self._hard.popleft() for _ in range(min(HARD_EXAMPLES_PER_REPORT, len(self._hard)))]
            alarms, self._alarms = self._alarms, []
        return events, alarms, hard

    def has_alarms(self) -> bool:
        with self._lock:
            return bool(self._alarms)
