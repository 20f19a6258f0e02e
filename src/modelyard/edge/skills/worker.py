"""The skill process: channels' readers → a cross-channel batch → one inference → the skill's logic per channel.

Runs in its own process (started by ``host.SkillHost``) and talks to the host through two queues: ``outbox`` carries
``(kind, payload)`` messages (event, alarm, hard_example, status, fatal) and ``inbox`` carries config changes and the
stop request. A frame whose logic raises is a per-channel error; a skill that raises on ``fatal_after`` frames in a
row exits non-zero so the host restarts it with backoff.

Batching follows DeepStream's stream muxer: once one channel has a frame, wait at most ``batch_wait_s`` for the other
channels' frames, then send all of them through the skill's ``infer_batch`` in one call.
"""

from __future__ import annotations

import base64
import io
import queue
import statistics
import threading
import time
import traceback
from collections import deque

from modelyard.edge.skills.filters import UploadGate, is_hard
from modelyard.edge.skills.manifest import channel_config, load_logic, load_manifest, validate_config
from modelyard.edge.skills.sources import ChannelReader

EXIT_SETUP_FAILED = 3
EXIT_KEEPS_FAILING = 4
FPS_WINDOW_S = 5.0
FPS_MAX_STAMPS = 600


def _jpeg(frame, width: int | None = None) -> bytes:
    from PIL import Image

    image = Image.fromarray(frame)
    if width and image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


