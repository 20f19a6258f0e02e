"""Dynamic batching: requests queued while the model is busy are stacked on their first dimension (up to
``max_batch`` rows), run once, and split back.

The rule that keeps concurrency 1 as fast as no batching at all: a batch waits for company (up to ``max_wait_ms``
after its first request arrived) only when traffic is concurrent, i.e. when more requests are already queued or
the previous batch held more than one request. A lone request on an idle model runs at once.

Inference runs on ``parallel`` dedicated threads (model instances, Triton's word): with 2, a batch can start while
the previous one still runs, which on CPUs fills the cores a single run leaves idle. The next batch is gathered
only when an instance is free, so requests pile up into larger batches while both are busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Item:
    feeds: dict[str, np.ndarray]
    rows: int
    shape_key: tuple
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


def _shape_key(feeds: dict[str, np.ndarray]) -> tuple:
    return tuple((name, value.shape[1:], value.dtype.str) for name, value in feeds.items())


class DynamicBatcher:
    """Args:
        infer: ``infer(feeds) -> outputs`` (blocking; called on the batcher's own thread).
        max_batch: most rows in one inference; 1 (or ``batchable=False``) runs requests one by one.
        max_wait_ms: longest a batch waits for more rows once traffic is concurrent.
        batchable: whether the model's first dimension is dynamic.
        on_batch: ``on_batch(requests, rows, seconds)`` after each inference (metrics).
        parallel: inferences in flight at once (``infer`` must be thread-safe when above 1). Default 1.
    """

    def __init__(self, infer: Callable[[dict], dict], max_batch: int = 16, max_wait_ms: float = 5.0,
                 batchable: bool = True, on_batch: Callable[[int, int, float], None] | None = None,
                 parallel: int = 1):
        self.infer = infer
        self.max_batch = max_batch if batchable else 1
        self.max_wait_s = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.parallel = max(1, parallel)
        self._queue: deque[_Item] = deque()
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._executor = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="infer")
        self._last_requests = 1

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.parallel)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        for task in [self._task, *self._running]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, feeds: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Queue one request (``rows`` rows) and wait for its outputs."""
        if self._task is None:
            self.start()
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(feeds, rows, _shape_key(feeds), future))
        self._wakeup.set()
        return await future

    def _take_compatible(self, first: _Item, rows: int) -> _Item | None:
        for index, item in enumerate(self._queue):
            if item.shape_key == first.shape_key and rows + item.rows <= self.max_batch:
                del self._queue[index]
                return item
        return None

    async def _gather(self, first: _Item) -> list[_Item]:
        batch, rows = [first], first.rows
        if self.max_batch <= 1:
            return batch
        concurrent = self._last_requests > 1 or bool(self._queue)
        deadline = first.arrived + self.max_wait_s if concurrent else 0.0
        while rows < self.max_batch:
            item = self._take_compatible(first, rows)
            if item is not None:
                batch.append(item)
                rows += item.rows
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._slots.acquire()  # gather only when an instance can run the batch
            if not self._queue:
                self._slots.release()
                continue
            first = self._queue.popleft()
            if first.future.done():  # the client went away while it was queued
                self._slots.release()
                continue
            batch = [item for item in await self._gather(first) if not item.future.done()]
            if not batch:
                self._slots.release()
                continue
            self._last_requests = len(batch)
            task = loop.create_task(self._execute(loop, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _execute(self, loop, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run, batch)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the model's error
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._slots.release()
        if self.on_batch is not None:
            self.on_batch(len(batch), sum(i.rows for i in batch), time.perf_counter() - started)
        for item, result in zip(batch, outputs, strict=True):
            if not item.future.done():
                item.future.set_result(result)

    def _run(self, batch: list[_Item]) -> list[dict[str, np.ndarray]]:
        if len(batch) == 1:
            return [self.infer(batch[0].feeds)]
        names = list(batch[0].feeds)
        stacked = {name: np.concatenate([item.feeds[name] for item in batch], axis=0) for name in names}
        outputs = self.infer(stacked)
        total = sum(item.rows for item in batch)
        results: list[dict[str, np.ndarray]] = [{} for _ in batch]
        for name, value in outputs.items():
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] != total:
                raise RuntimeError(f"output {name!r} has shape {list(value.shape)}: it is not batched on dim 0 "
                                   f"({total} rows went in); deploy with --max-batch 1")
            offset = 0
            for index, item in enumerate(batch):
                results[index][name] = value[offset:offset + item.rows]
                offset += item.rows
        return results
