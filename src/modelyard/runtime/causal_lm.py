"""Causal language models from local files only: a Hugging Face folder (config + safetensors + tokenizer) or a GGUF
file (dequantised by transformers), optionally with a chain of peft LoRA adapters on top.

Nothing here ever reaches a hub: ``HF_HUB_OFFLINE`` is set before transformers is imported and every load passes
``local_files_only``; a model that would need its own code or a download is refused with one clear line. Plain files
in, plain objects out (``runtime`` never touches the store), so the trainer, the benchmark and the text-generation
service share one loader.

Example::

    lm = load_causal_lm(Path("smollm2"), "gguf", entry="SmolLM2-135M-Instruct.Q4_1.gguf")
    perplexity(lm, ["def f(x): return x"], max_length=64)
    generate(lm, lm.chat_prompt([{"role": "user", "content": "Hi"}]), max_new_tokens=8)
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.core.errors import InvalidInput

TEXT_FORMATS = ("hf", "gguf", "peft")


@contextlib.contextmanager
def peft_quietly():
    """peft (0.21) calls transformers' deprecated ``is_gradient_checkpointing``; the warning is theirs to fix and
    says nothing to our users (tests treat warnings as errors)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _offline() -> None:
    # NOTE: must be set before transformers/huggingface_hub are imported anywhere in the process to take effect
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclass
class CausalLM:
    """A loaded model and its tokenizer. ``adapters`` names the LoRA adapters attached by name (multi-adapter
    serving); ``model`` is a peft model when there are any."""

    model: Any
    tokenizer: Any
    adapters: list[str] = field(default_factory=list)

    def chat_prompt(self, messages: list[dict]) -> str:
        """The prompt the model was trained to continue: its chat template, else a plain transcript."""
        template = getattr(self.tokenizer, "chat_template", None)
        if template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nassistant:"


def check_local_config(folder: Path) -> None:
    """Refuse a folder whose model needs remote code (``auto_map``) or whose weights are not here."""
    import json

    config_file = folder / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{folder.name}/config.json is not readable JSON: {type(exc).__name__}") from None
    if config.get("auto_map"):
        raise InvalidInput(f"{folder.name} needs its own Python code (auto_map in config.json); Modelyard does not run "
                           "remote code")
    if not any(folder.glob("*.safetensors")):
        raise InvalidInput(f"{folder.name} has no .safetensors weights here; Modelyard never downloads a model "
                           "(only local files are loaded)")


def _load_base(folder: Path, fmt: str, entry: str):
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if fmt == "gguf":
        kwargs["gguf_file"] = entry
    elif fmt == "hf":
        check_local_config(folder)
    else:
        raise InvalidInput(f"format {fmt!r} is not a base language model (hf or gguf)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32", **kwargs)
    except OSError as exc:
        # transformers says "couldn't connect" or "not a local folder" when a file is missing: never a download
        raise InvalidInput(f"{folder.name}: cannot load the model from local files only "
                           f"({str(exc).splitlines()[0][:200]}); Modelyard never downloads") from None
    if fmt == "gguf":
        # NOTE: transformers dequantises GGUF weights to plain fp32 tensors but keeps a "gguf quantizer" on the
        # model, which refuses save_pretrained; nothing quantized is left, so merged weights may be saved
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_causal_lm(folder: Path, fmt: str, entry: str = "config.json", *, merge: list[Path] = (),
                   adapters: dict[str, Path] | None = None, train_adapter: Path | None = None) -> CausalLM:
    """Load a base model, merge the adapters in ``merge`` into it (an L1 adapter under an L2), then attach
    ``adapters`` by name (served side by side) or ``train_adapter`` (trainable, to resume).

    Args:
        folder: the base model's files.
        fmt: ``hf`` or ``gguf``.
        entry: the GGUF file's name in ``folder`` (``gguf``).
        merge: adapter folders merged into the weights in order.
        adapters: name -> adapter folder, attached for serving; the active one is picked per request.
        train_adapter: one adapter folder loaded trainable.
    """
    model, tokenizer = _load_base(Path(folder), fmt, entry)
    if merge or adapters or train_adapter:
        with peft_quietly():
            return _with_adapters(model, tokenizer, merge, adapters, train_adapter)
    return CausalLM(model, tokenizer)


def _with_adapters(model, tokenizer, merge, adapters, train_adapter) -> CausalLM:
    from peft import PeftModel

    for adapter in merge:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if train_adapter is not None:
        model = PeftModel.from_pretrained(model, str(train_adapter), is_trainable=True)
    elif adapters:
        names = list(adapters)
        model = PeftModel.from_pretrained(model, str(adapters[names[0]]), adapter_name=names[0])
        for name in names[1:]:
            model.load_adapter(str(adapters[name]), adapter_name=name)
        return CausalLM(model.eval(), tokenizer, names)
    return CausalLM(model, tokenizer)


def perplexity(lm: CausalLM, texts: list[str], max_length: int = 128, batch_size: int = 4) -> float:
    """Token-weighted perplexity of ``texts`` (each cut to ``max_length`` tokens)."""
    import torch

    if not texts:
        raise InvalidInput("perplexity of no texts")
    model, tokenizer = lm.model, lm.tokenizer
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True, truncation=True,
                              max_length=max_length)
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            logits = model(**batch).logits[:, :-1]
            targets = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            total_nll += float(loss)
            total_tokens += int((targets != -100).sum())
    if was_training:
        model.train()
    return math.exp(total_nll / max(1, total_tokens))


