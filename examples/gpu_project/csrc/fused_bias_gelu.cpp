// Python binding of the fused bias + GELU kernel.
#include <torch/extension.h>

torch::Tensor fused_bias_gelu_cuda(torch::Tensor input, torch::Tensor bias);

torch::Tensor fused_bias_gelu(torch::Tensor input, torch::Tensor bias) {
  TORCH_CHECK(input.is_cuda(), "input must be a CUDA tensor");
  TORCH_CHECK(bias.is_cuda(), "bias must be a CUDA tensor");
  return fused_bias_gelu_cuda(input.contiguous(), bias.contiguous());
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &fused_bias_gelu, "fused bias + GELU (CUDA)");
}
