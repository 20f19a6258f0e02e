"""Detection metrics: hand-computed mAPs, pycocotools parity of the PR curves, confusion matrix, thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, Box
from modelyard.train import detection_eval as de

pytest.importorskip("pycocotools")


def truth(item: str, *boxes: tuple, size: int = 100) -> Annotated:
    return Annotated.make(item, size, size, [Box(*b) for b in boxes])


def predicted(item: str, *boxes: tuple, size: int = 100) -> Annotated:
    return Annotated.make(item, size, size, [Box(*b[:5], score=b[5]) for b in boxes])


def test_a_perfect_detection_scores_one_everywhere():
    result = de.coco_map([predicted("i", (0, 0, 10, 10, "a", 0.9))], [truth("i", (0, 0, 10, 10, "a"))])
    assert result["map50"] == pytest.approx(1.0)
    assert result["map50_95"] == pytest.approx(1.0)
    assert result["per_class"]["a"] == {"ap50": pytest.approx(1.0), "ap75": pytest.approx(1.0),
                                        "ap50_95": pytest.approx(1.0), "ground_truth": 1, "predictions": 1}


def test_a_false_alarm_between_two_hits_gives_the_hand_computed_101_point_ap():
    # PR after each detection: (P 1, R .5), (P .5, R .5), (P 2/3, R 1); envelope 1 up to recall .5 (51 of the 101
    # recall points), 2/3 beyond (50 points)
    hand = (51 * 1.0 + 50 * 2 / 3) / 101
    result = de.coco_map(
        [predicted("i", (0, 0, 10, 10, "a", 0.9), (50, 50, 60, 60, "a", 0.8), (20, 20, 30, 30, "a", 0.7))],
        [truth("i", (0, 0, 10, 10, "a"), (20, 20, 30, 30, "a"))])
    assert result["map50"] == pytest.approx(hand, abs=1e-4)
    assert result["map50_95"] == pytest.approx(hand, abs=1e-4)


def test_a_box_of_iou_0_775_counts_at_six_of_the_ten_thresholds():
    result = de.coco_map([predicted("i", (0, 0, 10, 7.75, "a", 0.9))], [truth("i", (0, 0, 10, 10, "a"))])
    assert result["map50"] == pytest.approx(1.0)
    assert result["map75"] == pytest.approx(1.0)
    assert result["map50_95"] == pytest.approx(0.6, abs=1e-4)  # 0.50 ... 0.75 match, 0.80 ... 0.95 do not


def test_a_class_without_ground_truth_has_no_ap_and_a_missed_class_scores_zero():
    result = de.coco_map(
        [predicted("i", (0, 0, 10, 10, "a", 0.9), (40, 40, 50, 50, "ghost", 0.8)), predicted("j")],
        [truth("i", (0, 0, 10, 10, "a")), truth("j", (5, 5, 30, 30, "b"))])
    assert result["per_class"]["a"]["ap50"] == pytest.approx(1.0)
    assert result["per_class"]["b"]["ap50"] == pytest.approx(0.0)
    assert result["per_class"]["ghost"]["ap50"] is None
    assert result["per_class"]["ghost"]["predictions"] == 1
    assert result["map50"] == pytest.approx(0.5)
    assert result["classes"] == ["a", "b"]


def test_no_predictions_score_zero_and_no_ground_truth_scores_nothing():
    empty = de.coco_map([], [truth("i", (0, 0, 10, 10, "a"))])
    assert empty["map50"] == 0.0 and empty["map50_95"] == 0.0
    nothing = de.coco_map([predicted("i", (0, 0, 10, 10, "a", 0.5))], [truth("i")])
    assert nothing["map50"] is None and nothing["per_class"]["a"]["ap50"] is None


def test_bad_pairs_are_refused_by_name():
    with pytest.raises(InvalidInput, match="no ground truth: x"):
        de.coco_map([predicted("x", (0, 0, 1, 1, "a", 0.5))], [truth("i")])
    with pytest.raises(InvalidInput, match="no finite score"):
        de.coco_map([truth("i", (0, 0, 1, 1, "a"))], [truth("i")])
    with pytest.raises(InvalidInput, match="twice"):
        de.coco_map([], [truth("i"), truth("i")])


def _two_images():
    return [Annotated.make("a", 100, 100, [Box(10, 10, 30, 30, "cat"), Box(50, 50, 90, 90, "cat")]),
            Annotated.make("b", 100, 100, [Box(0, 0, 40, 20, "dog")])]


def test_a_class_list_names_every_class_in_order_and_refuses_strays():
    """The search scores with the model's class list: a class without boxes is listed, unscored."""
    perfect = [Annotated.make(t.item, t.width, t.height, [Box(b.x1, b.y1, b.x2, b.y2, b.label, 0.9)
                                                           for b in t.boxes]) for t in _two_images()]
    result = de.coco_map(perfect, _two_images(), ["dog", "cat", "bird"])
    assert result["map50"] == pytest.approx(1.0) and result["map50_95"] == pytest.approx(1.0)
    assert list(result["per_class"]) == ["dog", "cat", "bird"] and result["classes"] == ["dog", "cat"]
    assert result["per_class"]["bird"] == {"ap50": None, "ap75": None, "ap50_95": None, "ground_truth": 0,
                                           "predictions": 0}
    assert result["per_class"]["cat"]["ground_truth"] == 2 and result["per_class"]["cat"]["predictions"] == 2
    with pytest.raises(InvalidInput, match="prediction a: class 'cow' is not in the class list"):
        de.coco_map([Annotated.make("a", 100, 100, [Box(0, 0, 5, 5, "cow", 0.5)])], _two_images(), ["cat", "dog"])
    with pytest.raises(InvalidInput, match="ground truth b: class 'dog' is not in the class list"):
        de.coco_map([], _two_images(), ["cat"])
    assert de.coco_map([], _two_images(), ["cat", "dog"])["map50"] == 0.0


