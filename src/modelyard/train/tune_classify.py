"""The ``classify`` stage of the tune job: a classification head on an encoder (MiniLM, BERT) or a decoder (SmolLM2,
Llama) trained on a ``text``/``label`` dataset -- an L2 classifier.

The backbone is the base's whole ladder merged into one Hugging Face folder (a GGUF root read from its dequantised
copy); transformers puts its sequence-classification head on it (the [CLS] pooler for an encoder, the last real
token for a decoder). LoRA trains the adapter and the head (peft ``SEQ_CLS``), full trains everything. The tracked
run logs the loss each step and the held-out accuracy every ``eval_every`` steps; checkpoints resume as for the other
stages.

The registered version is an ONNX graph (text in through the stored tokenizer, class probabilities out, the
classes named in its task), so a classification service answers it with the normal predict protocol -- a label
and probabilities per text -- and batch jobs run it like any other classifier. Its lineage names its base, the chain
down to L0 and the dataset by content hash, like every rung of the ladder.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelyard.core.errors import InvalidInput

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja")


def backbone_folder(registry, chain, workdir: Path) -> Path:
    """One Hugging Face folder holding the base's weights: the root itself, its dequantised copy (GGUF), or the
    root with every adapter of the chain merged in (written under ``workdir``)."""
    from modelyard.registry.ladder import dequantised, load_chain
    from modelyard.registry.resolve import materialize

    if len(chain) == 1:
        return dequantised(registry, chain[0]) if chain[0].format == "gguf" else materialize(registry, chain[0])
    lm = load_chain(registry, chain)
    target = workdir / "backbone"
    lm.model.save_pretrained(target, safe_serialization=True)
    lm.tokenizer.save_pretrained(target)
    return target


def load_classifier(folder: Path, classes: list[str]):
    """``(model, tokenizer)``: the folder's backbone under a fresh sequence-classification head for ``classes``."""
    import logging

    from modelyard.runtime.causal_lm import _offline

    _offline()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    options = {"local_files_only": True, "trust_remote_code": False}
    tokenizer = AutoTokenizer.from_pretrained(folder, **options)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # the "newly initialised head" report is the point of this load, not news to anyone
    quiet = logging.getLogger("transformers.modeling_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, num_labels=len(classes), id2label=dict(enumerate(classes)),
            label2id={c: i for i, c in enumerate(classes)}, attn_implementation="eager", dtype="float32", **options)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot put a classification head on this model ({str(exc).splitlines()[0][:200]})") \
            from None
    finally:
        quiet.setLevel(level)
    # a decoder classifies from its last real token, found by the pad id: it must be the tokenizer's
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _lora(model, spec):
    from peft import LoraConfig, get_peft_model

    from modelyard.runtime.causal_lm import peft_quietly
    from modelyard.train.tune_state import LORA_TARGETS

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = spec.target_modules or next((list(t) for t in LORA_TARGETS if set(t) <= names), None)
    if not targets:
        raise InvalidInput("cannot guess the LoRA target modules of this architecture; give target_modules")
    config = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                        target_modules=targets, task_type="SEQ_CLS")
    with peft_quietly():
        return get_peft_model(model, config), targets


def _batch(tokenizer, texts: list[str], max_length: int):
    return tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)


def predict(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 16) -> list[int]:
    """The class index the model picks for each text."""
    import torch

    was_training = model.training
    model.eval()
    out: list[int] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            logits = model(**_batch(tokenizer, texts[start:start + batch_size], max_length)).logits
            out.extend(int(i) for i in logits.argmax(-1))
    if was_training:
        model.train()
    return out


def accuracy(model, tokenizer, records: list[dict], index: dict[str, int], max_length: int) -> float:
    if not records:
        return float("nan")
    picked = predict(model, tokenizer, [r["text"] for r in records], max_length)
    return sum(p == index[r["label"]] for p, r in zip(picked, records, strict=True)) / len(records)


