"""Video sources for a channel: a video file, an image folder, an RTSP/HTTP stream (PyAV, which bundles FFmpeg with
H.264/HEVC decoders) or a local camera (``camera:N``), read by one thread per channel.

The reader decodes, keeps only the frames that fall on the channel's fps grid (by presentation time), and leaves the
newest sampled frame in a one-slot mailbox, as a live camera does: a slow consumer drops frames (counted) rather than
queueing seconds of video. A source that will not open, or a stream that stops, is retried with exponential backoff;
after ``alarm_after`` failures in a row the reader raises one alarm per outage and keeps trying. A stream that
reconnects but drops again within ``healthy_after_s`` has not recovered: its failures keep counting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


class SourceError(Exception):
    """A source cannot be opened or read; the message says which and why."""


def is_stream(source: str) -> bool:
    return source.startswith(STREAM_PREFIXES)


def _frames_from_folder(folder: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for index, path in enumerate(files):
        try:
            with Image.open(path) as image:
                frame = np.asarray(image.convert("RGB"))
        except OSError as exc:  # a corrupt image is one bad frame, not a dead channel
            yield index / fps, SourceError(f"{path.name}: cannot decode ({exc})")
            continue
        yield index / fps, frame


def _frames_from_av(source: str, open_timeout_s: float,
                    decoder_threads: int = 1) -> Iterator[tuple[float, np.ndarray | SourceError]]:
    import av

    options = {}
    fmt = None
    if source.startswith(("rtsp://", "rtsps://")):
        options = {"rtsp_transport": "tcp"}
    if source.startswith("camera:"):
        fmt, source = "v4l2", f"/dev/video{source.split(':', 1)[1]}"
        if not Path(source).exists():
            raise SourceError(f"no camera at {source}")
    try:
        container = av.open(source, format=fmt, options=options, timeout=(open_timeout_s, open_timeout_s))
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {source}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise SourceError(f"{source}: no video stream")
        stream = container.streams.video[0]
        if decoder_threads == 0:
            stream.thread_type = "AUTO"  # FFmpeg picks: frame and slice threads on every core
        else:
            stream.thread_count = decoder_threads
        time_base = float(stream.time_base or 0) or None
        decoded = 0
        try:
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    raise SourceError(f"{source}: stream stopped ({exc})") from exc
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:  # a corrupt packet: one bad frame, the channel goes on
                    yield (decoded / 25.0), SourceError(f"corrupt frame: {exc}")
                    continue
                for frame in frames:
                    decoded += 1
                    pts = float(frame.pts * time_base) if frame.pts is not None and time_base else decoded / 25.0
                    yield pts, frame
        except av.error.FFmpegError as exc:
            raise SourceError(f"{source}: stream stopped ({exc})") from exc
        if decoded == 0:
            raise SourceError(f"{source}: no frame could be decoded")


def iter_source(source: str, fps: float, *, open_timeout_s: float = 5.0, decoder_threads: int = 1):
    """Yield ``(pts_seconds, frame_or_error)`` for the frames on the ``fps`` grid; frames are RGB uint8 arrays,
    a corrupt frame is a ``SourceError`` value in the frame's place.

    ``decoder_threads``: FFmpeg's threads for this source's decoder (default 1; 0: FFmpeg's choice, frame and slice
    threads on every core). A device decodes many channels at once, each in its own reader thread, so the cores are
    already shared out by channel; more threads per decoder only add hand-offs (measured: 4 concurrent 640x360
    H.264 decodes cost ~0.2 ms of CPU a frame with 1 thread each, ~0.33 ms with FFmpeg's choice). One 1080p H.264
    stream decodes at a few hundred frames/s on one core, well above a camera's rate."""
    path = Path(source)
    if not is_stream(source) and not source.startswith("camera:"):
        if path.is_dir():
            yield from _frames_from_folder(path, fps)
            return
        if not path.is_file():
            raise SourceError(f"{source}: no such file or folder")
    next_due = None
    step = 1.0 / fps
    for pts, frame in _frames_from_av(source, open_timeout_s, decoder_threads):
        if isinstance(frame, SourceError):
            yield pts, frame
            continue
        if next_due is None:
            next_due = pts
        if pts + 1e-6 < next_due:
            continue  # between two samples of this channel's fps: decoded (H.264 needs it) but not used
        next_due += step * max(1, int((pts - next_due) / step) + 1)
        yield pts, frame.to_ndarray(format="rgb24")


@dataclass
class ChannelStats:
    state: str = "starting"  # starting, running, reconnecting, ended, failed
    frames: int = 0
    dropped: int = 0
    corrupt: int = 0
    failures: int = 0  # open/read failures in a row
    last_error: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ChannelReader:
    """One channel's decode thread. ``take()`` returns the newest sampled frame (or None)."""

    channel_id: str
    source: str
    fps: float = 5.0
    loop: bool = False
    realtime: bool = True
    alarm_after: int = 3
    backoff_s: tuple[float, float] = (0.2, 10.0)
    # a stream counts as recovered (its failures in a row back to 0) only after this long delivering frames: one that
    # connects, sends a few frames and drops again is one outage, not a series of fresh starts that never alarm
    healthy_after_s: float = 10.0
    decoder_threads: int = 1  # FFmpeg's threads for this channel's decoder (iter_source's decoder_threads)
    on_alarm: Callable[[str, str], None] = lambda channel, message: None
    notify: threading.Event | None = None  # set on every new frame: the muxer waits on one event for all channels
    stats: ChannelStats = field(default_factory=ChannelStats)

    def __post_init__(self):
        self._slot: tuple[float, np.ndarray] | None = None
        self._taken = threading.Condition()
        self._stop = threading.Event()
        self._fresh = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"channel-{self.channel_id}", daemon=True)

    def start(self) -> ChannelReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def finished(self) -> bool:
        return self.stats.state in ("ended", "stopped")

    def take(self) -> tuple[float, np.ndarray] | None:
        with self._taken:
            item, self._slot = self._slot, None
            self._fresh.clear()
            self._taken.notify_all()
            return item

    def wait(self, timeout: float) -> bool:
        return self._fresh.wait(timeout)

    def _put(self, pts: float, frame: np.ndarray) -> None:
        with self._taken:
            if not self.realtime:  # a file read as fast as the skill goes: wait for the consumer, drop nothing
                while self._slot is not None and not self._stop.is_set():
                    self._taken.wait(0.1)
            if self._slot is not None:
                self.stats.dropped += 1
            self._slot = (pts, frame)
            self._fresh.set()
        if self.notify is not None:
            self.notify.set()

    def _fail(self, message: str) -> None:
        self.stats.failures += 1
        self.stats.last_error = message
        self.stats.state = "reconnecting"
        if self.stats.failures == self.alarm_after:
            self.on_alarm(self.channel_id, f"channel {self.channel_id}: {self.stats.failures} failures in a row: "
                                           f"{message}")
        delay = min(self.backoff_s[1], self.backoff_s[0] * 2 ** (self.stats.failures - 1))
        self._stop.wait(delay)

    def _run(self) -> None:
        local_file = not is_stream(self.source) and not self.source.startswith("camera:")
        while not self._stop.is_set():
            started, first_pts = 0.0, None
            got_frame = False
            try:
                for pts, frame in iter_source(self.source, self.fps, decoder_threads=self.decoder_threads):
                    if self._stop.is_set():
                        break
                    if isinstance(frame, SourceError):
                        self.stats.corrupt += 1
                        self.stats.last_error = str(frame)
                        continue
                    if not got_frame:
                        got_frame, self.stats.state, connected = True, "running", time.monotonic()
                    if self.stats.failures and (local_file or time.monotonic() - connected >= self.healthy_after_s):
                        self.stats.failures = 0
                    if self.realtime:
                        if first_pts is None:
                            # NOTE: the schedule starts at the first frame, not before the open: a source that took
                            # 0.6 s to open and decode its first frame then sent 3 frames at once (at 5 fps) to catch
                            # up, which a camera never does and which made a short capacity trial look held
                            first_pts, started = pts, time.monotonic()
                        delay = (pts - first_pts) - (time.monotonic() - started)
                        if delay > 0 and self._stop.wait(delay):
                            break
                    self.stats.frames += 1
                    self._put(pts, frame)
            except SourceError as exc:
                if self._stop.is_set():
                    break
                self._fail(str(exc))
                continue
            if self._stop.is_set():
                break
            if local_file and not self.loop:
                self.stats.state = "ended"
                if self.notify is not None:
                    self.notify.set()
                return
            if not local_file:  # a live stream that ends has dropped: reconnect
                self._fail(f"{self.source}: stream ended")
        self.stats.state = "stopped"
