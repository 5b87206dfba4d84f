#include "ops/matmul.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "ops/arg_checks.h"
#include "ops/elementwise.h"
#include "ops/op_task.h"
#include "ops/tensor_ops.h"
#include "runtime/blas_loader.h"
#include "runtime/cuda_call.h"
#include "runtime/device.h"

namespace lmk::ops {
namespace {

constexpr const char* kFn = "ops.matmul";

std::atomic<int> selected{-1};

kernels::GemmKernel current_kernel() {
  int value = selected.load();
  if (value < 0) {
    const char* env = std::getenv("LMK_GEMM");
    int from_env = (env && std::strcmp(env, "builtin") == 0) ? static_cast<int>(kernels::GemmKernel::Builtin)
                                                             : static_cast<int>(kernels::GemmKernel::Library);
    selected.compare_exchange_strong(value, from_env);
    value = selected.load();
  }
  return static_cast<kernels::GemmKernel>(value);
}

}  // namespace

void set_gemm_kernel(kernels::GemmKernel kernel) { selected.store(static_cast<int>(kernel)); }
kernels::GemmKernel gemm_kernel() { return current_kernel(); }

GemmInfo gemm_info() {
  GemmInfo info;
  const bool library = current_kernel() == kernels::GemmKernel::Library;
  const blas::OpenBlas* openblas = blas::openblas();
  info.cpu = library && openblas ? "openblas" : "builtin";
  info.cpu_library = openblas ? openblas->library : "";
  info.cpu_isa = kernels::gemm_cpu_isa();
  if (!cuda_info().available) {
    info.cuda = "unavailable";
  } else {
#ifdef LMK_WITH_CUDA
    info.cuda = library && kernels::cublas_usable() ? "cublas" : "builtin";
#else
    info.cuda = "unavailable";
#endif
  }
  return info;
}

kernels::GemmKernel gemm_kernel_from_name(const std::string& name, const char* fn) {
  return value_from_name<kernels::GemmKernel>(
      name, {{"auto", kernels::GemmKernel::Library}, {"builtin", kernels::GemmKernel::Builtin}}, fn, "backend");
}

Tensor matmul(const Tensor& a, const Tensor& b, std::optional<bool> trans_a_option,
              std::optional<bool> trans_b_option) {
  const bool trans_a = trans_a_option.value_or(false), trans_b = trans_b_option.value_or(false);
  check_float(a, kFn, "a");
  check_like(b, a, kFn, "b", "a");
  const size_t ra = a.shape.size(), rb = b.shape.size();
  if (ra < 2) throw_range_error(kFn, ": a must have shape [..., M, K] (rank >= 2), got ", shape_string(a.shape));
  if (rb < 2) throw_range_error(kFn, ": b must have shape [..., K, N] (rank >= 2), got ", shape_string(b.shape));
  const int64_t M = trans_a ? a.shape[ra - 1] : a.shape[ra - 2];
  const int64_t Ka = trans_a ? a.shape[ra - 2] : a.shape[ra - 1];
  const int64_t Kb = trans_b ? b.shape[rb - 1] : b.shape[rb - 2];
  const int64_t N = trans_b ? b.shape[rb - 2] : b.shape[rb - 1];
  if (Ka != Kb) {
    throw_range_error(kFn, ": a has shape ", shape_string(a.shape), trans_a ? " (transposed)" : "", " but b has shape ",
                      shape_string(b.shape), trans_b ? " (transposed)" : "", ": inner sizes ", Ka, " and ", Kb,
                      " differ");
  }
  const Shape batch_a(a.shape.begin(), a.shape.end() - 2), batch_b(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b, kFn, "a's batch dims", "b's batch dims");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  OpTask task(kFn, a.device());
  Tensor out = task.output(out_shape, a.dtype);
  task.reads(a, b);

  int64_t batch_count = 1;
  for (int64_t s : batch) batch_count *= s;
  kernels::MatmulParams p;
  p.dtype = a.dtype;
  p.M = M;
  p.N = N;
  p.K = Ka;
  p.trans_a = trans_a;
  p.trans_b = trans_b;
  p.a = a.data();
  p.b = b.data();
  p.out = out.data();
  const bool b_shared = batch_b.empty() || batch_count == 1;
  bool b_broadcast_only = true;
  for (int64_t s : batch_b) b_broadcast_only = b_broadcast_only && s == 1;
  // The Linear case: a shared b and an untransposed a fold the batch into M.
  if ((b_shared || b_broadcast_only) && !trans_a && batch_count > 1 && M * batch_count <= int64_t(65535) * 64) {
    p.batch = 1;
    p.M = M * batch_count;
  } else {
    p.batch = batch_count;
    auto matrix_strides = [&](const Shape& own, int64_t matrix) {
      std::vector<int64_t> strides = kernels::broadcast_strides(own, batch);
      for (int64_t& s : strides) s *= matrix;
      return strides;
    };
    p.batch_layout =
        kernels::make_strided_layout(batch, {matrix_strides(batch_a, M * Ka), matrix_strides(batch_b, Ka * N)}, kFn);
  }
  const kernels::GemmKernel kernel = current_kernel();
  task.may_run_inline();
  task.enqueue([p, kernel] { kernels::matmul_cpu(p, kernel); },
               [p, kernel](void* s) { LMK_CUDA_CALL(kernels::matmul_cuda(p, kernel, s)); });
  return out;
}

}  // namespace lmk::ops