def tune_classifier(spec, ctx, workspace, registry, base, chain, data, name: str, hyper: dict, key: str) -> dict:
    """Train and register one classifier; returns the ``modelyard.tune/1`` result (its evaluation: accuracy)."""
    import torch

    from modelyard.data.datasets import DatasetStore
    from modelyard.registry.ladder import lineage_entry
    from modelyard.train.tracking import RunStore
    from modelyard.train.tune_state import checkpoint_pointer, digest_of, load_checkpoint

    if data.schema.get("layout") != "labeled":
        raise InvalidInput(f"stage classify needs text/label records; {data.ref} holds {data.schema.get('layout')}")
    classes = list(data.schema.get("classes") or [])
    if len(classes) < 2:
        raise InvalidInput(f"{data.ref}: a classifier needs at least 2 classes, found {len(classes)}")
    index = {c: i for i, c in enumerate(classes)}
    records = DatasetStore(workspace).load_texts(data)
    train = [r for r in records if r["split"] == "train"]
    held_out = [r for r in records if r["split"] == "validation"][:spec.eval_items]
    if not held_out:
        raise InvalidInput(f"{data.ref} has no validation records to evaluate the classifier on")

    torch.manual_seed(spec.seed)
    model, tokenizer = load_classifier(backbone_folder(registry, chain, Path(ctx.workdir)), classes)
    targets = None
    if spec.method == "lora":
        model, targets = _lora(model, spec)
        hyper["target_modules"] = targets
    before = accuracy(model, tokenizer, held_out, index, spec.max_length)
    majority = max(sum(r["label"] == c for r in held_out) for c in classes) / len(held_out)
    ctx.log(f"base {base.ref} with an untrained head: held-out accuracy {before:.3f} (majority class {majority:.3f})")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hyper["learning_rate"])
    runs = RunStore(workspace)
    run = runs.create(f"tune-{name}", experiment="ladder", params=hyper, dataset=data.ref, job_id=ctx.job_id,
                      tags={"kind": "tune", "stage": "classify", "base": base.ref})
    try:
        start = load_checkpoint(workspace, ctx, key, model, optimizer)
        losses = _train(spec, ctx, workspace, key, model, tokenizer, train, index, held_out, optimizer, start, runs,
                        run.id)
        after = accuracy(model, tokenizer, held_out, index, spec.max_length)
    except BaseException as exc:
        runs.finish(run.id, "killed" if isinstance(exc, KeyboardInterrupt) else "failed", str(exc)[:500])
        raise
    evaluation = {"accuracy_before": before, "accuracy": after, "majority_accuracy": majority,
                  "classes": classes, "validation_items": len(held_out),
                  "domain_set": f"{data.ref} validation ({len(held_out)} texts)"}
    runs.log_metrics(run.id, [{"key": k, "value": evaluation[k]} for k in ("accuracy_before", "accuracy")])
    ctx.log(f"held-out accuracy {before:.3f} -> {after:.3f} on {len(held_out)} texts")
    result = {"schema": "modelyard.tune/1", "run": run.id, "base": base.ref, "data": data.ref, "stage": "classify",
              "level": "L2", "output": "merged", "steps": spec.steps, "losses": losses, "evaluation": evaluation,
              "gate": None, "hyperparameters": hyper, "model": None}
    if spec.register_model:
        lineage = {"ladder": {
            "level": "L2", "stage": "classify", "method": spec.method, "output": "merged",
            "base": lineage_entry(base), "chain": [lineage_entry(v) for v in chain],
            "dataset": {"ref": data.ref, "id": data.id, "digest": data.manifest_digest},
            "hyperparameters": hyper, "hyperparameters_digest": digest_of(hyper), "evaluation": evaluation,
            "gate": None, "run": run.id, "job": ctx.job_id}}
        version = _register(registry, workspace, ctx, model, tokenizer, name, classes, lineage, spec,
                            [r["text"] for r in held_out[:8]])
        result["model"] = version.ref
        runs.set_model(run.id, version.ref)
    runs.finish(run.id)
    checkpoint_pointer(ctx, key).unlink(missing_ok=True)
    return result


def _train(spec, ctx, workspace, key, model, tokenizer, train, index, held_out, optimizer, start, runs, run_id):
    import torch

    from modelyard.train.tune_state import batch_order, save_checkpoint

    if not train:
        raise InvalidInput("no training records")
    batches = batch_order(len(train), spec.batch_size, spec.seed, start)
    losses = []
    model.train()
    for step in range(start + 1, spec.steps + 1):
        if ctx.cancelled():
            raise InvalidInput(f"cancelled at step {step}")
        batch = [train[i] for i in next(batches)]
        inputs = _batch(tokenizer, [r["text"] for r in batch], spec.max_length)
        labels = torch.tensor([index[r["label"]] for r in batch])
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        value = float(loss.detach())
        losses.append(round(value, 5))
        points = [{"key": "loss", "value": value, "step": step}]
        if step % spec.eval_every == 0 or step == spec.steps:
            points.append({"key": "eval_accuracy", "step": step,
                           "value": accuracy(model, tokenizer, held_out, index, spec.max_length)})
        runs.log_metrics(run_id, points)
        if step % spec.checkpoint_every == 0 and step < spec.steps:
            save_checkpoint(workspace, ctx, key, model, optimizer, step)
        ctx.progress(step / spec.steps, f"step {step}/{spec.steps} loss {value:.4f}")
    return losses


