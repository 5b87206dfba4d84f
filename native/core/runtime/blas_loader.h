// BLAS libraries loaded at run time, never linked: the prebuilt binary must
// load on machines that have neither. Each library is looked for once (thread
// safe); a missing or incomplete library simply yields nullptr, and the
// caller uses our own GEMM kernels instead.
//
//   OpenBLAS: dlopen("libopenblas.so.0"), then "libopenblas.so"; needs
//             cblas_sgemm and cblas_dgemm (32-bit integer interface, as
//             Debian's libopenblas0 ships). Its thread count is set to ours
//             (LMK_NUM_THREADS, default the core count) when loaded.
//   cuBLAS:   dlopen("libcublas.so.13"), ".12", then "libcublas.so"; needs
//             cublasCreate_v2, cublasDestroy_v2, cublasSetStream_v2 and
//             cublasGemmStridedBatchedEx. Enum values below are the ABI's
//             (cublas_api.h, library_types.h); no CUDA header is needed.
#pragma once
#include <string>

namespace lmk::blas {

// cblas enums (cblas.h)
constexpr int kCblasRowMajor = 101;
constexpr int kCblasNoTrans = 111;
constexpr int kCblasTrans = 112;

struct OpenBlas {
  using Sgemm = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc);
  using Dgemm = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, double alpha, const double* a,
                         int lda, const double* b, int ldb, double beta, double* c, int ldc);
  Sgemm sgemm = nullptr;
  Dgemm dgemm = nullptr;
  std::string library;  // the name that loaded, e.g. "libopenblas.so.0"
  std::string config;   // openblas_get_config(), when present
};

// The loaded OpenBLAS, or nullptr when none loads.
const OpenBlas* openblas();

// cuBLAS ABI values used here.
constexpr int kCublasStatusSuccess = 0;
constexpr int kCublasOpN = 0;
constexpr int kCublasOpT = 1;
constexpr int kCudaR32F = 0;
constexpr int kCudaR64F = 1;
constexpr int kCudaR16F = 2;
constexpr int kCudaR16BF = 14;
constexpr int kCublasCompute32F = 68;
constexpr int kCublasGemmDefault = -1;

struct Cublas {
  using Create = int (*)(void** handle);
  using Destroy = int (*)(void* handle);
  using SetStream = int (*)(void* handle, void* stream);
  using GemmStridedBatchedEx = int (*)(void* handle, int trans_a, int trans_b, int m, int n, int k, const void* alpha,
                                       const void* a, int a_type, int lda, long long stride_a, const void* b,
                                       int b_type, int ldb, long long stride_b, const void* beta, void* c, int c_type,
                                       int ldc, long long stride_c, int batch_count, int compute_type, int algo);
  Create create = nullptr;
  Destroy destroy = nullptr;
  SetStream set_stream = nullptr;
  GemmStridedBatchedEx gemm_strided_batched_ex = nullptr;
  std::string library;
};

// The loaded cuBLAS, or nullptr when none loads (or lacks a needed symbol).
const Cublas* cublas();

}  // namespace lmk::blas
