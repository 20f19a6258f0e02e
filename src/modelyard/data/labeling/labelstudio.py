"""Label Studio's shapes for its ML backend protocol: the label config a project sends, and predictions.

A prediction is ``{"model_version", "score", "result": [...]}``; a box result is ``{"from_name", "to_name", "type":
"rectanglelabels", "original_width", "original_height", "image_rotation", "value": {"x", "y", "width", "height",
"rotation", "rectanglelabels": [label]}, "score"}`` with ``x, y, width, height`` in **percent (0-100) of the image,
from its top-left corner**; a class result is ``{"type": "choices", "value": {"choices": [...]}}``.

Example::

    config = parse_label_config('<View><Image name="img" value="$image"/>'
                                '<Choices name="colour" toName="img"><Choice value="red"/></Choices></View>')
    prediction(proposal, config, "colours@1")
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from modelyard.core.errors import InvalidInput
from modelyard.data.labeling.model import Proposal

CONTROLS = {"choices": "Choice", "rectanglelabels": "Label"}
MAX_CONFIG_BYTES = 1_000_000


@dataclass(frozen=True)
class LabelConfig:
    """The one control a prediction fills: ``type`` (``choices`` or ``rectanglelabels``), its ``from_name``, the
    image tag it labels (``to_name``), the task data key holding the image (``$image`` -> ``image``), the labels it
    offers, and whether several choices may be picked."""

    type: str
    from_name: str
    to_name: str
    data_key: str
    labels: tuple[str, ...]
    multiple: bool = False

    @property
    def task(self) -> str:
        """The labeling task this control asks for."""
        if self.type == "rectanglelabels":
            return "detection"
        return "multilabel" if self.multiple else "classification"


def parse_label_config(text: str) -> LabelConfig:
    """The first ``<Choices>`` or ``<RectangleLabels>`` control over an ``<Image>`` in a Label Studio label config.

    Raises:
        InvalidInput: not XML, or no such control (the message says what is supported).
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("label_config: the project's labeling config (XML) is missing")
    if len(text.encode("utf-8", errors="replace")) > MAX_CONFIG_BYTES:
        raise InvalidInput(f"label_config: larger than {MAX_CONFIG_BYTES} bytes")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise InvalidInput("label_config: document type declarations and entities are not accepted")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InvalidInput(f"label_config is not valid XML: {exc}") from None
    images = {node.get("name"): (node.get("value") or "").lstrip("$") for node in root.iter()
              if node.tag.lower() == "image" and node.get("name")}
    for node in root.iter():
        kind = node.tag.lower()
        if kind not in CONTROLS:
            continue
        to_name = node.get("toName") or ""
        if to_name not in images:
            continue
        labels = tuple(child.get("value") for child in node.iter()
                       if child.tag == CONTROLS[kind] and child.get("value"))
        if not labels:
            raise InvalidInput(f"label_config: <{node.tag} name={node.get('name')!r}> offers no labels")
        return LabelConfig(kind, node.get("name") or "", to_name, images[to_name] or "image", labels,
                           multiple=(node.get("choice") or "").lower() == "multiple")
    raise InvalidInput("label_config: no <Choices> or <RectangleLabels> control over an <Image>; this backend "
                       "predicts image classes and boxes")


def results(proposal: Proposal, config: LabelConfig) -> list[dict]:
    """The ``result`` list of one prediction in Label Studio's convention (boxes in percent, top-left)."""
    annotated = proposal.annotated
    common = {"from_name": config.from_name, "to_name": config.to_name, "type": config.type}
    if config.type == "choices":
        if not annotated.labels:
            return []
        return [{**common, "value": {"choices": list(annotated.labels)}, "score": proposal.score}]
    width, height = annotated.width, annotated.height
    out = []
    for index, box in enumerate(annotated.boxes):
        out.append({**common, "id": f"r{index}", "original_width": width, "original_height": height,
                    "image_rotation": 0,
                    "value": {"x": 100.0 * box.x1 / width, "y": 100.0 * box.y1 / height,
                              "width": 100.0 * box.width / width, "height": 100.0 * box.height / height,
                              "rotation": 0, "rectanglelabels": [box.label]},
                    "score": proposal.score if box.score is None else box.score})
    return out


def prediction(proposal: Proposal, config: LabelConfig, model_version: str) -> dict:
    """One Label Studio prediction: ``{"model_version", "score", "result"}``."""
    return {"model_version": model_version, "score": proposal.score, "result": results(proposal, config)}
