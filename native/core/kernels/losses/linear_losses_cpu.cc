// The losses from hidden states on the CPU (linear_losses.h): the shared
// driver with the CPU kernels, all run on the CPU stream's worker.
#include "kernels/copy/copy.h"
#include "kernels/creation/creation.h"
#include "kernels/losses/linear_losses_driver.h"

namespace lmk::kernels {
namespace {

struct CpuBackend {
  void gemm(const MatmulParams& p, GemmKernel kernel) const { matmul_cpu(p, kernel); }
  void ce_rows(const CeRowsJob& job) const { ce_rows_cpu(job); }
  void fill(void* data, DType dtype, int64_t n, double value) const { fill_cpu(data, dtype, n, value); }
  void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) const {
    convert_cpu(src, src_dtype, dst, dst_dtype, n);
  }
  void ce_count(const CrossEntropyParams& p) const { cross_entropy_count_cpu(p); }
  void ce_finish(const CrossEntropyParams& p) const { cross_entropy_finish_cpu(p); }
  void orpo_count(const OrpoParams& p) const { orpo_count_cpu(p); }
  void orpo_pairs(const OrpoParams& p) const { orpo_pairs_cpu(p); }
};

}  // namespace

size_t linear_cross_entropy_workspace_bytes(const LinearCrossEntropyParams& p) {
  return linear_cross_entropy_bytes(p, nullptr, nullptr);
}
size_t linear_orpo_workspace_bytes(const LinearOrpoParams& p) { return linear_orpo_bytes(p, nullptr, nullptr); }

void linear_cross_entropy_cpu(const LinearCrossEntropyParams& p) { linear_cross_entropy_run(CpuBackend{}, p); }
void linear_orpo_cpu(const LinearOrpoParams& p) { linear_orpo_run(CpuBackend{}, p); }

}  // namespace lmk::kernels
