#include "ops/fam.h"

#include <cmath>
#include <string>
#include <vector>

#include "kernels/fam/fam.h"
#include "ops/tensor_ops.h"
#include "runtime/cuda_call.h"
#include "runtime/stream.h"

namespace lmk::ops {
namespace {

constexpr const char* kBlockFn = "fam.blockAttention";
constexpr const char* kBlockBackwardFn = "fam.blockAttentionBackward";
constexpr const char* kMemoryFn = "fam.memoryAttention";
constexpr const char* kMemoryBackwardFn = "fam.memoryAttentionBackward";

// ---- argument checks (TypeError: kind of value; RangeError: sizes and options) ----

void check_tensor(const Tensor& t, const char* fn, const char* arg) {
  if (!t.storage) throw_type_error(fn, ": ", arg, " must be a Tensor");
}

// The first input fixes dtype and device for all others.
void check_input_dtype(const Tensor& t, const char* fn, const char* arg) {
  check_tensor(t, fn, arg);
  if (t.dtype == DType::Int32) {
    throw_type_error(fn, ": ", arg, " must be float32, bfloat16, float16 or float64, got ", dtype_name(t.dtype));
  }
  check_device_usable(t.device(), fn, arg);
}

void check_same_kind(const Tensor& t, const Tensor& ref, const char* fn, const char* arg, const char* ref_arg) {
  check_tensor(t, fn, arg);
  if (t.dtype != ref.dtype) {
    throw_type_error(fn, ": ", arg, " must have dtype ", dtype_name(ref.dtype), " like ", ref_arg, ", got ",
                     dtype_name(t.dtype));
  }
  if (t.device() != ref.device()) {
    throw_type_error(fn, ": ", arg, " must be on ", ref.device().to_string(), " like ", ref_arg, ", got ",
                     t.device().to_string());
  }
}

void check_rank(const Tensor& t, size_t rank, const char* pattern, const char* fn, const char* arg) {
  if (t.shape.size() != rank) {
    throw_range_error(fn, ": ", arg, " must be a ", rank, "-D tensor ", pattern, ", got shape ", shape_string(t.shape));
  }
}

// `expected` uses -1 for a size taken from `t` itself (shown by its letter).
void check_shape(const Tensor& t, const Shape& expected, const char* pattern, const std::string& why, const char* fn,
                 const char* arg) {
  bool ok = t.shape.size() == expected.size();
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || t.shape[i] == expected[i];
  if (ok) return;
  // Render the expectation, e.g. [2,Hkv,16,64], from the pattern's letters.
  std::vector<std::string> letters;
  std::string inner(pattern + 1, pattern + std::string(pattern).size() - 1), cur;
  for (char c : inner) {
    if (c == ',') {
      letters.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  letters.push_back(cur);
  std::string rendered = "[";
  for (size_t i = 0; i < expected.size(); ++i) {
    if (i) rendered += ",";
    rendered += expected[i] < 0 && i < letters.size() ? letters[i] : std::to_string(expected[i]);
  }
  rendered += "]";
  throw_range_error(fn, ": ", arg, " must have shape ", pattern, " = ", rendered, why.empty() ? "" : " ", why, ", got ",
                    shape_string(t.shape));
}

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
  if (!std::isfinite(*scale)) throw_range_error(fn, ": scale must be a finite number, got ", *scale);
  return *scale;
}

void check_stats(const Tensor& lse, const Tensor& q, const Shape& shape, const char* pattern, const char* forward_fn,
                 const char* fn) {
  check_tensor(lse, fn, "lse");
  DType want = kernels::fam_stat_dtype(q.dtype);
  if (lse.dtype != want) {
    throw_type_error(fn, ": lse must be ", dtype_name(want), " (as ", forward_fn, " returns it for ",
                     dtype_name(q.dtype), " inputs), got ", dtype_name(lse.dtype));
  }
  if (lse.device() != q.device()) {
    throw_type_error(fn, ": lse must be on ", q.device().to_string(), " like q, got ", lse.device().to_string());
  }
  check_shape(lse, shape, pattern, "like the forward's lse", fn, "lse");
}

// ---- blockAttention ------------------------------------------------------------

struct BlockShapes {
  int64_t B, H, T, D, Hkv, NB, F;
  double scale;
};

BlockShapes check_block_args(const FamBlockAttentionArgs& a, const char* fn) {
  check_input_dtype(a.q, fn, "q");
  check_same_kind(a.k, a.q, fn, "k", "q");
  check_same_kind(a.v, a.q, fn, "v", "q");
  if (a.fam_k.has_value() != a.fam_v.has_value()) {
    throw_type_error(fn, ": ", a.fam_k ? "famV" : "famK", " is required when ", a.fam_k ? "famK" : "famV",
                     " is given (omit both for plain block sliding-window attention)");
  }
  if (a.fam_k) {
    check_same_kind(*a.fam_k, a.q, fn, "famK", "q");
    check_same_kind(*a.fam_v, a.q, fn, "famV", "q");
  }
  if (a.block_size < 1) throw_range_error(fn, ": blockSize must be an integer >= 1, got ", a.block_size);
  if (a.memory_blocks < 0) throw_range_error(fn, ": memoryBlocks must be an integer >= 0, got ", a.memory_blocks);

  check_rank(a.q, 4, "[B,H,T,D]", fn, "q");
  BlockShapes s{};
  s.B = a.q.shape[0];
  s.H = a.q.shape[1];
  s.T = a.q.shape[2];
  s.D = a.q.shape[3];
  check_head_dim(s.D, fn, "q");
  check_shape(a.k, {s.B, -1, s.T, s.D}, "[B,Hkv,T,D]", "(B, T, D of q)", fn, "k");
  s.Hkv = a.k.shape[1];
  check_shape(a.v, a.k.shape, "[B,Hkv,T,D]", "like k", fn, "v");
  check_heads(s.H, s.Hkv, fn, "q", "k");
  s.NB = (s.T + a.block_size - 1) / a.block_size;
  s.F = 0;
  if (a.fam_k) {
    std::string why =
        "(NB = ceil(T/blockSize) = ceil(" + std::to_string(s.T) + "/" + std::to_string(a.block_size) + "))";
    check_shape(*a.fam_k, {s.B, s.Hkv, s.NB, -1, s.D}, "[B,Hkv,NB,F,D]", why, fn, "famK");
    s.F = a.fam_k->shape[3];
    check_shape(*a.fam_v, a.fam_k->shape, "[B,Hkv,NB,F,D]", "like famK", fn, "famV");
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
  p.use_reference = a.cuda_reference;
  return p;
}

std::vector<StoragePtr> storages(std::initializer_list<const Tensor*> tensors) {
  std::vector<StoragePtr> out;
  for (const Tensor* t : tensors)
    if (t && t->storage) out.push_back(t->storage);
  return out;
}

void enqueue_forward(const char* fn, const kernels::FamParams& p, const Device& device, std::vector<StoragePtr> uses,
                     std::vector<StoragePtr> outputs) {
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(
        fn, [p] { kernels::fam_forward_cpu(p); }, std::move(uses), std::move(outputs));
  } else {
    void* s = cuda_stream_handle(device.index);
    stream.enqueue(
        fn,
        [p, s] {
          LMK_CUDA_CALL(p.use_reference ? kernels::fam_forward_cuda_reference(p, s) : kernels::fam_forward_cuda(p, s));
        },
        std::move(uses), std::move(outputs));
  }
}

void enqueue_backward(const char* fn, const kernels::FamParams& p, const Device& device, std::vector<StoragePtr> uses,
                      std::vector<StoragePtr> outputs) {
  Stream& stream = stream_for(device);
  if (device.is_cpu()) {
    stream.enqueue(
        fn, [p] { kernels::fam_backward_cpu(p); }, std::move(uses), std::move(outputs));
  } else {
    void* s = cuda_stream_handle(device.index);
    stream.enqueue(
        fn,
        [p, s] {
          LMK_CUDA_CALL(p.use_reference ? kernels::fam_backward_cuda_reference(p, s)
                                        : kernels::fam_backward_cuda(p, s));
        },
        std::move(uses), std::move(outputs));
  }
}

// ---- memoryAttention -------------------------------------------------------------

struct MemoryShapes {
  int64_t B, H, F, D, Hkv, Lb;
  double scale;
};

MemoryShapes check_memory_args(const FamMemoryAttentionArgs& a, const char* fn) {
  check_input_dtype(a.fam_q, fn, "famQ");
  check_same_kind(a.fam_k, a.fam_q, fn, "famK", "famQ");
  check_same_kind(a.fam_v, a.fam_q, fn, "famV", "famQ");
  check_same_kind(a.block_k, a.fam_q, fn, "blockK", "famQ");
  check_same_kind(a.block_v, a.fam_q, fn, "blockV", "famQ");
  check_rank(a.fam_q, 4, "[B,H,F,D]", fn, "famQ");
  MemoryShapes s{};
  s.B = a.fam_q.shape[0];
  s.H = a.fam_q.shape[1];
  s.F = a.fam_q.shape[2];
  s.D = a.fam_q.shape[3];
  check_head_dim(s.D, fn, "famQ");
  check_shape(a.fam_k, {s.B, -1, s.F, s.D}, "[B,Hkv,F,D]", "(B, F, D of famQ)", fn, "famK");
  s.Hkv = a.fam_k.shape[1];
  check_shape(a.fam_v, a.fam_k.shape, "[B,Hkv,F,D]", "like famK", fn, "famV");
  check_heads(s.H, s.Hkv, fn, "famQ", "famK");
  check_shape(a.block_k, {s.B, s.Hkv, -1, s.D}, "[B,Hkv,L',D]", "(B, Hkv of famK, D of famQ)", fn, "blockK");
  s.Lb = a.block_k.shape[2];
  check_shape(a.block_v, a.block_k.shape, "[B,Hkv,L',D]", "like blockK", fn, "blockV");
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
  p.use_reference = a.cuda_reference;
  return p;
}

}  // namespace

FamAttentionResult fam_block_attention(const FamBlockAttentionArgs& a) {
  const char* fn = kBlockFn;
  BlockShapes s = check_block_args(a, fn);
  const Device& device = a.q.device();
  FamAttentionResult r;
  r.out = empty(a.q.shape, a.q.dtype, device, fn);
  r.lse = empty({s.B, s.H, s.T}, kernels::fam_stat_dtype(a.q.dtype), device, fn);
  kernels::FamParams p = block_params(a, s);
  p.out = r.out.data();
  p.lse = r.lse.data();
  const Tensor* fk = a.fam_k ? &*a.fam_k : nullptr;
  const Tensor* fv = a.fam_v ? &*a.fam_v : nullptr;
  enqueue_forward(fn, p, device, storages({&a.q, &a.k, &a.v, fk, fv, &r.out, &r.lse}), storages({&r.out, &r.lse}));
  return r;
}

FamBlockAttentionGrads fam_block_attention_backward(const FamBlockAttentionBackwardArgs& a) {
  const char* fn = kBlockBackwardFn;
  BlockShapes s = check_block_args(a, fn);
  check_same_kind(a.out, a.q, fn, "out", "q");
  check_shape(a.out, a.q.shape, "[B,H,T,D]", "like q", fn, "out");
  check_same_kind(a.grad_out, a.q, fn, "gOut", "q");
  check_shape(a.grad_out, a.q.shape, "[B,H,T,D]", "like q", fn, "gOut");
  check_stats(a.lse, a.q, {s.B, s.H, s.T}, "[B,H,T]", kBlockFn, fn);
  const Device& device = a.q.device();
  FamBlockAttentionGrads g;
  g.gq = empty(a.q.shape, a.q.dtype, device, fn);
  g.gk = empty(a.k.shape, a.k.dtype, device, fn);
  g.gv = empty(a.v.shape, a.v.dtype, device, fn);
  if (a.fam_k) {
    g.g_fam_k = empty(a.fam_k->shape, a.fam_k->dtype, device, fn);
    g.g_fam_v = empty(a.fam_v->shape, a.fam_v->dtype, device, fn);
  }
  Tensor delta = empty({s.B, s.H, s.T}, kernels::fam_stat_dtype(a.q.dtype), device, fn);
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
  p.delta = delta.data();
  const Tensor* fk = a.fam_k ? &*a.fam_k : nullptr;
  const Tensor* fv = a.fam_v ? &*a.fam_v : nullptr;
  const Tensor* gfk = g.g_fam_k ? &*g.g_fam_k : nullptr;
  const Tensor* gfv = g.g_fam_v ? &*g.g_fam_v : nullptr;
  enqueue_backward(
      fn, p, device,
      storages({&a.q, &a.k, &a.v, fk, fv, &a.out, &a.lse, &a.grad_out, &g.gq, &g.gk, &g.gv, gfk, gfv, &delta}),
      storages({&g.gq, &g.gk, &g.gv, gfk, gfv}));
  return g;
}

FamAttentionResult fam_memory_attention(const FamMemoryAttentionArgs& a) {
  const char* fn = kMemoryFn;
  MemoryShapes s = check_memory_args(a, fn);
  const Device& device = a.fam_q.device();
  FamAttentionResult r;
  r.out = empty(a.fam_q.shape, a.fam_q.dtype, device, fn);
  r.lse = empty({s.B, s.H, s.F}, kernels::fam_stat_dtype(a.fam_q.dtype), device, fn);
  kernels::FamParams p = memory_params(a, s);
  p.out = r.out.data();
  p.lse = r.lse.data();
  enqueue_forward(fn, p, device, storages({&a.fam_q, &a.fam_k, &a.fam_v, &a.block_k, &a.block_v, &r.out, &r.lse}),
                  storages({&r.out, &r.lse}));
  return r;
}

FamMemoryAttentionGrads fam_memory_attention_backward(const FamMemoryAttentionBackwardArgs& a) {
  const char* fn = kMemoryBackwardFn;
  MemoryShapes s = check_memory_args(a, fn);
  check_same_kind(a.out, a.fam_q, fn, "out", "famQ");
  check_shape(a.out, a.fam_q.shape, "[B,H,F,D]", "like famQ", fn, "out");
  check_same_kind(a.grad_out, a.fam_q, fn, "gOut", "famQ");
  check_shape(a.grad_out, a.fam_q.shape, "[B,H,F,D]", "like famQ", fn, "gOut");
  check_stats(a.lse, a.fam_q, {s.B, s.H, s.F}, "[B,H,F]", kMemoryFn, fn);
  const Device& device = a.fam_q.device();
  FamMemoryAttentionGrads g;
  g.g_fam_q = empty(a.fam_q.shape, a.fam_q.dtype, device, fn);
  g.g_fam_k = empty(a.fam_k.shape, a.fam_k.dtype, device, fn);
  g.g_fam_v = empty(a.fam_v.shape, a.fam_v.dtype, device, fn);
  g.g_block_k = empty(a.block_k.shape, a.block_k.dtype, device, fn);
  g.g_block_v = empty(a.block_v.shape, a.block_v.dtype, device, fn);
  Tensor delta = empty({s.B, s.H, s.F}, kernels::fam_stat_dtype(a.fam_q.dtype), device, fn);
  kernels::FamParams p = memory_params(a, s);
  p.out = a.out.data();
  p.lse = a.lse.data();
  p.grad_out = a.grad_out.data();
  p.grad_q = g.g_fam_q.data();
  p.grad_k = g.g_block_k.data();
  p.grad_v = g.g_block_v.data();
  p.grad_fam_k = g.g_fam_k.data();
  p.grad_fam_v = g.g_fam_v.data();
  p.delta = delta.data();
  enqueue_backward(fn, p, device,
                   storages({&a.fam_q, &a.fam_k, &a.fam_v, &a.block_k, &a.block_v, &a.out, &a.lse, &a.grad_out,
                             &g.g_fam_q, &g.g_fam_k, &g.g_fam_v, &g.g_block_k, &g.g_block_v, &delta}),
                   storages({&g.g_fam_q, &g.g_fam_k, &g.g_fam_v, &g.g_block_k, &g.g_block_v}));
  return g;
}

}  // namespace lmk::ops
