// GEMM on CUDA (see matmul.h).
//   cuBLAS: row-major out = op(A)·op(B) is column-major outᵀ = op(B)ᵀ·op(A)ᵀ,
//           so B is passed first; batches go through cublasGemmStridedBatchedEx
//           with float32 compute (no TF32), one call per run of batches with
//           constant strides (every batch when the broadcast allows it).
//   tiled:  64×64 output tiles, 256 threads each accumulating a 4×4 grid of
//           outputs (rows ty+16r, columns tx+16c), k in steps of 16 through
//           shared memory; out-of-range elements load as 0.
//   reference: one thread per output element, the k loop in order — slow and
//           obviously correct, for the GPU tests (KernelVariant::Reference,
//           kernels/test_hooks.h).
#include <cuda_runtime.h>

#include <climits>
#include <mutex>
#include <type_traits>
#include <vector>

#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/float_dispatch.h"
#include "kernels/matmul/matmul.h"
#include "math/compute_type.h"
#include "runtime/blas_loader.h"
#include "runtime/cuda_check.h"
#include "runtime/error.h"

namespace lmk::kernels {
namespace {

constexpr int kTile = 64;
constexpr int kTileK = 16;
constexpr int kSub = 16;  // threads per tile side; each covers kTile / kSub = 4 rows and columns

struct OperandStrides {
  int64_t rsa, csa, rsb, csb;
};

OperandStrides strides_of(const MatmulParams& p) {
  OperandStrides s;
  s.rsa = p.trans_a ? 1 : p.K;
  s.csa = p.trans_a ? p.M : 1;
  s.rsb = p.trans_b ? 1 : p.N;
  s.csb = p.trans_b ? p.K : 1;
  return s;
}

// Out: T, or the compute type (p.out_compute); p.accumulate adds the old output.
template <typename T, typename Out>
__global__ void gemm_tiled_kernel(MatmulParams p, OperandStrides st, const T* a_base, const T* b_base, Out* out_base) {
  __shared__ float as[kTileK][kTile + 1];
  __shared__ float bs[kTileK][kTile + 1];
  const int tx = threadIdx.x % kSub, ty = threadIdx.x / kSub;
  const int64_t row0 = blockIdx.y * int64_t(kTile), col0 = blockIdx.x * int64_t(kTile);
  for (int64_t batch = blockIdx.z; batch < p.batch; batch += gridDim.z) {
    const T* a = a_base + layout_offset(p.batch_layout, 0, batch);
    const T* b = b_base + layout_offset(p.batch_layout, 1, batch);
    Out* out = out_base + batch * p.M * p.N;
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < p.K; k0 += kTileK) {
      for (int e = threadIdx.x; e < kTile * kTileK; e += kSub * kSub) {
        int r = e / kTileK, k = e % kTileK;  // A tile: 64 rows × 16 k
        int64_t gi = row0 + r, gk = k0 + k;
        as[k][r] = (gi < p.M && gk < p.K) ? load_compute(a, gi * st.rsa + gk * st.csa) : 0.0f;
        int kb = e / kTile, c = e % kTile;  // B tile: 16 k × 64 columns
        int64_t gkb = k0 + kb, gj = col0 + c;
        bs[kb][c] = (gkb < p.K && gj < p.N) ? load_compute(b, gkb * st.rsb + gj * st.csb) : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < kTileK; ++k) {
        float av[4], bv[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) av[r] = as[k][ty + kSub * r];
#pragma unroll
        for (int c = 0; c < 4; ++c) bv[c] = bs[k][tx + kSub * c];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        int64_t i = row0 + ty + kSub * r, j = col0 + tx + kSub * c;
        if (i < p.M && j < p.N) {
          float value = acc[r][c];
          if (p.accumulate) value += load_compute(out, i * p.N + j);
          store_compute(out, i * p.N + j, value);
        }
      }
    }
  }
}

template <typename T, typename Out>
__global__ void gemm_reference_kernel(MatmulParams p, OperandStrides st, const T* a_base, const T* b_base,
                                      Out* out_base) {
  const int64_t total = p.batch * p.M * p.N;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t batch = e / (p.M * p.N), ij = e % (p.M * p.N), i = ij / p.N, j = ij % p.N;
    const T* a = a_base + layout_offset(p.batch_layout, 0, batch);
    const T* b = b_base + layout_offset(p.batch_layout, 1, batch);
    float acc = 0;
    for (int64_t k = 0; k < p.K; ++k)
      acc += load_compute(a, i * st.rsa + k * st.csa) * load_compute(b, k * st.rsb + j * st.csb);
    if (p.accumulate) acc += load_compute(out_base, e);
    store_compute(out_base, e, acc);
  }
}

// ---- cuBLAS ------------------------------------------------------------------

std::mutex handles_mutex;
std::vector<void*> handles;  // per device index; created on first use, kept for the process

void* cublas_handle(int device) {
  const blas::Cublas* lib = blas::cublas();
  if (!lib) return nullptr;
  std::lock_guard<std::mutex> lock(handles_mutex);
  if (static_cast<int>(handles.size()) <= device) handles.resize(static_cast<size_t>(device) + 1, nullptr);
  if (!handles[device]) {
    void* handle = nullptr;
    if (lib->create(&handle) != blas::kCublasStatusSuccess) return nullptr;
    handles[device] = handle;
  }
  return handles[device];
}

