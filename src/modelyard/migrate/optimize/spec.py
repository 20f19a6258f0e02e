"""The options of ``optimize``, declared once (pydantic): the function (``search.optimize``), the CLI command
(option defaults read from these fields), the ``migrate.optimize`` job kind (its spec embeds ``OptimizeSpec``) and
MIGRATION.yaml's ``optimize`` section (``OptimizeSearch``) validate with it. Light (no numpy): the CLI imports it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelyard.migrate.action_spec import ActionSpec


class OptimizeSearch(ActionSpec):
    """How the search runs: the part of ``OptimizeSpec`` MIGRATION.yaml's ``optimize`` section sets.

    Args:
        objective: ``latency`` (p50 at ``batch_size``) or ``throughput`` (samples/s). Default latency.
        batch_size: batch size measured. Default 1.
        budget_s: stop starting candidates after this many seconds (null: no limit). Default 300.
        samples: inputs each candidate is gated on. Default 128.
        strategy: ``search`` (tune runtime options of the ``top_k`` best variants) or ``exhaustive`` (all).
        top_k: variants whose runtime options the search tunes. Default 2.
    """

    objective: Literal["latency", "throughput"] = "latency"
    batch_size: int = Field(default=1, ge=1)
    budget_s: float | None = Field(default=300.0, gt=0)
    samples: int = Field(default=128, ge=1)
    strategy: Literal["search", "exhaustive"] = "search"
    top_k: int = Field(default=2, ge=1)


class OptimizeSpec(OptimizeSearch):
    """An accuracy-gated search on one target.

    Args:
        target: a device (``cpu``, ``cuda``, ``npu``, ``gpu``) or one ``backend:device``. Default cpu.
        max_accuracy_drop: the task metric may drop by at most this (0.01 = one point of top-1 agreement).
        data: real gate/benchmark samples (default: the spec's dataset or seeded random feeds).
        calib: INT8 calibration data (default seeded random feeds).
        seed: random feed seed. Default 0.
        min_speedup: a goal; when the best misses it the result says so. Default none.
    """

    # NOTE: the optimiser caches measurements (a candidate's gate figures and latency), never a search's outcome,
    # so its key (``content_hash()``, plus the digests of the model, data and calibration data) holds only what a
    # measurement depends on: batch_size, samples and seed. Budget, strategy, top_k and objective choose which
    # candidates are measured; max_accuracy_drop and min_speedup judge them; target picks the backends, which each
    # candidate's own key names. Leaving them out cannot return a result a bigger budget would beat: every run
    # searches and chooses afresh, reusing what an earlier run measured and measuring what it did not reach.
    # data and calib are paths: their content is keyed (the same data elsewhere is a hit), not where they lie.
    not_hashed = frozenset({"objective", "budget_s", "strategy", "top_k", "target", "max_accuracy_drop",
                            "min_speedup", "data", "calib"})

    target: str = "cpu"
    max_accuracy_drop: float = Field(default=0.01, ge=0, lt=1)
    data: str | None = None
    calib: str | None = None
    seed: int = 0
    min_speedup: float | None = Field(default=None, gt=0)
