"""Raw text in, token ids out: what a service does for a model whose signature declares text preprocessing (a
Hugging Face text model registered with its tokenizer).

A request sends strings under the name ``text`` (``{"inputs": {"text": ["a sentence", ...]}}``, or ``{"inputs":
["a sentence", ...]}``); they become the model's ``input_ids`` / ``attention_mask`` / ``token_type_ids``, padded to
the longest string of the request and truncated at the declared maximum length. A request that sends the token
inputs itself is passed through untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelyard.deploy.errors import BadRequest

TEXT_INPUT = "text"


class TextEncoder:
    """The version's stored tokenizer, loaded once per replica (the fast ``tokenizers`` library when the folder has a
    ``tokenizer.json``; ``transformers`` otherwise)."""

    def __init__(self, folder: Path, max_length: int, inputs: list[str]):
        self.max_length = max_length
        self.inputs = list(inputs)
        file = folder / "tokenizer.json"
        if file.is_file():
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_file(str(file))
            self._fast.enable_truncation(max_length)
            pad_id = self._fast.token_to_id("[PAD]")
            if pad_id is None:
                pad_id = self._fast.token_to_id("<pad>") or 0
            self._fast.enable_padding(pad_id=pad_id)
            self._slow = None
        else:
            from transformers import AutoTokenizer

            self._fast = None
            self._slow = AutoTokenizer.from_pretrained(folder, local_files_only=True)

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self._fast is not None:
            encodings = self._fast.encode_batch(texts)
            arrays = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                      "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                      "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
        else:
            encoded = self._slow(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="np")
            arrays = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items()}
        return {name: arrays[name] for name in self.inputs}

    def feeds(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The request's arrays with ``text`` replaced by token inputs (unchanged when it sends no ``text``)."""
        if TEXT_INPUT not in arrays:
            return arrays
        extra = set(arrays) - {TEXT_INPUT}
        if extra:
            raise BadRequest(f"send either 'text' or the token inputs {self.inputs}, not both ({sorted(extra)})")
        value = arrays[TEXT_INPUT]
        if value.ndim != 1 or value.dtype.kind not in "UO" or not all(isinstance(v, str) for v in value.tolist()):
            raise BadRequest("input 'text' takes a list of strings, e.g. {\"inputs\": {\"text\": [\"a sentence\"]}}")
        if not len(value):
            raise BadRequest("input 'text' is empty: send at least one string")
        return self.encode([str(v) for v in value.tolist()])


def text_encoder(signature, folder: Path) -> TextEncoder | None:
    """The encoder a served version needs (None for a model that takes no raw text)."""
    text = signature.text
    if not text:
        return None
    return TextEncoder(folder / text["tokenizer"], int(text["max_length"]), list(text["inputs"]))
