"""Aliased imports and names must resolve to the torch.cuda API they stand for."""
import torch
import torch.cuda as tc
from torch import cuda
from torch.cuda import amp as cuda_amp  # expect: amp-cuda-import
from torch.cuda.amp import autocast as ac  # expect: amp-cuda-import
from torch.nn.parallel import DataParallel as DP

sync = torch.cuda.synchronize
cudnn = torch.backends.cudnn


def step(model, x):
    tc.synchronize()  # expect: cuda-synchronize
    cuda.empty_cache()  # expect: cuda-memory-management
    sync()  # expect: cuda-synchronize
    cudnn.benchmark = True  # expect: cudnn-flag
    with ac():  # expect: amp-cuda-autocast
        y = model(x)
    scaler = cuda_amp.GradScaler()  # expect: amp-cuda-grad-scaler
    wrapped = DP(model)  # expect: data-parallel
    return y, scaler, wrapped, tc.is_available()  # expect: cuda-is-available
