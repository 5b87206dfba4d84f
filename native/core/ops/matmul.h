// Batched matrix multiply (kernels/matmul/matmul.h for the backends).
#pragma once
#include <optional>
#include <string>

#include "kernels/matmul/matmul.h"
#include "runtime/tensor.h"

namespace lmk::ops {

// a [..., M, K] · b [..., K, N] → [..., M, N], after transposing the last two
// dims of a (trans_a) and/or b (trans_b; both default false). Batch dims
// broadcast (NumPy); a 2-D b is shared by every batch (the Linear case, done
// as one [batch·M, K] product). Both operands 1-D or 0-D are rejected (rank
// >= 2 required).
Tensor matmul(const Tensor& a, const Tensor& b, std::optional<bool> trans_a = std::nullopt,
              std::optional<bool> trans_b = std::nullopt);

// Which GEMM runs: Library (the default) uses OpenBLAS / cuBLAS when loaded;
// Builtin forces our kernels; Reference (CUDA only; CPU = Builtin) the
// one-thread-per-output kernel. The environment variable LMK_GEMM=builtin
// (read once, at the first matmul or gemm_info) sets Builtin.
void set_gemm_kernel(kernels::GemmKernel kernel);
kernels::GemmKernel gemm_kernel();
// The JS API's backend names: 'auto' (Library) or 'builtin'; RangeError otherwise.
kernels::GemmKernel gemm_kernel_from_name(const std::string& name, const char* fn);

struct GemmInfo {
  std::string cpu;          // "openblas" | "builtin"
  std::string cuda;         // "cublas" | "builtin" | "unavailable"
  std::string cpu_library;  // the OpenBLAS library loaded, if any
  std::string cpu_isa;      // the builtin micro-kernel: "avx512" | "avx2" | "baseline"
};
GemmInfo gemm_info();

}  // namespace lmk::ops