def _encode(lm: CausalLM, prompt: str):
    return lm.tokenizer(prompt, return_tensors="pt")


def _generation_kwargs(lm: CausalLM, max_new_tokens: int, temperature: float, top_p: float, seed: int | None):
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    sample = temperature > 0
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": sample, "pad_token_id": lm.tokenizer.pad_token_id}
    if sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def generate(lm: CausalLM, prompt: str, *, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
             seed: int | None = None, stop: list[str] | None = None) -> tuple[str, int, int, str]:
    """``(text, prompt_tokens, completion_tokens, finish_reason)`` for one prompt."""
    import torch

    batch = _encode(lm, prompt)
    with torch.no_grad():
        out = lm.model.generate(**batch, **_generation_kwargs(lm, max_new_tokens, temperature, top_p, seed))
    new = out[0, batch["input_ids"].shape[1]:]
    text = lm.tokenizer.decode(new, skip_special_tokens=True)
    finish = "length" if len(new) >= max_new_tokens else "stop"
    text, stopped = _cut_at_stop(text, stop)
    return text, int(batch["input_ids"].shape[1]), int(len(new)), "stop" if stopped else finish


def _cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop or [] if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


def stream(lm: CausalLM, prompt: str, *, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
           seed: int | None = None) -> Iterator[str]:
    """The completion's text in pieces as the tokens are made (a generation thread feeds a streamer)."""
    import threading

    from transformers import TextIteratorStreamer

    batch = _encode(lm, prompt)
    streamer = TextIteratorStreamer(lm.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    kwargs = {**batch, **_generation_kwargs(lm, max_new_tokens, temperature, top_p, seed), "streamer": streamer}
    thread = threading.Thread(target=lm.model.generate, kwargs=kwargs, daemon=True)
    thread.start()
    try:
        yield from (piece for piece in streamer if piece)
    finally:
        thread.join()


def _cache_argument() -> str:
    from importlib.metadata import version

    # transformers 5 calls the key/value cache argument ``cache`` (``past_key_values`` still works, with a warning)
    return "cache" if int(version("transformers").split(".")[0]) >= 5 else "past_key_values"


def answer_scores(lm: CausalLM, prompt: str, candidates: list[str]) -> dict[str, float]:
    """The log-probability that the model answers ``prompt`` with exactly each of ``candidates``: the sum over the
    answer's tokens *and* the end-of-sequence token that closes it (what sft trains a response to end with).

    The prompt runs once; its key/value cache is repeated for the candidates, which then run together as one
    batch (the prompt is most of the tokens: re-running it per candidate made scoring ~4x dearer with 4 names).

    NOTE: neither averaged per token nor left open: a per-token mean favours long names, whose later tokens are
    near-certain once the first is chosen, and an open answer lets a prefix of another candidate score as well as
    it -- together they made the ladder benchmark's L2 task score below chance."""
    import torch

    tokenizer = lm.tokenizer
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if not prompt_ids or not candidates:
        raise InvalidInput("answer scores need a prompt of at least one token and at least one candidate")
    end = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    answers = [tokenizer(name, add_special_tokens=False)["input_ids"] + end for name in candidates]
    if any(not answer for answer in answers):
        raise InvalidInput("an empty candidate cannot be scored by a tokenizer without an end-of-sequence token")
    with torch.no_grad():
        # logits_to_keep=1: only the last prompt position predicts (the first answer token); the lm head over a
        # 49k vocabulary at every prompt position would cost as much as a layer or two
        shared = lm.model(input_ids=torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
        cache = shared.cache if hasattr(shared, "cache") else shared.past_key_values  # renamed in transformers 5
        first = torch.log_softmax(shared.logits[0, -1].float(), -1)
        scores = [float(first[answer[0]]) for answer in answers]
        width = max(len(answer) for answer in answers) - 1
        if width > 0:
            cache.batch_repeat_interleave(len(answers))
            # each answer but its last token follows the shared prompt; padding (any real id: the row's last
            # token) goes on the right, after every scored position, so the causal mask keeps it out of the scores
            # and no position moves
            fed = torch.tensor([answer[:-1] + answer[-1:] * (width - len(answer) + 1) for answer in answers])
            logits = lm.model(input_ids=fed, use_cache=True, **{_cache_argument(): cache}).logits
            logp = torch.log_softmax(logits.float(), -1)
            for row, answer in enumerate(answers):
                rest = torch.tensor(answer[1:])
                scores[row] += float(logp[row, :len(rest)].gather(1, rest[:, None]).sum())
    return dict(zip(candidates, scores, strict=True))


def answer_correct(lm: CausalLM, records: list[dict], candidates: list[str]) -> list[bool]:
    """For each instruction record, whether its ``response`` is the likeliest of ``candidates`` after the chat
    prompt: a closed-set task (which document, which label) scored on a generative model, item by item (paired
    comparisons between two models need the items, not only the mean)."""
    was_training = lm.model.training
    lm.model.eval()
    try:
        out = []
        for record in records:
            scores = answer_scores(lm, lm.chat_prompt([{"role": "user", "content": record["instruction"]}]),
                                   candidates)
            out.append(max(scores, key=scores.get) == record["response"])
        return out
    finally:
        if was_training:
            lm.model.train()


def answer_accuracy(lm: CausalLM, records: list[dict], candidates: list[str]) -> float:
    """Share of instruction ``records`` whose ``response`` is the likeliest of ``candidates``
    (:func:`answer_correct`)."""
    correct = answer_correct(lm, records, candidates)
    return sum(correct) / max(1, len(correct))
