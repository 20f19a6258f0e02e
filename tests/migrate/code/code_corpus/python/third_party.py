"""GPU-only third-party libraries."""
import apex  # expect: apex
from apex.optimizers import FusedAdam  # expect: apex
import flash_attn  # expect: flash-attn
from xformers.ops import memory_efficient_attention  # expect: xformers
import bitsandbytes as bnb  # expect: bitsandbytes
import triton  # expect: triton-kernels
import triton.language as tl  # expect: triton-kernels
import cupy as cp  # expect: cupy
import pycuda.autoinit  # expect: pycuda
from numba import cuda as ncuda  # expect: numba-cuda
import pynvml  # expect: pynvml
from nvidia.dali import pipeline_def  # expect: nvidia-dali
from deepspeed.ops.adam import FusedAdam as DeepSpeedAdam  # expect: deepspeed-ops
from mmcv.ops import nms  # expect: mmcv-ops
import tensorrt as trt  # expect: tensorrt
import numba  # plain numba (CPU) is fine


@ncuda.jit  # expect: numba-cuda
def add_kernel(a, b, out):
    out[0] = a[0] + b[0]


@triton.jit
def triton_kernel(x_ptr):
    pass
