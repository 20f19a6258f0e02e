"""Collect, then judge (STYLE.md rule 14): the accumulator that output and layer-wise comparison share.

Collecting streams every sample's tensors into running statistics (``TensorStats``) and keeps nothing else;
``freeze()`` hands the judging step a value, ``PairStats``, so judging reads numbers and never a runner.

Example::

    acc = PairAccumulator(thresholds.for_output)
    for feeds in samples:
        ref, tgt = reference.infer(feeds), target.infer(feeds)
        for name in ref:
            acc.add(name, ref[name], tgt[name])
    stats = acc.freeze()
    verdict, reasons = stats.judge("logits", thresholds.for_output("logits"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from modelyard.migrate.model.metrics import TensorStats, Thresholds, verdict_for


class PairAccumulator:
    """Reference-vs-target statistics per tensor name, and the noise floor's (a float64 or repeated reference
    vs the reference), in the order names are first added.

    Args:
        limits: the thresholds of a name (their ``rtol``/``atol`` drive the element-wise allclose).
    """

    def __init__(self, limits: Callable[[str], Thresholds]):
        self._limits = limits
        self._stats: dict[str, TensorStats] = {}
        self._floors: dict[str, TensorStats] = {}

    def add(self, name: str, reference: np.ndarray, target: np.ndarray) -> None:
        stats = self._stats.get(name)
        if stats is None:
            limits = self._limits(name)
            stats = self._stats[name] = TensorStats(name, limits.rtol, limits.atol)
            self._floors.setdefault(name, TensorStats(name))
        stats.update(reference, target)

    def add_floor(self, name: str, floor: np.ndarray, reference: np.ndarray) -> None:
        self._floors.setdefault(name, TensorStats(name)).update(np.asarray(floor, dtype=np.float64), reference)

    def freeze(self) -> PairStats:
        return PairStats(tuple(self._stats), MappingProxyType(dict(self._stats)), MappingProxyType(dict(self._floors)))


@dataclass(frozen=True)
class PairStats:
    """What was collected, read-only: names in order, their statistics and their noise floors."""

    names: tuple[str, ...]
    stats: Mapping[str, TensorStats]
    floors: Mapping[str, TensorStats]

    def floor_abs(self, name: str) -> float | None:
        """The floor's max abs error for ``name``, or ``None`` when no floor was measured."""
        floor = self.floors.get(name)
        return floor.max_abs if floor is not None and floor.finite else None

    def judge(self, name: str, limits: Thresholds, floor_abs: float | None = None) -> tuple[str, list[str]]:
        """``(verdict, reasons)`` of ``name`` under ``limits``, the pass limit widened by its floor."""
        return verdict_for(self.stats[name], limits, self.floor_abs(name) if floor_abs is None else floor_abs)
