"""The drift detectors on synthetic data: a shift is flagged whatever the sample sizes (both of Evidently's
regimes), stationary windows raise at most 1 % false alarms, a negligible shift on a huge window and a tiny window
are not flagged (evidently #50, #509)."""

import numpy as np
import pytest

from modelyard.deploy.monitoring.drift import (
    categorical_drift,
    detect,
    embedding_drift,
    numeric_drift,
    psi_numeric,
)


@pytest.mark.parametrize("reference_rows", [500, 5000])  # KS regime and Wasserstein regime in Evidently
@pytest.mark.parametrize("rows", [200, 2000, 20000])
def test_a_shifted_feature_is_flagged_whatever_the_sample_sizes(reference_rows, rows):
    rng = np.random.default_rng(reference_rows + rows)
    test = numeric_drift("f.x", rng.normal(size=reference_rows), rng.normal(0.5, 1.0, rows))
    assert test.drifted and test.status == "drift" and 0.3 < test.effect < 0.8 and test.psi > 0.1
    assert test.method == ("ks" if reference_rows <= 1000 else "wasserstein")


def test_a_negligible_shift_on_a_huge_window_is_significant_but_not_drift():
    rng = np.random.default_rng(1)
    test = numeric_drift("f.x", rng.normal(size=5000), rng.normal(0.03, 1.0, 200_000))
    assert test.p_value < 0.01 and test.effect < 0.1
    assert not test and test.status == "small_effect"


def test_a_tiny_window_is_not_judged_even_when_far_off():
    rng = np.random.default_rng(2)
    test = numeric_drift("f.x", rng.normal(size=1000), rng.normal(3.0, 1.0, 20))
    assert not test and test.status == "insufficient" and test.p_value is None
    small = categorical_drift("f.c", ["a"] * 500 + ["b"] * 500, ["b"] * 20)
    assert not small and small.status == "insufficient"


def test_noise_in_a_small_window_is_not_drift_though_its_distance_passes_evidentlys_threshold():
    rng = np.random.default_rng(3)
    effects, flagged = [], 0
    for _ in range(100):
        test = numeric_drift("f.x", rng.normal(size=3000), rng.normal(size=60))
        effects.append(test.effect)
        flagged += test.drifted
    assert np.mean(np.array(effects) >= 0.1) > 0.5  # Evidently (> 1000 reference rows) would flag most
    assert flagged <= 2  # alpha 0.01 for one feature: about one in a hundred by construction


def test_a_changed_class_prior_is_flagged_and_a_stable_one_is_not():
    rng = np.random.default_rng(4)
    reference = rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])
    shifted = categorical_drift("p.class", reference, rng.choice(["a", "b", "c"], 400, p=[0.2, 0.3, 0.5]))
    assert shifted and shifted.effect > 0.2 and shifted.method == "jensenshannon"
    same = categorical_drift("p.class", reference[:800], rng.choice(["a", "b", "c"], 400, p=[0.5, 0.3, 0.2]))
    assert not same and same.method == "chi2"


def test_rare_and_new_categories_keep_the_chi_squared_test_valid():
    rng = np.random.default_rng(5)
    reference = list(rng.choice(["a", "b"], 900)) + ["rare1", "rare2"]
    current = list(rng.choice(["a", "b"], 300)) + ["new"]
    test = categorical_drift("f.c", reference, current)
    assert not test and 0.0 <= test.p_value <= 1.0


def test_stationary_traffic_over_100_windows_raises_at_most_one_percent_false_alarms():
    rng = np.random.default_rng(6)
    reference = {"f.a": rng.normal(size=2000), "f.b": rng.exponential(size=2000),
                 "f.c": rng.choice(np.array(["x", "y", "z"], dtype=object), 2000, p=[0.6, 0.3, 0.1]),
                 "f.d": rng.integers(0, 5, 2000).astype(np.float64)}
    alarms = 0
    for _ in range(100):
        window = {"f.a": rng.normal(size=300), "f.b": rng.exponential(size=300),
                  "f.c": rng.choice(np.array(["x", "y", "z"], dtype=object), 300, p=[0.6, 0.3, 0.1]),
                  "f.d": rng.integers(0, 5, 300).astype(np.float64)}
        alarms += any(detect(reference, window))
    assert alarms <= 1


def test_embedding_drift_sees_a_brightness_change_of_images_and_not_noise():
    from modelyard.deploy.monitoring.summaries import image_summary

    rng = np.random.default_rng(7)

    def images(count, brightness):
        base = rng.uniform(0.2, 0.6, (count, 3, 16, 16)).astype(np.float32)
        return np.clip(base + brightness, 0, 1)

    reference = image_summary(images(300, 0.0))
    same = image_summary(images(150, 0.0))
    bright = image_summary(images(150, 0.15))
    assert not embedding_drift("e.image", reference["embedding"], same["embedding"])
    test = embedding_drift("e.image", reference["embedding"], bright["embedding"])
    assert test and test.method == "mmd" and test.p_value < 0.01
    assert numeric_drift("s.image.brightness", reference["brightness"], bright["brightness"])


def test_psi_is_zero_for_the_same_sample_and_large_for_a_moved_one():
    values = np.random.default_rng(8).normal(size=2000)
    assert psi_numeric(values, values) == pytest.approx(0.0, abs=1e-9)
    assert psi_numeric(values, values + 1.0) > 0.2
