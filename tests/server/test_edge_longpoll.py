"""The long-poll watcher: a held poll wakes when its device's desired version moves (written through another
connection, as another server process or a job would) and answers at its deadline otherwise."""

import asyncio

from modelyard.core.settings import Settings
from modelyard.edge.devices import Devices
from modelyard.server.edge_longpoll import DesiredWatch
from modelyard.store.workspace import Workspace


def test_a_held_poll_wakes_on_a_change_and_expires_without_one(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    try:
        devices = Devices(workspace.engine)
        ids = {}
        for name in ("d1", "d2"):
            _, code = devices.register(name)
            ids[name] = devices.activate(code)[0]["id"]
        _, code = devices.register("d3")
        device, credential = devices.activate(code)
        assert devices.authenticated_version(credential, device["id"]) == devices.desired_version(device["id"])
        watch = DesiredWatch(workspace.engine, tick_s=0.01)

        async def scenario():
            since = {name: devices.desired_version(i) for name, i in ids.items()}
            assert await watch.wait(ids["d1"], since["d1"], 0.05) is False
            held = {name: asyncio.create_task(watch.wait(ids[name], since[name], 60)) for name in ids}
            await asyncio.sleep(0.05)
            assert not any(task.done() for task in held.values())
            await asyncio.to_thread(devices.request_action, "d1", "collect_logs")  # bumps d1's version only
            assert await asyncio.wait_for(held["d1"], 10) is True
            assert not held["d2"].done()
            assert await watch.wait(ids["d1"], since["d1"], 60) is True  # already moved: the next tick says so
            held["d2"].cancel()
            await asyncio.gather(held["d2"], return_exceptions=True)
            assert watch._waiting == {}  # nothing left registered, so the watcher stops querying

        asyncio.run(scenario())
    finally:
        workspace.close()


def test_each_event_loop_gets_its_own_watcher(tmp_path):
    """An in-process client may run requests on loops that come and go: a watcher (its task, its futures) from a
    closed loop must not hold a poll on a new one."""
    from types import SimpleNamespace

    from modelyard.server.edge_longpoll import watch_for

    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    try:
        devices = Devices(workspace.engine)
        _, code = devices.register("d1")
        device_id = devices.activate(code)[0]["id"]
        app = SimpleNamespace(state=SimpleNamespace(workspace=workspace))
        since = devices.desired_version(device_id)

        async def poll_once():
            held = asyncio.create_task(watch_for(app).wait(device_id, since, 60))
            await asyncio.sleep(0.01)
            await asyncio.to_thread(devices.request_action, "d1", "collect_logs")
            return await asyncio.wait_for(held, 10), watch_for(app)

        woke, first = asyncio.run(poll_once())
        since += 1  # the first change moved it on by one
        woke_again, second = asyncio.run(poll_once())
        assert woke and woke_again and first is not second
    finally:
        workspace.close()


def test_a_poll_that_registers_during_a_query_is_not_woken_by_it(tmp_path):
    """The tick's query asks about the devices waiting when it starts; one that starts waiting meanwhile is not in
    its answer and must not be taken for a vanished device (it was woken at once, a spurious answer per poll)."""
    import threading

    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    try:
        devices = Devices(workspace.engine)
        ids = {}
        for name in ("d1", "d2"):
            _, code = devices.register(name)
            ids[name] = devices.activate(code)[0]["id"]
        watch = DesiredWatch(workspace.engine, tick_s=0.01)
        querying, registered = threading.Event(), threading.Event()
        plain = watch._versions

        def slow_first_query(device_ids):
            if not querying.is_set():
                querying.set()
                assert registered.wait(10)  # d2 starts waiting while this query runs
            return plain(device_ids)

        watch._versions = slow_first_query

        async def scenario():
            since = {name: devices.desired_version(i) for name, i in ids.items()}
            first = asyncio.create_task(watch.wait(ids["d1"], since["d1"], 60))
            await asyncio.to_thread(querying.wait, 10)
            second = asyncio.create_task(watch.wait(ids["d2"], since["d2"], 60))
            await asyncio.sleep(0)  # let it register
            registered.set()
            await asyncio.sleep(0.1)  # that query and several more ticks
            assert not first.done() and not second.done()
            await asyncio.to_thread(devices.request_action, "d2", "collect_logs")
            assert await asyncio.wait_for(second, 10) is True
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)

        asyncio.run(scenario())
    finally:
        workspace.close()
