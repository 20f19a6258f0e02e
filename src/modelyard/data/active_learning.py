"""Active learning: which unlabeled items to label next, and whether doing so beats picking them at random.

Pure numpy over arrays (class probabilities and embeddings of the pool), so the product's loop
(``modelyard.train.active_loop``), the ``label.suggest`` job and ``benchmarks/active_learning.py`` share one
implementation.

Strategies (higher score = label it sooner):

- ``margin``: 1 - (p_top1 - p_top2); the items the model can barely tell between two classes. The default: on
  scikit-learn digits it reached 95 % of the full-data accuracy with 44 % fewer labels than random.
- ``entropy``: Shannon entropy of the class probabilities, normalised to 0..1.
- ``kcenter``: greedy k-center core-set on embeddings (Sener & Savarese 2018): each pick is the pool item farthest
  from everything labeled or already picked; its score is that distance. Needs no model, only embeddings.
- ``random``: uniform; the baseline.

Published evidence is mixed (some strategies do worse than random: "Deep AL: A Reality Check", arXiv 2403.14800), so
every batch carries a **control arm**: a share of the batch (default 10 %) drawn uniformly from the whole pool
*before* the strategy picks, so it is an unbiased random sample. :func:`judge_gain` compares the two arms' learning
curves and says when to fall back to random; the rule is :data:`FALLBACK_RULE`.

Example::

    batch = propose_batch(item_ids, "margin", 10, probabilities=model.predict_proba(pool), seed=3)
    [(p.item, p.arm, p.score) for p in batch.proposals]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from modelyard.core.errors import InvalidInput

STRATEGIES = ("margin", "entropy", "kcenter", "random")
DEFAULT_STRATEGY = "margin"
DEFAULT_CONTROL_FRACTION = 0.10
DEFAULT_MARGIN = 0.03
DEFAULT_PATIENCE = 3
DEFAULT_MIN_CONTROL = 10
FALLBACK_RULE = (
    "The strategy's learning curve is the held-out score of the model trained on every label so far (seed set, "
    "strategy picks and control picks) after each round; the control curve is the score of the same model trained "
    "on the seed set plus the control picks only (a uniform sample of the pool). The control arm is smaller, so the "
    "strategy's curve is read at the control arm's label count (linear between its rounds) and the advantage is "
    "strategy minus control at that count. Once the control arm holds at least {min_control} labels beyond the seed "
    "set, a round is lost when the advantage is below -{margin}; after {patience} lost rounds in a row every later "
    "batch is drawn at random (the fallback sticks: the strategy stops picking, so it cannot earn its way back).")


@dataclass(frozen=True)
class Proposal:
    """One item proposed for labeling: its id, the arm that chose it (``strategy`` or ``control``), its rank in
    the batch (0 first) and the strategy's score (None for control picks of a model-free strategy)."""

    item: str
    arm: str
    rank: int
    score: float | None

    def to_dict(self) -> dict:
        return {"item": self.item, "arm": self.arm, "rank": self.rank,
                "score": None if self.score is None else round(float(self.score), 6)}


@dataclass(frozen=True)
class Batch:
    """A proposed batch: strategy picks first (best first), then the control arm."""

    strategy: str  # the strategy that chose the strategy arm (``random`` after a fallback)
    requested: str  # the strategy the caller asked for
    proposals: tuple[Proposal, ...]
    fallback: bool = False

    @property
    def items(self) -> list[str]:
        return [p.item for p in self.proposals]

    def arm(self, name: str) -> list[str]:
        return [p.item for p in self.proposals if p.arm == name]

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "requested": self.requested, "fallback": self.fallback,
                "size": len(self.proposals), "control": len(self.arm("control")),
                "proposals": [p.to_dict() for p in self.proposals]}

    def __str__(self) -> str:
        shown = "" if self.strategy == self.requested else f" (fell back from {self.requested})"
        return (f"{len(self.proposals)} item(s) by {self.strategy}{shown}: {len(self.arm('strategy'))} strategy, "
                f"{len(self.arm('control'))} control")


