// The losses from hidden states on CUDA (linear_losses.h): the shared driver
// with the CUDA kernels, every step queued on the device's stream (no host
// synchronisation).
#include "kernels/copy/copy.h"
#include "kernels/creation/creation.h"
#include "kernels/losses/linear_losses_driver.h"

namespace lmk::kernels {
namespace {

struct CudaBackend {
  void* stream;
  void gemm(const MatmulParams& p, GemmKernel kernel) const { matmul_cuda(p, kernel, stream); }
  void ce_rows(const CeRowsJob& job) const { ce_rows_cuda(job, stream); }
  void fill(void* data, DType dtype, int64_t n, double value) const { fill_cuda(data, dtype, n, value, stream); }
  void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) const {
    convert_cuda(src, src_dtype, dst, dst_dtype, n, stream);
  }
  void ce_count(const CrossEntropyParams& p) const { cross_entropy_count_cuda(p, stream); }
  void ce_finish(const CrossEntropyParams& p) const { cross_entropy_finish_cuda(p, stream); }
  void orpo_count(const OrpoParams& p) const { orpo_count_cuda(p, stream); }
  void orpo_pairs(const OrpoParams& p) const { orpo_pairs_cuda(p, stream); }
};

}  // namespace

void linear_cross_entropy_cuda(const LinearCrossEntropyParams& p, void* stream) {
  linear_cross_entropy_run(CudaBackend{stream}, p);
}
void linear_orpo_cuda(const LinearOrpoParams& p, void* stream) { linear_orpo_run(CudaBackend{stream}, p); }

}  // namespace lmk::kernels
