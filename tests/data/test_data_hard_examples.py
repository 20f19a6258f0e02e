import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.hard_examples import (
    agreement,
    confidence,
    cross_entropy_hard,
    csf_hard,
    ibt_hard,
    low_agreement,
)


def test_cross_entropy_filter_flags_spread_out_probabilities():
    probs = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.9, 0.05, 0.03, 0.02], [0.5, 0.5, 0, 0]])
    sure = confidence(probs)
    assert sure[0] == pytest.approx(1.0) and sure[1] == pytest.approx(0.0)
    assert sure[3] == pytest.approx(0.5)  # log 2 / log 4
    assert cross_entropy_hard(probs, 0.5).tolist() == [False, True, False, False]
    assert cross_entropy_hard(probs, 0.51).tolist() == [False, True, False, True]
    with pytest.raises(InvalidInput):
        cross_entropy_hard(probs, 1.5)
    with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
        confidence(np.array([[2.0, -1.0]]))


def test_ibt_compares_the_share_of_low_boxes_with_the_image_threshold():
    boxes = [[0, 0, 10, 10, 0.9, "car"], [0, 0, 5, 5, 0.4, "car"], [1, 1, 4, 4, 0.3, "dog"]]
    # 2 of 3 boxes score <= 0.5; hard when that share >= 1 - img_threshold
    assert ibt_hard(boxes, box_threshold=0.5, img_threshold=0.5)  # 0.67 >= 0.5
    assert not ibt_hard(boxes, box_threshold=0.5, img_threshold=0.2)  # 0.67 < 0.8
    assert not ibt_hard(boxes, box_threshold=0.2, img_threshold=0.5)  # no box <= 0.2
    assert ibt_hard([])  # nothing found: a labeler must confirm


def test_csf_flags_any_box_inside_the_score_band():
    assert csf_hard([[0, 0, 1, 1, 0.95, "a"], [0, 0, 1, 1, 0.45, "b"]], 0.3, 0.6)
    assert not csf_hard([[0, 0, 1, 1, 0.95, "a"], [0, 0, 1, 1, 0.1, "b"]], 0.3, 0.6)
    assert csf_hard([[0, 0, 1, 1, 0.6, "a"]], 0.3, 0.6)  # the band is closed
    assert csf_hard([])
    with pytest.raises(InvalidInput, match="low <= high"):
        csf_hard([], 0.7, 0.2)
    with pytest.raises(InvalidInput, match="not in"):
        csf_hard([[0, 0, 1, 1, 1.5, "a"]])
    with pytest.raises(InvalidInput, match="xmin"):
        ibt_hard([[0, 0, 1]])


def test_low_labeler_agreement():
    votes = {"a.png": ["cat", "cat", "cat"], "b.png": ["cat", "dog"], "c.png": ["cat", "dog", "cat"],
             "d.png": ["dog"]}
    assert agreement(votes["c.png"]) == pytest.approx(2 / 3)
    assert low_agreement(votes, 0.7) == {"b.png": 0.5, "c.png": 0.6667}
    assert low_agreement(votes, 0.6) == {"b.png": 0.5}
    with pytest.raises(InvalidInput):
        agreement([])