# -- scores -------------------------------------------------------------------------------------------------------
def _check_probabilities(probabilities) -> np.ndarray:
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise InvalidInput(f"class probabilities must be (items, classes >= 2), got shape {probs.shape}")
    if not np.isfinite(probs).all() or (probs < -1e-9).any():
        raise InvalidInput("class probabilities must be finite and non-negative")
    return probs


def margin_scores(probabilities) -> np.ndarray:
    """``1 - (p_top1 - p_top2)`` per item: 1 when the two best classes tie, 0 when the model is certain."""
    probs = _check_probabilities(probabilities)
    top2 = np.sort(probs, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy_scores(probabilities) -> np.ndarray:
    """Shannon entropy of each row divided by ``log(classes)``: 0 certain, 1 uniform."""
    probs = _check_probabilities(probabilities)
    total = probs.sum(axis=1, keepdims=True)
    probs = probs / np.where(total > 0, total, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return -terms.sum(axis=1) / np.log(probs.shape[1])


def kcenter_greedy(pool_embeddings, labeled_embeddings, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: ``count`` pool rows, each the farthest (Euclidean) from the labeled rows and the rows picked
    before it.

    Args:
        pool_embeddings: ``(N, D)`` embeddings of the pool.
        labeled_embeddings: ``(M, D)`` embeddings of labeled items (M may be 0: the first pick is then the row
            farthest from the pool's mean).
        count: how many to pick (at most N).

    Returns:
        ``(indices, distances)`` in pick order; a distance is the pick's distance to its nearest center when picked.
    """
    pool = np.asarray(pool_embeddings, dtype=np.float64)
    labeled = np.asarray(labeled_embeddings, dtype=np.float64).reshape(-1, pool.shape[1] if pool.ndim == 2 else 0)
    if pool.ndim != 2:
        raise InvalidInput(f"pool embeddings must be (items, dims), got shape {pool.shape}")
    count = min(int(count), len(pool))
    if len(labeled):
        nearest = np.full(len(pool), np.inf)
        for start in range(0, len(labeled), 1024):  # (N, 1024) distances at a time keeps memory flat
            block = labeled[start:start + 1024]
            nearest = np.minimum(nearest, _distances(pool, block).min(axis=1))
    else:
        nearest = np.linalg.norm(pool - pool.mean(axis=0), axis=1)
    picks, distances = [], []
    for _ in range(count):
        index = int(np.argmax(nearest))
        picks.append(index)
        distances.append(float(nearest[index]))
        nearest = np.minimum(nearest, _distances(pool, pool[index:index + 1])[:, 0])
        nearest[index] = -np.inf
    return np.array(picks, dtype=np.int64), np.array(distances)


def _distances(rows: np.ndarray, centers: np.ndarray) -> np.ndarray:
    squared = (rows ** 2).sum(1)[:, None] + (centers ** 2).sum(1)[None, :] - 2.0 * rows @ centers.T
    return np.sqrt(np.maximum(squared, 0.0))


# -- proposing a batch --------------------------------------------------------------------------------------------
def control_count(batch_size: int, control_fraction: float) -> int:
    """Items of a batch that go to the control arm: ``round(batch_size * control_fraction)``, at least 1 when the
    fraction is above 0 and the batch has room for both arms (10 % of a batch of 10 is 1; of 5, also 1)."""
    if not 0 <= control_fraction <= 1:
        raise InvalidInput(f"control fraction {control_fraction}: must be between 0 and 1")
    count = int(round(batch_size * control_fraction))
    if control_fraction > 0 and batch_size >= 2:
        count = max(1, count)
    return min(count, batch_size)


def propose_batch(
    item_ids: Sequence[str],
    strategy: str,
    batch_size: int,
    *,
    probabilities=None,
    pool_embeddings=None,
    labeled_embeddings=None,
    control_fraction: float = DEFAULT_CONTROL_FRACTION,
    fallback: bool = False,
    seed: int = 0,
) -> Batch:
    """The next batch from the pool ``item_ids``: the control arm drawn uniformly first, then the strategy's best.

    Args:
        item_ids: the unlabeled pool, in a stable order (rows of ``probabilities`` / ``pool_embeddings``).
        strategy: one of :data:`STRATEGIES`.
        batch_size: items to propose (fewer when the pool is smaller).
        probabilities: ``(N, classes)`` for ``margin`` and ``entropy``.
        pool_embeddings: ``(N, D)`` for ``kcenter``.
        labeled_embeddings: ``(M, D)`` for ``kcenter``: what is labeled already.
        control_fraction: share of the batch drawn at random as the control arm (default 0.10).
        fallback: the gain tracker said the strategy is losing: draw the whole batch at random (arms are kept, so
            the record still shows which items would have been the control).
        seed: seeds the random draws; the same inputs and seed give the same batch.
    """
    if strategy not in STRATEGIES:
        raise InvalidInput(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if batch_size < 1:
        raise InvalidInput(f"batch size {batch_size}: must be at least 1")
    ids = list(item_ids)
    if len(set(ids)) != len(ids):
        raise InvalidInput("the pool names an item twice")
    size = min(batch_size, len(ids))
    rng = np.random.default_rng(seed)
    n_control = control_count(size, control_fraction)
    order = rng.permutation(len(ids))
    control = order[:n_control]
    used = np.zeros(len(ids), dtype=bool)
    used[control] = True
    applied = "random" if fallback else strategy
    wanted = size - n_control
    scores: np.ndarray | None = None
    if applied in ("margin", "entropy"):
        if probabilities is None:
            raise InvalidInput(f"strategy {applied!r} needs the model's class probabilities for the pool")
        scores = (margin_scores if applied == "margin" else entropy_scores)(probabilities)
        if len(scores) != len(ids):
            raise InvalidInput(f"{len(scores)} probability rows for a pool of {len(ids)} items")
        # ties broken by the random order, so equal scores do not always favour the pool's first items
        ranked = [i for i in order[np.argsort(-scores[order], kind="stable")] if not used[i]][:wanted]
        picked = [(int(i), float(scores[i])) for i in ranked]
    elif applied == "kcenter":
        if pool_embeddings is None:
            raise InvalidInput("strategy 'kcenter' needs embeddings of the pool")
        pool = np.asarray(pool_embeddings, dtype=np.float64)
        if len(pool) != len(ids):
            raise InvalidInput(f"{len(pool)} embedding rows for a pool of {len(ids)} items")
        labeled = np.zeros((0, pool.shape[1])) if labeled_embeddings is None else np.asarray(labeled_embeddings)
        # the control picks will be labeled too, so they count as centers already
        centers = np.concatenate([labeled.reshape(-1, pool.shape[1]), pool[control]])
        rest = np.flatnonzero(~used)
        indices, distances = kcenter_greedy(pool[rest], centers, wanted)
        picked = [(int(rest[i]), float(d)) for i, d in zip(indices, distances, strict=True)]
    else:
        picked = [(int(i), None) for i in order[n_control:n_control + wanted]]
    proposals = [Proposal(ids[i], "strategy", rank, score) for rank, (i, score) in enumerate(picked)]
    control_scores = scores if scores is not None else None
    proposals += [Proposal(ids[i], "control", len(picked) + k,
                           None if control_scores is None else float(control_scores[i]))
                  for k, i in enumerate(control.tolist())]
    return Batch(applied, strategy, tuple(proposals), fallback)


# -- does the strategy beat random? -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmPoint:
    """Both arms scored at the same label count after a round."""

    round: int
    labels: int  # the control arm's labels (seed set + control picks); the strategy's curve is read here
    strategy_score: float
    control_score: float

    @property
    def advantage(self) -> float:
        return self.strategy_score - self.control_score

    def to_dict(self) -> dict:
        return {"round": self.round, "labels": self.labels, "strategy": round(self.strategy_score, 6),
                "control": round(self.control_score, 6), "advantage": round(self.advantage, 6)}


@dataclass(frozen=True)
class GainVerdict:
    """What :func:`judge_gain` decided: fall back or not, the latest advantage and the rule, with its numbers."""

    fallback: bool
    losing_streak: int
    advantage: float | None
    fallback_round: int | None
    rule: str
    points: tuple[ArmPoint, ...] = field(default=())

    def __bool__(self) -> bool:
        """True while the strategy is kept (it is not losing to random)."""
        return not self.fallback

    def to_dict(self) -> dict:
        return {"fallback": self.fallback, "losing_streak": self.losing_streak,
                "advantage": None if self.advantage is None else round(self.advantage, 6),
                "fallback_round": self.fallback_round, "rule": self.rule,
                "points": [p.to_dict() for p in self.points]}

    def __str__(self) -> str:
        if self.advantage is None:
            return "gain: not measured yet (the control arm is too small)"
        verdict = f"fell back to random at round {self.fallback_round}" if self.fallback else "strategy kept"
        return f"gain: advantage {self.advantage:+.3f} over random, {verdict}"


def judge_gain(points: Sequence[ArmPoint], seed_size: int, *, margin: float = DEFAULT_MARGIN,
               patience: int = DEFAULT_PATIENCE, min_control: int = DEFAULT_MIN_CONTROL) -> GainVerdict:
    """Apply :data:`FALLBACK_RULE` to the arms' scores, one point per round in round order.

    Args:
        points: per round, both curves at the control arm's label count (:func:`curve_points`).
        seed_size: labels in the seed set (shared by both curves).
        margin: how far below the control the strategy must score to lose a round (default 0.03: the spread of
            held-out accuracy between random draws of 30-40 labels on digits).
        patience: lost rounds in a row before falling back (default 3).
        min_control: control labels beyond the seed set before any round is judged (default 10); with fewer, one
            lucky or unlucky random pick decides, and uncertainty sampling's first picks (outliers a 20-label model
            cannot place) often help only once the next rounds fill in around them.
    """
    if margin < 0 or patience < 1 or min_control < 0:
        raise InvalidInput("margin must be >= 0, patience >= 1 and min_control >= 0")
    rule = FALLBACK_RULE.format(margin=margin, patience=patience, min_control=min_control)
    streak, fallback_round, advantage = 0, None, None
    for point in points:
        if point.labels - seed_size < min_control:
            continue
        advantage = point.advantage
        streak = streak + 1 if advantage < -margin - 1e-9 else 0  # exactly -margin (in float) is not a loss
        if streak >= patience and fallback_round is None:
            fallback_round = point.round
    return GainVerdict(fallback_round is not None, streak, advantage, fallback_round, rule, tuple(points))


def read_curve(curve: Sequence[tuple[int, float]], labels: float) -> float:
    """The score of a learning curve ``[(labels, score), ...]`` (increasing labels) at ``labels``, linear between
    points; the end points beyond its range."""
    xs = np.array([point[0] for point in curve], dtype=float)
    ys = np.array([point[1] for point in curve], dtype=float)
    if not len(xs):
        raise InvalidInput("an empty learning curve has no score")
    return float(np.interp(labels, xs, ys))


def curve_points(strategy_curve: Sequence[tuple[int, float]],
                 control_curve: Sequence[tuple[int, int, float]]) -> list[ArmPoint]:
    """One :class:`ArmPoint` per control point ``(round, labels, score)``: the strategy's curve up to that round
    read at the control arm's label count. ``strategy_curve[r]`` is the point after round ``r`` (0: the seed set)."""
    points = []
    for number, labels, score in control_curve:
        points.append(ArmPoint(number, labels, read_curve(strategy_curve[:number + 1], labels), score))
    return points
