#include <cuda_runtime.h>

#include "kernels/copy/copy.h"
#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "math/convert.h"
#include "runtime/cuda_check.h"
#include "runtime/dispatch.h"

namespace lmk::kernels {
namespace {

template <typename S, typename D>
__global__ void convert_kernel(const S* in, D* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    store_from_double(out, i, load_as_double(in, i));
  }
}

}  // namespace

void convert_cuda(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (src_dtype == dst_dtype) {
    cuda_check(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * dtype_size(src_dtype), cudaMemcpyDeviceToDevice, s),
               "copy");
    return;
  }
  int64_t blocks = (n + 255) / 256;
  unsigned grid = looping_grid(blocks, 65535 * 8);
  dispatch_dtype(src_dtype, [&](auto src_tag) {
    using S = typename decltype(src_tag)::type;
    dispatch_dtype(dst_dtype, [&](auto dst_tag) {
      using D = typename decltype(dst_tag)::type;
      launch(convert_kernel<S, D>, grid, 256, 0, s, static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
  cuda_check_launch("convert");
}

}  // namespace lmk::kernels
