// The host code of the losses from hidden states (linear_losses.h), shared by
// linear_losses_cpu.cc and linear_losses_cuda.cu: `Backend` runs each step on
// its device (GEMM, row kernel, fill, convert, the losses' pre-pass and
// reduction stages), so both devices compose the same kernels in the same
// order.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/losses/ce_rows.h"
#include "kernels/losses/cross_entropy_job.h"
#include "kernels/losses/linear_losses.h"
#include "kernels/losses/orpo_math.h"
#include "kernels/workspace_layout.h"

namespace lmk::kernels {

// The head's scratch: the chunk of logits, the chunk of their gradient, a
// column of ones (the bias as a K = 1 GEMM), and the float32 accumulators of
// the weight's and bias's gradients (bfloat16/float16 over several chunks).
struct LinearHeadWorkspace {
  void* logits = nullptr;            // [chunk_rows, V] dtype
  void* grad = nullptr;              // [chunk_rows, V] dtype, or nullptr
  void* ones = nullptr;              // [chunk_rows] dtype, or nullptr without bias
  float* grad_weight_acc = nullptr;  // [V, d], or nullptr: accumulate in grad_weight itself
  float* grad_bias_acc = nullptr;    // [V]
};

// `chunks`: how many chunks feed the weight's gradient.
inline LinearHeadWorkspace linear_head_workspace(const LinearHead& h, bool with_grad, int64_t chunks,
                                                 WorkspaceLayout& layout) {
  const size_t s = dtype_size(h.dtype), chunk = static_cast<size_t>(h.chunk_rows * h.V) * s;
  LinearHeadWorkspace w;
  w.logits = layout.take(chunk);
  w.grad = with_grad ? layout.take(chunk) : nullptr;
  w.ones = h.bias ? layout.take(static_cast<size_t>(h.chunk_rows) * s) : nullptr;
  const bool half = h.dtype == DType::BFloat16 || h.dtype == DType::Float16;
  if (with_grad && half && chunks > 1) {
    if (h.grad_weight) w.grad_weight_acc = layout.take<float>(static_cast<size_t>(h.V * h.d) * sizeof(float));
    if (h.grad_bias) w.grad_bias_acc = layout.take<float>(static_cast<size_t>(h.V) * sizeof(float));
  }
  return w;
}

inline int64_t linear_chunks(int64_t rows, int64_t chunk_rows) { return (rows + chunk_rows - 1) / chunk_rows; }

// One head's chunk steps on a device.
template <typename Backend>
class LinearHeadPass {
 public:
  LinearHeadPass(const Backend& backend, const LinearHead& head, const LinearHeadWorkspace& w)
      : be_(backend), h_(head), w_(w) {
    if (w_.ones) be_.fill(w_.ones, h_.dtype, h_.chunk_rows, 1.0);
  }

  int64_t chunk_rows() const { return h_.chunk_rows; }

  // Chunk logits [rows, V] = hidden[first, first + rows) · weightᵀ (+ 1·biasᵀ).
  void logits(const void* hidden, int64_t first, int64_t rows) const {
    if (h_.bias) {
      MatmulParams bias = gemm(rows, h_.V, 1);
      bias.a = w_.ones;
      bias.b = h_.bias;
      bias.out = w_.logits;
      be_.gemm(bias, h_.gemm);
    }
    MatmulParams p = gemm(rows, h_.V, h_.d);
    p.trans_b = true;
    p.a = row_pointer(hidden, first);
    p.b = h_.weight;
    p.out = w_.logits;
    p.accumulate = h_.bias != nullptr;
    be_.gemm(p, h_.gemm);
  }

  // From the chunk's gradient of the logits (w.grad): gradHidden's rows
  // (when wanted), and the weight's and bias's gradients summed over chunks
  // in call order.
  void backward(const void* hidden, void* grad_hidden, int64_t first, int64_t rows) {
    if (grad_hidden) {
      MatmulParams p = gemm(rows, h_.d, h_.V);
      p.a = w_.grad;
      p.b = h_.weight;
      p.out = row_pointer(grad_hidden, first);
      be_.gemm(p, h_.gemm);
    }
    if (h_.grad_weight) {
      MatmulParams p = gemm(h_.V, h_.d, rows);
      p.trans_a = true;
      p.a = w_.grad;
      p.b = row_pointer(hidden, first);
      p.out = w_.grad_weight_acc ? static_cast<void*>(w_.grad_weight_acc) : h_.grad_weight;
      p.out_compute = w_.grad_weight_acc != nullptr;
      p.accumulate = started_;
      be_.gemm(p, h_.gemm);
    }
    if (h_.grad_bias) {
      MatmulParams p = gemm(h_.V, 1, rows);
      p.trans_a = true;
      p.a = w_.grad;
      p.b = w_.ones;
      p.out = w_.grad_bias_acc ? static_cast<void*>(w_.grad_bias_acc) : h_.grad_bias;
      p.out_compute = w_.grad_bias_acc != nullptr;
      p.accumulate = started_;
      be_.gemm(p, h_.gemm);
    }
    started_ = true;
  }

  // The weight's and bias's gradients in their dtype (zero when no chunk ran).
  void finish() const {
    auto done = [&](void* grad, const float* acc, int64_t n) {
      if (!grad) return;
      if (!started_) {
        be_.fill(grad, h_.dtype, n, 0.0);
      } else if (acc) {
        be_.convert(acc, DType::Float32, grad, h_.dtype, n);
      }
    };
    done(h_.grad_weight, w_.grad_weight_acc, h_.V * h_.d);
    done(h_.grad_bias, w_.grad_bias_acc, h_.V);
  }

