"""Sentiment: VADER's lexicon (inside the vaderSentiment wheel)."""

STATE = {}


def setup(config):
    if "analyzer" not in STATE:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        STATE["analyzer"] = SentimentIntensityAnalyzer()
    STATE["threshold"] = float(config.get("threshold", 0.05))


def process(item, channel):
    text = str(item.get("text", ""))
    scores = STATE["analyzer"].polarity_scores(text)
    compound, threshold = scores["compound"], STATE["threshold"]
    label = "positive" if compound >= threshold else "negative" if compound <= -threshold else "neutral"
    return [{"label": label, "compound": compound, "scores": {k: scores[k] for k in ("pos", "neu", "neg")}}]


def self_check():
    good = process({"text": "I love this, it works great!"}, {})[0]["label"]
    bad = process({"text": "This is terrible and broken."}, {})[0]["label"]
    return {"ok": good == "positive" and bad == "negative", "positive": good, "negative": bad}
