"""The skill process's tie to its host (``worker._die_with_parent``): a skill process whose host died before the tie
was made (the host killed while the skill process was still starting) must not go on running."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = """
import os, sys, time
host = int(sys.argv[3]) if sys.argv[2] == "orphan" else os.getppid()
while os.getppid() == host and sys.argv[2] == "orphan":  # the host dies while this process is still starting
    time.sleep(0.01)
from modelyard.edge.skills.worker import _die_with_parent
_die_with_parent(host)
open(sys.argv[1], "w").write("still running")
"""

HOST = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], "orphan", str(os.getpid())],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith(("Z", "X"))
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.slow  # three interpreters
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_skill_process_whose_host_died_while_it_started_exits_and_one_with_a_live_host_runs(tmp_path):
    alive = tmp_path / "alive"
    subprocess.run([sys.executable, "-c", CHILD, str(alive), "live"], check=True, timeout=30)
    assert alive.read_text() == "still running"

    orphaned = tmp_path / "orphaned"
    host = subprocess.run([sys.executable, "-c", HOST, CHILD, str(orphaned)], check=True, capture_output=True,
                          text=True, timeout=30)
    pid = int(host.stdout.split()[0])
    deadline = time.monotonic() + 30
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(pid) and not orphaned.exists()
