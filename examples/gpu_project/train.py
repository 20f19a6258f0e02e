"""Train the tiny transformer with AMP on one GPU, or on several with torchrun + NCCL.

    python train.py --steps 100                 # one GPU
    bash scripts/launch_ddp.sh                  # torchrun, 4 GPUs
    python train.py --device cpu --steps 5      # debug run without a GPU
"""

import argparse
import json
import os
import random
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.cuda.amp import GradScaler, autocast
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data.distributed import DistributedSampler

from data import SyntheticTokens, make_loader
from model import TinyTransformer


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--log-json", default=None, help="write the loss of every step to this file")
    parser.add_argument("--checkpoint", default=None, help="save the final weights here")
    return parser.parse_args()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def setup_distributed():
    """Join the NCCL process group when launched by torchrun; returns (rank, world_size, local_rank)."""
    if "RANK" not in os.environ:
        return 0, 1, 0
    dist.init_process_group(backend="nccl")
    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    return dist.get_rank(), dist.get_world_size(), local_rank


@torch.no_grad()
def evaluate(model, device) -> float:
    data = SyntheticTokens(size=256, seed=1234)
    tokens, labels = data.tokens.to(device), data.labels.to(device)
    predictions = model(tokens).argmax(dim=-1)
    return (predictions == labels).double().mean().item()


def main() -> None:
    args = parse_args()
    seed_everything(args.seed)
    rank, world_size, local_rank = setup_distributed()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    use_amp = args.amp and device.type == "cuda"

    model = TinyTransformer()
    if world_size > 1:
        model = DDP(model.cuda(), device_ids=[local_rank])
    else:
        model = model.to(device)
        if torch.cuda.device_count() > 1:
            model = torch.nn.DataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    scaler = GradScaler(enabled=use_amp)
    sampler = DistributedSampler(SyntheticTokens(seed=args.seed)) if world_size > 1 else None
    loader = make_loader(args.batch_size, seed=args.seed, workers=args.workers, sampler=sampler)

    losses = []
    started = time.time()
    while len(losses) < args.steps:
        for tokens, labels in loader:
            tokens = tokens.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast(enabled=use_amp):
                loss = F.cross_entropy(model(tokens), labels)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            if rank == 0 and len(losses) % 10 == 0:
                print(f"step {len(losses)} loss {losses[-1]:.4f}", flush=True)
            if len(losses) >= args.steps:
                break

    if rank == 0:
        accuracy = evaluate(model, device)
        print(f"{len(losses)} steps in {time.time() - started:.1f}s, final loss {losses[-1]:.4f}, "
              f"accuracy {accuracy:.3f}, max memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
              if device.type == "cuda" else
              f"{len(losses)} steps in {time.time() - started:.1f}s, final loss {losses[-1]:.4f}, accuracy {accuracy:.3f}")
        if args.log_json:
            with open(args.log_json, "w") as handle:
                json.dump({"losses": losses, "accuracy": accuracy}, handle)
        if args.checkpoint:
            torch.save(model.state_dict(), args.checkpoint)
    if world_size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
