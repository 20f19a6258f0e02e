"""Scoring a closed-set answer on a generative model (the ladder benchmark's L2 task), on a model whose next-token
probabilities are written down, so the right answer is known exactly."""

from __future__ import annotations

import math

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.runtime.causal_lm import CausalLM, answer_accuracy, answer_correct, answer_scores

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

    def __call__(self, input_ids, use_cache=False, logits_to_keep=0, **cache):
        from types import SimpleNamespace

        # a bigram model needs no memory of the prompt: its cache only has to take the batch repeat
        logits = self.table[input_ids][:, -logits_to_keep:]
        return SimpleNamespace(logits=logits, cache=SimpleNamespace(batch_repeat_interleave=lambda n: None))


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
    assert answer_correct(lm, records, ["types", "string - methods", "compound"]) == [True, False]
    assert answer_accuracy(lm, records, ["types", "string - methods", "compound"]) == 0.5


def test_an_empty_prompt_or_no_candidates_is_refused(lm):
    with pytest.raises(InvalidInput, match="at least one"):
        answer_scores(lm, "", ["types"])
    with pytest.raises(InvalidInput, match="at least one"):
        answer_scores(lm, "user: which? assistant:", [])


def test_scores_from_the_shared_prompt_cache_equal_full_sequences_on_a_real_model(tiny_lm_dir):
    # the prompt runs once and its key/value cache is shared by candidates of different lengths (right-padded in
    # one batch): each score must equal the one from running prompt + answer + end as a whole sequence
    import torch

    from modelyard.runtime.causal_lm import load_causal_lm

    lm = load_causal_lm(tiny_lm_dir, "hf")
    lm.model.eval()
    prompt = "Use the with statement to open files so"
    candidates = ["they", "they are closed again.", "a tuple is an immutable sequence", "def"]
    scores = answer_scores(lm, prompt, candidates)
    tokenizer = lm.tokenizer
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for name in candidates:
        answer = tokenizer(name, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([prompt_ids + answer])).logits[0, len(prompt_ids) - 1:-1]
        expected = float(torch.log_softmax(logits, -1).gather(1, torch.tensor(answer)[:, None]).sum())
        assert scores[name] == pytest.approx(expected, abs=1e-4), name
