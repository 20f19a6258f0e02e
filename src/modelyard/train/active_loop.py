"""The active-learning loop: train a quick model -> score the unlabeled pool -> propose the next batch -> label ->
repeat, with a random control arm in every batch and a fallback to random when the strategy is losing.

The quick model is a fixed, fast one: multinomial logistic regression on the image embeddings of
``modelyard.data.image_features`` (a fit takes tens of milliseconds on a few hundred labels, so the loop can
retrain every round and score both arms of the gain tracker). :func:`simulate` runs the whole loop against known
labels (what ``benchmarks/active_learning.py`` measures); :func:`suggest` is one round of it on real data (what the
``label.suggest`` job runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.data.active_learning import (
    DEFAULT_CONTROL_FRACTION,
    DEFAULT_MARGIN,
    DEFAULT_MIN_CONTROL,
    DEFAULT_PATIENCE,
    Batch,
    GainVerdict,
    curve_points,
    judge_gain,
    propose_batch,
)

QUICK_MODEL = ("logistic regression (C=1) on 64 principal components of image features (polarity-free layout, HOG, "
               "orientation spectrum, colour layout)")


@dataclass(frozen=True)
class GainSettings:
    """How the gain tracker judges (see ``modelyard.data.active_learning.FALLBACK_RULE``)."""

    control_fraction: float = DEFAULT_CONTROL_FRACTION
    margin: float = DEFAULT_MARGIN
    patience: int = DEFAULT_PATIENCE
    min_control: int = DEFAULT_MIN_CONTROL
    enabled: bool = True  # False: never fall back (the benchmark's pure-strategy arms)


def _one_thread():
    """BLAS on one thread: the quick model's many tiny fits spend most of their time waking threads otherwise (a
    300 x 64 fit took 0.94 s with OpenBLAS's default threads on a busy 2-core machine, 0.07 s on one)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


class QuickModel:
    """Logistic regression whose probabilities always have one column per class of the label set, also for
    classes no labeled item has yet (their probability is 0)."""

    def __init__(self, n_classes: int, seed: int = 0, C: float = 1.0):
        self.n_classes = n_classes
        self.seed = seed
        self.C = C

    def fit(self, x: np.ndarray, y: np.ndarray) -> QuickModel:
        from sklearn.linear_model import LogisticRegression

        seen = np.unique(y)
        if len(seen) < 2:
            raise InvalidInput(f"the quick model needs labeled items of at least 2 classes, got {len(seen)}")
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with _one_thread(), warnings.catch_warnings():
            # a ranking model stopped at the iteration cap still ranks; the cap keeps every round's fit fast
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_ = LogisticRegression(C=self.C, max_iter=300, random_state=self.seed).fit(x, y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.n_classes))
        with _one_thread():
            out[:, self.model_.classes_] = self.model_.predict_proba(x)
        return out

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on ``(x, y)``."""
        return float((self.predict_proba(x).argmax(axis=1) == y).mean())


def _fit_score(embeddings, labels, train, heldout, n_classes, seed) -> float:
    return QuickModel(n_classes, seed).fit(embeddings[train], labels[train]).score(embeddings[heldout],
                                                                                    labels[heldout])


def learning_curves(embeddings: np.ndarray, labels: np.ndarray, heldout: np.ndarray, seed_set: Sequence[int],
                    rounds: Sequence[Sequence[tuple[int, str]]], n_classes: int, seed: int = 0
                    ) -> tuple[list[tuple[int, float]], list[tuple[int, int, float]]]:
    """Both learning curves of a campaign, scored on ``heldout``.

    Args:
        embeddings, labels: every item (labels of items never labeled are not read).
        heldout: indices of labeled held-out items.
        seed_set: indices labeled before the first round (shared by both curves).
        rounds: per round, the labeled proposals ``(index, arm)``.

    Returns:
        ``(strategy_curve, control_curve)``: ``[(labels, score)]`` after round 0 (the seed set), 1, 2, ... on every
        label so far; and ``[(round, labels, score)]`` on the seed set plus the control picks, for each round that
        added a control label.
    """
    labeled = list(seed_set)
    control = list(seed_set)
    strategy_curve = [(len(labeled), _fit_score(embeddings, labels, labeled, heldout, n_classes, seed))]
    control_curve = []
    for number, proposals in enumerate(rounds, start=1):
        labeled += [i for i, _ in proposals]
        strategy_curve.append((len(labeled), _fit_score(embeddings, labels, labeled, heldout, n_classes, seed)))
        point = _control_point(embeddings, labels, heldout, control, proposals, number, n_classes, seed)
        if point is not None:
            control_curve.append(point)
    return strategy_curve, control_curve


def _control_point(embeddings, labels, heldout, control: list[int], proposals, number: int, n_classes: int,
                   seed: int) -> tuple[int, int, float] | None:
    """Extend ``control`` (in place) by the round's control picks; score it when it grew and spans 2 classes."""
    added = [i for i, arm in proposals if arm == "control"]
    control += added
    if not added or len(np.unique(labels[control])) < 2:
        return None
    return (number, len(control), _fit_score(embeddings, labels, control, heldout, n_classes, seed))


