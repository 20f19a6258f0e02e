"""Long-polls of the device protocol: one database query per tick for every poll this server process holds.

A fleet long-polls all the time (each agent holds a poll until its next report, ~10 s). Checking each held poll's
version on its own every 250 ms cost 4,000 queries a second for 1,000 devices, and the thread pool and database lock
those queries queued on made every other request wait. Here the waiting polls register with one watcher per process;
while any is waiting it reads all their versions in one query per tick and wakes the ones whose version moved. A
change written by any process (another server worker, a job) is seen on the next tick, so no in-process signal is
needed and nothing is lost across processes.
"""

from __future__ import annotations

import asyncio
import contextlib

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.store.schema_edge import edge_devices

TICK_S = 0.2
# SQLite's limit on bound parameters is far higher, but a smaller IN list keeps each statement cheap to compile
CHUNK = 500


class DesiredWatch:
    def __init__(self, engine: Engine, tick_s: float = TICK_S):
        self.engine = engine
        self.tick_s = tick_s
        self._waiting: dict[str, dict[asyncio.Future, int]] = {}
        self._task: asyncio.Task | None = None

    async def wait(self, device_id: str, since: int, timeout: float) -> bool:
        """Wait until ``device_id``'s desired version differs from ``since`` (True) or ``timeout`` seconds pass
        (False)."""
        if timeout <= 0:
            return False
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(device_id, {})[future] = since
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
            return future.done() and not future.cancelled()
        finally:
            waiters = self._waiting.get(device_id)
            if waiters is not None:
                waiters.pop(future, None)
                if not waiters:
                    del self._waiting[device_id]

    def _versions(self, device_ids: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(device_ids), CHUNK):
                chunk = device_ids[start:start + CHUNK]
                out.update((row.id, row.desired_version) for row in conn.execute(
                    sa.select(edge_devices.c.id, edge_devices.c.desired_version).where(edge_devices.c.id.in_(chunk))))
        return out

    async def _watch(self) -> None:
        from fastapi.concurrency import run_in_threadpool

        while self._waiting:
            await asyncio.sleep(self.tick_s)
            if not self._waiting:
                break
            asked = list(self._waiting)
            versions = await run_in_threadpool(self._versions, asked)
            # only the devices this query asked about: a poll that registered while it ran waits for the next tick
            for device_id in asked:
                waiters = self._waiting.get(device_id, {})
                version = versions.get(device_id)
                for future, since in list(waiters.items()):
                    # a device that vanished wakes too: its poll answers (with an error) instead of hanging
                    if (version is None or version != since) and not future.done():
                        future.set_result(None)


def watch_for(app) -> DesiredWatch:
    """The app's watcher for the running event loop, made on first use. One per loop: a server has one, but an
    in-process client may run requests on loops that come and go, and a watcher's task and futures belong to one."""
    import weakref

    watches = getattr(app.state, "edge_desired_watches", None)
    if watches is None:
        watches = app.state.edge_desired_watches = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    watch = watches.get(loop)
    if watch is None:
        watch = watches[loop] = DesiredWatch(app.state.workspace.engine)
    return watch
