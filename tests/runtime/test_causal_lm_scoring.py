"""Scoring a closed-set answer on a generative model (the ladder benchmark's L2 task), on a model whose next-token
probabilities are written down, so the right answer is known exactly."""

from __future__ import annotations

import math

import pytest

from modelyard.runtime.causal_lm import CausalLM, answer_accuracy, answer_scores

EOS = "<eos>"
# next-token probabilities given the previous token; the question ends in "assistant:"
NEXT = {
    "assistant:": {"types": 0.5, "string": 0.35, "compound": 0.15},
    "string": {"-": 1.0},
    "-": {"methods": 1.0},
    "types": {EOS: 0.9, "extra": 0.1},
    "methods": {EOS: 0.9, "extra": 0.1},
    "compound": {EOS: 1.0},
    "extra": {EOS: 1.0},
}


class _WordTokenizer:
    """One token per whitespace-separated word; the vocabulary is every word ``NEXT`` knows."""

    chat_template = None
    eos_token = EOS

    def __init__(self):
        words = sorted({w for row in NEXT.values() for w in row} | set(NEXT))
        self.vocab = {w: i for i, w in enumerate(words)}
        self.eos_token_id = self.vocab[EOS]
        self.unknown = len(self.vocab)

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.get(w, self.unknown) for w in text.split()]}


class _TableModel:
    """Logits whose softmax is ``NEXT[previous token]`` (a tiny floor elsewhere)."""

    training = False

    def __init__(self, tokenizer):
        import torch

        size = tokenizer.unknown + 1
        self.table = torch.full((size, size), math.log(1e-9))
        for prev, row in NEXT.items():
            for word, p in row.items():
                self.table[tokenizer.vocab[prev], tokenizer.vocab[word]] = math.log(p)

    def eval(self):
        return self

    def __call__(self, input_ids):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.table[input_ids])


@pytest.fixture
def lm():
    tokenizer = _WordTokenizer()
    return CausalLM(_TableModel(tokenizer), tokenizer)


def test_a_one_token_answer_beats_a_less_likely_longer_one(lm):
    # "types" is the likelier answer (0.5 * 0.9) than "string - methods" (0.35 * 1 * 1 * 0.9): averaging the
    # log-probability per token would favour the longer name, whose later tokens are near-certain
    scores = answer_scores(lm, "user: which? assistant:", ["types", "string - methods", "compound"])
    assert max(scores, key=scores.get) == "types"
    assert scores["types"] == pytest.approx(math.log(0.5 * 0.9), abs=1e-5)
    assert scores["string - methods"] == pytest.approx(math.log(0.35 * 0.9), abs=1e-5)


def test_an_answer_is_scored_with_the_end_that_closes_it(lm):
    # "types extra" starts like "types" but the model closes after "types" 9 times in 10
    scores = answer_scores(lm, "user: which? assistant:", ["types extra", "types"])
    assert scores["types"] > scores["types extra"]


def test_answer_accuracy_counts_the_likeliest_candidate(lm):
    records = [{"instruction": "which?", "response": "types"}, {"instruction": "which?", "response": "compound"}]
    assert answer_accuracy(lm, records, ["types", "string - methods", "compound"]) == 0.5
