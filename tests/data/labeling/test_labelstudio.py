"""Label Studio shapes: the label config a project sends, and predictions in its percent, top-left convention."""

from __future__ import annotations

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, Box
from modelyard.data.labeling import Proposal
from modelyard.data.labeling.labelstudio import parse_label_config, prediction

BOXES = ('<View><Header value="Find cars"/><Image name="photo" value="$img" zoom="true"/>'
         '<RectangleLabels name="objects" toName="photo"><Label value="car" background="red"/>'
         '<Label value="person"/></RectangleLabels></View>')


def test_a_rectangle_config_and_boxes_in_percent_from_the_top_left():
    config = parse_label_config(BOXES)
    assert (config.type, config.from_name, config.to_name, config.data_key, config.labels, config.task) == \
        ("rectanglelabels", "objects", "photo", "img", ("car", "person"), "detection")
    proposal = Proposal(Annotated.make("a.png", 200, 100, boxes=[Box(20, 10, 70, 60, "car", 0.8),
                                                                  Box(150, 0, 250, 30, "person")]), 0.7)
    out = prediction(proposal, config, "det@2")
    assert out["model_version"] == "det@2" and out["score"] == 0.7
    first, second = out["result"]
    assert first["type"] == "rectanglelabels" and first["from_name"] == "objects" and first["to_name"] == "photo"
    assert (first["original_width"], first["original_height"]) == (200, 100)
    assert first["value"] == {"x": 10.0, "y": 10.0, "width": 25.0, "height": 50.0, "rotation": 0,
                              "rectanglelabels": ["car"]}
    assert first["score"] == 0.8 and second["score"] == 0.7  # a box without its own score gets the item's
    assert second["value"]["x"] == 75.0 and second["value"]["width"] == 25.0  # clipped at the right edge


def test_choices_with_multiple_selection_are_a_multilabel_task():
    config = parse_label_config('<View><Image name="i" value="$image"/><Choices name="c" toName="i" '
                                'choice="multiple"><Choice value="warm"/><Choice value="cold"/></Choices></View>')
    assert config.task == "multilabel" and config.labels == ("warm", "cold")
    out = prediction(Proposal(Annotated.make("x", labels=["warm", "cold"]), 0.6), config, "m@1")
    assert out["result"] == [{"from_name": "c", "to_name": "i", "type": "choices",
                              "value": {"choices": ["warm", "cold"]}, "score": 0.6}]


@pytest.mark.parametrize("text, message", [
    ("", "missing"),
    ("<View><Image", "not valid XML"),
    ('<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
     "no <Choices> or <RectangleLabels> control over an <Image>"),
    ('<View><Image name="i" value="$image"/><Choices name="c" toName="i"></Choices></View>', "offers no labels"),
    ('<!DOCTYPE x [<!ENTITY a "b">]><View/>', "entities are not accepted"),
])
def test_configs_this_backend_cannot_serve_are_refused_with_the_reason(text, message):
    with pytest.raises(InvalidInput, match=message):
        parse_label_config(text)
