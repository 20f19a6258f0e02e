import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.train.active_loop import GainSettings, QuickModel, learning_curves, simulate, suggest


def _boundary_problem(seed=0, n=900):
    """Two classes split by a line through a wide cloud: most points are easy, the labels that matter lie near
    the line (where uncertainty sampling looks)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-10, 10, size=(n, 4))
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(np.int64)
    return x, y


def test_quick_model_has_a_column_per_class_also_for_unseen_ones():
    x, y = _boundary_problem()
    model = QuickModel(3).fit(x[:50], y[:50])
    probs = model.predict_proba(x[:5])
    assert probs.shape == (5, 3) and np.allclose(probs[:, 2], 0) and np.allclose(probs.sum(axis=1), 1)
    with pytest.raises(InvalidInput, match="at least 2 classes"):
        QuickModel(2).fit(x[:3], np.zeros(3, dtype=np.int64))


def test_margin_reaches_the_target_with_fewer_labels_than_random():
    x, y = _boundary_problem()
    pool, heldout = np.arange(600), np.arange(600, 900)
    bare = GainSettings(control_fraction=0, enabled=False)
    runs = {name: simulate(x, y, pool, heldout, name, n_classes=2, seed=1, budget=120, gain=bare)
            for name in ("random", "margin")}
    for result in runs.values():
        assert [n for n, _ in result.curve] == list(range(20, 121, 10))
    assert runs["margin"].labels_to(0.97) is not None
    assert runs["random"].labels_to(0.97) is None or runs["margin"].labels_to(0.97) < runs["random"].labels_to(0.97)


def test_simulation_is_deterministic_and_counts_the_control_arm():
    x, y = _boundary_problem()
    pool, heldout = np.arange(600), np.arange(600, 900)
    first = simulate(x, y, pool, heldout, "entropy", n_classes=2, seed=2, budget=60)
    assert first == simulate(x, y, pool, heldout, "entropy", n_classes=2, seed=2, budget=60)
    # one control pick per batch of 10: the control curve grows by one label a round
    assert [(r, n) for r, n, _ in first.control_curve] == [(1, 21), (2, 22), (3, 23), (4, 24)]


def _poisoned_problem():
    """A clean two-class problem plus far-away outliers labeled against the rule: k-center keeps picking the
    outliers (they are the farthest points), and they drag the model's boundary away from the held-out data."""
    x, y = _boundary_problem(3, 700)
    rng = np.random.default_rng(4)
    side = rng.choice([-1, 1], size=200)
    outliers = rng.uniform(-10, 10, size=(200, 4))
    outliers[:, 0] = side * rng.uniform(40, 60, size=200)
    return np.vstack([x, outliers]), np.concatenate([y, (side < 0).astype(np.int64)])


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_a_losing_strategy_falls_back_to_random():
    x, y = _poisoned_problem()
    pool, heldout = np.concatenate([np.arange(500), np.arange(700, 900)]), np.arange(500, 700)
    gain = GainSettings(control_fraction=0.3, margin=0.02, patience=2, min_control=3)
    result = simulate(x, y, pool, heldout, "kcenter", n_classes=2, seed=0, budget=200, batch_size=10, gain=gain)
    assert result.verdict.fallback, result.verdict.points
    assert result.verdict.advantage < 0
    turn = result.verdict.fallback_round
    # the verdict after round r decides round r + 1's batch
    assert result.applied[:turn] == ("kcenter",) * turn
    assert set(result.applied[turn:]) == {"random"}
    bare = simulate(x, y, pool, heldout, "kcenter", n_classes=2, seed=0, budget=200, batch_size=10,
                    gain=GainSettings(control_fraction=0.3, enabled=False))
    assert set(bare.applied) == {"kcenter"} and not bare.verdict.fallback


def test_suggest_rebuilds_the_curves_from_earlier_rounds_and_falls_back():
    x, y = _poisoned_problem()
    train_seed = list(range(20))
    heldout = np.arange(500, 700)
    outliers = list(range(700, 900))
    clean = list(range(20, 500))
    # eight rounds in which the strategy labeled outliers and the control arm labeled clean points
    rounds = [[(outliers[r * 7 + k], "strategy") for k in range(7)] + [(clean[r * 3 + k], "control") for k in range(3)]
              for r in range(8)]
    labeled = train_seed + [i for proposals in rounds for i, _ in proposals]
    pool = [i for i in range(900) if i not in labeled and i not in heldout]
    ids = [f"item{i}" for i in range(900)]
    gain = GainSettings(control_fraction=0.3, margin=0.02, patience=2, min_control=3)
    outcome = suggest(x, y, train=labeled, heldout=heldout, pool=pool, item_ids=ids, n_classes=2, strategy="margin",
                      batch_size=10, rounds=rounds, gain=gain, seed=0)
    assert [n for n, _ in outcome.strategy_curve] == [20 + 10 * r for r in range(9)]
    assert [n for _, n, _ in outcome.control_curve] == [20 + 3 * r for r in range(1, 9)]
    assert outcome.verdict.fallback
    assert outcome.batch.strategy == "random" and outcome.batch.requested == "margin"
    assert len(outcome.batch.proposals) == 10 and len(outcome.batch.arm("control")) == 3
    assert outcome.probabilities.shape == (10, 2)
    assert set(outcome.batch.items) <= {ids[i] for i in pool}


def test_suggest_without_a_held_out_set_proposes_but_does_not_judge():
    x, y = _boundary_problem()
    ids = [str(i) for i in range(900)]
    outcome = suggest(x, y, train=range(30), heldout=range(30, 35), pool=range(35, 900), item_ids=ids, n_classes=2,
                      strategy="margin", batch_size=5, seed=0)
    assert outcome.verdict is None and outcome.strategy_curve == ()
    assert len(outcome.batch.items) == 5
    with pytest.raises(InvalidInput, match="every item of the pool is labeled"):
        suggest(x, y, train=range(30), heldout=(), pool=(), item_ids=ids, n_classes=2, strategy="margin",
                batch_size=5)


def test_learning_curves_skip_rounds_without_control_labels():
    x, y = _boundary_problem()
    rounds = [[(100, "strategy")], [(101, "strategy"), (102, "control")]]
    strategy_curve, control_curve = learning_curves(x, y, np.arange(600, 700), list(range(20)), rounds, 2)
    assert [n for n, _ in strategy_curve] == [20, 21, 23]
    assert [(r, n) for r, n, _ in control_curve] == [(2, 21)]
