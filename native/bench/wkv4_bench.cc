// wkv4 benchmark: validates, then times (median of runs after a warm-up).
//   CPU, float32: B=8,T=1024,C=512 and B=1,T=16384,C=256 — forward and
//     forward+backward, against a float64 run of the op (validation) and a
//     naive per-time-step loop of separate vector passes (what a tensor
//     library without a fused kernel does), and against memcpy bandwidth.
//   CUDA, float32 (when a device is present): B=8,T=4096,C=4096, validated
//     against the CPU first, and compared with the HBM floor (bytes / 4.3 TB/s).
// Bytes moved: forward reads k, v and writes y (3·B·T·C elements); forward +
// backward adds reading k, v, gy and writing gk, gv (8·B·T·C in all).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <vector>

#include "ops/tensor_ops.h"
#include "ops/wkv4.h"
#include "runtime/device.h"
#include "runtime/stream.h"
#include "runtime/thread_pool.h"

using namespace lmk;

namespace {

const Device kCpu{DeviceKind::CPU, 0};
const Device kCuda{DeviceKind::CUDA, 0};

std::vector<double> read(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  std::vector<double> out(static_cast<size_t>(t.numel()));
  if (ops::host_read_dtype(t.dtype) == DType::Float64) {
    std::memcpy(out.data(), bytes.data(), bytes.size());
  } else {
    const float* f = reinterpret_cast<const float*>(bytes.data());
    for (size_t i = 0; i < out.size(); ++i) out[i] = f[i];
  }
  return out;
}

double relative_error(const std::vector<double>& out, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (out[i] - ref[i]) * (out[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

void require(bool ok, const char* what, double err, double tol) {
  std::printf("  validate %-44s rel err %.2e (<= %.0e) %s\n", what, err, tol, ok ? "ok" : "FAILED");
  if (!ok) std::exit(1);
}

// Median wall time of `runs` calls of fn() (each followed by a sync of the
// device's stream) after one warm-up call; the fastest run goes to *min_ms
// (on a shared machine the median includes other processes' time slices).
double median_ms(const Device& device, int runs, const std::function<void()>& fn, double* min_ms = nullptr) {
  Stream& stream = stream_for(device);
  fn();
  stream.synchronize();
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    stream.synchronize();
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  if (min_ms) *min_ms = ms.front();
  return ms[ms.size() / 2];
}

struct Inputs {
  int64_t B, T, C;
  Tensor td, tf, k, v, gy;
};

// Never zeros: k ~ N(0, 1.5²), v, gy ~ N(0, 1), timeDecay ~ N(-0.5, 1), timeFirst ~ N(0, 0.5²).
Inputs make_inputs(int64_t B, int64_t T, int64_t C, DType dtype, const Device& device) {
  DType acc = dtype == DType::Float64 ? DType::Float64 : DType::Float32;
  Inputs in{B, T, C, {}, {}, {}, {}, {}};
  in.td = ops::randn({C}, acc, device, 1, -0.5, 1.0);
  in.tf = ops::randn({C}, acc, device, 2, 0.0, 0.5);
  in.k = ops::randn({B, T, C}, dtype, device, 3, 0.0, 1.5);
  in.v = ops::randn({B, T, C}, dtype, device, 4, 0.0, 1.0);
  in.gy = ops::randn({B, T, C}, dtype, device, 5, 0.0, 1.0);
  return in;
}

Inputs convert(const Inputs& in, DType dtype, const Device& device) {
  DType acc = dtype == DType::Float64 ? DType::Float64 : DType::Float32;
  auto move = [&](const Tensor& t, DType d) {
    Tensor on = t.device() == device ? t : ops::to_device(t, device);
    return on.dtype == d ? on : ops::to_dtype(on, d);
  };
  return {
      in.B, in.T, in.C, move(in.td, acc), move(in.tf, acc), move(in.k, dtype), move(in.v, dtype), move(in.gy, dtype)};
}

ops::Wkv4ForwardResult forward(const Inputs& in) {
  ops::Wkv4ForwardArgs a;
  a.time_decay = in.td;
  a.time_first = in.tf;
  a.k = in.k;
  a.v = in.v;
  return ops::wkv4_forward(a);
}

ops::Wkv4BackwardResult backward(const Inputs& in, const Tensor& y) {
  ops::Wkv4BackwardArgs a;
  a.time_decay = in.td;
  a.time_first = in.tf;
  a.k = in.k;
  a.v = in.v;
  a.y = y;
  a.gy = in.gy;
  return ops::wkv4_backward(a);
}

// ---- the naive baseline --------------------------------------------------------
//
// The recurrence as an unfused tensor library runs it: per time step, one
// pass over the [B,C] slice per elementary op, each into a temporary, exp
// from libm. Passes are kept out of line so the compiler cannot fuse them.
using Buf = std::vector<float>;
#define LMK_PASS __attribute__((noinline)) static void
LMK_PASS pass_add(const Buf& a, const Buf& b, Buf& o) {
  for (size_t i = 0; i < o.size(); ++i) o[i] = a[i] + b[i];
}
LMK_PASS pass_sub(const Buf& a, const Buf& b, Buf& o) {
  for (size_t i = 0; i < o.size(); ++i) o[i] = a[i] - b[i];
}
LMK_PASS pass_mul(const Buf& a, const Buf& b, Buf& o) {
  for (size_t i = 0; i < o.size(); ++i) o[i] = a[i] * b[i];
}
LMK_PASS pass_div(const Buf& a, const Buf& b, Buf& o) {
  for (size_t i = 0; i < o.size(); ++i) o[i] = a[i] / b[i];
}
LMK_PASS pass_max(const Buf& a, const Buf& b, Buf& o) {
  for (size_t i = 0; i < o.size(); ++i) o[i] = std::max(a[i], b[i]);
}
LMK_PASS pass_exp(const Buf& a, Buf& o) {
  for (size_t i = 0; i < o.size(); ++i) o[i] = std::exp(a[i]);
}
LMK_PASS pass_gather(const float* src, int64_t B, int64_t T, int64_t C, int64_t t, Buf& o) {
  for (int64_t b = 0; b < B; ++b) std::memcpy(&o[b * C], src + (b * T + t) * C, C * sizeof(float));
}
LMK_PASS pass_scatter(const Buf& a, int64_t B, int64_t T, int64_t C, int64_t t, float* dst) {
  for (int64_t b = 0; b < B; ++b) std::memcpy(dst + (b * T + t) * C, &a[b * C], C * sizeof(float));
}

void naive_forward(const float* td, const float* tf, const float* k, const float* v, float* y, int64_t B, int64_t T,
                   int64_t C) {
  const size_t n = static_cast<size_t>(B * C);
  Buf w(n), u(n), aa(n, 0.0f), bb(n, 0.0f), pp(n, -1e38f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      w[b * C + c] = -std::exp(td[c]);
      u[b * C + c] = tf[c];
    }
  Buf kt(n), vt(n), ww(n), p(n), d(n), e1(n), e2(n), x(n), z(n), num(n), den(n), out(n);
  for (int64_t t = 0; t < T; ++t) {
    pass_gather(k, B, T, C, t, kt);
    pass_gather(v, B, T, C, t, vt);
    // output
    pass_add(u, kt, ww);
    pass_max(pp, ww, p);
    pass_sub(pp, p, d);
    pass_exp(d, e1);
    pass_sub(ww, p, d);
    pass_exp(d, e2);
    pass_mul(e1, aa, x);
    pass_mul(e2, vt, z);
    pass_add(x, z, num);
    pass_mul(e1, bb, x);
    pass_add(x, e2, den);
    pass_div(num, den, out);
    pass_scatter(out, B, T, C, t, y);
    // update
    pass_add(pp, w, ww);
    pass_max(ww, kt, p);
    pass_sub(ww, p, d);
    pass_exp(d, e1);
    pass_sub(kt, p, d);
    pass_exp(d, e2);
    pass_mul(e1, aa, x);
    pass_mul(e2, vt, z);
    pass_add(x, z, aa);
    pass_mul(e1, bb, x);
    pass_add(x, e2, bb);
    pp = p;
  }
}

std::vector<float> to_float(const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); }

// memcpy of a 256 MiB buffer split over the pool's threads (as the kernels
// are); (read + write) bytes per second.
double memcpy_gbps() {
  const size_t bytes = size_t(256) << 20;
  std::unique_ptr<char[]> src(new char[bytes]), dst(new char[bytes]);
  for (size_t i = 0; i < bytes; i += 4096) src[i] = static_cast<char>(i);
  std::memset(dst.get(), 1, bytes);
  auto run = [&] {
    parallel_for(static_cast<int64_t>(bytes >> 20), 1, [&](int64_t begin, int64_t end) {
      std::memcpy(dst.get() + (begin << 20), src.get() + (begin << 20), static_cast<size_t>(end - begin) << 20);
    });
  };
  run();
  std::vector<double> ms;
  for (int r = 0; r < 9; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    run();
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  if (std::memcmp(src.get(), dst.get(), bytes) != 0) {
    std::fprintf(stderr, "wkv4_bench: memcpy check failed\n");
    std::exit(1);
  }
  double gbps = 2.0 * bytes / (ms[ms.size() / 2] / 1e3) / 1e9;
  std::printf("memcpy 256 MiB, %d threads: %.2f ms, %.1f GB/s (read+write)\n", thread_pool_size(), ms[ms.size() / 2],
              gbps);
  return gbps;
}

void bench_cpu(int64_t B, int64_t T, int64_t C, double copy_gbps) {
  std::printf("\nCPU float32 B=%lld T=%lld C=%lld (%d threads)\n", static_cast<long long>(B), static_cast<long long>(T),
              static_cast<long long>(C), thread_pool_size());
  Inputs in = make_inputs(B, T, C, DType::Float32, kCpu);
  Inputs in64 = convert(in, DType::Float64, kCpu);
  // Validate: float32 against float64 (same inputs), then the naive loop.
  auto f32 = forward(in);
  auto f64 = forward(in64);
  std::vector<double> y32 = read(f32.y), y64 = read(f64.y);
  require(relative_error(y32, y64) <= 1e-5, "forward float32 vs float64", relative_error(y32, y64), 1e-5);
  auto g32 = backward(in, f32.y);
  auto g64 = backward(in64, f64.y);
  for (auto [name, a, b] : {std::make_tuple("gk", &g32.gk, &g64.gk), std::make_tuple("gv", &g32.gv, &g64.gv),
                            std::make_tuple("gTimeDecay", &g32.gtime_decay, &g64.gtime_decay),
                            std::make_tuple("gTimeFirst", &g32.gtime_first, &g64.gtime_first)}) {
    double err = relative_error(read(*a), read(*b));
    require(err <= 1e-4, (std::string("backward ") + name + " float32 vs float64").c_str(), err, 1e-4);
  }
  std::vector<float> td = to_float(read(in.td)), tf = to_float(read(in.tf)), k = to_float(read(in.k)),
                     v = to_float(read(in.v));
  std::vector<float> y_naive(k.size());
  naive_forward(td.data(), tf.data(), k.data(), v.data(), y_naive.data(), B, T, C);
  std::vector<double> y_naive_d(y_naive.begin(), y_naive.end());
  require(relative_error(y_naive_d, y64) <= 1e-5, "naive loop vs float64", relative_error(y_naive_d, y64), 1e-5);

  const double elems = static_cast<double>(B * T * C);
  double fwd_min = 0, fb_min = 0;
  double fwd_ms = median_ms(
      kCpu, 15, [&] { forward(in); }, &fwd_min);
  double fb_ms = median_ms(
      kCpu, 9,
      [&] {
        auto f = forward(in);
        backward(in, f.y);
      },
      &fb_min);
  std::vector<double> naive_runs;
  for (int r = 0; r < 3; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    naive_forward(td.data(), tf.data(), k.data(), v.data(), y_naive.data(), B, T, C);
    auto t1 = std::chrono::steady_clock::now();
    naive_runs.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(naive_runs.begin(), naive_runs.end());
  double naive_ms = naive_runs[1];
  double fwd_gbps = 3 * elems * 4 / (fwd_ms / 1e3) / 1e9;
  double fb_gbps = 8 * elems * 4 / (fb_ms / 1e3) / 1e9;
  std::printf("  forward           %9.3f ms (min %.3f)  %7.2f GB/s  %5.1f%% of memcpy  %6.2f ns/element-step\n", fwd_ms,
              fwd_min, fwd_gbps, 100 * fwd_gbps / copy_gbps, fwd_ms * 1e6 / elems);
  std::printf("  forward+backward  %9.3f ms (min %.3f)  %7.2f GB/s  %5.1f%% of memcpy  %6.2f ns/element-step\n", fb_ms,
              fb_min, fb_gbps, 100 * fb_gbps / copy_gbps, fb_ms * 1e6 / elems);
  std::printf("  naive per-step loop (1 thread, libm exp) forward %9.3f ms: fused forward is %.1fx faster\n", naive_ms,
              naive_ms / fwd_ms);
}

void bench_cuda() {
  const int64_t B = 8, T = 4096, C = 4096;
  std::printf("\nCUDA float32 B=%lld T=%lld C=%lld\n", static_cast<long long>(B), static_cast<long long>(T),
              static_cast<long long>(C));
  // Validate against the CPU on a slice of the shape (same T and C).
  {
    Inputs cpu = make_inputs(2, T, C, DType::Float32, kCpu);
    Inputs gpu = convert(cpu, DType::Float32, kCuda);
    auto fc = forward(cpu);
    auto fg = forward(gpu);
    double err = relative_error(read(fg.y), read(fc.y));
    require(err <= 1e-5, "cuda forward vs cpu (B=2)", err, 1e-5);
    auto gc = backward(cpu, fc.y);
    auto gg = backward(gpu, fg.y);
    for (auto [name, a, b] : {std::make_tuple("gk", &gg.gk, &gc.gk), std::make_tuple("gv", &gg.gv, &gc.gv),
                              std::make_tuple("gTimeDecay", &gg.gtime_decay, &gc.gtime_decay),
                              std::make_tuple("gTimeFirst", &gg.gtime_first, &gc.gtime_first)}) {
      double e = relative_error(read(*a), read(*b));
      require(e <= 1e-4, (std::string("cuda backward ") + name + " vs cpu (B=2)").c_str(), e, 1e-4);
    }
  }
  Inputs in = make_inputs(B, T, C, DType::Float32, kCuda);
  const double elems = static_cast<double>(B * T * C);
  double fwd_ms = median_ms(kCuda, 10, [&] { forward(in); });
  double fb_ms = median_ms(kCuda, 5, [&] {
    auto f = forward(in);
    backward(in, f.y);
  });
  const double hbm = 4.3e12;
  double fwd_bytes = 3 * elems * 4, fb_bytes = 8 * elems * 4;
  std::printf("  forward           %9.3f ms  %8.1f GB/s  HBM floor %.3f ms: %.2f of the floor's speed\n", fwd_ms,
              fwd_bytes / (fwd_ms / 1e3) / 1e9, fwd_bytes / hbm * 1e3, (fwd_bytes / hbm * 1e3) / fwd_ms);
  std::printf("  forward+backward  %9.3f ms  %8.1f GB/s  HBM floor %.3f ms: %.2f of the floor's speed\n", fb_ms,
              fb_bytes / (fb_ms / 1e3) / 1e9, fb_bytes / hbm * 1e3, (fb_bytes / hbm * 1e3) / fb_ms);
}

}  // namespace

int main() {
  double copy = memcpy_gbps();
  bench_cpu(8, 1024, 512, copy);
  bench_cpu(1, 16384, 256, copy);
  if (cuda_info().available) {
    bench_cuda();
  } else {
    std::printf("\nCUDA: not available (%s)\n", cuda_info().reason.c_str());
  }
  return 0;
}
