#include "ops/fam.h"

#include <cmath>
#include <string>
#include <vector>

#include "kernels/fam/fam.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {
namespace {

constexpr const char* kBlockFn = "fam.blockAttention";
constexpr const char* kBlockBackwardFn = "fam.blockAttentionBackward";
constexpr const char* kMemoryFn = "fam.memoryAttention";
constexpr const char* kMemoryBackwardFn = "fam.memoryAttentionBackward";

// ---- argument checks (TypeError: kind of value; RangeError: sizes and options) ----

void check_head_dim(int64_t D, const char* fn, const char* arg) {
  if (D < 1 || D > kernels::kFamMaxHeadDim) {
    throw_range_error(fn, ": head dim D (", arg, ".shape[3]) must be in [1, ", kernels::kFamMaxHeadDim, "], got ", D);
  }
}

void check_heads(int64_t H, int64_t Hkv, const char* fn, const char* q_arg, const char* k_arg) {
  if (Hkv < 1) throw_range_error(fn, ": ", k_arg, " must have at least one key/value head, got Hkv=", Hkv);
  if (H % Hkv != 0) {
    throw_range_error(fn, ": the H=", H, " query heads of ", q_arg, " must be a multiple of the Hkv=", Hkv,
                      " key/value heads of ", k_arg);
  }
}

double resolve_scale(const std::optional<double>& scale, int64_t D, const char* fn) {
  if (!scale) return 1.0 / std::sqrt(static_cast<double>(D));
  check_finite(*scale, fn, "scale");
  return *scale;
}

// The backward's out, gOut (like q) and lse (as the forward returns it).
void check_forward_results(const Tensor& out, const Tensor& grad_out, const Tensor& lse, const Tensor& q,
                           const char* q_arg, const char* q_pattern, const Shape& stat_shape, const char* stat_pattern,
                           const char* forward_fn, const char* fn) {
  check_like(out, q, fn, "out", q_arg);
  check_shape(out, q.shape, fn, "out", q_pattern, concat("like ", q_arg));
  check_like(grad_out, q, fn, "gOut", q_arg);
  check_shape(grad_out, q.shape, fn, "gOut", q_pattern, concat("like ", q_arg));
  check_tensor(lse, fn, "lse");
  check_dtype(lse, kernels::fam_stat_dtype(q.dtype), fn, "lse",
              concat("(as ", forward_fn, " returns it for ", dtype_name(q.dtype), " inputs)"));
  check_device(lse, q.device(), fn, "lse", q_arg);
  check_shape(lse, stat_shape, fn, "lse", stat_pattern, "like the forward's lse");
}

// ---- blockAttention ------------------------------------------------------------

struct BlockShapes {
  int64_t B, H, T, D, Hkv, NB, F;
  double scale;
};

BlockShapes check_block_args(const FamBlockAttentionArgs& a, const char* fn) {
  check_float(a.q, fn, "q");
  check_like(a.k, a.q, fn, "k", "q");
  check_like(a.v, a.q, fn, "v", "q");
  if (a.fam_k.has_value() != a.fam_v.has_value()) {
    throw_type_error(fn, ": ", a.fam_k ? "famV" : "famK", " is required when ", a.fam_k ? "famK" : "famV",
                     " is given (omit both for plain block sliding-window attention)");
  }
  if (a.fam_k) {
    check_like(*a.fam_k, a.q, fn, "famK", "q");
    check_like(*a.fam_v, a.q, fn, "famV", "q");
  }
  check_at_least(a.block_size, 1, fn, "blockSize");
  check_at_least(a.memory_blocks, 0, fn, "memoryBlocks");

  check_rank(a.q, 4, fn, "q", "[B,H,T,D]");
  BlockShapes s{};
  s.B = a.q.shape[0];
  s.H = a.q.shape[1];
  s.T = a.q.shape[2];
  s.D = a.q.shape[3];
  check_head_dim(s.D, fn, "q");
  check_shape(a.k, {s.B, -1, s.T, s.D}, fn, "k", "[B,Hkv,T,D]", "(B, T, D of q)");
  s.Hkv = a.k.shape[1];
  check_shape(a.v, a.k.shape, fn, "v", "[B,Hkv,T,D]", "like k");
  check_heads(s.H, s.Hkv, fn, "q", "k");
  s.NB = (s.T + a.block_size - 1) / a.block_size;
  s.F = 0;
  if (a.fam_k) {
    std::string why =
        "(NB = ceil(T/blockSize) = ceil(" + std::to_string(s.T) + "/" + std::to_string(a.block_size) + "))";
    check_shape(*a.fam_k, {s.B, s.Hkv, s.NB, -1, s.D}, fn, "famK", "[B,Hkv,NB,F,D]", why);
    s.F = a.fam_k->shape[3];
    check_shape(*a.fam_v, a.fam_k->shape, fn, "famV", "[B,Hkv,NB,F,D]", "like famK");
  }
  s.scale = resolve_scale(a.scale, s.D, fn);
  return s;
}

kernels::FamParams block_params(const FamBlockAttentionArgs& a, const BlockShapes& s) {
  kernels::FamParams p;
  p.q = a.q.data();
  p.k = a.k.data();
  p.v = a.v.data();
  if (a.fam_k) {
    p.fam_k = a.fam_k->data();
    p.fam_v = a.fam_v->data();
  }
  p.dtype = a.q.dtype;
  p.batch = s.B;
  p.heads = s.H;
  p.kv_heads = s.Hkv;
  p.query_len = s.T;
  p.head_dim = s.D;
  p.fam_len = s.F;
  p.fam_blocks = s.NB;
  p.mask.block_size = a.block_size;
  p.mask.memory_blocks = a.memory_blocks;
  p.mask.key_count = s.T;
  p.mask.causal = true;
  p.scale = s.scale;
  return p;
}

// Queues the forward or backward kernel (CPU, or CUDA: tiled, or the simple
// reference kernels where the tiled ones do not fit or a test asks for them).
void enqueue_forward(OpTask& task, const kernels::FamParams& p) {
  task.may_run_inline();
  task.enqueue([p] { kernels::fam_forward_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::fam_forward_cuda(p, s)); });
}

