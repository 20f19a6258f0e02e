import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.active_learning import (
    ArmPoint,
    control_count,
    curve_points,
    entropy_scores,
    judge_gain,
    kcenter_greedy,
    margin_scores,
    propose_batch,
    read_curve,
)


def test_margin_and_entropy_scores():
    probs = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    assert margin_scores(probs) == pytest.approx([1.0, 0.0, 0.7, 1.0])
    entropy = entropy_scores(probs)
    assert entropy[1] == pytest.approx(0.0)
    assert entropy[3] == pytest.approx(1.0)
    assert entropy[0] == pytest.approx(np.log(2) / np.log(3))
    with pytest.raises(InvalidInput, match="shape"):
        margin_scores(np.array([0.2, 0.8]))
    with pytest.raises(InvalidInput, match="finite"):
        entropy_scores(np.array([[np.nan, 1.0]]))


def test_kcenter_picks_the_farthest_point_then_the_next_uncovered_one():
    pool = np.array([[1.0], [2.0], [10.0], [11.0], [5.0]])
    picks, distances = kcenter_greedy(pool, np.array([[0.0]]), 3)
    assert picks.tolist() == [3, 4, 1]  # 11 (farthest from 0), then 5 (3 from both), then 2 (2 from 0... and 5)
    assert distances.tolist() == pytest.approx([11.0, 5.0, 2.0])
    # without labeled points the first pick is the farthest from the mean
    first, _ = kcenter_greedy(pool, np.zeros((0, 1)), 1)
    assert first.tolist() == [3]
    assert len(kcenter_greedy(pool, np.array([[0.0]]), 99)[0]) == 5


@pytest.mark.parametrize(("size", "fraction", "expected"), [(10, 0.1, 1), (5, 0.1, 1), (20, 0.1, 2), (1, 0.1, 0),
                                                            (10, 0.0, 0), (10, 1.0, 10), (10, 0.25, 2)])
def test_control_count(size, fraction, expected):
    assert control_count(size, fraction) == expected


def test_control_fraction_out_of_range_is_refused():
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        control_count(10, 1.5)


def test_margin_batch_takes_the_most_uncertain_items_plus_a_control_arm():
    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(100)]
    certain = rng.dirichlet([0.05, 0.05, 0.05], size=100)
    certain[:5] = [0.5, 0.49, 0.01]  # the five near-ties
    batch = propose_batch(ids, "margin", 10, probabilities=certain, seed=1)
    assert len(batch.proposals) == 10
    assert len(batch.arm("control")) == 1 and len(batch.arm("strategy")) == 9
    assert set(batch.arm("strategy")[:5]) == {f"img{i}" for i in range(5)}
    assert [p.rank for p in batch.proposals] == list(range(10))
    scores = [p.score for p in batch.proposals if p.arm == "strategy"]
    assert scores == sorted(scores, reverse=True)
    assert set(batch.arm("control")).isdisjoint(batch.arm("strategy"))
    assert batch.to_dict()["control"] == 1
    # the same inputs and seed give the same batch; another seed another control pick
    assert propose_batch(ids, "margin", 10, probabilities=certain, seed=1) == batch


def test_the_control_arm_is_uniform_over_the_pool_not_over_what_the_strategy_left():
    """Drawn before the strategy picks: over many seeds the items the strategy always wants show up in the
    control arm as often as any other item."""
    ids = [str(i) for i in range(20)]
    probs = np.tile([0.99, 0.01], (20, 1))
    probs[:4] = [0.5, 0.5]  # what margin always picks first
    hits = np.zeros(20)
    for seed in range(2000):
        batch = propose_batch(ids, "margin", 10, probabilities=probs, seed=seed)
        for item in batch.arm("control"):
            hits[int(item)] += 1
    assert hits[:4].mean() == pytest.approx(100, rel=0.25)
    assert hits[4:].mean() == pytest.approx(100, rel=0.25)


def test_fallback_draws_the_strategy_arm_at_random():
    ids = [str(i) for i in range(200)]
    probs = np.tile([0.99, 0.01], (200, 1))
    probs[:9] = [0.5, 0.5]
    kept = propose_batch(ids, "margin", 10, probabilities=probs, seed=3)
    fallen = propose_batch(ids, "margin", 10, probabilities=probs, fallback=True, seed=3)
    assert set(kept.arm("strategy")) == {str(i) for i in range(9)}
    assert fallen.strategy == "random" and fallen.requested == "margin" and fallen.fallback
    assert len(set(fallen.arm("strategy")) & {str(i) for i in range(9)}) < 3
    assert "fell back from margin" in str(fallen)


