"""What the tune job's stages share: the LoRA targets it guesses, content digests of specs, and checkpoints (the
trainable weights, optimizer and RNG state in the blob store, named by a pointer file keyed by the run's digest) from
which a re-run of the same spec resumes."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

from modelyard.core.jobkind import JobContext

LORA_TARGETS = (("q_proj", "v_proj"), ("c_attn",), ("query", "value"))


def batch_order(size: int, batch_size: int, seed: int, start: int = 0) -> Iterator[list[int]]:
    """Each step's example indices from step ``start + 1`` on: seeded shuffles of ``range(size)``, drawn in turn.
    The order is a function of the seed and the step alone, so a run resumed at ``start`` sees the same batches."""
    rng = random.Random(seed)
    order: list[int] = []

    def draw() -> int:
        nonlocal order
        if not order:
            order = rng.sample(range(size), size)
        return order.pop()

    for _ in range(start * batch_size):
        draw()
    while True:
        yield [draw() for _ in range(batch_size)]


def digest_of(data) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def checkpoint_pointer(ctx: JobContext, key: str) -> Path:
    return Path(ctx.home) / "tune-checkpoints" / f"{key.split(':', 1)[1][:32]}.json"


def save_checkpoint(workspace, ctx, key: str, model, optimizer, step: int) -> str:
    import io

    import torch

    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    buffer = io.BytesIO()
    torch.save({"step": step, "weights": trainable, "optimizer": optimizer.state_dict(),
                "rng": torch.get_rng_state()}, buffer)
    blob = workspace.blobs.put_bytes(buffer.getvalue())
    pointer = checkpoint_pointer(ctx, key)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    temp = pointer.with_suffix(".tmp")
    temp.write_text(json.dumps({"key": key, "step": step, "digest": "sha256:" + blob.digest}), encoding="utf-8")
    temp.replace(pointer)  # atomic: a crash leaves the previous checkpoint named
    return "sha256:" + blob.digest


def load_checkpoint(workspace, ctx, key: str, model, optimizer) -> int:
    import io

    import torch

    pointer = checkpoint_pointer(ctx, key)
    if not pointer.is_file():
        return 0
    info = json.loads(pointer.read_text(encoding="utf-8"))
    if info.get("key") != key:
        return 0
    state = torch.load(io.BytesIO(workspace.blobs.read_bytes(info["digest"])), weights_only=True)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["weights"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    ctx.log(f"resumed from checkpoint at step {state['step']} ({info['digest'][:19]})")
    return int(state["step"])
