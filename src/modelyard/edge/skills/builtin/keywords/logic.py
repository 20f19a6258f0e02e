"""Keywords: YAKE (statistical, no model file)."""

STATE = {}


def setup(config):
    import yake

    STATE["extractor"] = yake.KeywordExtractor(lan=config.get("language", "en"), n=int(config.get("max_ngram", 2)),
                                               top=int(config.get("top", 5)))


def process(item, channel):
    text = str(item.get("text", ""))
    if not text.strip():
        raise ValueError("keywords needs a non-empty text")
    pairs = STATE["extractor"].extract_keywords(text)
    return [{"keywords": [{"phrase": phrase, "score": round(float(score), 5)} for phrase, score in pairs]}]


def self_check():
    text = ("Edge devices run video analytics skills. Each skill processes camera channels; the skill runtime "
            "batches camera frames across channels for the detector.")
    phrases = [k["phrase"].lower() for k in process({"text": text}, {})[0]["keywords"]]
    return {"ok": any("skill" in p or "camera" in p for p in phrases), "keywords": phrases}
