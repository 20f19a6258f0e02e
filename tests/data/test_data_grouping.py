import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.grouping import group_items


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    sizes = [30, 20, 10]
    x = np.concatenate([rng.normal(c, 0.5, size=(n, 2)) for c, n in zip(centres, sizes, strict=True)])
    truth = np.repeat([0, 1, 2], sizes)
    return [f"img{i}" for i in range(len(x))], x, truth


def test_groups_recover_well_separated_clusters_largest_first():
    ids, x, truth = _blobs()
    grouping = group_items(ids, x, 3, seed=0)
    assert [len(g.items) for g in grouping.groups] == [30, 20, 10]
    for group, cluster in zip(grouping.groups, (0, 1, 2), strict=True):
        assert {ids.index(i) for i in group.items} == set(np.flatnonzero(truth == cluster))
        assert list(group.distances) == sorted(group.distances)  # nearest the centre first
    assert grouping.group_of()["img0"] == 0
    assert grouping.to_dict()["schema"] == "modelyard.label-groups/1"
    assert "3 groups of 60 items" in str(grouping)


def test_grouping_is_deterministic_with_a_seed():
    ids, x, _ = _blobs(1)
    noisy = x + np.random.default_rng(2).normal(0, 4, size=x.shape)  # overlapping: the seed matters
    assert group_items(ids, noisy, 7, seed=5) == group_items(ids, noisy, 7, seed=5)


@pytest.mark.parametrize(("k", "message"), [(1, "between 2 and 200"), (201, "between 2 and 200"),
                                            (61, "only 60 item")])
def test_group_count_out_of_range_is_refused(k, message):
    ids, x, _ = _blobs()
    with pytest.raises(InvalidInput, match=message):
        group_items(ids, x, k)


def test_bad_grouping_inputs_are_refused():
    ids, x, _ = _blobs()
    with pytest.raises(InvalidInput, match="twice"):
        group_items(["a"] * 60, x, 3)
    with pytest.raises(InvalidInput, match="shape"):
        group_items(ids[:10], x, 3)
    x[0, 0] = np.nan
    with pytest.raises(InvalidInput, match="finite"):
        group_items(ids, x, 3)


def test_identical_points_still_fill_every_group():
    grouping = group_items([str(i) for i in range(6)], np.zeros((6, 3)), 3, seed=0)
    assert sorted(len(g.items) for g in grouping.groups) == [1, 1, 4]
    assert sum(len(g.items) for g in grouping.groups) == 6