class SkillRuntime:
    """Everything inside the skill process; ``run()`` returns when all sources ended or a stop arrives."""

    def __init__(self, skill_dir, config, channels, outbox, inbox, options):
        self.skill_dir, self.outbox, self.inbox = skill_dir, outbox, inbox
        self.config, self.channels = dict(config or {}), {str(k): dict(v) for k, v in (channels or {}).items()}
        self.batch_wait_s = float(options.get("batch_wait_s", 0.01))
        self.fatal_after = int(options.get("fatal_after", 20))
        self.status_every_s = float(options.get("status_every_s", 0.5))
        self.reader_options = options.get("reader", {})
        self.notify = threading.Event()
        self.readers: dict[str, ChannelReader] = {}
        self.counters: dict[str, dict] = {}
        self.gates: dict[str, UploadGate] = {}
        self.batches = 0
        self.batched_frames = 0
        self.errors_in_a_row = 0
        self.batch_latencies_ms: deque[float] = deque(maxlen=200)
        self.processed_at: dict[str, deque[float]] = {}

    # -- messages -------------------------------------------------------------------------------------------------
    def send(self, kind: str, payload) -> None:
        self.outbox.put((kind, payload))

    def alarm(self, channel, message: str, severity: str = "warning") -> None:
        self.send("alarm", {"skill": self.manifest.name, "channel": channel, "severity": severity,
                            "message": message, "ts": time.time()})

    # -- channels -------------------------------------------------------------------------------------------------
    def _start_reader(self, channel_id: str, channel: dict) -> None:
        if not channel.get("source"):
            return  # a channel without a source takes items pushed to it (services, tests)
        reader = ChannelReader(channel_id, str(channel["source"]), fps=float(channel.get("fps", 5)),
                               loop=bool(channel.get("loop", False)), realtime=bool(channel.get("realtime", True)),
                               on_alarm=lambda cid, msg: self.alarm(cid, msg), notify=self.notify,
                               **self.reader_options)
        self.readers[channel_id] = reader.start()
        self.counters.setdefault(channel_id, {"processed": 0, "events": 0, "errors": 0, "last_error": None,
                                              "hard_examples": 0})

    def _apply_channels(self, channels: dict) -> None:
        channels = {str(k): dict(v) for k, v in channels.items()}
        for channel_id in list(self.readers):
            old, new = self.channels.get(channel_id, {}), channels.get(channel_id)
            source_keys = ("source", "fps", "loop", "realtime")
            if new is None or any(old.get(k) != new.get(k) for k in source_keys):
                self.readers.pop(channel_id).stop()
        self.channels = channels
        for channel_id, channel in channels.items():
            if channel_id not in self.readers:
                self._start_reader(channel_id, channel)

    def _drain_inbox(self) -> bool:
        """Apply pending config changes; False when asked to stop."""
        while True:
            try:
                kind, payload = self.inbox.get_nowait()
            except queue.Empty:
                return True
            if kind == "stop":
                return False
            if kind == "config":
                config, channels = payload
                if config is not None and config != self.config:
                    self.config = dict(config)
                    reconfigure = getattr(self.logic, "configure", None) or self.logic.setup
                    reconfigure(self.config)
                if channels is not None:
                    self._apply_channels(channels)
                self.send("config_applied", {"config": self.config, "channels": list(self.channels)})

    # -- the loop -------------------------------------------------------------------------------------------------
    def _fps(self, channel_id: str, now: float) -> float:
        """Frames the skill's logic handled per second on this channel over the last ``FPS_WINDOW_S``."""
        stamps = self.processed_at.get(channel_id)
        while stamps and now - stamps[0] > FPS_WINDOW_S:  # stamps are in order: drop the old ones, count the rest
            stamps.popleft()
        return round(len(stamps or ()) / FPS_WINDOW_S, 2)

    def status(self) -> dict:
        now = time.monotonic()
        latencies = list(self.batch_latencies_ms)
        return {"channels": {cid: {**self.counters.get(cid, {}),
                                   **(self.readers[cid].stats.to_dict() if cid in self.readers else {}),
                                   "fps": self._fps(cid, now)}
                             for cid in self.channels},
                "batches": self.batches, "batched_frames": self.batched_frames,
                "latency_ms_p50": round(statistics.median(latencies), 3) if latencies else None,
                # when these counters were read (CLOCK_MONOTONIC, the same clock in every process of the device):
                # a rate over two reports divides by the time between them, not by when they happened to arrive
                "at_monotonic": now}

    def _gather(self) -> list[tuple[str, float, object]]:
        self.notify.wait(0.05)
        self.notify.clear()
        deadline = time.monotonic() + self.batch_wait_s
        batch: dict[str, tuple] = {}
        while True:
            for channel_id, reader in list(self.readers.items()):
                if channel_id not in batch and (item := reader.take()) is not None:
                    batch[channel_id] = item
            if not batch:
                return []
            # wait only for live channels: a reconnecting one must not slow the others down
            pending = [cid for cid, reader in self.readers.items()
                       if cid not in batch and reader.stats.state == "running"]
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                return [(cid, pts, frame) for cid, (pts, frame) in batch.items()]
            self.notify.wait(remaining)
            self.notify.clear()

    def _handle(self, channel_id: str, pts: float, frame, inference) -> None:
        counters = self.counters[channel_id]
        channel = self.channels.get(channel_id, {})
        config = channel_config(self.config, channel)
        item = {"frame": frame, "pts": pts, "inference": inference}
        try:
            events = self.logic.process(item, {"id": channel_id, "config": config}) or []
            for event in events:
                problem = next(iter(self.event_schema.iter_errors(event)), None)
                if problem is not None:
                    raise ValueError(f"event does not match the manifest's outputs schema: {problem.message}")
        except Exception as exc:  # noqa: BLE001 - the skill's code is not ours: count it, say which channel
            counters["errors"] += 1
            counters["last_error"] = f"{type(exc).__name__}: {exc}"
            self.errors_in_a_row += 1
            return
        self.errors_in_a_row = 0
        counters["processed"] += 1
        self.processed_at.setdefault(channel_id, deque(maxlen=FPS_MAX_STAMPS)).append(time.monotonic())
        for event in events:
            thumbnail = event.pop("thumbnail", None) if isinstance(event, dict) else None
            message = {"skill": self.manifest.name, "version": self.manifest.version, "channel": channel_id,
                       "ts": time.time(), "pts": pts, "event": event}
            if thumbnail:
                message["thumbnail_jpeg_b64"] = base64.b64encode(_jpeg(frame, 160)).decode()
            counters["events"] += 1
            self.send("event", message)
        rule = config.get("hard_examples")
        if rule and isinstance(inference, dict):
            try:
                hard, reason = is_hard(rule, inference)
            except ValueError as exc:
                counters["last_error"] = f"hard examples: {exc}"
                return
            gate = self.gates.setdefault(channel_id, UploadGate(
                max_per_minute=int(rule.get("max_per_minute", 6)), max_total=int(rule.get("max_total", 500))))
            if hard and gate.admit(frame):
                counters["hard_examples"] += 1
                self.send("hard_example", {"skill": self.manifest.name, "channel": channel_id, "ts": time.time(),
                                           "pts": pts, "reason": reason, "image_jpeg": _jpeg(frame),
                                           "inference": {k: list(map(float, v)) for k, v in inference.items()
                                                         if k in ("scores", "probabilities")}})

    def run(self) -> int:
        import jsonschema

        self.manifest = load_manifest(self.skill_dir)
        validate_config(self.manifest, self.config, self.channels)
        self.event_schema = jsonschema.Draft202012Validator(self.manifest.outputs)
        self.logic = load_logic(self.skill_dir, self.manifest)
        self.logic.setup(self.config)
        self._apply_channels(self.channels)
        last_status = 0.0
        try:
            while self._drain_inbox():
                batch = self._gather()
                if batch:
                    frames = [frame for _, _, frame in batch]
                    started = time.perf_counter()
                    try:
                        results = self.logic.infer_batch(frames) if self.manifest.batch else [None] * len(frames)
                        if len(results) != len(frames):
                            raise ValueError(f"infer_batch returned {len(results)} results for {len(frames)} frames")
                    except Exception as exc:  # noqa: BLE001 - the skill's code: every channel in the batch failed
                        for channel_id, _, _ in batch:
                            self.counters[channel_id]["errors"] += 1
                            self.counters[channel_id]["last_error"] = f"infer_batch: {type(exc).__name__}: {exc}"
                        self.errors_in_a_row += len(batch)
                    else:
                        if self.manifest.batch:
                            self.batch_latencies_ms.append((time.perf_counter() - started) * 1000)
                        self.batches += 1
                        self.batched_frames += len(frames)
                        for (channel_id, pts, frame), inference in zip(batch, results, strict=True):
                            self._handle(channel_id, pts, frame, inference)
                    if self.errors_in_a_row >= self.fatal_after:
                        last = next((c["last_error"] for c in self.counters.values() if c["last_error"]), "")
                        self.send("status", self.status())
                        self.send("fatal", f"the skill failed on {self.errors_in_a_row} frames in a row: {last}")
                        return EXIT_KEEPS_FAILING
                now = time.monotonic()
                if now - last_status >= self.status_every_s:
                    self.send("status", self.status())
                    last_status = now
                if self.readers and all(r.finished for r in self.readers.values()) and not batch:
                    break
            self.send("status", self.status())
            return 0
        finally:
            for reader in self.readers.values():
                reader.stop()
            teardown = getattr(self.logic, "teardown", None)
            if callable(teardown):
                teardown()


def main(skill_dir, config, channels, outbox, inbox, options) -> None:
    """Process entry point (multiprocessing target); the exit code tells the host what happened."""
    import multiprocessing
    import sys

    _die_with_parent(multiprocessing.parent_process().pid)
    runtime = SkillRuntime(skill_dir, config, channels, outbox, inbox, options)
    try:
        code = runtime.run()
    except Exception as exc:  # noqa: BLE001 - reported to the host, which decides on restart
        outbox.put(("fatal", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
        code = EXIT_SETUP_FAILED
    outbox.close()
    outbox.join_thread()
    sys.exit(code)


def _die_with_parent(host_pid: int) -> None:
    """Linux: the skill process gets SIGKILL when its host's process (``host_pid``) dies, even by ``kill -9`` (a
    device agent killed hard must not leave skills decoding video behind). The tie is made only once this process
    runs, a spawned interpreter's start-up later: a host that died before that leaves it orphaned, so it exits."""
    import signal

    from modelyard.core.lifetime import tie_to_parent

    tie_to_parent(signal.SIGKILL, host_pid)