void enqueue_backward(OpTask& task, const kernels::FamParams& p) {
  task.may_run_inline();
  task.enqueue([p] { kernels::fam_backward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::fam_backward_cuda(p, s)); });
}

// ---- memoryAttention -------------------------------------------------------------

struct MemoryShapes {
  int64_t B, H, F, D, Hkv, Lb;
  double scale;
};

MemoryShapes check_memory_args(const FamMemoryAttentionArgs& a, const char* fn) {
  check_float(a.fam_q, fn, "famQ");
  check_like(a.fam_k, a.fam_q, fn, "famK", "famQ");
  check_like(a.fam_v, a.fam_q, fn, "famV", "famQ");
  check_like(a.block_k, a.fam_q, fn, "blockK", "famQ");
  check_like(a.block_v, a.fam_q, fn, "blockV", "famQ");
  check_rank(a.fam_q, 4, fn, "famQ", "[B,H,F,D]");
  MemoryShapes s{};
  s.B = a.fam_q.shape[0];
  s.H = a.fam_q.shape[1];
  s.F = a.fam_q.shape[2];
  s.D = a.fam_q.shape[3];
  check_head_dim(s.D, fn, "famQ");
  check_shape(a.fam_k, {s.B, -1, s.F, s.D}, fn, "famK", "[B,Hkv,F,D]", "(B, F, D of famQ)");
  s.Hkv = a.fam_k.shape[1];
  check_shape(a.fam_v, a.fam_k.shape, fn, "famV", "[B,Hkv,F,D]", "like famK");
  check_heads(s.H, s.Hkv, fn, "famQ", "famK");
  check_shape(a.block_k, {s.B, s.Hkv, -1, s.D}, fn, "blockK", "[B,Hkv,L',D]", "(B, Hkv of famK, D of famQ)");
  s.Lb = a.block_k.shape[2];
  check_shape(a.block_v, a.block_k.shape, fn, "blockV", "[B,Hkv,L',D]", "like blockK");
  s.scale = resolve_scale(a.scale, s.D, fn);
  return s;
}

kernels::FamParams memory_params(const FamMemoryAttentionArgs& a, const MemoryShapes& s) {
  kernels::FamParams p;
  p.q = a.fam_q.data();
  p.k = a.block_k.data();
  p.v = a.block_v.data();
  p.fam_k = a.fam_k.data();
  p.fam_v = a.fam_v.data();
  p.dtype = a.fam_q.dtype;
  p.batch = s.B;
  p.heads = s.H;
  p.kv_heads = s.Hkv;
  p.query_len = s.F;
  p.head_dim = s.D;
  p.fam_len = s.F;
  p.fam_blocks = 1;
  // All F queries form one block that sees every block key: no mask.
  p.mask.block_size = s.F > 0 ? s.F : 1;
  p.mask.memory_blocks = 0;
  p.mask.key_count = s.Lb;
  p.mask.causal = false;
  p.scale = s.scale;
  return p;
}

}  // namespace

