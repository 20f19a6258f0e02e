"""A child's life tied to its parent's (``core.lifetime``): the child between fork and exec loads nothing, and dies
with its parent."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelyard.core import lifetime

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def test_the_forked_child_loads_no_library(monkeypatch):
    """``dlopen`` in a child forked from a multi-threaded parent can hang on the loader lock another thread held at
    the fork (an agent's skill start hung that way while its backend probe imported engines): the child must only
    call what the parent resolved."""
    preexec = lifetime.die_with_parent(signal.SIGKILL, new_session=True)

    def no_loading(*args, **kwargs):
        raise RuntimeError("a library was loaded in the forked child")

    monkeypatch.setattr(ctypes, "CDLL", no_loading)  # the fork copies this: a child calling CDLL fails the Popen
    proc = subprocess.run(["true"], preexec_fn=preexec, timeout=30)  # noqa: PLW1509 - the behaviour under test
    assert proc.returncode == 0


PARENT = """
import signal, subprocess, sys
from modelyard.core.lifetime import die_with_parent
child = subprocess.Popen(["sleep", "60"], preexec_fn=die_with_parent(signal.SIGKILL))
print(child.pid, flush=True)
sys.stdin.readline()
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith(("Z", "X"))
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.slow  # an interpreter and its child
def test_the_child_dies_when_its_parent_is_killed():
    with subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as parent:
        try:
            child = int(parent.stdout.readline())
            assert not _gone(child)
            parent.kill()
            parent.wait(timeout=30)
            deadline = time.monotonic() + 30
            while not _gone(child) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert _gone(child)
        finally:
            parent.kill()
