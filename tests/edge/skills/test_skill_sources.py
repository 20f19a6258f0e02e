"""Channel sources under faults, without the network: a local HTTP server serves a stream that stops mid-way (the
reader reconnects with backoff and raises one alarm after N drops), and a file with a corrupt stretch (the channel
counts the bad frame, says what it was, and keeps decoding)."""

from __future__ import annotations

import functools
import http.server
import threading
import time

import pytest

from modelyard.edge.skills.sources import ChannelReader


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from modelyard.edge.skills.media import write_video

    folder = tmp_path_factory.mktemp("streams")
    data = write_video(folder / "clip.ts", seconds=2).read_bytes()  # MPEG-TS: playable from its first byte
    (folder / "cut.ts").write_bytes(data[: len(data) // 2])  # the stream drops half-way through
    damaged = bytearray(data)
    for offset in range(len(data) // 3, len(data) // 3 + 3000, 7):
        damaged[offset] = 0x55
    (folder / "damaged.ts").write_bytes(bytes(damaged))
    return folder


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests = 0

    def do_GET(self):  # noqa: N802 - the http.server hook's name
        type(self).requests += 1
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


def _drain(reader: ChannelReader, until, timeout: float = 20) -> int:
    frames, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline and not until():
        if reader.take() is not None:
            frames += 1
        reader.wait(0.02)
    return frames


def test_a_stream_that_drops_mid_way_reconnects_with_backoff_then_alarms(media):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(media)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    alarms = []
    reader = ChannelReader("gate", f"http://127.0.0.1:{server.server_address[1]}/cut.ts", fps=5, realtime=False,
                           alarm_after=3, backoff_s=(0.02, 0.05), on_alarm=lambda channel, message:
                           alarms.append((channel, message))).start()
    try:
        frames = _drain(reader, lambda: alarms)
    finally:
        reader.stop()
        server.shutdown()
        server.server_close()
    # every connection delivered frames before the drop: still one outage, so the alarm comes after 3 drops
    assert frames > 0 and _Quiet.requests >= 3
    assert len(alarms) == 1 and alarms[0][0] == "gate"
    assert "3 failures in a row" in alarms[0][1] and "stream ended" in alarms[0][1]
    assert reader.stats.failures >= 3 and reader.stats.frames >= frames


def test_a_corrupt_stretch_is_one_counted_error_and_the_channel_goes_on(media):
    reader = ChannelReader("dock", str(media / "damaged.ts"), fps=10, realtime=False).start()
    try:
        frames = _drain(reader, lambda: reader.finished)
    finally:
        reader.stop()
    assert reader.stats.corrupt >= 1 and "corrupt frame" in reader.stats.last_error
    assert reader.stats.state == "ended" and frames >= 10  # read to the end: most of the 20 frames arrive


def test_one_decoder_thread_per_channel_gives_the_same_frames_as_ffmpegs_choice(video):
    import numpy as np

    from modelyard.edge.skills.sources import iter_source

    single = list(iter_source(str(video), 5))  # the default: 1 thread per decoder (many channels share the cores)
    auto = list(iter_source(str(video), 5, decoder_threads=0))  # FFmpeg's frame and slice threads
    assert len(single) == len(auto) == 20  # 4 s at 5 fps
    for (pts_a, frame_a), (pts_b, frame_b) in zip(single, auto, strict=True):
        assert pts_a == pts_b and np.array_equal(frame_a, frame_b)


def test_a_realtime_source_is_paced_from_its_first_frame_not_from_before_it_opened(monkeypatch):
    import types

    import numpy as np

    from modelyard.edge.skills import sources

    clock = [100.0]
    waits = []
    monkeypatch.setattr(sources, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))

    def slow_to_open(source, fps, **options):
        clock[0] += 0.6  # opening and decoding up to the first frame took 0.6 s
        for index in range(3):
            yield index * 0.2, np.zeros((2, 2, 3), np.uint8)

    class RecordingStop(threading.Event):
        def wait(self, timeout=None):  # the reader's pacing sleeps: recorded, and the clock moves on
            waits.append(round(timeout, 3))
            clock[0] += timeout
            return False

    monkeypatch.setattr(sources, "iter_source", slow_to_open)
    reader = ChannelReader("cam", "clip.mp4", fps=5, realtime=True)
    reader._stop = RecordingStop()
    reader._run()  # in this thread: the file ends, the reader ends
    # 5 fps from the first frame on; anchored before the open, the 0.6 s late start came out as 3 frames at once
    assert waits == [0.2, 0.2] and reader.stats.frames == 3 and reader.stats.state == "ended"
