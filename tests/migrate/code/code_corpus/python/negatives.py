"""Mentions of cuda that are not GPU-specific code: call .cuda() and torch.cuda.synchronize() on "cuda:0".

None of the lines in this file may give a finding.
"""
import logging

import torch

# x.cuda(); torch.cuda.synchronize(); device="cuda"; init_process_group("nccl"); nvidia-smi
log = logging.getLogger(__name__)
MESSAGES = {"cuda": "NVIDIA GPU", "npu": "Ascend NPU"}
HELP = "use --device cuda to train on the GPU"
LABEL = "cuda"


def describe(backend: str) -> str:
    """Return 'cuda' when torch.cuda.is_available() says so; see x.cuda() and .to("cuda")."""
    log.info("moving model to cuda")
    name = "cuda"  # a label, never used as a device
    print(name.upper(), MESSAGES["cuda"], LABEL.title())
    return f"backend={backend}, docs at https://docs.nvidia.com/cuda"


def my_cuda_helper(cuda_tensor):
    return cuda_tensor


class Tensorish:
    def cuda_like(self):
        return "nvidia-smi"


def move(t):
    t = t.to(torch.float32)
    t = t.to("cpu")
    torch.device("cpu")
    options = {"device": "cuda"}
    return t.cpu(), options