 private:
  MatmulParams gemm(int64_t M, int64_t N, int64_t K) const {
    MatmulParams p;
    p.dtype = h_.dtype;
    p.M = M;
    p.N = N;
    p.K = K;
    return p;
  }
  template <typename P>
  P* row_pointer(P* base, int64_t row) const {
    using Byte = std::conditional_t<std::is_const_v<P>, const char, char>;
    return static_cast<Byte*>(base) + static_cast<size_t>(row * h_.d) * dtype_size(h_.dtype);
  }

  const Backend& be_;
  const LinearHead& h_;
  LinearHeadWorkspace w_;
  bool started_ = false;
};

// The row job over `total` rows, chunk by chunk: the chunk's logits, the row
// kernel on them, and, when the job writes a gradient, the head's backward.
template <typename Backend>
void linear_row_pass(const Backend& be, LinearHeadPass<Backend>& head, CeRowsJob& job, const void* hidden,
                     void* grad_hidden, int64_t total) {
  const int64_t chunk = head.chunk_rows();
  for (int64_t first = 0; first < total; first += chunk) {
    const int64_t rows = std::min(chunk, total - first);
    head.logits(hidden, first, rows);
    job.first_row = first;
    job.rows = rows;
    be.ce_rows(job);
    if (job.grad && job.mode != kCeStats) head.backward(hidden, grad_hidden, first, rows);
  }
}

// The loss's own workspace (`loss_bytes`) first, then the head's (returned
// through `head` when given); the total bytes.
inline size_t linear_workspace(const LinearHead& h, size_t loss_bytes, bool with_grad, int64_t chunks, void* base,
                               LinearHeadWorkspace* head) {
  WorkspaceLayout layout(base);
  layout.take(loss_bytes);
  LinearHeadWorkspace w = linear_head_workspace(h, with_grad, chunks, layout);
  if (head) *head = w;
  return layout.bytes();
}

inline size_t linear_cross_entropy_bytes(const LinearCrossEntropyParams& lp, LinearHeadWorkspace* head, void* base) {
  return linear_workspace(lp.head, cross_entropy_workspace(lp.loss, nullptr).bytes, lp.loss.grad != nullptr,
                          linear_chunks(lp.loss.rows, lp.head.chunk_rows), base, head);
}

template <typename Backend>
void linear_cross_entropy_run(const Backend& be, const LinearCrossEntropyParams& lp) {
  LinearHeadWorkspace hw;
  linear_cross_entropy_bytes(lp, &hw, lp.workspace);
  CrossEntropyParams p = lp.loss;
  p.workspace = lp.workspace;
  p.logits = hw.logits;
  p.grad = hw.grad;
  be.ce_count(p);
  CeRowsJob job = cross_entropy_job(p, cross_entropy_workspace(p, p.workspace));
  LinearHeadPass<Backend> head(be, lp.head, hw);
  linear_row_pass(be, head, job, lp.hidden, lp.grad_hidden, p.rows);
  be.ce_finish(p);
  if (p.grad) head.finish();
}

inline size_t linear_orpo_bytes(const LinearOrpoParams& lp, LinearHeadWorkspace* head, void* base) {
  const bool with_grad = lp.loss.grad_chosen != nullptr;
  const int64_t chunks = linear_chunks(lp.loss.B * lp.loss.T_chosen, lp.head.chunk_rows) +
                         linear_chunks(lp.loss.B * lp.loss.T_rejected, lp.head.chunk_rows);
  return linear_workspace(lp.head, orpo_workspace(lp.loss, nullptr, with_grad).bytes, with_grad, chunks, base, head);
}

template <typename Backend>
void linear_orpo_run(const Backend& be, const LinearOrpoParams& lp) {
  LinearHeadWorkspace hw;
  linear_orpo_bytes(lp, &hw, lp.workspace);
  OrpoParams p = lp.loss;
  p.workspace = lp.workspace;
  p.chosen_logits = p.rejected_logits = hw.logits;
  p.grad_chosen = p.grad_rejected = hw.grad;
  const bool with_grad = hw.grad != nullptr;
  const OrpoWorkspace w = orpo_workspace(p, p.workspace, with_grad);
  be.orpo_count(p);
  OrpoRowJobs jobs = orpo_stats_jobs(p, w);
  LinearHeadPass<Backend> head(be, lp.head, hw);
  auto side = [&](CeRowsJob& job, const void* hidden, void* grad_hidden, int64_t total) {
    linear_row_pass(be, head, job, hidden, grad_hidden, total);
  };
  const int64_t chosen_rows = p.B * p.T_chosen, rejected_rows = p.B * p.T_rejected;
  side(jobs.chosen, lp.chosen_hidden, lp.grad_chosen_hidden, chosen_rows);
  side(jobs.rejected, lp.rejected_hidden, lp.grad_rejected_hidden, rejected_rows);
  be.orpo_pairs(p);
  if (!with_grad) return;
  orpo_to_grad_jobs(p, w, &jobs);
  side(jobs.chosen, lp.chosen_hidden, lp.grad_chosen_hidden, chosen_rows);
  side(jobs.rejected, lp.rejected_hidden, lp.grad_rejected_hidden, rejected_rows);
  head.finish();
}

}  // namespace lmk::kernels
