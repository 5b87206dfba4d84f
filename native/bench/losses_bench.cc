// Fused cross-entropy (forward + gradient in one pass) against an unfused
// baseline, and ORPO / goldfish loss, through the library's own ops.
//
// Bytes floor: logits read once + gradient written once (2·N·V·s bytes, s
// bytes per logit). Reported: ms (median after warm-up), GB/s over the floor,
// the fraction of this device's copy bandwidth (clone, read + write, measured
// here), and the extra memory the op allocates beyond its outputs.
//
// CPU baseline (C++, here, same thread pool and the same vector_expf, so the
// ratio measures fusion, not a better exp): separate passes as an unfused
// framework runs them — log-softmax into a full N×V buffer (max, sum-exp,
// write z − lse), gather −logp[y] and reduce, then softmax − onehot read back
// from that buffer into the gradient.
//
// Validates before timing (against a float64 loop on a few rows). GPU cases
// (N=8192 × V=128256) run when a CUDA device is present.
//   losses_bench [rows]     (default 4096 on the CPU)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <vector>

#include "kernels/cpu_dispatch.h"
#include "math/half.h"
#include "math/vector_exp.h"
#include "ops/losses.h"
#include "ops/tensor_ops.h"
#include "runtime/storage.h"
#include "runtime/stream.h"
#include "runtime/thread_pool.h"

using namespace lmk;

static const Device kCpu{DeviceKind::CPU, 0};

static std::vector<double> read_double(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  std::vector<double> out;
  if (ops::host_read_dtype(t.dtype) == DType::Float64) {
    out.resize(bytes.size() / 8);
    std::memcpy(out.data(), bytes.data(), bytes.size());
  } else {
    std::vector<float> f(bytes.size() / 4);
    std::memcpy(f.data(), bytes.data(), bytes.size());
    out.assign(f.begin(), f.end());
  }
  return out;
}

