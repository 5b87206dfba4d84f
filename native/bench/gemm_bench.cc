// GEMM throughput through ops::matmul, each backend on the same inputs:
//   CPU:  OpenBLAS (when libopenblas loads) and our blocked kernel
//   CUDA: cuBLAS (when libcublas loads), our tiled kernel, and at the
//         smallest size the one-thread-per-output reference kernel
// Every case is validated first (64 output elements against float64 dot
// products of the stored inputs), then timed: median of runs after a warm-up
// (CUDA: events on the device's stream). Prints GFLOP/s (2·M·N·K per product)
// and, on CUDA, the fraction of the ~790 TFLOP/s bf16 dense peak of an H200.
//   gemm_bench [--quick]    --quick: CPU 1024³ only
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "kernels/matmul/matmul.h"
#include "kernels/test_hooks.h"
#include "ops/matmul.h"
#include "ops/tensor_ops.h"
#include "runtime/blas_loader.h"
#include "runtime/stream.h"
#ifdef LMK_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

using namespace lmk;

static std::vector<float> read_floats(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

struct Inputs {
  int64_t M, N, K;
  DType dtype;
  Tensor a, b;                        // on the device, dtype
  std::vector<float> a_host, b_host;  // the stored values
};

static Inputs make_inputs(int64_t M, int64_t N, int64_t K, DType dtype, const Device& device) {
  Inputs in{M, N, K, dtype, {}, {}, {}, {}};
  Tensor a = ops::rand({M, K}, dtype, Device{DeviceKind::CPU, 0}, 1, -1, 1);
  Tensor b = ops::rand({K, N}, dtype, Device{DeviceKind::CPU, 0}, 2, -1, 1);
  in.a_host = read_floats(a);
  in.b_host = read_floats(b);
  in.a = device.is_cpu() ? a : ops::to_device(a, device);
  in.b = device.is_cpu() ? b : ops::to_device(b, device);
  return in;
}

// Largest relative error of 64 spread-out elements against float64 dot products.
static double spot_check(const Inputs& in, const Tensor& out) {
  std::vector<float> c = read_floats(out);
  double worst = 0;
  for (int s = 0; s < 64; ++s) {
    int64_t i = (s * 7919) % in.M, j = (s * 104729) % in.N;
    double ref = 0, scale = 0;
    for (int64_t k = 0; k < in.K; ++k) {
      double term = static_cast<double>(in.a_host[i * in.K + k]) * in.b_host[k * in.N + j];
      ref += term;
      scale += std::fabs(term);
    }
    worst = std::max(worst, std::fabs(c[i * in.N + j] - ref) / std::max(scale, 1e-30));
  }
  return worst;
}

static double time_ms(const Device& device, const std::function<void()>& fn, int runs) {
  Stream& stream = stream_for(device);
  fn();  // warm-up
  stream.synchronize();
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
#ifdef LMK_WITH_CUDA
    if (device.is_cuda()) {
      auto s = static_cast<cudaStream_t>(cuda_stream_handle(device.index));
      cudaEvent_t start, stop;
      cudaEventCreate(&start);
      cudaEventCreate(&stop);
      cudaEventRecord(start, s);
      fn();
      cudaEventRecord(stop, s);
      cudaEventSynchronize(stop);
      float elapsed = 0;
      cudaEventElapsedTime(&elapsed, start, stop);
      cudaEventDestroy(start);
      cudaEventDestroy(stop);
      stream.synchronize();
      ms.push_back(elapsed);
      continue;
    }
#endif
    auto t0 = std::chrono::steady_clock::now();
    fn();
    stream.synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

static bool bench(const char* name, kernels::GemmKernel kernel, const Device& device, const Inputs& in, int runs) {
  ops::set_gemm_kernel(kernel);
  Tensor out = ops::matmul(in.a, in.b, false, false);
  double err = spot_check(in, out);
  double tol = in.dtype == DType::Float32 ? 1e-5 : 1e-2;
  char shape[64];
  std::snprintf(shape, sizeof shape, "%ldx%ldx%ld", long(in.M), long(in.N), long(in.K));
  if (!(err <= tol)) {
    std::printf("gemm_bench  %-7s %-9s %-8s %-16s INVALID (error %.2e)\n", device.to_string().c_str(), name,
                dtype_name(in.dtype), shape, err);
    return false;
  }
  double ms = time_ms(
      device, [&] { Tensor c = ops::matmul(in.a, in.b, false, false); }, runs);
  double gflops = 2.0 * in.M * in.N * in.K / (ms / 1e3) / 1e9;
  std::printf("gemm_bench  %-7s %-9s %-8s %-16s %10.3f ms  %9.1f GFLOP/s", device.to_string().c_str(), name,
              dtype_name(in.dtype), shape, ms, gflops);
  if (device.is_cuda()) std::printf("  %.3f of 790 TFLOP/s", gflops / 790e3);
  std::printf("  (error %.1e)\n", err);
  return true;
}

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  bool ok = true;
  const Device cpu{DeviceKind::CPU, 0};
  auto info = ops::gemm_info();
  std::printf("gemm_bench  cpu: OpenBLAS %s, builtin micro-kernel %s; cuda: %s\n",
              blas::openblas() ? blas::openblas()->library.c_str() : "not loadable", info.cpu_isa.c_str(),
              info.cuda.c_str());
  std::vector<std::array<int64_t, 3>> cpu_sizes = {{1024, 1024, 1024}};
  if (!quick) cpu_sizes.push_back({4096, 4096, 1024});
  for (auto [M, N, K] : cpu_sizes) {
    Inputs in = make_inputs(M, N, K, DType::Float32, cpu);
    int runs = M * N * K > (int64_t(1) << 31) ? 3 : 7;
    if (blas::openblas()) ok = bench("openblas", kernels::GemmKernel::Library, cpu, in, runs) && ok;
    ok = bench("builtin", kernels::GemmKernel::Builtin, cpu, in, runs) && ok;
  }
  if (cuda_info().available && !quick) {
    const Device gpu{DeviceKind::CUDA, 0};
    for (DType dt : {DType::Float32, DType::BFloat16}) {
      for (int64_t n : {int64_t(1024), int64_t(4096), int64_t(8192)}) {
        Inputs in = make_inputs(n, n, n, dt, gpu);
        if (info.cuda == "cublas") ok = bench("cublas", kernels::GemmKernel::Library, gpu, in, 10) && ok;
        ok = bench("builtin", kernels::GemmKernel::Builtin, gpu, in, 10) && ok;
        if (n == 1024) {
          kernels::ScopedKernelVariant reference(kernels::KernelFamily::Matmul, kernels::KernelVariant::Reference);
          ok = bench("reference", kernels::GemmKernel::Builtin, gpu, in, 3) && ok;
        }
      }
    }
  } else if (!cuda_info().available) {
    std::printf("gemm_bench  cuda: not available (%s)\n", cuda_info().reason.c_str());
  }
  return ok ? 0 : 1;
}