@dataclass(frozen=True)
class SimulationResult:
    """One simulated labeling campaign: the learning curve (total labels -> held-out accuracy, scored after each
    round) and the gain tracker's verdict at the end."""

    strategy: str
    curve: tuple[tuple[int, float], ...]
    control_curve: tuple[tuple[int, int, float], ...]
    verdict: GainVerdict
    applied: tuple[str, ...] = ()  # the strategy that picked each round's strategy arm (``random`` after a fallback)

    def labels_to(self, target: float) -> int | None:
        """The first label count whose accuracy reaches ``target`` (None: never within the budget)."""
        return next((labels for labels, score in self.curve if score >= target), None)


def simulate(embeddings: np.ndarray, labels: np.ndarray, pool: np.ndarray, heldout: np.ndarray, strategy: str, *,
             n_classes: int, seed: int = 0, seed_size: int = 20, batch_size: int = 10, budget: int = 400,
             gain: GainSettings = GainSettings(), on_round: Callable[[int, int], None] | None = None,
             stop_at: float | None = None) -> SimulationResult:
    """Run the loop against known labels: seed set drawn uniformly from ``pool``, then batches until ``budget``
    labels, each proposed exactly as :func:`suggest` proposes one (control arm, gain tracker, fallback).

    Args:
        embeddings, labels: every item of the dataset.
        pool: indices that start unlabeled (the seed set is drawn from them).
        heldout: indices scored after each round (never proposed).
        strategy: ``margin``, ``entropy``, ``kcenter`` or ``random``.
        gain: control arm and fallback settings; ``GainSettings(control_fraction=0, enabled=False)`` is the bare
            strategy.
        stop_at: stop early once the held-out score reaches this.
    """
    pool = np.asarray(pool)
    if seed_size >= len(pool):
        raise InvalidInput(f"seed set {seed_size} must be smaller than the pool ({len(pool)})")
    with _one_thread():
        return _simulate(embeddings, labels, pool, heldout, strategy, n_classes, seed, seed_size, batch_size, budget,
                         gain, on_round, stop_at)


def _simulate(embeddings, labels, pool, heldout, strategy, n_classes, seed, seed_size, batch_size, budget, gain,
              on_round, stop_at) -> SimulationResult:
    rng = np.random.default_rng(seed)
    labeled = [int(i) for i in rng.choice(pool, size=seed_size, replace=False)]
    control = list(labeled)
    unlabeled = np.setdiff1d(pool, labeled)
    rounds = 0
    applied: list[str] = []
    curve: list[tuple[int, float]] = []
    control_curve: list[tuple[int, int, float]] = []
    verdict = judge_gain([], seed_size)
    while True:
        model = QuickModel(n_classes, seed).fit(embeddings[labeled], labels[labeled])
        curve.append((len(labeled), model.score(embeddings[heldout], labels[heldout])))
        if gain.enabled and control_curve:
            verdict = judge_gain(curve_points(curve, control_curve), seed_size, margin=gain.margin,
                                 patience=gain.patience, min_control=gain.min_control)
        if len(labeled) >= budget or not len(unlabeled) or (stop_at is not None and curve[-1][1] >= stop_at):
            break
        batch = _propose(model, embeddings, unlabeled, labeled, strategy, min(batch_size, budget - len(labeled)),
                         gain.control_fraction, verdict.fallback, seed * 100_003 + rounds)
        picked = [(int(p.item), p.arm) for p in batch.proposals]
        applied.append(batch.strategy)
        rounds += 1
        labeled += [i for i, _ in picked]
        unlabeled = np.setdiff1d(unlabeled, [i for i, _ in picked])
        point = _control_point(embeddings, labels, heldout, control, picked, rounds, n_classes, seed)
        if point is not None:
            control_curve.append(point)
        if on_round:
            on_round(rounds, len(labeled))
    return SimulationResult(strategy, tuple(curve), tuple(control_curve), verdict, tuple(applied))


