"""The suite's own machinery (tests/parallel.py, tests/support.py): which tests share an xdist worker, in which order
the work goes out, and that nothing a test started outlives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import parallel
from support import kill_processes_naming


def _item(nodeid: str, fixtures: dict[str, str], marks: tuple[str, ...] = ()):
    """A stand-in for a collected test: its node id, its fixtures (name -> scope) and its marker names."""
    defs = {name: [SimpleNamespace(scope=scope)] for name, scope in fixtures.items()}
    return SimpleNamespace(nodeid=nodeid, fixturenames=list(fixtures), _fixtureinfo=SimpleNamespace(
        name2fixturedefs=defs), get_closest_marker=lambda name: name if name in marks else None)


def test_ray_modules_share_one_group_and_module_fixtures_keep_a_module_together():
    ray_a = _item("tests/jobs/test_ray.py::test_a", {"ray_head": "session", "tmp_path": "function"})
    ray_b = _item("tests/jobs/test_ray.py::test_b", {"tmp_path": "function"})  # same module, no Ray of its own
    other_ray = _item("tests/deploy/test_batch_ray.py::test_c", {"ray_head": "session", "server": "module"})
    served_a = _item("tests/deploy/test_served.py::test_d", {"service": "module"})
    served_b = _item("tests/deploy/test_served.py::test_e", {"tmp_path": "function"})
    packaged = _item("tests/edge/test_pkg.py::test_f", {"fleet": "package"})
    free = _item("tests/core/test_free.py::test_g", {"tiny_model": "session", "tmp_path": "function"})
    groups = parallel._groups([ray_a, ray_b, other_ray, served_a, served_b, packaged, free])
    assert groups[id(ray_a)] == groups[id(ray_b)] == groups[id(other_ray)] == parallel.RAY_GROUP
    assert groups[id(served_a)] == "module:tests/deploy/test_served.py"
    assert id(served_b) not in groups  # it does not use the module's fixture: it may run anywhere
    assert groups[id(packaged)] == "package:tests/edge"
    assert id(free) not in groups  # session fixtures are built once per worker anyway


def test_tests_sharing_a_costly_session_fixture_share_a_worker_with_their_module_neighbours():
    tuned = _item("tests/train/test_tune.py::test_a", {"ladder": "session", "tuned": "module"})
    tuned_too = _item("tests/train/test_tune.py::test_b", {"tuned": "module"})
    classify = _item("tests/train/test_classify.py::test_c", {"ladder": "session"})
    unrelated = _item("tests/train/test_other.py::test_d", {"other": "module"})
    groups = parallel._groups([tuned, tuned_too, classify, unrelated])
    assert groups[id(tuned)] == groups[id(tuned_too)] == groups[id(classify)] == "fixture:ladder"
    assert groups[id(unrelated)] == "module:tests/train/test_other.py"


def test_plain_node_ids_drop_only_the_group_suffix():
    assert parallel._plain_nodeid("tests/a.py::test_x@ray") == "tests/a.py::test_x"
    assert parallel._plain_nodeid("tests/a.py::test_x[user@host]") == "tests/a.py::test_x[user@host]"
    assert parallel._plain_nodeid("tests/a.py::test_x") == "tests/a.py::test_x"


@pytest.mark.slow
def test_leftover_processes_naming_a_folder_are_killed_and_its_prefix_twins_are_not(tmp_path):
    mine, twin = tmp_path / "run-1", tmp_path / "run-10"  # "run-1" is a prefix of "run-10": that one must live
    code = "import time; time.sleep(60)"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder / "home")]) for folder in (mine, twin)]
    try:
        killed = kill_processes_naming(mine)
        assert [pid for pid, _ in killed] == [procs[0].pid]
        assert procs[0].wait(timeout=10) == -9
        with pytest.raises(subprocess.TimeoutExpired):  # a SIGKILL sent to it would have landed by now
            procs[1].wait(timeout=0.5)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


MODULE_WITH_A_SHARED_FIXTURE = """
import os, pytest

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    with open(os.environ["BUILDS"], "a") as log:
        log.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
    return 1

@pytest.mark.parametrize("n", range(8))
def test_uses_it(shared, n):
    assert shared == 1
"""


@pytest.mark.slow  # a pytest run on three xdist workers
def test_a_module_fixture_is_built_once_under_xdist_loadgroup(tmp_path):
    """The group must reach xdist's scheduler (pytest 9 ignores the ``item._nodeid`` xdist 3.8 writes): split over
    three workers, the module's fixture was built three times."""
    (tmp_path / "test_grouped.py").write_text(MODULE_WITH_A_SHARED_FIXTURE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    builds = tmp_path / "builds.txt"
    tests_dir = str(Path(__file__).parent)
    run = subprocess.run([sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "-p", "parallel", "-q",
                          "-p", "no:cacheprovider", str(tmp_path / "test_grouped.py")], cwd=tmp_path,
                         env={**os.environ, "BUILDS": str(builds), "PYTHONPATH": tests_dir},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "8 passed" in run.stdout
    assert len(builds.read_text().split()) == 1, builds.read_text()
