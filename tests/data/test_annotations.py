import math

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, AnnotationSet, Box


def test_a_box_crossing_the_edge_is_clipped_and_counted():
    item = Annotated.make("a.png", 100, 50, boxes=[Box(-5, 10, 120, 40, "car"), Box(1, 1, 9, 9, "car")])
    assert item.boxes[0] == Box(0, 10, 100, 40, "car")
    assert item.clipped == 1


@pytest.mark.parametrize("box", [Box(200, 10, 220, 40, "car"), Box(10, 10, 10, 40, "car"),
                                 Box(30, 10, 20, 40, "car"), Box(math.nan, 1, 5, 5, "car")])
def test_a_box_outside_degenerate_reversed_or_nan_is_refused_naming_the_item(box):
    with pytest.raises(InvalidInput, match="b.png"):
        Annotated.make("b.png", 100, 50, boxes=[box])


def test_the_set_refuses_duplicate_items_unknown_classes_and_two_labels_for_single_label():
    one = Annotated.make("a.png", 10, 10, boxes=[Box(1, 1, 5, 5, "dog")])
    with pytest.raises(InvalidInput, match="appears twice"):
        AnnotationSet("detection", ("dog",), (one, one))
    with pytest.raises(InvalidInput, match="unknown class 'dog'"):
        AnnotationSet("detection", ("cat",), (one,))
    with pytest.raises(InvalidInput, match="multilabel"):
        AnnotationSet("classification", ("a", "b"), (Annotated.make("x", labels=["a", "b"]),))


def test_a_manifest_entry_round_trips():
    item = Annotated.make("a.png", 64, 48, boxes=[Box(1.5, 2, 30, 40, "dog", 0.9)], labels=["dog"])
    assert Annotated.from_entry("a.png", item.to_entry()) == item
