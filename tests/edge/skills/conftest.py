from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def video(tmp_path_factory):
    """A 4 s, 10 fps, 160x96 H.264 clip made with PyAV (frames alternate dim and bright every second)."""
    from modelyard.edge.skills.media import write_video

    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=4)