int cuda_type(DType dtype) {
  switch (dtype) {
    case DType::BFloat16: return blas::kCudaR16BF;
    case DType::Float16: return blas::kCudaR16F;
    default: return blas::kCudaR32F;
  }
}

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

// false when cuBLAS cannot take these sizes (the caller uses the tiled kernel).
bool gemm_cublas(const MatmulParams& p, void* handle, cudaStream_t s) {
  const blas::Cublas* lib = blas::cublas();
  const StridedLayout& L = p.batch_layout;
  const int64_t inner = L.rank == 0 ? 1 : L.shape[L.rank - 1];
  const int64_t outer = p.batch / inner;
  const int64_t stride_a = L.rank == 0 ? 0 : L.stride[0][L.rank - 1];
  const int64_t stride_b = L.rank == 0 ? 0 : L.stride[1][L.rank - 1];
  if (!fits_int(p.M) || !fits_int(p.N) || !fits_int(p.K) || !fits_int(inner)) return false;
  if (lib->set_stream(handle, s) != blas::kCublasStatusSuccess)
    throw_runtime_error("ops.matmul: cublasSetStream failed");
  const int type = cuda_type(p.dtype);
  const int out_type = p.out_compute ? blas::kCudaR32F : type;
  const size_t es = dtype_size(p.dtype), out_es = p.out_compute ? sizeof(float) : es;
  const int opa = p.trans_a ? blas::kCublasOpT : blas::kCublasOpN;
  const int opb = p.trans_b ? blas::kCublasOpT : blas::kCublasOpN;
  const int lda = static_cast<int>(p.trans_a ? p.M : p.K);
  const int ldb = static_cast<int>(p.trans_b ? p.K : p.N);
  const float alpha = 1.0f, beta = p.accumulate ? 1.0f : 0.0f;
  for (int64_t o = 0; o < outer; ++o) {
    const int64_t first = o * inner;
    const char* a = static_cast<const char*>(p.a) + layout_offset(L, 0, first) * es;
    const char* b = static_cast<const char*>(p.b) + layout_offset(L, 1, first) * es;
    char* c = static_cast<char*>(p.out) + first * p.M * p.N * out_es;
    int status = lib->gemm_strided_batched_ex(
        handle, opb, opa, static_cast<int>(p.N), static_cast<int>(p.M), static_cast<int>(p.K), &alpha, b, type, ldb,
        stride_b, a, type, lda, stride_a, &beta, c, out_type, static_cast<int>(p.N), p.M * p.N, static_cast<int>(inner),
        blas::kCublasCompute32F, blas::kCublasGemmDefault);
    if (status != blas::kCublasStatusSuccess) {
      throw_runtime_error("ops.matmul: cublasGemmStridedBatchedEx failed with status ", status);
    }
  }
  return true;
}

}  // namespace

bool cublas_usable() {
  static const bool usable = [] {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    return cublas_handle(device) != nullptr;
  }();
  return usable;
}

void matmul_cuda(const MatmulParams& p, GemmKernel kernel, void* stream) {
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (p.K == 0) {
    const size_t out_size = p.out_compute ? sizeof(float) : dtype_size(p.dtype);
    if (!p.accumulate) {
      cuda_check(cudaMemsetAsync(p.out, 0, static_cast<size_t>(p.batch * p.M * p.N) * out_size, s), "ops.matmul");
    }
    return;
  }
  const bool reference = test_kernel_variant(KernelFamily::Matmul) == KernelVariant::Reference;
  if (!reference && kernel == GemmKernel::Library && cublas_usable()) {
    int device = 0;
    cuda_check(cudaGetDevice(&device), "ops.matmul");
    void* handle = cublas_handle(device);
    if (handle && gemm_cublas(p, handle, s)) return;
  }
  const OperandStrides st = strides_of(p);
  dispatch_float<false>(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* a = static_cast<const T*>(p.a);
    const T* b = static_cast<const T*>(p.b);
    // Out: T, or float when the caller asked for float32 output (out_compute).
    auto launch_for = [&](auto* out) {
      using Out = std::remove_pointer_t<decltype(out)>;
      if (reference) {
        int64_t total = p.batch * p.M * p.N;
        launch(gemm_reference_kernel<T, Out>, looping_grid((total + 255) / 256, 65535 * 8), 256, 0, s, p, st, a, b,
               out);
      } else {
        dim3 grid(static_cast<unsigned>((p.N + kTile - 1) / kTile), static_cast<unsigned>((p.M + kTile - 1) / kTile),
                  looping_grid(p.batch, 65535));  // blocks along z walk the batches
        if (grid.y > 65535) throw_range_error("ops.matmul: M = ", p.M, " is too large for the CUDA kernel");
        launch(gemm_tiled_kernel<T, Out>, grid, kSub * kSub, 0, s, p, st, a, b, out);
      }
    };
    if (p.out_compute) {
      launch_for(static_cast<float*>(p.out));
    } else {
      launch_for(static_cast<T*>(p.out));
    }
  });
  cuda_check_launch("ops.matmul");
}

}  // namespace lmk::kernels
