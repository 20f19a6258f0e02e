// y = gelu(x + bias), one thread per element; bias is broadcast over the last dimension.
#include <torch/extension.h>
#include <cuda.h>
#include <cuda_runtime.h>

template <typename scalar_t>
__global__ void fused_bias_gelu_kernel(const scalar_t* __restrict__ input, const scalar_t* __restrict__ bias,
                                       scalar_t* __restrict__ output, int64_t n, int64_t hidden) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) {
    const float x = static_cast<float>(input[i]) + static_cast<float>(bias[i % hidden]);
    output[i] = static_cast<scalar_t>(0.5f * x * (1.0f + erff(x * 0.70710678f)));
  }
}

torch::Tensor fused_bias_gelu_cuda(torch::Tensor input, torch::Tensor bias) {
  auto output = torch::empty_like(input);
  const int64_t n = input.numel();
  const int threads = 256;
  const int blocks = static_cast<int>((n + threads - 1) / threads);
  AT_DISPATCH_FLOATING_TYPES_AND_HALF(input.scalar_type(), "fused_bias_gelu", ([&] {
    fused_bias_gelu_kernel<scalar_t><<<blocks, threads>>>(input.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(),
                                                          output.data_ptr<scalar_t>(), n, bias.numel());
  }));
  return output;
}
