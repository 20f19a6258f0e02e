"""Running the suite on several processes (``make test``: ``pytest -n 3 --dist loadgroup``), and leaving nothing
running afterwards.

A pytest plugin (``pytest_plugins`` in ``tests/conftest.py``). Under pytest-xdist it decides which tests must share a
worker and in which order the work is handed out; serial runs keep pytest's own order.

* Every test that uses the Ray head goes to one worker (``xdist_group("ray")``): a head is ~2 GB and ``ray stop
  --force`` at its end stops every Ray process on the machine.
* The tests of a module that has a module-, class- or package-scoped fixture stay together, so that fixture (a server,
  a deployed service, a browser, a trained model) is built once, not once per worker; so do the tests that use one of
  the few session fixtures that take tens of seconds to build (``COSTLY_SESSION_FIXTURES``).
* The longest work is handed out first, so no worker starts a 2-minute test when the others are done: a test's cost
  is what it took last time (kept in pytest's cache, ``.pytest_cache``), else a guess from its markers.
* At the end of each process, anything still running that names that process's temporary folder on its command line
  (a server, a supervisor, a replica a test forgot) is killed and listed on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support import kill_processes_naming

RAY_GROUP = "ray"  # the name the Ray tests also give themselves (xdist_group("ray"))
# session fixtures that take tens of seconds to build: the tests using them share a worker, so each is built once
# (a cheaper session fixture is simply built once per worker that needs it)
COSTLY_SESSION_FIXTURES = ("trained_home", "ladder", "tiny_lm_dir")
DURATIONS_KEY = "modelyard/durations"
# guesses (seconds) for tests the cache has not timed yet: a slow or browser test often takes tens of seconds
GUESS_SLOW_S, GUESS_FAST_S = 30.0, 0.5


def _under_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _plain_nodeid(nodeid: str) -> str:
    """The node id without the ``@group`` suffix xdist adds under ``--dist loadgroup``."""
    head, sep, _ = nodeid.rpartition("@")
    return head if sep and nodeid.rfind("@") > nodeid.rfind("]") else nodeid


def _shared_scope_key(item) -> str | None:
    """The module (or package) whose fixtures ``item`` shares with its neighbours, or None."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    scopes = {d.scope for defs in info.name2fixturedefs.values() for d in defs}
    if "package" in scopes:
        return f"package:{Path(item.nodeid.split('::')[0]).parent}"
    if scopes & {"module", "class"}:
        return f"module:{item.nodeid.split('::')[0]}"
    return None


def _groups(items) -> dict[int, str]:
    """``id(item) -> group`` for the items that must share a worker (items left out are free).

    An item's keys are its module (when it uses a module-scoped fixture), the costly session fixtures it uses, and
    ``ray`` (for every test of a module with a Ray test); items whose keys meet end up in one group."""
    by_module: dict[str, list] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::")[0], []).append(item)
    ray_modules = {module for module, found in by_module.items()
                   if any("ray_head" in getattr(item, "fixturenames", ()) for item in found)}
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys_of: dict[int, list[str]] = {}
    for item in items:
        keys = [RAY_GROUP] if item.nodeid.split("::")[0] in ray_modules else []
        scope_key = _shared_scope_key(item)
        keys += [scope_key] if scope_key else []
        keys += [f"fixture:{name}" for name in COSTLY_SESSION_FIXTURES if name in getattr(item, "fixturenames", ())]
        if keys:
            keys_of[id(item)] = keys
            for key in keys:
                parent[root(key)] = root(keys[0])
    members: dict[str, set[str]] = {}
    for key in list(parent):
        members.setdefault(root(key), set()).add(key)
    name_of = {top: RAY_GROUP if RAY_GROUP in keys else min(keys) for top, keys in members.items()}
    return {item_id: name_of[root(keys[0])] for item_id, keys in keys_of.items()}


def _guess(item) -> float:
    slow = item.get_closest_marker("slow") or item.get_closest_marker("browser")
    return GUESS_SLOW_S if slow else GUESS_FAST_S


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the group marks into node id suffixes
def pytest_collection_modifyitems(config, items):
    if not _under_xdist_worker(config):
        return
    groups = _groups(items)
    for item in items:
        if id(item) in groups and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(groups[id(item)]))
    # longest work first: every worker collects this same order, and the controller hands out the groups in it
    known = config.cache.get(DURATIONS_KEY, {}) if getattr(config, "cache", None) else {}
    cost: dict[str, float] = {}
    unit_of: dict[int, str] = {}
    for item in items:
        unit = groups.get(id(item)) or item.nodeid
        unit_of[id(item)] = unit
        cost[unit] = cost.get(unit, 0.0) + float(known.get(item.nodeid, _guess(item)))
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(unit_of[id(item)], index)
    items.sort(key=lambda item: (-cost[unit_of[id(item)]], first[unit_of[id(item)]]))
    _suffix_group_names(items)  # last: the durations above are kept under plain node ids


def pytest_configure(config):
    # the controller hands out groups in collection order (ours: longest first), not sorted by test count
    if getattr(config.option, "dist", "no") == "loadgroup":
        config.option.loadscopereorder = False


_TIMED: dict[str, float] = {}  # node id -> seconds (setup + call + teardown) in this run


def pytest_runtest_logreport(report):
    # in a serial run, and on the xdist controller (the workers' reports come back to it)
    nodeid = _plain_nodeid(report.nodeid)
    _TIMED[nodeid] = _TIMED.get(nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    config = session.config
    if not _under_xdist_worker(config) and getattr(config, "cache", None) is not None and _TIMED:
        known = config.cache.get(DURATIONS_KEY, {})
        known.update({nodeid: round(seconds, 2) for nodeid, seconds in _TIMED.items()})
        config.cache.set(DURATIONS_KEY, known)
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None and getattr(factory, "_basetemp", None) is not None:
        for pid, command in kill_processes_naming(factory.getbasetemp()):
            sys.stderr.write(f"\nkilled a process a test left running: pid {pid}: {command[:300]}\n")


def _suffix_group_names(items) -> None:
    """What pytest-xdist (3.8) means to do for ``--dist loadgroup``: ``<nodeid>@<group>``, which its scheduler reads.
    xdist writes ``item._nodeid``, which pytest 9 no longer reads (a node's id is ``item._id``), so every group
    was split across workers and each worker built the group's fixtures again."""
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        if names and "@" not in item.nodeid.rpartition("::")[2]:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")