def _propose(model, embeddings, unlabeled, labeled, strategy, size, control_fraction, fallback, seed) -> Batch:
    needs_probabilities = strategy in ("margin", "entropy") and not fallback
    return propose_batch(
        [str(i) for i in unlabeled.tolist()], strategy, size,
        probabilities=model.predict_proba(embeddings[unlabeled]) if needs_probabilities else None,
        pool_embeddings=embeddings[unlabeled] if strategy == "kcenter" else None,
        labeled_embeddings=embeddings[np.asarray(labeled)] if strategy == "kcenter" else None,
        control_fraction=control_fraction, fallback=fallback, seed=seed)


MIN_HELDOUT = 10  # labeled held-out items below which no learning curve is drawn (one item would swing it 10 %)


@dataclass(frozen=True)
class Suggestion:
    """One round of the loop on real data: the proposed batch, the model's view of it, and the curves so far."""

    batch: Batch
    verdict: GainVerdict | None  # None when there is no held-out set to judge on
    strategy_curve: tuple[tuple[int, float], ...]
    control_curve: tuple[tuple[int, int, float], ...]
    pool_size: int
    labeled: int
    heldout: int
    probabilities: np.ndarray | None  # of the proposed items, in batch order (None without a model)
    pool_probabilities: np.ndarray | None = None  # of every pool item, in pool order


def suggest(embeddings: np.ndarray, labels: np.ndarray, *, train: Sequence[int], heldout: Sequence[int],
            pool: Sequence[int], item_ids: Sequence[str], n_classes: int, strategy: str, batch_size: int,
            rounds: Sequence[Sequence[tuple[int, str]]] = (), gain: GainSettings = GainSettings(),
            seed: int = 0) -> Suggestion:
    """Train the quick model on the labeled ``train`` items, score ``pool`` and propose the next batch.

    Args:
        embeddings: every item's embedding; ``labels`` its class index (read only for ``train`` and ``heldout``).
        train: labeled items to learn from (the seed set is those not in ``rounds``).
        heldout: labeled items to score the curves on (fewer than :data:`MIN_HELDOUT`: no curve, no verdict).
        pool: unlabeled items to choose from.
        item_ids: the id of every item (what the batch names).
        rounds: earlier rounds' proposals that are now labeled, ``(index, arm)`` in proposal order.
    """
    with _one_thread():
        return _suggest(embeddings, labels, train, heldout, pool, item_ids, n_classes, strategy, batch_size, rounds,
                        gain, seed)


def _suggest(embeddings, labels, train, heldout, pool, item_ids, n_classes, strategy, batch_size, rounds, gain,
             seed) -> Suggestion:
    train = [int(i) for i in train]
    heldout = np.asarray(heldout, dtype=np.int64)
    pool = np.asarray(pool, dtype=np.int64)
    if not len(pool):
        raise InvalidInput("nothing to propose: every item of the pool is labeled")
    in_rounds = {i for proposals in rounds for i, _ in proposals}
    seed_set = [i for i in train if i not in in_rounds]
    strategy_curve: list[tuple[int, float]] = []
    control_curve: list[tuple[int, int, float]] = []
    verdict = None
    if len(heldout) >= MIN_HELDOUT and len(np.unique(labels[seed_set])) >= 2:
        strategy_curve, control_curve = learning_curves(embeddings, labels, heldout, seed_set, rounds, n_classes,
                                                        seed)
        verdict = judge_gain(curve_points(strategy_curve, control_curve), len(seed_set), margin=gain.margin,
                             patience=gain.patience, min_control=gain.min_control) if gain.enabled else None
    fallback = verdict is not None and verdict.fallback
    model = None
    if strategy in ("margin", "entropy") or len(np.unique(labels[train])) >= 2:
        model = QuickModel(n_classes, seed).fit(embeddings[train], labels[train])
    probabilities = model.predict_proba(embeddings[pool]) if model is not None else None
    batch = propose_batch(
        [item_ids[i] for i in pool], strategy, batch_size,
        probabilities=probabilities if strategy in ("margin", "entropy") else None,
        pool_embeddings=embeddings[pool] if strategy == "kcenter" else None,
        labeled_embeddings=embeddings[train] if strategy == "kcenter" else None,
        control_fraction=gain.control_fraction, fallback=fallback, seed=seed * 100_003 + len(rounds))
    row = {item_ids[i]: k for k, i in enumerate(pool.tolist())}
    chosen = None if probabilities is None else probabilities[[row[p.item] for p in batch.proposals]]
    return Suggestion(batch, verdict, tuple(strategy_curve), tuple(control_curve), len(pool), len(train),
                      len(heldout), chosen, probabilities)
