"""Face detection: OpenCV 4's frontal-face Haar cascade (shipped in opencv-python-headless; OpenCV 5 has none)."""

import numpy as np

STATE = {}


def setup(config):
    import cv2

    if "cascade" not in STATE:
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if cascade.empty():
            raise RuntimeError("the Haar cascade did not load (opencv-python-headless < 5 ships it)")
        STATE["cascade"] = cascade
    STATE["config"] = {"min_size": int(config.get("min_size", 24)),
                       "scale_factor": float(config.get("scale_factor", 1.1)),
                       "min_neighbors": int(config.get("min_neighbors", 5))}


def detect(frame: np.ndarray, min_size: int | None = None) -> list[list[int]]:
    import cv2

    settings = STATE["config"]
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    side = int(min_size or settings["min_size"])
    faces = STATE["cascade"].detectMultiScale(grey, scaleFactor=settings["scale_factor"],
                                              minNeighbors=settings["min_neighbors"], minSize=(side, side))
    return [[int(v) for v in face] for face in faces]


def process(item, channel):
    frame = item.get("frame")
    if frame is None:
        raise ValueError("face-detection takes an image (image_b64) or a video frame")
    faces = detect(np.asarray(frame), channel["config"].get("min_size"))
    return [{"count": len(faces), "faces": faces}] if faces else []


def self_check():
    """A drawn face (head, eyes, brows, nose, mouth) must be found; a blank frame must not give one."""
    import cv2

    canvas = np.full((240, 240), 200, np.uint8)
    cv2.ellipse(canvas, (120, 125), (70, 92), 0, 0, 360, 120, -1)
    for x in (92, 148):
        cv2.ellipse(canvas, (x, 105), (16, 9), 0, 0, 360, 30, -1)
        cv2.line(canvas, (x - 20, 85), (x + 20, 85), 40, 5)
    cv2.line(canvas, (120, 110), (120, 150), 90, 6)
    cv2.ellipse(canvas, (120, 175), (30, 10), 0, 0, 360, 40, -1)
    frame = cv2.cvtColor(cv2.GaussianBlur(canvas, (7, 7), 0), cv2.COLOR_GRAY2RGB)
    found = detect(frame)
    blank = detect(np.full((240, 240, 3), 200, np.uint8))
    return {"ok": len(found) >= 1 and not blank, "faces": len(found), "faces_on_blank": len(blank)}
