"""The dynamic batcher: no added wait at concurrency 1, real stacking under concurrency, exact splitting."""

import asyncio
import threading
import time

import numpy as np
import pytest

from modelyard.deploy.batching import DynamicBatcher


class Recorder:
    """A fake model: ``y = 2x`` plus the batch sizes it saw; ``delay`` seconds per call."""

    def __init__(self, delay: float = 0.0, fail: bool = False):
        self.delay, self.fail, self.batches = delay, fail, []
        self.lock = threading.Lock()

    def __call__(self, feeds):
        with self.lock:
            self.batches.append(feeds["x"].shape[0])
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model exploded")
        return {"y": feeds["x"] * 2}


def run(coro):
    return asyncio.run(coro)


def test_concurrency_one_never_waits_for_company():
    model = Recorder()
    # an hour-long window: a lone request that waited for company would hang, and the 60 s guard below fail
    # (no latency threshold that a loaded machine could miss)
    batcher = DynamicBatcher(model, max_batch=16, max_wait_ms=3_600_000)

    async def go():
        for i in range(5):
            out = await asyncio.wait_for(batcher.submit({"x": np.full((1, 2), i, np.float32)}, 1), timeout=60)
            np.testing.assert_array_equal(out["y"], np.full((1, 2), 2 * i))
        await batcher.close()

    run(go())
    assert model.batches == [1] * 5


def test_concurrent_requests_are_stacked_and_split_back_exactly():
    model = Recorder(delay=0.02)
    batcher = DynamicBatcher(model, max_batch=8, max_wait_ms=5)

    async def go():
        rows = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 2, 1]
        inputs = [np.arange(r * 2, dtype=np.float32).reshape(r, 2) + 100 * i for i, r in enumerate(rows)]
        outs = await asyncio.gather(*(batcher.submit({"x": x}, x.shape[0]) for x in inputs))
        await batcher.close()
        for x, out in zip(inputs, outs, strict=True):
            np.testing.assert_array_equal(out["y"], x * 2)

    run(go())
    assert max(model.batches) > 1 and max(model.batches) <= 8 and sum(model.batches) == 17


def test_different_trailing_shapes_are_never_stacked():
    model = Recorder(delay=0.01)
    batcher = DynamicBatcher(model, max_batch=8, max_wait_ms=5)

    async def go():
        a = [batcher.submit({"x": np.ones((1, 2), np.float32)}, 1) for _ in range(3)]
        b = [batcher.submit({"x": np.ones((1, 5), np.float32)}, 1) for _ in range(3)]
        outs = await asyncio.gather(*a, *b)
        await batcher.close()
        assert [o["y"].shape for o in outs] == [(1, 2)] * 3 + [(1, 5)] * 3

    run(go())


def test_a_model_error_reaches_every_request_of_the_batch_and_the_batcher_goes_on():
    model = Recorder(delay=0.01, fail=True)
    batcher = DynamicBatcher(model, max_batch=4, max_wait_ms=5)

    async def go():
        results = await asyncio.gather(*(batcher.submit({"x": np.ones((1, 2), np.float32)}, 1) for _ in range(4)),
                                       return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        model.fail = False
        out = await batcher.submit({"x": np.ones((1, 2), np.float32)}, 1)
        await batcher.close()
        return out

    assert run(go())["y"].shape == (1, 2)


def test_not_batchable_models_run_one_request_at_a_time():
    model = Recorder(delay=0.005)
    batcher = DynamicBatcher(model, max_batch=16, max_wait_ms=5, batchable=False)

    async def go():
        await asyncio.gather(*(batcher.submit({"x": np.ones((1, 2), np.float32)}, 1) for _ in range(6)))
        await batcher.close()

    run(go())
    assert model.batches == [1] * 6


def test_outputs_that_are_not_batched_are_an_error_not_a_wrong_answer():
    def scalar_model(feeds):
        time.sleep(0.01)
        return {"y": np.float32(feeds["x"].sum())}

    batcher = DynamicBatcher(scalar_model, max_batch=4, max_wait_ms=5)

    async def go():
        return await asyncio.gather(*(batcher.submit({"x": np.ones((1, 2), np.float32)}, 1) for _ in range(3)),
                                    return_exceptions=True)

    results = run(go())
    stacked = [r for r in results if isinstance(r, Exception)]
    assert stacked and all("not batched" in str(r) for r in stacked)
    with pytest.raises(AssertionError):
        assert not stacked


def test_two_instances_run_two_batches_at_once():
    running, peak = [0], [0]
    lock = threading.Lock()

    def model(feeds):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return {"y": feeds["x"]}

    batcher = DynamicBatcher(model, max_batch=2, max_wait_ms=1, parallel=2)

    async def go():
        outs = await asyncio.gather(*(batcher.submit({"x": np.full((1, 1), i, np.float32)}, 1) for i in range(8)))
        await batcher.close()
        return outs

    outs = run(go())
    assert [int(o["y"][0, 0]) for o in outs] == list(range(8)) and peak[0] == 2
