"""Build the fused bias+GELU CUDA extension ahead of time: ``python setup.py build_ext --inplace``."""

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CUDAExtension

setup(
    name="fused_bias_gelu",
    ext_modules=[
        CUDAExtension(
            name="fused_bias_gelu",
            sources=["csrc/fused_bias_gelu.cpp", "csrc/fused_bias_gelu_kernel.cu"],
            extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "--use_fast_math"]},
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
