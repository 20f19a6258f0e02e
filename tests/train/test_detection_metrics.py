"""coco_map on hand-made cases whose COCO AP is known in closed form."""

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, Box


def _truth():
    return [Annotated.make("a", 100, 100, [Box(10, 10, 30, 30, "cat"), Box(50, 50, 90, 90, "cat")]),
            Annotated.make("b", 100, 100, [Box(0, 0, 40, 20, "dog")])]


def test_perfect_predictions_score_one():
    from modelyard.train.detection_metrics import coco_map

    predictions = [Annotated.make(t.item, t.width, t.height, [Box(b.x1, b.y1, b.x2, b.y2, b.label, 0.9)
                                                              for b in t.boxes]) for t in _truth()]
    result = coco_map(predictions, _truth(), ["cat", "dog", "bird"])
    assert result["map50"] == pytest.approx(1.0) and result["map50_95"] == pytest.approx(1.0)
    assert result["per_class"]["bird"] == {"ap50": None, "ap50_95": None, "instances": 0}
    assert result["per_class"]["cat"]["instances"] == 2


def test_one_hit_and_one_miss_of_two_is_51_of_101_recall_points():
    """Recall reaches 0.5 at precision 1, never 1.0: COCO's 101-point AP is 51/101 for the class."""
    from modelyard.train.detection_metrics import coco_map

    predictions = [Annotated.make("a", 100, 100, [Box(10, 10, 30, 30, "cat", 0.9), Box(60, 0, 80, 20, "cat", 0.8)]),
                   Annotated.make("b", 100, 100, [Box(0, 0, 40, 20, "dog", 0.7)])]
    result = coco_map(predictions, _truth())
    assert result["per_class"]["cat"]["ap50"] == pytest.approx(51 / 101)
    assert result["per_class"]["dog"]["ap50"] == pytest.approx(1.0)
    assert result["map50"] == pytest.approx((51 / 101 + 1.0) / 2)
    # a box shifted to IoU 0.6 (600 / 1000) matches at the thresholds 0.50, 0.55 and 0.60 (>=): 3 of 10
    shifted = [Annotated.make("b", 100, 100, [Box(0, 5, 40, 25, "dog", 0.7)])]
    dog = coco_map(shifted, _truth())["per_class"]["dog"]
    assert dog["ap50"] == pytest.approx(1.0) and dog["ap50_95"] == pytest.approx(0.3)


def test_no_predictions_is_zero_and_bad_input_is_refused():
    from modelyard.train.detection_metrics import coco_map

    assert coco_map([], _truth())["map50"] == 0.0
    with pytest.raises(InvalidInput, match="not in the ground truth"):
        coco_map([Annotated.make("zzz", 10, 10, [Box(0, 0, 5, 5, "cat", 0.5)])], _truth())
    with pytest.raises(InvalidInput, match="needs a score"):
        coco_map([Annotated.make("a", 100, 100, [Box(0, 0, 5, 5, "cat")])], _truth())
