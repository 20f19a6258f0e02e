"""Data quality: missing values, out-of-range numbers and unseen categories are flagged when clearly above what
the reference shows, and not for the odd value a stationary window meets."""

import numpy as np

from modelyard.deploy.monitoring.quality import check_feature, data_quality


def test_missing_out_of_range_and_unseen_values_are_flagged():
    rng = np.random.default_rng(0)
    reference = {"f.x": rng.normal(size=1000), "f.c": np.array(["a", "b"] * 500, dtype=object)}
    x = rng.normal(size=400)
    x[:40] = np.nan
    x[40:80] = 50.0
    c = np.array(["a", "b"] * 180 + ["zz"] * 40, dtype=object)
    checks = {q.feature: q for q in data_quality(reference, {"f.x": x, "f.c": c})}
    assert checks["f.x"].missing_share == 0.1 and checks["f.x"].out_of_range_share == 0.1
    assert any("missing" in i for i in checks["f.x"].issues) and any("outside" in i for i in checks["f.x"].issues)
    assert checks["f.c"].unseen_share == 0.1 and checks["f.c"].unseen_examples == ["zz"]
    assert checks["f.c"].issues and checks["f.c"].to_dict()["kind"] == "categorical"


def test_a_stationary_window_and_a_single_odd_value_raise_nothing():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=500)
    window = rng.normal(size=300)
    window[0] = np.nan
    check = check_feature("f.x", reference, window, alpha=0.01)
    assert check.issues == [] and check.out_of_range_share < 0.02
    unseen = check_feature("f.c", np.array(["a"] * 300, dtype=object), np.array(["a"] * 99 + ["b"], dtype=object))
    assert unseen.issues == [] and unseen.unseen_share == 0.01
