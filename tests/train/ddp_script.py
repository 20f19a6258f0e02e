"""A user's training script for the ``train`` job tests: linear regression on the mounted table with DDP (gloo).

Each rank takes its shard of every global batch, so N workers see the same global batch as one. With
``die_at_step`` rank ``WORLD_SIZE - 1`` kills itself (SIGKILL) at that step on the first attempt only; ``step_s``
makes every step of a fresh start last that long (a test that kills the job from outside needs time to see a
checkpoint first); a run resumed from a checkpoint goes at full speed.
"""

import os
import signal
import time

import pandas as pd
import torch

from modelyard.train.script_context import context

ctx = context()
ctx.init_process_group()
torch.manual_seed(0)
frame = pd.read_parquet(ctx.data_dir / "table.parquet")
features = torch.tensor(frame[["x1", "x2"]].to_numpy(), dtype=torch.float32)
target = torch.tensor(frame["y"].to_numpy(), dtype=torch.float32).unsqueeze(1)
steps, global_batch = int(ctx.params.get("steps", "40")), int(ctx.params.get("batch", "32"))
die_at = int(ctx.params.get("die_at_step", "-1"))
step_s = float(ctx.params.get("step_s", "0"))

model = torch.nn.Linear(2, 1)
if ctx.world_size > 1:
    model = torch.nn.parallel.DistributedDataParallel(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
start = 0
saved = ctx.load_checkpoint()
if saved is not None:
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    start = saved["step"] + 1
    print(f"rank {ctx.rank}: resumed at step {start}", flush=True)

for step in range(start, steps):
    if step == die_at and ctx.restart == 0 and ctx.rank == ctx.world_size - 1:
        os.kill(os.getpid(), signal.SIGKILL)
    rows = torch.arange(step * global_batch, (step + 1) * global_batch) % len(features)
    shard = rows[ctx.rank::ctx.world_size]
    loss = torch.nn.functional.mse_loss(model(features[shard]), target[shard])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        full = torch.nn.functional.mse_loss(model(features), target).item()
    ctx.log_metrics(step, loss=full)
    if step % 5 == 4:
        ctx.save_checkpoint(step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step})
    if saved is None:
        time.sleep(step_s)
