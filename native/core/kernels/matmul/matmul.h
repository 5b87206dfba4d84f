// Batched matrix multiply: out[i] = op(a[i]) · op(b[i]) for each output
// matrix i (row-major, contiguous), op = transpose of the last two dims when
// asked. a[i] is [M,K] ([K,M] with trans_a), b[i] is [K,N] ([N,K] with
// trans_b), out[i] is [M,N]. Batch broadcasting is a StridedLayout over the
// output's batch dims whose strides are in elements (0 where broadcast).
//
// Backends (chosen by ops/matmul.cc, see gemm_backend()):
//   CPU:  OpenBLAS (cblas_sgemm / cblas_dgemm, loaded at run time), or our
//         blocked, threaded GEMM (packed panels, a register-tiled micro-kernel
//         in GCC vector extensions, picked at load for AVX-512, AVX2+FMA or
//         baseline x86-64). bf16/f16 are converted to float32 while packing
//         (OpenBLAS: whole matrices first) and rounded once on store.
//   CUDA: cuBLAS (cublasGemmStridedBatchedEx, float32 compute) when it loads,
//         else our 64x64-tiled shared-memory kernel; a one-thread-per-output
//         reference kernel is kept for the GPU tests (selected only through
//         kernels/test_hooks.h, KernelFamily::Matmul).
// Accumulation is float32 (float64 for float64) everywhere; with `accumulate`
// the old output is added in that type before the one rounding on store.
#pragma once
#include <cstdint>

#include "kernels/elementwise/strided_layout.h"
#include "runtime/dtype.h"

namespace lmk::kernels {

enum class GemmKernel : int32_t {
  Library = 0,  // OpenBLAS on the CPU, cuBLAS on CUDA
  Builtin,      // our blocked (CPU) / tiled (CUDA) kernel
};

struct MatmulParams {
  DType dtype = DType::Float32;
  int64_t batch = 1;
  int64_t M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  StridedLayout batch_layout;  // shape: output batch dims; stride[0]: a, stride[1]: b (elements)
  const void* a = nullptr;
  const void* b = nullptr;
  void* out = nullptr;
  // out += op(a)·op(b) instead of out = op(a)·op(b) (BLAS beta = 1).
  bool accumulate = false;
  // out holds the compute type (float32; float64 for float64) instead of
  // dtype: a float32 accumulator for bfloat16/float16 operands.
  bool out_compute = false;
};

// Library falls back to Builtin when no library is loaded.
void matmul_cpu(const MatmulParams& p, GemmKernel kernel);
void matmul_cuda(const MatmulParams& p, GemmKernel kernel, void* stream);

// The micro-kernel the CPU builtin GEMM uses on this machine ("avx512",
// "avx2", "baseline").
const char* gemm_cpu_isa();

// Whether cuBLAS loaded and a handle can be made on the current device
// (CUDA builds; false otherwise). Probed once.
bool cublas_usable();

}  // namespace lmk::kernels
