"""Language identification: langid.py (its model is inside the package)."""

STATE = {}


def setup(config):
    from langid.langid import LanguageIdentifier, model

    identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    if config.get("languages"):
        identifier.set_languages(config["languages"])
    STATE["identifier"] = identifier


def process(item, channel):
    text = str(item.get("text", ""))
    if not text.strip():
        raise ValueError("language-id needs a non-empty text")
    language, probability = STATE["identifier"].classify(text)
    return [{"language": language, "probability": round(float(probability), 4)}]


def self_check():
    cases = {"en": "The weather is nice today and we go for a walk.", "de": "Das Wetter ist heute schön.",
             "fr": "Il fait beau aujourd'hui et nous allons nous promener."}
    got = {lang: process({"text": text}, {})[0]["language"] for lang, text in cases.items()}
    return {"ok": all(got[k] == k for k in cases), "got": got}
