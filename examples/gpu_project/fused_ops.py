"""Fused bias + GELU: the CUDA extension in csrc/ when it can be built, TorchScript otherwise."""

import os

import torch
import torch.nn.functional as F
from torch.utils.cpp_extension import load

_HERE = os.path.dirname(os.path.abspath(__file__))
_EXT = None


def _load_extension():
    """JIT-compile the CUDA kernel once per process (needs nvcc)."""
    global _EXT
    if _EXT is None and torch.cuda.is_available() and os.environ.get("FUSED_OPS", "1") == "1":
        try:
            _EXT = load(
                name="fused_bias_gelu",
                sources=[os.path.join(_HERE, "csrc", "fused_bias_gelu.cpp"),
                         os.path.join(_HERE, "csrc", "fused_bias_gelu_kernel.cu")],
                verbose=False,
            )
        except (OSError, RuntimeError):
            _EXT = False
    return _EXT or None


@torch.jit.script
def bias_gelu_reference(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.gelu(x + bias)


def bias_gelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    ext = _load_extension()
    if x.is_cuda and ext is not None:
        return ext.forward(x, bias)
    return bias_gelu_reference(x, bias)
