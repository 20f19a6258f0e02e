"""OCR: PP-OCR (detector + recognizer ONNX shipped in the rapidocr wheel)."""

import numpy as np

STATE = {}


def setup(config):
    rotated = bool(config.get("rotated_text", False))
    if STATE.get("rotated") != rotated:
        import logging

        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        # NOTE: rapidocr's default scales the image so its *shorter* side is 736 px: a 300x55 text line becomes
        # 4000x736 and takes seconds; "max" only shrinks large images (50x faster here, same text read)
        STATE["engine"] = RapidOCR(params={"Global.use_cls": rotated, "Det.limit_type": "max",
                                           "Det.limit_side_len": 960})
        STATE["rotated"] = rotated
    STATE["min_score"] = float(config.get("min_score", 0.5))


def read_text(image: np.ndarray, min_score: float = 0.5) -> dict:
    result = STATE["engine"](image)
    lines = []
    for text, box, score in zip(result.txts or (), result.boxes if result.boxes is not None else (),
                                result.scores or (), strict=False):
        if score >= min_score:
            lines.append({"text": text, "box": np.asarray(box).round(1).tolist(), "score": round(float(score), 4)})
    return {"text": " ".join(line["text"] for line in lines), "lines": lines}


def process(item, channel):
    image = item.get("frame", item.get("image"))
    if image is None:
        raise ValueError("ocr takes an image (an RGB array)")
    result = read_text(np.asarray(image), float(channel["config"].get("min_score", STATE["min_score"])))
    return [result] if result["lines"] else []


def self_check():
    from modelyard.edge.skills.media import render_text

    expected = "Invoice 4711 paid"
    got = read_text(render_text(expected))["text"]
    return {"ok": got.split() == expected.split(), "expected": expected, "got": got}