FamAttentionResult fam_block_attention(const FamBlockAttentionArgs& a) {
  const char* fn = kBlockFn;
  BlockShapes s = check_block_args(a, fn);
  OpTask task(fn, a.q.device());
  FamAttentionResult r;
  r.out = task.output(a.q.shape, a.q.dtype);
  r.lse = task.output({s.B, s.H, s.T}, kernels::fam_stat_dtype(a.q.dtype));
  task.reads(a.q, a.k, a.v, a.fam_k, a.fam_v);
  kernels::FamParams p = block_params(a, s);
  p.out = r.out.data();
  p.lse = r.lse.data();
  enqueue_forward(task, p);
  return r;
}

FamBlockAttentionGrads fam_block_attention_backward(const FamBlockAttentionBackwardArgs& a) {
  const char* fn = kBlockBackwardFn;
  BlockShapes s = check_block_args(a, fn);
  check_forward_results(a.out, a.grad_out, a.lse, a.q, "q", "[B,H,T,D]", {s.B, s.H, s.T}, "[B,H,T]", kBlockFn, fn);
  OpTask task(fn, a.q.device());
  FamBlockAttentionGrads g;
  g.gq = task.output(a.q.shape, a.q.dtype);
  g.gk = task.output(a.k.shape, a.k.dtype);
  g.gv = task.output(a.v.shape, a.v.dtype);
  if (a.fam_k) {
    g.g_fam_k = task.output(a.fam_k->shape, a.fam_k->dtype);
    g.g_fam_v = task.output(a.fam_v->shape, a.fam_v->dtype);
  }
  task.reads(a.q, a.k, a.v, a.fam_k, a.fam_v, a.out, a.lse, a.grad_out);
  kernels::FamParams p = block_params(a, s);
  p.out = a.out.data();
  p.lse = a.lse.data();
  p.grad_out = a.grad_out.data();
  p.grad_q = g.gq.data();
  p.grad_k = g.gk.data();
  p.grad_v = g.gv.data();
  if (a.fam_k) {
    p.grad_fam_k = g.g_fam_k->data();
    p.grad_fam_v = g.g_fam_v->data();
  }
  p.delta = task.workspace(static_cast<size_t>(s.B * s.H * s.T) * dtype_size(kernels::fam_stat_dtype(a.q.dtype)));
  enqueue_backward(task, p);
  return g;
}

FamAttentionResult fam_memory_attention(const FamMemoryAttentionArgs& a) {
  const char* fn = kMemoryFn;
  MemoryShapes s = check_memory_args(a, fn);
  OpTask task(fn, a.fam_q.device());
  FamAttentionResult r;
  r.out = task.output(a.fam_q.shape, a.fam_q.dtype);
  r.lse = task.output({s.B, s.H, s.F}, kernels::fam_stat_dtype(a.fam_q.dtype));
  task.reads(a.fam_q, a.fam_k, a.fam_v, a.block_k, a.block_v);
  kernels::FamParams p = memory_params(a, s);
  p.out = r.out.data();
  p.lse = r.lse.data();
  enqueue_forward(task, p);
  return r;
}

FamMemoryAttentionGrads fam_memory_attention_backward(const FamMemoryAttentionBackwardArgs& a) {
  const char* fn = kMemoryBackwardFn;
  MemoryShapes s = check_memory_args(a, fn);
  check_forward_results(a.out, a.grad_out, a.lse, a.fam_q, "famQ", "[B,H,F,D]", {s.B, s.H, s.F}, "[B,H,F]", kMemoryFn,
                        fn);
  OpTask task(fn, a.fam_q.device());
  FamMemoryAttentionGrads g;
  g.g_fam_q = task.output(a.fam_q.shape, a.fam_q.dtype);
  g.g_fam_k = task.output(a.fam_k.shape, a.fam_k.dtype);
  g.g_fam_v = task.output(a.fam_v.shape, a.fam_v.dtype);
  g.g_block_k = task.output(a.block_k.shape, a.block_k.dtype);
  g.g_block_v = task.output(a.block_v.shape, a.block_v.dtype);
  task.reads(a.fam_q, a.fam_k, a.fam_v, a.block_k, a.block_v, a.out, a.lse, a.grad_out);
  kernels::FamParams p = memory_params(a, s);
  p.out = a.out.data();
  p.lse = a.lse.data();
  p.grad_out = a.grad_out.data();
  p.grad_q = g.g_fam_q.data();
  p.grad_k = g.g_block_k.data();
  p.grad_v = g.g_block_v.data();
  p.grad_fam_k = g.g_fam_k.data();
  p.grad_fam_v = g.g_fam_v.data();
  p.delta = task.workspace(static_cast<size_t>(s.B * s.H * s.F) * dtype_size(kernels::fam_stat_dtype(a.fam_q.dtype)));
  enqueue_backward(task, p);
  return g;
}

}  // namespace lmk::ops