def test_one_hit_and_one_miss_of_two_is_51_of_101_recall_points():
    """Recall reaches 0.5 at precision 1, never 1.0: COCO's 101-point AP is 51/101 for the class."""
    predictions = [Annotated.make("a", 100, 100, [Box(10, 10, 30, 30, "cat", 0.9), Box(60, 0, 80, 20, "cat", 0.8)]),
                   Annotated.make("b", 100, 100, [Box(0, 0, 40, 20, "dog", 0.7)])]
    result = de.coco_map(predictions, _two_images())
    assert result["per_class"]["cat"]["ap50"] == pytest.approx(51 / 101)
    assert result["per_class"]["dog"]["ap50"] == pytest.approx(1.0)
    assert result["map50"] == pytest.approx((51 / 101 + 1.0) / 2)
    # a box shifted to IoU 0.6 (600 / 1000) matches at the thresholds 0.50, 0.55 and 0.60 (>=): 3 of 10
    shifted = [Annotated.make("b", 100, 100, [Box(0, 5, 40, 25, "dog", 0.7)])]
    dog = de.coco_map(shifted, _two_images())["per_class"]["dog"]
    assert dog["ap50"] == pytest.approx(1.0) and dog["ap50_95"] == pytest.approx(0.3)


def _random_case(seed: int, images: int = 25):
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"]
    truths, predictions = [], []
    for i in range(images):
        gt, pr = [], []
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 150, 2)
            w, h = rng.uniform(14, 50, 2)
            label = classes[rng.integers(0, 3)]
            gt.append((x, y, x + w, y + h, label))
            if rng.random() < 0.8:  # a detection near it, sometimes of the wrong class
                jitter = np.clip(rng.normal(0, 3, 4), -6, 6)
                wrong = rng.random() < 0.1
                pr.append((x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3],
                           classes[rng.integers(0, 3)] if wrong else label, float(rng.uniform(0.05, 1))))
        for _ in range(rng.integers(0, 4)):  # false alarms, some with tied scores
            x, y = rng.uniform(0, 150, 2)
            pr.append((x, y, x + 20, y + 20, classes[rng.integers(0, 3)], float(rng.choice([0.3, 0.5, 0.7]))))
        truths.append(truth(f"img{i}", *gt, size=200))
        predictions.append(predicted(f"img{i}", *pr, size=200))
    return predictions, truths


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_our_matching_and_pr_curves_give_pycocotools_aps_to_1e4(seed):
    predictions, truths = _random_case(seed)
    reference = de.coco_map(predictions, truths)
    pairs = de._paired(predictions, truths)
    ours_per_threshold = []
    for t in de.IOU_THRESHOLDS:
        aps = [de.precision_recall(*de.match_class(pairs, name, float(t)))["ap"] for name in reference["classes"]]
        ours_per_threshold.append(aps)
    ours = np.array(ours_per_threshold, dtype=np.float64)  # (T, K)
    assert ours[0].mean() == pytest.approx(reference["map50"], abs=1e-4)
    assert ours.mean() == pytest.approx(reference["map50_95"], abs=1e-4)
    for k, name in enumerate(reference["classes"]):
        assert ours[0, k] == pytest.approx(reference["per_class"][name]["ap50"], abs=1e-4)
    assert 0.2 < reference["map50"] < 1.0  # the case is neither trivial nor hopeless


