"""One site for each remaining rule family: runtime, precision, distributed, performance, kernels, environment."""
import os
import subprocess

import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline
from torch.utils.data import DataLoader

os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"  # expect: cuda-visible-devices
os.environ.setdefault("NCCL_DEBUG", "INFO")  # expect: nccl-env
if "TORCH_CUDA_ARCH_LIST" in os.environ:  # expect: cuda-arch-list
    pass


def setup(model, data, x):
    n = torch.cuda.device_count()  # expect: cuda-device-count
    i = torch.cuda.current_device()  # expect: cuda-current-device
    name = torch.cuda.get_device_name(0)  # expect: cuda-device-name
    major, minor = torch.cuda.get_device_capability()  # expect: cuda-device-capability
    stream = torch.cuda.Stream()  # expect: cuda-stream-event
    event = torch.cuda.Event(enable_timing=True)  # expect: cuda-stream-event
    graph = torch.cuda.CUDAGraph()  # expect: cuda-graphs
    torch.cuda.nvtx.range_push("step")  # expect: cuda-nvtx
    used = torch.cuda.memory_allocated()  # expect: cuda-memory-counter
    stats = torch.cuda.memory_stats()  # expect: cuda-memory-introspection
    state = torch.cuda.get_rng_state()  # expect: cuda-rng-state
    torch.cuda.manual_seed(0)  # expect: cuda-manual-seed
    torch.cuda.ipc_collect()  # expect: cuda-runtime-other
    legacy = torch.cuda.FloatTensor(3)  # expect: cuda-legacy-tensor-type
    torch.backends.cudnn.allow_tf32 = False  # expect: tf32-flag
    torch.set_float32_matmul_precision("high")  # expect: matmul-precision
    torch.backends.cudnn.deterministic = True  # expect: cudnn-flag
    y = torch.zeros(3, dtype=torch.float64)  # expect: float64-use
    model = nn.DataParallel(model)  # expect: data-parallel
    model = model.to(memory_format=torch.channels_last)  # expect: channels-last
    opt = torch.optim.AdamW(model.parameters(), fused=True)  # expect: fused-optimizer
    loader = DataLoader(data, pin_memory=True)  # expect: pin-memory
    if x.is_cuda:  # expect: cuda-is-cuda
        pass
    if torch.distributed.get_backend() == "nccl":  # expect: nccl-backend-check
        pass
    if str(x.device).startswith("cuda"):  # expect: cuda-device-check
        pass
    with torch.backends.cuda.sdp_kernel(enable_flash=True):  # expect: sdpa-backend-flag
        pass
    ext = load_inline("k", cpp_sources="", cuda_sources="__global__ void k() {}")  # expect: cuda-extension-build
    scripted = torch.jit.script(model)  # expect: jit-script
    out = torch.baddbmm(x, x, x)  # expect: fp16-overflow-op
    with torch.cuda.amp.autocast(enabled=True):  # expect: amp-cuda-autocast
        pass
    subprocess.run(["nvidia-smi", "-L"], check=False)  # expect: nvidia-smi
    os.system("nvidia-smi --query-gpu=memory.used --format=csv")  # expect: nvidia-smi
    moved = x.cuda(0)  # expect: cuda-method
    return n, i, name, major, minor, stream, event, graph, used, stats, state, legacy, y, opt, loader, ext, scripted, out, moved
