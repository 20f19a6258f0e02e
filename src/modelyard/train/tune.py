"""Fine-tuning language models up the L0 -> L1 -> L2 ladder: the ``tune`` job kind.

- ``pretrain``: continued pretraining on a ``text`` corpus (an industry model, L1);
- ``sft``: instruction tuning on ``instruction``/``response`` records (a scenario model, L2);
- ``classify``: a classification head on an encoder or decoder, trained on ``text``/``label`` records (an L2
  classifier, registered as ONNX for the classification services: see :mod:`modelyard.train.tune_classify`).

LoRA (peft) or full fine-tuning, on whatever device torch has. The tracked run logs the loss each step and the
held-out perplexity every ``eval_every`` steps; a checkpoint (trainable weights, optimizer, step) goes to the blob
store every ``checkpoint_every`` steps, and a re-run of the same spec resumes from the last one.

Every result is evaluated on the dataset's validation split *and* on a frozen general-English set shipped with the
package (``train/data/general_english.txt``). The **forgetting gate** passes when general perplexity rose by at most
``max_general_ppl_rise`` (default 5 %); a version whose gate failed is refused as a base for further tuning. The new
version's lineage names its base, the whole chain down to L0 and the dataset by content hash, with the
hyper-parameters (and their hash) and the evaluation deltas.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import InvalidInput
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.registry.ladder import chain_of, ladder_of, lineage_entry, load_chain
from modelyard.train.tune_state import (
    LORA_TARGETS,
    batch_order,
    checkpoint_pointer,
    digest_of,
    load_checkpoint,
    save_checkpoint,
)

GENERAL_SET = Path(__file__).parent / "data" / "general_english.txt"
LEVEL_OF_STAGE = {"pretrain": "L1", "sft": "L2", "classify": "L2"}


class TuneSpec(BaseModel):
    """One fine-tuning job.

    Args:
        base: the registered model to start from (``name@version``): a foundation model (hf/gguf), a tuned merged
            model, or a LoRA adapter (its chain is merged first).
        data: a ``text`` dataset version (``name@version``).
        stage: ``pretrain`` (text -> L1), ``sft`` (instruction/response -> L2) or ``classify`` (text/label -> an
            L2 classifier; always merged weights, evaluated by held-out accuracy, no forgetting gate).
        method: ``lora`` (default) or ``full``.
        output: ``adapter`` (default with LoRA: a small peft version over the base) or ``merged`` (full weights).
        name: the model name to register; default ``<base name>-<stage>``.
        steps, batch_size, learning_rate, max_length: the optimisation (learning rate default 2e-4 for LoRA, 2e-5
            for full).
        lora_r, lora_alpha, lora_dropout, target_modules: the LoRA adapter (targets default q/v projections).
        eval_every, checkpoint_every: steps between evaluations and between checkpoints.
        max_general_ppl_rise: the forgetting gate: the largest allowed rise of general perplexity (0.05 = 5 %).
        eval_items: at most this many validation texts are evaluated (general set: all of it).
        seed: batches and initialisation.
        register_model: register the result (default true).
    """

    model_config = ConfigDict(extra="forbid")
    base: str = Field(min_length=1, max_length=300)
    data: str = Field(min_length=1, max_length=300)
    stage: Literal["pretrain", "sft", "classify"] = "pretrain"
    method: Literal["lora", "full"] = "lora"
    output: Literal["adapter", "merged"] | None = None
    name: str | None = Field(default=None, max_length=200)
    steps: int = Field(default=20, ge=1, le=1_000_000)
    batch_size: int = Field(default=4, ge=1, le=4096)
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    max_length: int = Field(default=128, ge=8, le=32_768)
    lora_r: int = Field(default=8, ge=1, le=1024)
    lora_alpha: int = Field(default=16, ge=1, le=4096)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | None = Field(default=None, max_length=64)
    eval_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=10, ge=1)
    max_general_ppl_rise: float = Field(default=0.05, ge=0)
    eval_items: int = Field(default=64, ge=1, le=100_000)
    seed: int = 0
    register_model: bool = True

    def resolved_output(self) -> str:
        if self.output == "adapter" and self.method == "full":
            raise InvalidInput("output adapter needs method lora (full fine-tuning makes full weights: output merged)")
        if self.stage == "classify":
            if self.output == "adapter":
                raise InvalidInput("stage classify registers merged weights (an ONNX classifier): output merged")
            return "merged"
        return self.output or ("adapter" if self.method == "lora" else "merged")

    def hyperparameters(self) -> dict:
        keys = ("stage", "method", "steps", "batch_size", "max_length", "lora_r", "lora_alpha", "lora_dropout",
                "target_modules", "seed", "max_general_ppl_rise")
        data = {k: getattr(self, k) for k in keys}
        data["learning_rate"] = self.learning_rate or (2e-4 if self.method == "lora" else 2e-5)
        data["output"] = self.resolved_output()
        return data


def general_texts() -> list[str]:
    from modelyard.data.text import _paragraphs

    return _paragraphs(GENERAL_SET.read_text(encoding="utf-8"))


def check_gates(chain) -> None:
    """Refuse a base whose forgetting gate (or that of anything under it) failed."""
    for version in chain:
        gate = ladder_of(version).get("gate")
        if gate and not gate.get("passed", False):
            raise InvalidInput(
                f"{version.ref} failed the forgetting gate (general perplexity rose "
                f"{gate['general_ppl_rise'] * 100:.1f} % > {gate['max_general_ppl_rise'] * 100:.1f} % allowed); it "
                "cannot be a base for further tuning")


# -- training ---------------------------------------------------------------------------------------------------
def _examples(lm, records: list[dict], stage: str, max_length: int) -> list[dict]:
    """Tokenised examples: a corpus text as it is, an instruction pair as the chat prompt plus the response with
    the prompt's tokens masked from the loss."""
    tokenizer = lm.tokenizer
    out = []
    for record in records:
        if stage == "sft":
            prompt = lm.chat_prompt([{"role": "user", "content": record["instruction"]}])
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            answer_ids = tokenizer(record["response"] + (tokenizer.eos_token or ""),
                                   add_special_tokens=False)["input_ids"]
            # NOTE: a prompt too long is cut from the left: cutting the end would drop the response (and the
            # example with it) and teach nothing; the prompt's end is where the answer starts
            answer_ids = answer_ids[:max(1, max_length // 2)]
            prompt_ids = prompt_ids[len(prompt_ids) + len(answer_ids) - max_length:] \
                if len(prompt_ids) + len(answer_ids) > max_length else prompt_ids
            ids = prompt_ids + answer_ids
            labels = [-100] * len(prompt_ids) + answer_ids
        else:
            ids = tokenizer(_plain(record), truncation=True, max_length=max_length)["input_ids"]
            labels = list(ids)
        if len(ids) >= 2 and any(label != -100 for label in labels[1:]):
            out.append({"input_ids": ids, "labels": labels})
    return out


def _plain(record: dict) -> str:
    if "instruction" in record:
        return f"{record['instruction']}\n{record['response']}"
    return record["text"]


def _collate(batch: list[dict], pad_id: int):
    import torch

    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example["input_ids"])
        ids[row, :n] = torch.tensor(example["input_ids"])
        labels[row, :n] = torch.tensor(example["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _texts_for_eval(records: list[dict], stage: str) -> list[str]:
    return [_plain(r) if stage == "pretrain" else f"{r['instruction']}\n{r['response']}" for r in records]


def _lora(lm, spec: TuneSpec):
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in lm.model.named_modules()}
    targets = spec.target_modules or next((list(t) for t in LORA_TARGETS if set(t) <= names), None)
    if not targets:
        raise InvalidInput("cannot guess the LoRA target modules of this architecture; give target_modules")
    config = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    from modelyard.runtime.causal_lm import peft_quietly

    with peft_quietly():
        lm.model = get_peft_model(lm.model, config)
    return targets


def run_tune(spec: TuneSpec, ctx: JobContext) -> dict:
    """Run one tune job; returns the ``modelyard.tune/1`` result."""
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(ctx.home), create=False, migrate=False)
    try:
        return _tune(spec, ctx, workspace)
    finally:
        workspace.close()


def _tune(spec: TuneSpec, ctx: JobContext, workspace) -> dict:
    import torch

    from modelyard.data.datasets import DatasetStore
    from modelyard.registry.refs import check_name, parse_ref
    from modelyard.registry.versions import ModelRegistry
    from modelyard.runtime.causal_lm import perplexity
    from modelyard.train.tracking import RunStore

    output = spec.resolved_output()
    hyper = spec.hyperparameters()
    registry = ModelRegistry(workspace)
    base = registry.get_version(parse_ref(spec.base))
    chain = chain_of(registry, base)
    check_gates(chain)
    name = spec.name or f"{base.name}-{spec.stage}"
    check_name(name)
    store = DatasetStore(workspace)
    data = store.get(spec.data)
    if data.kind != "text":
        raise InvalidInput(f"{data.ref} is a {data.kind} dataset; tune reads text datasets (--kind text)")
    key = digest_of({"spec": spec.model_dump(mode="json"), "base": lineage_entry(base)["digest"],
                     "data": data.manifest_digest})
    if spec.stage == "classify":
        from modelyard.train.tune_classify import tune_classifier

        return tune_classifier(spec, ctx, workspace, registry, base, chain, data, name, hyper, key)
    if spec.stage == "sft" and data.schema.get("layout") != "instruction":
        raise InvalidInput(f"stage sft needs instruction/response records; {data.ref} holds "
                           f"{data.schema.get('layout')}")
    records = store.load_texts(data)
    train = [r for r in records if r["split"] == "train"]
    held_out = [r for r in records if r["split"] == "validation"][:spec.eval_items]

    torch.manual_seed(spec.seed)
    lm = load_chain(registry, chain)
    domain_texts, general = _texts_for_eval(held_out or train[:spec.eval_items], spec.stage), general_texts()
    recorded = _recorded_general_ppl(base, spec.max_length)
    before = {"domain_ppl": perplexity(lm, domain_texts, spec.max_length),
              "general_ppl": recorded if recorded is not None else perplexity(lm, general, spec.max_length)}
    ctx.log(f"base {base.ref}: domain perplexity {before['domain_ppl']:.2f}, general {before['general_ppl']:.2f}")
    targets = _lora(lm, spec) if spec.method == "lora" else None
    if targets:
        hyper["target_modules"] = targets
    examples = _examples(lm, train, spec.stage, spec.max_length)
    if not examples:
        raise InvalidInput(f"{data.ref}: no training record yields at least two tokens")
    trainable = [p for p in lm.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=hyper["learning_rate"])
    runs = RunStore(workspace)
    run = runs.create(f"tune-{name}", experiment="ladder", params=hyper, dataset=data.ref, job_id=ctx.job_id,
                      tags={"kind": "tune", "stage": spec.stage, "base": base.ref})
    try:
        start = load_checkpoint(workspace, ctx, key, lm.model, optimizer)
        losses = _train_loop(spec, ctx, workspace, key, lm, examples, optimizer, start, runs, run.id, domain_texts)
        after = {"domain_ppl": perplexity(lm, domain_texts, spec.max_length),
                 "general_ppl": perplexity(lm, general, spec.max_length)}
        runs.log_metrics(run.id, [{"key": "eval_ppl", "value": after["domain_ppl"], "step": spec.steps}])
    except BaseException as exc:
        runs.finish(run.id, "killed" if isinstance(exc, KeyboardInterrupt) else "failed", str(exc)[:500])
        raise
    evaluation = {
        "domain_ppl_before": before["domain_ppl"], "domain_ppl_after": after["domain_ppl"],
        "general_ppl_before": before["general_ppl"], "general_ppl_after": after["general_ppl"],
        "domain_ppl_drop": 1 - after["domain_ppl"] / before["domain_ppl"],
        "general_ppl_rise": after["general_ppl"] / before["general_ppl"] - 1,
        "general_set": _general_set_name(),
        "general_ppl_before_from": "the base's own tune" if recorded is not None else "measured",
        "domain_set": f"{data.ref} validation ({len(domain_texts)} texts)",
    }
    gate = {"name": "forgetting", "max_general_ppl_rise": spec.max_general_ppl_rise,
            "general_ppl_rise": evaluation["general_ppl_rise"],
            "passed": evaluation["general_ppl_rise"] <= spec.max_general_ppl_rise}
    runs.log_metrics(run.id, [{"key": k, "value": v} for k, v in evaluation.items() if isinstance(v, float)])
    ctx.log(f"domain perplexity {before['domain_ppl']:.2f} -> {after['domain_ppl']:.2f}; general "
            f"{before['general_ppl']:.2f} -> {after['general_ppl']:.2f}; forgetting gate "
            f"{'passed' if gate['passed'] else 'FAILED'}")
    result = {"schema": "modelyard.tune/1", "run": run.id, "base": base.ref, "data": data.ref, "stage": spec.stage,
              "level": LEVEL_OF_STAGE[spec.stage], "output": output, "steps": spec.steps, "losses": losses,
              "evaluation": evaluation, "gate": gate, "hyperparameters": hyper, "model": None}
    if spec.register_model:
        lineage = {"ladder": {
            "level": LEVEL_OF_STAGE[spec.stage], "stage": spec.stage, "method": spec.method, "output": output,
            "base": lineage_entry(base), "chain": [lineage_entry(v) for v in chain],
            "dataset": {"ref": data.ref, "id": data.id, "digest": data.manifest_digest},
            "hyperparameters": hyper, "hyperparameters_digest": digest_of(hyper), "evaluation": evaluation,
            "gate": gate, "run": run.id, "job": ctx.job_id}}
        version = _register(registry, workspace, ctx, lm, name, output, lineage, evaluation, spec)
        result["model"] = version.ref
        runs.set_model(run.id, version.ref)
    runs.finish(run.id)
    checkpoint_pointer(ctx, key).unlink(missing_ok=True)
    return result


def _general_set_name() -> str:
    return f"modelyard/train/data/general_english.txt {_file_digest(GENERAL_SET)}"


def _recorded_general_ppl(base, max_length: int) -> float | None:
    """The base's general perplexity as its own tune measured it at the end, when that was on this very general set
    at this ``max_length``; else None (measure it).

    NOTE: the general set is most of a tune's evaluation (the demo's L2 spent ~80 % of its compute on perplexity);
    the base's tune measured it on the same weights (its adapter active rather than merged: equal up to float
    rounding)."""
    info = ladder_of(base)
    evaluation, hyper = info.get("evaluation") or {}, info.get("hyperparameters") or {}
    value = evaluation.get("general_ppl_after")
    if isinstance(value, float) and hyper.get("max_length") == max_length and \
            evaluation.get("general_set") == _general_set_name():
        return value
    return None


def _file_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _train_loop(spec, ctx, workspace, key, lm, examples, optimizer, start, runs, run_id, domain_texts) -> list:
    from modelyard.runtime.causal_lm import perplexity

    batches = batch_order(len(examples), spec.batch_size, spec.seed, start)
    losses = []
    model = lm.model
    model.train()
    pad = lm.tokenizer.pad_token_id
    for step in range(start + 1, spec.steps + 1):
        if ctx.cancelled():
            raise InvalidInput(f"cancelled at step {step}")
        batch = [examples[i] for i in next(batches)]
        loss = model(**_collate(batch, pad)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        value = float(loss.detach())
        losses.append(round(value, 5))
        points = [{"key": "loss", "value": value, "step": step}]
        # the last step's evaluation is the "after" one _tune makes anyway (it logs it): not measured twice
        if step % spec.eval_every == 0 and step < spec.steps:
            points.append({"key": "eval_ppl", "value": perplexity(lm, domain_texts, spec.max_length), "step": step})
        runs.log_metrics(run_id, points)
        if step % spec.checkpoint_every == 0 and step < spec.steps:
            save_checkpoint(workspace, ctx, key, model, optimizer, step)
        ctx.progress(step / spec.steps, f"step {step}/{spec.steps} loss {value:.4f}")
    return losses


def _register(registry, workspace, ctx, lm, name, output, lineage, evaluation, spec):
    out = Path(ctx.workdir) / "model"
    out.mkdir(parents=True, exist_ok=True)
    model = lm.model
    from modelyard.runtime.causal_lm import peft_quietly

    if output == "adapter":
        with peft_quietly():
            model.save_pretrained(str(out))
        config_file = out / "adapter_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
        # peft records the base as a local path; the registry's lineage names it by content hash instead
        config["base_model_name_or_path"] = lineage["ladder"]["base"]["ref"]
        config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
        entry = "adapter_config.json"
    else:
        if hasattr(model, "merge_and_unload"):
            with peft_quietly():
                model = model.merge_and_unload()
        model.save_pretrained(str(out), safe_serialization=True)
        lm.tokenizer.save_pretrained(str(out))
        entry = "config.json"
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        files[path.relative_to(out).as_posix()] = "sha256:" + workspace.blobs.put_file(path).digest
    metrics = {k: v for k, v in evaluation.items() if isinstance(v, float)}
    level = lineage["ladder"]["level"]
    tags = {"kind": "tuned", "level": level, "stage": spec.stage, "gate": "passed" if lineage["ladder"]["gate"][
        "passed"] else "failed"}
    version = registry.create_version(name, files, entry, "tune", metrics=metrics, tags=tags, lineage=lineage,
                                      description=f"{level} {spec.stage} of {lineage['ladder']['base']['ref']} on "
                                                  f"{lineage['ladder']['dataset']['ref']}")
    ctx.log(f"registered {version.ref} ({version.format})")
    return version


def authorize_tune(spec: TuneSpec, _caller, workspace) -> None:
    """At submit: the base and dataset exist, the base's chain is a language model whose gates passed."""
    from modelyard.data.datasets import DatasetStore
    from modelyard.registry.refs import check_name, parse_ref
    from modelyard.registry.versions import ModelRegistry

    spec.resolved_output()
    if spec.name:
        check_name(spec.name)
    registry = ModelRegistry(workspace)
    check_gates(chain_of(registry, registry.get_version(parse_ref(spec.base))))
    DatasetStore(workspace).get(spec.data)


TUNE = JobKind(
    "tune",
    TuneSpec,
    run_tune,
    idempotent=True,  # a crashed run is re-queued and resumes from its last checkpoint
    authorize=authorize_tune,
    description="Fine-tune a language model (pretrain -> L1, sft or classify -> L2; LoRA or full) with a forgetting "
                "gate, checkpoints and lineage by content hash; registers the result.",
)