def _probabilities(model, pad_id: int):
    """What the ONNX graph computes: padding (attention mask 0) carries the pad id whatever a client's tokenizer
    padded with -- a decoder finds its last real token by it -- and the head's logits become probabilities."""
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            ids = torch.where(attention_mask.bool(), input_ids, torch.full_like(input_ids, pad_id))
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            logits = self.model(input_ids=ids, attention_mask=attention_mask, **extra).logits
            return torch.softmax(logits, dim=-1)

    return Probabilities().eval()


def export_onnx(model, tokenizer, names: list[str], target: Path) -> None:
    """The classifier as an ONNX graph: ``names`` (input_ids, attention_mask[, token_type_ids]) in, ``probabilities``
    out, batch and sequence dynamic (the TorchScript exporter: seconds where the dynamo one takes minutes here)."""
    import logging
    import warnings

    import torch

    wrapped = _probabilities(model, tokenizer.pad_token_id)
    example = _batch(tokenizer, ["an example text to trace", "another"], 16)
    args = tuple(example[n] for n in names)
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's notes on python-side conditionals: none is data-dependent
            torch.onnx.export(wrapped, args, str(target), dynamo=False, input_names=list(names),
                              output_names=["probabilities"], opset_version=17,
                              dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                            "probabilities": {0: "batch"}})
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _check_export(model, tokenizer, names: list[str], target: Path, texts: list[str], max_length: int) -> float:
    """The largest difference between the ONNX graph's probabilities and PyTorch's on ``texts``; refuses a graph
    that disagrees (an export that traced a shape-dependent branch would)."""
    import numpy as np
    import torch

    from modelyard.runtime.registry import get_backend
    from modelyard.runtime.spec import ModelSpec

    spec = ModelSpec.model_validate({"name": "classifier", "onnx": str(target), "outputs": ["probabilities"],
                                     "inputs": [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64"}
                                                for n in names]})
    batch = _batch(tokenizer, texts, max_length)
    with torch.no_grad():
        expected = torch.softmax(model(**{n: batch[n] for n in names}).logits, -1).numpy()
    runner = get_backend("onnxruntime:cpu").load(spec.source())  # the backend the services run it on
    try:
        got = runner.infer({n: batch[n].numpy().astype(np.int64) for n in names})["probabilities"]
    finally:
        runner.close()
    worst = float(np.abs(got - expected).max())
    if worst > 1e-3:
        raise InvalidInput(f"the classifier's ONNX export differs from PyTorch by {worst:.2g}; not registered")
    return worst


def _register(registry, workspace, ctx, model, tokenizer, name, classes, lineage, spec, texts: list[str]):
    from modelyard.runtime.causal_lm import peft_quietly

    out = Path(ctx.workdir) / "classifier"
    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        with peft_quietly():
            model = model.merge_and_unload()
    model.eval()
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    export_onnx(model, tokenizer, names, out / "model.onnx")
    worst = _check_export(model, tokenizer, names, out / "model.onnx", texts, spec.max_length)
    tokenizer.save_pretrained(str(out / "tokenizer"))
    files = {"model.onnx": "sha256:" + workspace.blobs.put_file(out / "model.onnx").digest}
    for path in sorted((out / "tokenizer").iterdir()):
        if path.name in TOKENIZER_FILES:
            files[f"tokenizer/{path.name}"] = "sha256:" + workspace.blobs.put_file(path).digest
    preprocessing = {"text": {"tokenizer": "tokenizer", "max_length": spec.max_length, "inputs": names,
                              "fast": bool(getattr(tokenizer, "is_fast", False))}}
    task = {"type": "classification", "classes": classes, "output": "probabilities"}
    evaluation = lineage["ladder"]["evaluation"]
    metrics = {k: v for k, v in evaluation.items() if isinstance(v, float)}
    lineage["ladder"]["export"] = {"format": "onnx", "max_abs_diff_vs_torch": worst}
    version = registry.create_version(
        name, files, "model.onnx", "tune", preprocessing=preprocessing, task=task, metrics=metrics,
        tags={"kind": "tuned", "level": "L2", "stage": "classify"}, lineage=lineage,
        description=f"L2 classifier ({len(classes)} classes) of {lineage['ladder']['base']['ref']} on "
                    f"{lineage['ladder']['dataset']['ref']}")
    ctx.log(f"registered {version.ref} (onnx, {json.dumps(classes)[:80]})")
    return version