static double median_ms(const Device& device, int runs, const std::function<void()>& fn) {
  Stream& stream = stream_for(device);
  std::vector<double> ms;
  for (int r = 0; r < runs + 2; ++r) {
    stream.synchronize();
    auto t0 = std::chrono::steady_clock::now();
    fn();
    stream.synchronize();
    auto t1 = std::chrono::steady_clock::now();
    if (r >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

static double copy_bandwidth(const Device& device, int64_t n) {
  Tensor src = ops::rand({n}, DType::Float32, device, 1, 0, 1);
  double ms = median_ms(device, 5, [&] { Tensor c = ops::clone(src); });
  return 2.0 * static_cast<double>(n) * 4 / (ms / 1e3);
}

static void fail(const char* what) {
  std::fprintf(stderr, "losses_bench: validation failed: %s\n", what);
  std::exit(1);
}

// Float64 check of a few rows of a cross-entropy result.
static void validate(const Tensor& logits, const Tensor& labels, const ops::CrossEntropyResult& r, int64_t check_rows) {
  int64_t N = labels.numel(), V = logits.shape.back();
  Tensor head = ops::reshape(logits, {N, V});
  auto z = read_double(ops::to_dtype(head, DType::Float64));
  auto y = read_double(ops::to_dtype(labels, DType::Float64));
  auto g = read_double(*r.grad_logits);
  double loss = read_double(r.loss)[0], sum = 0;
  for (int64_t i = 0; i < N; ++i) {
    const double* row = &z[static_cast<size_t>(i * V)];
    double m = *std::max_element(row, row + V), s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(row[j] - m);
    double lse = m + std::log(s);
    sum += lse - row[static_cast<int64_t>(y[i])];
    if (i < check_rows) {
      double err = 0, norm = 0;
      for (int64_t j = 0; j < V; ++j) {
        double ref = (std::exp(row[j] - lse) - (j == static_cast<int64_t>(y[i]))) / static_cast<double>(N);
        err += (g[i * V + j] - ref) * (g[i * V + j] - ref);
        norm += ref * ref;
      }
      if (std::sqrt(err / norm) > 1e-2) fail("gradient row");
    }
  }
  if (std::fabs(loss - sum / static_cast<double>(N)) > 1e-3 * std::fabs(loss)) fail("loss");
}

// ---- the unfused CPU baseline -----------------------------------------------------
// Written as carefully as the fused kernel: the same vector_expf, 16-lane
// vector sums and max (GCC vector extensions), explicit per-target clones.

typedef float Lanes16 __attribute__((vector_size(64)));

static inline float load(const float* p, int64_t j) { return p[j]; }
static inline float load(const bf16* p, int64_t j) { return bf16_to_float(p[j]); }
static inline void store(float* p, int64_t j, float v) { p[j] = v; }
static inline void store(bf16* p, int64_t j, float v) { p[j] = float_to_bf16(v); }

// One row of log-softmax: max, sum of exponentials, then z − lse written out.
template <typename T>
static inline __attribute__((always_inline)) void log_softmax_row(const T* __restrict z, T* __restrict out, int64_t V,
                                                                  float* __restrict tmp) {
  for (int64_t j = 0; j < V; ++j) tmp[j] = load(z, j);
  Lanes16 lane = Lanes16{} - __builtin_inff(), sum = Lanes16{};
  int64_t j = 0;
  for (; j + 16 <= V; j += 16) {
    Lanes16 v;
    std::memcpy(&v, tmp + j, 64);
    lane = v > lane ? v : lane;
  }
  float m = -INFINITY;
  for (int l = 0; l < 16; ++l) m = std::max(m, lane[l]);
  for (; j < V; ++j) m = std::max(m, tmp[j]);
  for (int64_t k = 0; k < V; ++k) tmp[k] = vector_expf_nonpositive(tmp[k] - m);
  for (j = 0; j + 16 <= V; j += 16) {
    Lanes16 v;
    std::memcpy(&v, tmp + j, 64);
    sum += v;
  }
  float s = 0;
  for (int l = 0; l < 16; ++l) s += sum[l];
  for (; j < V; ++j) s += tmp[j];
  float lse = m + std::log(s);
  for (int64_t k = 0; k < V; ++k) store(out, k, load(z, k) - lse);
}

template <typename T>
static inline __attribute__((always_inline)) void softmax_grad_row(const T* __restrict logsm, T* __restrict grad,
                                                                   int64_t V, int32_t y, float inv_n) {
  for (int64_t j = 0; j < V; ++j) store(grad, j, vector_expf_nonpositive(load(logsm, j)) * inv_n);
  store(grad, y, (vector_expf_nonpositive(load(logsm, y)) - 1.0f) * inv_n);
}

LMK_CPU_CLONES static void log_softmax_rows(const float* z, float* out, int64_t V, int64_t b, int64_t e, float* tmp) {
  for (int64_t i = b; i < e; ++i) log_softmax_row(z + i * V, out + i * V, V, tmp);
}
LMK_CPU_CLONES static void log_softmax_rows(const bf16* z, bf16* out, int64_t V, int64_t b, int64_t e, float* tmp) {
  for (int64_t i = b; i < e; ++i) log_softmax_row(z + i * V, out + i * V, V, tmp);
}
LMK_CPU_CLONES static void grad_rows(const float* l, float* g, int64_t V, int64_t b, int64_t e, const int32_t* y,
                                     float inv_n) {
  for (int64_t i = b; i < e; ++i) softmax_grad_row(l + i * V, g + i * V, V, y[i], inv_n);
}
LMK_CPU_CLONES static void grad_rows(const bf16* l, bf16* g, int64_t V, int64_t b, int64_t e, const int32_t* y,
                                     float inv_n) {
  for (int64_t i = b; i < e; ++i) softmax_grad_row(l + i * V, g + i * V, V, y[i], inv_n);
}

template <typename T>
static double unfused_cross_entropy(const T* z, const int32_t* y, T* logsm, T* grad, int64_t N, int64_t V) {
  // 1. log-softmax into the full N×V buffer.
  parallel_for(N, 1, [&](int64_t b, int64_t e) {
    std::vector<float> tmp(static_cast<size_t>(V));
    log_softmax_rows(z, logsm, V, b, e, tmp.data());
  });
  // 2. gather and mean.
  double loss = 0;
  for (int64_t i = 0; i < N; ++i) loss -= load(logsm + i * V, y[i]);
  loss /= static_cast<double>(N);
  // 3. gradient (softmax − onehot) / N, read back from the log-softmax buffer.
  float inv_n = 1.0f / static_cast<float>(N);
  parallel_for(N, 1, [&](int64_t b, int64_t e) { grad_rows(logsm, grad, V, b, e, y, inv_n); });
  return loss;
}

// Bytes the op allocates beyond its outputs: memory in use right after it is
// queued (outputs and workspace) minus once it has finished (outputs only).
static int64_t extra_bytes(const Device& device, const std::function<std::vector<Tensor>()>& run) {
  stream_for(device).synchronize();
  std::vector<Tensor> outs = run();
  int64_t queued = memory_stats(device).bytes_in_use;
  stream_for(device).synchronize();
  int64_t done = memory_stats(device).bytes_in_use;
  return queued - done;
}

static void bench_cross_entropy(const Device& device, DType dtype, int64_t N, int64_t V, double copy_bw) {
  Tensor logits = ops::randn({N, V}, dtype, device, 7, 0, 2);
  Tensor labels_f = ops::rand({N}, DType::Float32, device, 8, 0, static_cast<double>(V) - 0.5);
  Tensor labels = ops::to_dtype(labels_f, DType::Int32);
  // Validate on a slice (full float64 copies of 128k-wide rows are large).
  {
    int64_t n = std::min<int64_t>(N, 64);
    Tensor zs = ops::reshape(ops::to_device(ops::randn({n, V}, dtype, kCpu, 9, 0, 2), device), {n, V});
    Tensor ys =
        ops::to_dtype(ops::rand({n}, DType::Float32, device, 10, 0, static_cast<double>(V) - 0.5), DType::Int32);
    validate(zs, ys, ops::cross_entropy(zs, ys), 8);
  }
  double s = static_cast<double>(dtype_size(dtype));
  double floor_bytes = 2.0 * static_cast<double>(N) * static_cast<double>(V) * s;
  int runs = device.is_cpu() ? 5 : 20;
  double ms = median_ms(device, runs, [&] { auto r = ops::cross_entropy(logits, labels); });
  int64_t extra = extra_bytes(device, [&] {
    auto r = ops::cross_entropy(logits, labels);
    return std::vector<Tensor>{r.loss, r.lse, *r.grad_logits};
  });
  double gbps = floor_bytes / (ms / 1e3) / 1e9;
  std::printf(
      "losses_bench  %-6s crossEntropy fused  %-8s N=%-5lld V=%-6lld %9.2f ms  %7.1f GB/s  %.2f of copy  extra %lld B "
      "(%.1f B/row)\n",
      device.to_string().c_str(), dtype_name(dtype), static_cast<long long>(N), static_cast<long long>(V), ms, gbps,
      floor_bytes / (ms / 1e3) / copy_bw, static_cast<long long>(extra),
      static_cast<double>(extra) / static_cast<double>(N));

  if (device.is_cpu()) {
    Tensor logsm = ops::empty({N, V}, dtype, device);
    Tensor grad = ops::empty({N, V}, dtype, device);
    auto y = read_double(ops::to_dtype(labels, DType::Float64));
    std::vector<int32_t> yi(y.begin(), y.end());
    stream_for(device).synchronize();
    double base_loss = 0;
    auto run_base = [&] {
      if (dtype == DType::Float32) {
        base_loss = unfused_cross_entropy(logits.data_as<float>(), yi.data(), logsm.data_as<float>(),
                                          grad.data_as<float>(), N, V);
      } else {
        base_loss =
            unfused_cross_entropy(logits.data_as<bf16>(), yi.data(), logsm.data_as<bf16>(), grad.data_as<bf16>(), N, V);
      }
    };
    run_base();
    double fused_loss = read_double(ops::cross_entropy(logits, labels).loss)[0];
    if (std::fabs(base_loss - fused_loss) > 2e-2 * std::fabs(fused_loss))
      fail("baseline disagrees with the fused loss");
    double base_ms = median_ms(device, runs, run_base);
    std::printf(
        "losses_bench  %-6s crossEntropy unfused %-8s N=%-5lld V=%-6lld %9.2f ms  %7.1f GB/s  speedup of fused: %.2fx  "
        "extra %lld B (N*V log-softmax)\n",
        device.to_string().c_str(), dtype_name(dtype), static_cast<long long>(N), static_cast<long long>(V), base_ms,
        floor_bytes / (base_ms / 1e3) / 1e9, base_ms / ms, static_cast<long long>(logsm.nbytes()));
  }
}

static void bench_orpo_and_goldfish(const Device& device, DType dtype, int64_t B, int64_t T, int64_t V,
                                    double copy_bw) {
  Tensor zw = ops::randn({B, T, V}, dtype, device, 11, 0, 2), zl = ops::randn({B, T, V}, dtype, device, 12, 0, 2);
  Tensor y =
      ops::to_dtype(ops::rand({B, T}, DType::Float32, device, 13, 0, static_cast<double>(V) - 0.5), DType::Int32);
  double s = static_cast<double>(dtype_size(dtype));
  double n = static_cast<double>(B * T) * static_cast<double>(V);
  int runs = device.is_cpu() ? 5 : 20;
  ops::GoldfishOptions g;
  double gms = median_ms(device, runs, [&] { auto r = ops::goldfish_loss(zw, y, -100, g); });
  std::printf(
      "losses_bench  %-6s goldfishLoss hash   %-8s N=%-5lld V=%-6lld %9.2f ms  %7.1f GB/s  %.2f of copy (floor 2 "
      "passes)\n",
      device.to_string().c_str(), dtype_name(dtype), static_cast<long long>(B * T), static_cast<long long>(V), gms,
      2 * n * s / (gms / 1e3) / 1e9, 2 * n * s / (gms / 1e3) / copy_bw);
  double oms = median_ms(device, runs, [&] { auto r = ops::orpo(zw, zl, y, y); });
  int64_t extra = extra_bytes(device, [&] {
    auto r = ops::orpo(zw, zl, y, y);
    return std::vector<Tensor>{r.loss,
                               r.nll_loss,
                               r.or_loss,
                               r.chosen_logps,
                               r.rejected_logps,
                               r.log_odds,
                               r.rewards_chosen,
                               r.rewards_rejected,
                               r.rewards_accuracy,
                               r.rewards_margin,
                               r.log_odds_ratio,
                               r.log_odds_chosen,
                               *r.grad_chosen_logits,
                               *r.grad_rejected_logits};
  });
  // Floor: both logits read once, both gradients written once; ORPO reads twice (3 passes).
  std::printf(
      "losses_bench  %-6s orpo (both sides)   %-8s N=2x%-3lld V=%-6lld %9.2f ms  %7.1f GB/s over the 2-pass floor, "
      "%.2f of copy for its 3 passes  extra %lld B\n",
      device.to_string().c_str(), dtype_name(dtype), static_cast<long long>(B * T), static_cast<long long>(V), oms,
      4 * n * s / (oms / 1e3) / 1e9, 6 * n * s / (oms / 1e3) / copy_bw, static_cast<long long>(extra));
}

int main(int argc, char** argv) {
  int64_t cpu_rows = argc > 1 ? std::atoll(argv[1]) : 4096;
  double cpu_bw = copy_bandwidth(kCpu, int64_t(64) << 20);
  std::printf("losses_bench  cpu    copy bandwidth %.1f GB/s (read+write), %d threads\n", cpu_bw / 1e9,
              thread_pool_size());
  for (DType dtype : {DType::Float32, DType::BFloat16}) bench_cross_entropy(kCpu, dtype, cpu_rows, 32000, cpu_bw);
  for (DType dtype : {DType::Float32, DType::BFloat16})
    bench_orpo_and_goldfish(kCpu, dtype, 4, cpu_rows / 8, 32000, cpu_bw);
  if (!cuda_info().available) {
    std::printf("losses_bench  cuda: not available (%s)\n", cuda_info().reason.c_str());
    return 0;
  }
  Device gpu{DeviceKind::CUDA, 0};
  double gpu_bw = copy_bandwidth(gpu, int64_t(1) << 30);
  std::printf("losses_bench  cuda:0 copy bandwidth %.1f GB/s (read+write)\n", gpu_bw / 1e9);
  for (DType dtype : {DType::BFloat16, DType::Float32}) {
    bench_cross_entropy(gpu, dtype, 4096, 32000, gpu_bw);
    bench_cross_entropy(gpu, dtype, 8192, 128256, gpu_bw);
    bench_orpo_and_goldfish(gpu, dtype, 8, 512, 128256, gpu_bw);
  }
  return 0;
}
