"""The ladder a registered language model stands on: L0 (a foundation model, format hf or gguf) under any number of
LoRA adapters (format peft, each naming its base in its lineage) -- shared by the tune job and the text-generation
services."""

from __future__ import annotations

from pathlib import Path

from modelyard.core.errors import InvalidInput


def ladder_of(version) -> dict:
    return (version.lineage or {}).get("ladder") or {}


def chain_of(registry, version) -> list:
    """The versions from the foundation up to ``version``: ``[root (hf/gguf), adapter..., version]``."""
    chain = [version]
    while chain[0].format == "peft":
        base_id = ladder_of(chain[0]).get("base", {}).get("id")
        if not base_id:
            raise InvalidInput(f"{chain[0].ref} is a LoRA adapter without a recorded base; register adapters with tune")
        chain.insert(0, registry.get_version_by_id(base_id))
        if len(chain) > 16:
            raise InvalidInput(f"{version.ref}: adapter chain deeper than 16 levels")
    if chain[0].format not in ("hf", "gguf"):
        raise InvalidInput(f"{chain[0].ref} is {chain[0].format}: tune and text services need a language model "
                           "registered from a Hugging Face folder (--task text-generation) or a .gguf file")
    return chain


def load_chain(registry, chain, adapters: dict | None = None):
    """Load the root of ``chain`` with every adapter above it merged into the weights, then attach ``adapters``
    (name -> adapter folder) side by side, when given. A GGUF root is read from its dequantised copy
    (:func:`dequantised`), made once."""
    from modelyard.registry.resolve import materialize
    from modelyard.runtime.causal_lm import load_causal_lm

    root = chain[0]
    folder, fmt, entry = (dequantised(registry, root), "hf", "config.json") if root.format == "gguf" else \
        (materialize(registry, root), root.format, root.entry)
    merge = [materialize(registry, v) for v in chain[1:]]
    return load_causal_lm(folder, fmt, entry, merge=merge, adapters=adapters)


def dequantised(registry, root) -> Path:
    """A GGUF foundation model as a Hugging Face folder (fp32 safetensors + tokenizer), made once and cached under
    the GGUF's content digest: transformers dequantises a GGUF on every load (18-76 s for SmolLM2-135M on 2 cores),
    and one ladder loads its L0 many times (each tune, each evaluation, each replica)."""
    import os
    import shutil

    from modelyard.registry.resolve import materialize
    from modelyard.runtime.causal_lm import load_causal_lm

    key = lineage_entry(root)["digest"].split(":", 1)[-1][:32]
    target = registry.root / "cache" / "dequantised" / key
    if (target / "config.json").is_file():
        return target
    lm = load_causal_lm(materialize(registry, root), "gguf", root.entry)
    temp = target.with_name(f"{key}.tmp-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    lm.model.save_pretrained(temp, safe_serialization=True)
    lm.tokenizer.save_pretrained(temp)
    try:
        temp.rename(target)  # atomic: a reader sees no folder or a whole one
    except OSError:  # another process made it first: theirs is the same
        shutil.rmtree(temp, ignore_errors=True)
    return target


def lineage_entry(version) -> dict:
    from modelyard.registry.versions import content_digest

    return {"ref": version.ref, "id": version.id, "digest": content_digest(version.files),
            "level": ladder_of(version).get("level", "L0"), "format": version.format}


def ancestry(registry, version) -> list:
    """``version`` and every base named in the lineage under it, L0 first (merged models included)."""
    out = [version]
    while (base_id := ladder_of(out[0]).get("base", {}).get("id")) is not None:
        out.insert(0, registry.get_version_by_id(base_id))
        if len(out) > 16:
            raise InvalidInput(f"{version.ref}: ladder deeper than 16 levels")
    return out


def ladder_document(registry, version) -> dict:
    """The ``modelyard.ladder/1`` view of a model: each level from L0 up with its digest, dataset, evaluation and
    forgetting gate (what the console's lineage graph draws)."""
    levels = []
    for item in ancestry(registry, version):
        info = ladder_of(item)
        entry = lineage_entry(item)
        levels.append({**entry, "stage": info.get("stage"), "base": info.get("base", {}).get("ref"),
                       "dataset": info.get("dataset", {}).get("ref"), "metrics": info.get("evaluation") and {
                           k: v for k, v in info["evaluation"].items() if isinstance(v, float)} or {},
                       "gate": info.get("gate"), "license": item.tags.get("license"),
                       "hyperparameters_digest": info.get("hyperparameters_digest")})
    return {"schema": "modelyard.ladder/1", "ref": version.ref, "levels": levels}
