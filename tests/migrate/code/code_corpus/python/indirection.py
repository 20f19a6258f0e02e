"""Device strings that reach a device argument through variables, attributes, defaults and f-strings."""
import os

import torch

DEVICE = "cuda:0"  # expect: cuda-device-string
BACKEND = "nccl"  # expect: nccl-backend
UNUSED = "cuda"
rank = 0


class Trainer:
    def __init__(self, device="cuda"):  # expect: cuda-device-string
        self.device = torch.device(device)
        self.other = f"cuda:{rank}"  # expect: cuda-device-string
        self.fallback = "cuda" if torch.cuda.is_available() else "cpu"  # expect: cuda-device-string, cuda-is-available

    def run(self, x):
        x = x.to(DEVICE)
        y = x.to(self.other)
        w = x.to(device=self.fallback, non_blocking=True)
        dev = os.environ.get("TRAIN_DEVICE", "cuda")  # expect: cuda-device-string
        z = torch.ones(2, device=dev)
        torch.distributed.init_process_group(BACKEND)
        state = torch.load("w.pt", map_location="cuda")  # expect: cuda-device-string
        with torch.autocast("cuda", dtype=torch.bfloat16):  # expect: cuda-device-string
            pass
        return x.cuda(), y, z, w, state  # expect: cuda-method