def test_confusion_matrix_counts_hits_confusions_false_alarms_and_misses():
    pairs = de._paired(
        [predicted("i", (0, 0, 10, 10, "a", 0.9), (20, 20, 30, 30, "a", 0.8), (60, 60, 70, 70, "b", 0.7),
                   (80, 80, 90, 90, "b", 0.1))],
        [truth("i", (0, 0, 10, 10, "a"), (20, 20, 30, 30, "b"), (40, 40, 50, 50, "b"))])
    matrix = de.confusion_matrix(pairs, ["a", "b"], score_threshold=0.5)
    # rows true a, b, background; columns predicted a, b, background
    assert matrix == [[1, 0, 0],
                      [1, 0, 1],
                      [0, 1, 0]]


def test_best_f1_picks_the_score_that_balances_precision_and_recall():
    pairs = de._paired(
        [predicted("i", (0, 0, 10, 10, "a", 0.9), (20, 20, 30, 30, "a", 0.8), (50, 50, 60, 60, "a", 0.6),
                   (70, 70, 80, 80, "a", 0.5))],
        [truth("i", (0, 0, 10, 10, "a"), (20, 20, 30, 30, "a"), (40, 40, 45, 45, "a"))])
    curve = de.precision_recall(*de.match_class(pairs, "a", 0.5))
    best = de.best_f1(curve)
    # keeping >= 0.8: P 1, R 2/3 -> F1 0.8; lower thresholds only add false alarms
    assert best == {"threshold": 0.8, "f1": pytest.approx(0.8), "precision": 1.0, "recall": pytest.approx(2 / 3)}


def test_detection_report_has_curves_thresholds_and_a_background_row():
    predictions, truths = _random_case(3, images=10)
    report = de.detection_report(predictions, truths, classes=["a", "b", "c"])
    assert report["confusion_classes"] == ["a", "b", "c", "background"]
    assert len(report["confusion_matrix"]) == 4
    assert {c["class"] for c in report["curves"]} <= {"a", "b", "c"}
    assert 0.0 < report["suggested_threshold"]["threshold"] <= 1.0
    total_truth = sum(sum(row[:]) for row in report["confusion_matrix"][:3])
    assert total_truth == report["ground_truth_boxes"]
    for name, stats in report["per_class"].items():
        assert stats["ap50"] == pytest.approx(de.coco_map(predictions, truths)["per_class"][name]["ap50"])
