// TransformerFAM attention (ops/fam.h) timings: validates, then times (median
// of runs after a warm-up). Prints ms and effective GFLOP/s, counting only the
// unmasked query·key pairs: 4·pairs·D flops forward, 2.5× that backward (the
// FlashAttention convention; our deterministic backward does 3.5×).
//
// CPU (float32), B=1 H=8 D=64 L=512 m=2 F=64, at T=4096 and T=8192: also a
// dense masked attention computed here — the scores of every query against
// every key (all T sequence keys and all NB·F FAM keys) materialised per head,
// masked to the FAM pattern, softmax, times V — with loops of the same kind
// (vectorisable row updates, 4 rows at a time, the same thread pool), and the
// speedup of the FAM kernel over it.
// GPU (bf16), B=4 H=16 T=16384 D=128 L=1024 m=3 F=64, only with a GPU: the
// tiled kernels are first checked against the CPU on a smaller problem.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <future>
#include <vector>

#include "kernels/cpu_dispatch.h"
#include "math/vector_exp.h"
#include "ops/fam.h"
#include "ops/tensor_ops.h"
#include "runtime/device.h"
#include "runtime/stream.h"
#include "runtime/thread_pool.h"

using namespace lmk;

namespace {

const Device kCpu{DeviceKind::CPU, 0};
const Device kCuda{DeviceKind::CUDA, 0};

std::vector<float> read_floats(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

struct Shape5 {
  int64_t B, H, Hkv, T, D, L, m, F;
  int64_t NB() const { return (T + L - 1) / L; }
};

// Unmasked (query, key) pairs: per query, the memory segment, F FAM keys and
// its block up to itself.
double unmasked_pairs(const Shape5& s) {
  double pairs = 0;
  for (int64_t t = 0; t < s.T; ++t) {
    int64_t tau = t / s.L;
    int64_t begin = std::max<int64_t>(0, tau - s.m) * s.L;
    pairs += static_cast<double>(t + 1 - begin + s.F);
  }
  return pairs * s.B * s.H;
}

struct Inputs {
  ops::FamBlockAttentionArgs args;
};

Inputs make_inputs(const Shape5& s, DType dtype, const Device& device) {
  Inputs in;
  in.args.q = ops::randn({s.B, s.H, s.T, s.D}, dtype, device, 1, 0, 1);
  in.args.k = ops::randn({s.B, s.Hkv, s.T, s.D}, dtype, device, 2, 0, 1);
  in.args.v = ops::randn({s.B, s.Hkv, s.T, s.D}, dtype, device, 3, 0, 1);
  in.args.fam_k = ops::randn({s.B, s.Hkv, s.NB(), s.F, s.D}, dtype, device, 4, 0, 1);
  in.args.fam_v = ops::randn({s.B, s.Hkv, s.NB(), s.F, s.D}, dtype, device, 5, 0, 1);
  in.args.block_size = s.L;
  in.args.memory_blocks = s.m;
  return in;
}

template <typename Fn>
double median_ms(const Device& device, int runs, Fn&& fn) {
  Stream& stream = stream_for(device);
  fn();
  stream.synchronize();
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    stream.synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(diff / norm);
}

// ---- the dense masked baseline (float32, CPU) -------------------------------------

struct DenseHead {
  Shape5 s;
  int64_t Nk;
  float scale;
  const float* q;     // [T, D] this head's queries
  const float* kt;    // [D, Nk] all keys, transposed
  const float* vall;  // [Nk, D] all values
  float* scores;      // [T, Nk]
  float* out;         // [T, D]
};

// Rows [r0, r1) (multiples of 4) of one head: every score, the mask, softmax, P·V.
// Same vectorisable loop style and the same exp as the FAM kernel.
LMK_CPU_CLONES void dense_rows(const DenseHead& h, int64_t r0, int64_t r1) {
  const int64_t Nk = h.Nk, D = h.s.D;
  for (int64_t r = r0; r < r1; r += 4) {
    float* __restrict s0 = h.scores + (r + 0) * Nk;
    float* __restrict s1 = h.scores + (r + 1) * Nk;
    float* __restrict s2 = h.scores + (r + 2) * Nk;
    float* __restrict s3 = h.scores + (r + 3) * Nk;
    for (int64_t j = 0; j < Nk; ++j) s0[j] = s1[j] = s2[j] = s3[j] = 0.0f;
    const float* qr = h.q + r * D;
    for (int64_t d = 0; d < D; ++d) {
      const float* __restrict kd = h.kt + d * Nk;
      float x0 = h.scale * qr[d], x1 = h.scale * qr[D + d], x2 = h.scale * qr[2 * D + d], x3 = h.scale * qr[3 * D + d];
      for (int64_t j = 0; j < Nk; ++j) {
        s0[j] += x0 * kd[j];
        s1[j] += x1 * kd[j];
        s2[j] += x2 * kd[j];
        s3[j] += x3 * kd[j];
      }
    }
    for (int i = 0; i < 4; ++i) {
      int64_t t = r + i, tau = t / h.s.L;
      int64_t begin = std::max<int64_t>(0, tau - h.s.m) * h.s.L;
      int64_t fam_begin = h.s.T + tau * h.s.F, fam_end = fam_begin + h.s.F;
      float* __restrict row = h.scores + t * Nk;
      for (int64_t j = 0; j < Nk; ++j) {
        bool visible = (j >= begin && j <= t) || (j >= fam_begin && j < fam_end);
        row[j] = visible ? row[j] : -INFINITY;
      }
      float mx = -INFINITY;
      for (int64_t j = 0; j < Nk; ++j) mx = std::max(mx, row[j]);
      float sum = 0;
      for (int64_t j = 0; j < Nk; ++j) {
        row[j] = vector_expf(row[j] - mx);
        sum += row[j];
      }
      float* __restrict o = h.out + t * D;
      for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
      for (int64_t j = 0; j < Nk; ++j) {
        float w = row[j] / sum;
        const float* __restrict vr = h.vall + j * D;
        for (int64_t d = 0; d < D; ++d) o[d] += w * vr[d];
      }
    }
  }
}

// out[b,h,t] = softmax over all Nk = T + NB·F keys (sequence keys, then every
// block's FAM keys) of scale·q·k with invisible keys at −inf, times the values.
std::vector<float> dense_masked_attention(const Shape5& s, const std::vector<float>& q, const std::vector<float>& k,
                                          const std::vector<float>& v, const std::vector<float>& fk,
                                          const std::vector<float>& fv) {
  const int64_t Nk = s.T + s.NB() * s.F, D = s.D;
  std::vector<float> out(static_cast<size_t>(s.B * s.H * s.T * D));
  std::vector<float> kt(static_cast<size_t>(D * Nk)), vall(static_cast<size_t>(Nk * D));
  std::vector<float> scores(static_cast<size_t>(s.T * Nk));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      int64_t kvh = h / (s.H / s.Hkv);
      for (int64_t j = 0; j < Nk; ++j) {
        const float* kr;
        const float* vr;
        if (j < s.T) {
          kr = &k[((b * s.Hkv + kvh) * s.T + j) * D];
          vr = &v[((b * s.Hkv + kvh) * s.T + j) * D];
        } else {
          kr = &fk[((b * s.Hkv + kvh) * s.NB() * s.F + (j - s.T)) * D];
          vr = &fv[((b * s.Hkv + kvh) * s.NB() * s.F + (j - s.T)) * D];
        }
        for (int64_t d = 0; d < D; ++d) {
          kt[d * Nk + j] = kr[d];
          vall[j * D + d] = vr[d];
        }
      }
      DenseHead head{s,
                     Nk,
                     1.0f / std::sqrt(static_cast<float>(D)),
                     &q[(b * s.H + h) * s.T * D],
                     kt.data(),
                     vall.data(),
                     scores.data(),
                     &out[(b * s.H + h) * s.T * D]};
      parallel_for(s.T / 4, 1, [&](int64_t r0, int64_t r1) { dense_rows(head, r0 * 4, r1 * 4); });
    }
  return out;
}

void bench_cpu(const Shape5& s, int runs, int dense_runs) {
  Inputs in = make_inputs(s, DType::Float32, kCpu);
  auto fwd = ops::fam_block_attention(in.args);
  // Validate against the dense baseline, then time both.
  auto q = read_floats(in.args.q), k = read_floats(in.args.k), v = read_floats(in.args.v);
  auto fk = read_floats(*in.args.fam_k), fv = read_floats(*in.args.fam_v);
  auto dense_start = std::chrono::steady_clock::now();
  std::vector<float> dense = dense_masked_attention(s, q, k, v, fk, fv);
  double dense_first =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - dense_start).count();
  double err = rel_error(read_floats(fwd.out), dense);
  if (!(err <= 1e-5)) {
    std::fprintf(stderr, "fam_bench: cpu T=%lld: FAM kernel differs from dense attention by %.3g\n", (long long)s.T,
                 err);
    std::exit(1);
  }
  double fwd_ms = median_ms(kCpu, runs, [&] { ops::fam_block_attention(in.args); });
  ops::FamBlockAttentionBackwardArgs back;
  static_cast<ops::FamBlockAttentionArgs&>(back) = in.args;
  back.out = fwd.out;
  back.lse = fwd.lse;
  back.grad_out = ops::randn(in.args.q.shape, DType::Float32, kCpu, 6, 0, 1);
  double both_ms = median_ms(kCpu, runs, [&] {
    auto f = ops::fam_block_attention(in.args);
    back.out = f.out;
    back.lse = f.lse;
    ops::fam_block_attention_backward(back);
  });
  std::vector<double> dense_ms{dense_first};
  for (int r = 1; r < dense_runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    dense_masked_attention(s, q, k, v, fk, fv);
    dense_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(dense_ms.begin(), dense_ms.end());
  double dense_median = dense_ms[dense_ms.size() / 2];
  double flops = 4.0 * unmasked_pairs(s) * s.D;
  std::printf("fam_bench  cpu f32  B=%lld H=%lld T=%lld D=%lld L=%lld m=%lld F=%lld  (%d threads)\n", (long long)s.B,
              (long long)s.H, (long long)s.T, (long long)s.D, (long long)s.L, (long long)s.m, (long long)s.F,
              thread_pool_size());
  std::printf("fam_bench    forward           %9.2f ms  %7.2f GFLOP/s\n", fwd_ms, flops / fwd_ms / 1e6);
  std::printf("fam_bench    forward+backward  %9.2f ms  %7.2f GFLOP/s\n", both_ms, 3.5 * flops / both_ms / 1e6);
  std::printf("fam_bench    dense masked fwd  %9.2f ms  (all %lld x %lld scores)  speedup of FAM forward: %.2fx\n",
              dense_median, (long long)s.T, (long long)(s.T + s.NB() * s.F), dense_median / fwd_ms);
}

void bench_cuda(const Shape5& s, int runs) {
  // Validate the tiled kernels against the CPU on a smaller problem first.
  Shape5 small{1, 4, 2, 1500, s.D, 256, s.m, s.F};
  Inputs gin = make_inputs(small, DType::BFloat16, kCuda);
  Inputs cin;
  cin.args = gin.args;
  for (Tensor* t : {&cin.args.q, &cin.args.k, &cin.args.v, &*cin.args.fam_k, &*cin.args.fam_v})
    *t = ops::to_dtype(ops::to_device(*t, kCpu), DType::Float32);
  double err = rel_error(read_floats(ops::fam_block_attention(gin.args).out),
                         read_floats(ops::fam_block_attention(cin.args).out));
  if (!(err <= 1e-2)) {
    std::fprintf(stderr, "fam_bench: cuda bf16 differs from the cpu by %.3g\n", err);
    std::exit(1);
  }
  Inputs in = make_inputs(s, DType::BFloat16, kCuda);
  auto fwd = ops::fam_block_attention(in.args);
  double fwd_ms = median_ms(kCuda, runs, [&] { ops::fam_block_attention(in.args); });
  ops::FamBlockAttentionBackwardArgs back;
  static_cast<ops::FamBlockAttentionArgs&>(back) = in.args;
  back.out = fwd.out;
  back.lse = fwd.lse;
  back.grad_out = ops::randn(in.args.q.shape, DType::BFloat16, kCuda, 6, 0, 1);
  double both_ms = median_ms(kCuda, runs, [&] {
    auto f = ops::fam_block_attention(in.args);
    back.out = f.out;
    back.lse = f.lse;
    ops::fam_block_attention_backward(back);
  });
  double flops = 4.0 * unmasked_pairs(s) * s.D;
  std::printf("fam_bench  cuda bf16  B=%lld H=%lld T=%lld D=%lld L=%lld m=%lld F=%lld  (checked vs cpu: %.2g)\n",
              (long long)s.B, (long long)s.H, (long long)s.T, (long long)s.D, (long long)s.L, (long long)s.m,
              (long long)s.F, err);
  std::printf("fam_bench    forward           %9.3f ms  %7.2f TFLOP/s  (%.3f of 790)\n", fwd_ms, flops / fwd_ms / 1e9,
              flops / fwd_ms / 1e9 / 790);
  std::printf("fam_bench    forward+backward  %9.3f ms  %7.2f TFLOP/s  (%.3f of 790)\n", both_ms,
              3.5 * flops / both_ms / 1e9, 3.5 * flops / both_ms / 1e9 / 790);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  bench_cpu(Shape5{1, 8, 8, 4096, 64, 512, 2, 64}, quick ? 3 : 5, quick ? 1 : 3);
  if (!quick) bench_cpu(Shape5{1, 8, 8, 8192, 64, 512, 2, 64}, 3, 1);
  if (cuda_info().available) {
    bench_cuda(Shape5{4, 16, 16, 16384, 128, 1024, 3, 64}, 10);
  } else {
    std::printf("fam_bench  cuda: not available (%s)\n", cuda_info().reason.c_str());
  }
  return 0;
}
