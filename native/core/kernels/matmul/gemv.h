// A few rows times a transposed weight on the CPU: out[m,n] = Σ_k a[m,k]·b[n,k]
// for M ≤ kGemvMaxRows (the decode step of a language model, x [M,K] against an
// nn.Linear weight [N,K]). See gemv_cpu.cc.
#pragma once
#include "kernels/matmul/matmul.h"

namespace lmk::kernels {

constexpr int64_t kGemvMaxRows = 4;

// Runs the product and returns true when p is that case (a not transposed,
// b transposed, batch·M ≤ kGemvMaxRows rows in all, every output matrix
// sharing b and their a's following each other in memory); false otherwise
// (nothing done).
bool gemv_cpu(const MatmulParams& p);

}  // namespace lmk::kernels
