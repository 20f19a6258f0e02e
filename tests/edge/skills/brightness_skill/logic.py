import numpy as np

MODE = {"fail": "never"}


def setup(config):
    MODE["fail"] = config.get("fail", "never")
    if MODE["fail"] == "setup":
        raise RuntimeError("setup refused on purpose")


def infer_batch(frames):
    batch = np.stack([f.astype(np.float32) for f in frames])  # one array op for all channels
    means = batch.mean(axis=(1, 2, 3))
    return [{"brightness": float(m), "scores": [float(m) / 255.0]} for m in means]


def process(item, channel):
    if MODE["fail"] == "always":
        raise ValueError("this skill raises on every frame")
    value = item["inference"]["brightness"]
    if value > channel["config"].get("threshold", 128):
        return [{"brightness": value}]
    return []