def test_kcenter_batch_counts_the_control_picks_as_centres():
    ids = ["a", "b", "c", "d"]
    pool = np.array([[0.0, 10.0], [0.0, 10.1], [10.0, 0.0], [5.0, 5.0]])
    batch = propose_batch(ids, "kcenter", 2, pool_embeddings=pool, labeled_embeddings=np.zeros((1, 2)),
                          control_fraction=0.5, seed=0)
    control = batch.arm("control")[0]
    strategy = batch.arm("strategy")[0]
    # the strategy's pick is the point farthest from the labeled origin *and* the control pick
    centres = np.vstack([[0.0, 0.0], pool[ids.index(control)]])
    distance = {i: np.linalg.norm(centres - pool[k], axis=1).min() for k, i in enumerate(ids) if i != control}
    assert strategy == max(distance, key=distance.get)


def test_random_strategy_and_small_pools():
    batch = propose_batch(["x", "y", "z"], "random", 10, seed=0)
    assert sorted(batch.items) == ["x", "y", "z"]
    assert batch.proposals[0].score is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strategy": "smart"}, "unknown strategy"),
    ({"strategy": "margin"}, "needs the model's class probabilities"),
    ({"strategy": "kcenter"}, "needs embeddings"),
    ({"strategy": "margin", "probabilities": np.full((2, 2), 0.5)}, "2 probability rows for a pool of 3"),
    ({"strategy": "random", "batch_size": 0}, "at least 1"),
])
def test_bad_proposal_requests_are_refused(kwargs, message):
    arguments = {"batch_size": 2, **kwargs}
    with pytest.raises(InvalidInput, match=message):
        propose_batch(["a", "b", "c"], **arguments)


def test_duplicate_pool_items_are_refused():
    with pytest.raises(InvalidInput, match="twice"):
        propose_batch(["a", "a"], "random", 1)


def _points(advantages, start_labels=20):
    return [ArmPoint(r, start_labels + r, 0.8 + a, 0.8) for r, a in enumerate(advantages, start=1)]


def test_gain_rule_falls_back_after_patience_losing_rounds_and_sticks():
    verdict = judge_gain(_points([-0.05, -0.05, -0.05, 0.2, 0.2]), 20, margin=0.03, patience=3, min_control=0)
    assert verdict.fallback and verdict.fallback_round == 3
    assert not verdict  # bool: the strategy is not kept
    assert verdict.losing_streak == 0  # it recovered afterwards, but the fallback sticks
    assert "3 lost rounds in a row" in verdict.rule
    assert verdict.to_dict()["points"][0]["advantage"] == pytest.approx(-0.05)


def test_gain_rule_needs_consecutive_losses_beyond_the_margin():
    interrupted = judge_gain(_points([-0.05, -0.05, 0.0, -0.05, -0.05]), 20, margin=0.03, patience=3, min_control=0)
    assert not interrupted.fallback and interrupted.losing_streak == 2
    within_margin = judge_gain(_points([-0.03] * 6), 20, margin=0.03, patience=3, min_control=0)
    assert within_margin and within_margin.advantage == pytest.approx(-0.03)


def test_gain_rule_ignores_rounds_before_the_control_arm_is_big_enough():
    early_losses = _points([-0.2] * 9 + [0.0])  # control arm 21..30 labels
    assert judge_gain(early_losses, 20, margin=0.03, patience=3, min_control=10)
    assert not judge_gain(early_losses, 20, margin=0.03, patience=3, min_control=5)
    unmeasured = judge_gain([], 20)
    assert unmeasured.advantage is None and "not measured" in str(unmeasured)


def test_gain_rule_settings_are_checked():
    with pytest.raises(InvalidInput):
        judge_gain([], 20, patience=0)


def test_curve_points_read_the_strategy_curve_at_the_control_arms_size():
    strategy_curve = [(20, 0.5), (30, 0.7), (40, 0.8)]
    assert read_curve(strategy_curve, 25) == pytest.approx(0.6)
    assert read_curve(strategy_curve, 50) == pytest.approx(0.8)
    points = curve_points(strategy_curve, [(1, 21, 0.55), (2, 22, 0.5)])
    # round 1 only sees the curve up to round 1
    assert points[0].strategy_score == pytest.approx(0.52)
    assert points[0].advantage == pytest.approx(-0.03)
    assert points[1].strategy_score == pytest.approx(0.54)
    with pytest.raises(InvalidInput):
        read_curve([], 3)
