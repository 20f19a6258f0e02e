"""How the tune job turns records into training examples (no training here: the tiny tokenizer only)."""

from __future__ import annotations


def test_a_long_instruction_is_cut_from_the_left_and_the_response_kept(tiny_lm_dir):
    from modelyard.runtime.causal_lm import load_causal_lm
    from modelyard.train.tune import _examples

    lm = load_causal_lm(tiny_lm_dir, "hf")
    record = {"instruction": "Which document is this paragraph from? " + "The quick brown fox. " * 40,
              "response": "compound"}
    [example] = _examples(lm, [record], "sft", max_length=32)
    answer = lm.tokenizer("compound" + lm.tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    assert len(example["input_ids"]) == 32
    assert example["input_ids"][-len(answer):] == answer  # the whole response and the end that closes it
    assert example["labels"][-len(answer):] == answer and set(example["labels"][:-len(answer)]) == {-100}
    prompt = lm.chat_prompt([{"role": "user", "content": record["instruction"]}])
    tail = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"][-(32 - len(answer)):]
    assert example["input_ids"][:-len(answer)] == tail  # the prompt's end (where the answer starts) survives
