// The cross-entropy row kernel every loss is built from (docs/kernels.md#losses):
// internal to kernels/losses, driven by cross_entropy_* and orpo_*.
//
// For each row i of logits [rows, V] (row i = sequence i / T, position i % T)
// with up to two label slots, it computes the row max m and
// s_other = Σ_{j ∉ labels} e^{z_j − m} in one pass over the row (an online
// max/sum over chunks), then — from math/log_sum_exp.h — lse, each label's
// −log p, and, in the same kernel while the row is still in cache, the
// gradient row Σ_slots c_slot·(softmax(z) − onehot(y_slot)).
//
// Modes:
//   kCeFused  stats and gradient in one visit of the row (coefficients known
//             up front: cross-entropy, goldfish). Bytes: logits read once,
//             gradient written once.
//   kCeStats  stats only; saves (m, s_other) per row when row_max is set.
//   kCeGrad   gradient only, from the saved (m, s_other) (ORPO's second pass,
//             whose coefficients need every row's log-probability first:
//             logits read a second time, no softmax is ever stored).
//
// Coefficient of slot s at row i (only when grad is set):
//   c = grad_scale · [÷ *count] · [weight_i] · [seq_coef[i / T]] · [keep_i]
// where each bracket applies when its pointer/flag is set; a zero *count
// makes c = 0 (a mean over no tokens: loss 0, gradient 0). keep_i is the
// job's goldfish rule when the slot's `goldfish` flag is set, else 1.
//
// A label equal to ignore_index, or outside [0, V) (reported by the counting
// pre-pass, not here), is not supervised: it contributes nothing.
#pragma once
#include <cstdint>

#include "math/goldfish_hash.h"
#include "math/host_device.h"
#include "math/log_sum_exp.h"
#include "runtime/dtype.h"

namespace lmk::kernels {

enum CeMode : int32_t { kCeFused = 0, kCeStats = 1, kCeGrad = 2 };

struct CeSlot {
  const int32_t* labels = nullptr;  // [rows]; nullptr: slot unused
  double grad_scale = 0;
  const int64_t* count = nullptr;  // divide the coefficient by *count (device memory)
  const void* weights = nullptr;   // [rows], weights_dtype (float32 or float64)
  DType weights_dtype = DType::Float32;
  const double* seq_coef = nullptr;  // [rows / T] (device memory)
  bool goldfish = false;
  // Per-row outputs in the accumulation type (float, or double for float64
  // logits); nullptr when not wanted. Not written in kCeGrad mode.
  void* nll = nullptr;          // weight_i·(−log p) of kept supervised tokens, else 0
  void* nll_dropped = nullptr;  // −log p of supervised tokens goldfish drops, else 0
};

struct CeRowsJob {
  DType dtype = DType::Float32;  // of logits and grad
  int64_t rows = 0, V = 0, T = 1;
  // The job covers rows [first_row, first_row + rows) of the whole problem:
  // logits and grad point at row first_row (a chunk of rows, as the losses
  // from hidden states compute them); every per-row array (labels, weights,
  // lse, nll, row stats, seq_coef) and the goldfish position use the whole
  // problem's row index.
  int64_t first_row = 0;
  int64_t ignore_index = -100;
  int32_t mode = kCeFused;
  const void* logits = nullptr;
  CeSlot slot[2];
  GoldfishRule goldfish;
  void* lse = nullptr;      // [rows], accumulation type; nullptr: not wanted
  void* grad = nullptr;     // [rows, V], dtype; nullptr: no gradient
  void* row_max = nullptr;  // [rows] accumulation type: saved by kCeStats, read by kCeGrad
  void* row_sum = nullptr;  // [rows] s_other, likewise
};

// Row i's label set: the supervised slots' labels (coinciding labels merged,
// coefficients added), which label each slot maps to (-1: not supervised),
// and whether goldfish keeps each slot's token. Coefficients only when
// `with_grad`.
template <typename A>
LMK_HOST_DEVICE void ce_row_labels(const CeRowsJob& job, int64_t i, bool with_grad, CeRowLabels<A>* labels,
                                   int* label_of_slot, bool* kept) {
  const int64_t seq = i / job.T, t = i % job.T;
  for (int s = 0; s < 2; ++s) {
    label_of_slot[s] = -1;
    kept[s] = true;
    const CeSlot& slot = job.slot[s];
    if (!slot.labels) continue;
    int64_t y = slot.labels[i];
    if (y == job.ignore_index || y < 0 || y >= job.V) continue;
    kept[s] = !(slot.goldfish && job.goldfish.drops(seq, t, job.T));
    A c = A(0);
    if (with_grad && kept[s]) {
      double coef = slot.grad_scale;
      if (slot.count) coef = *slot.count > 0 ? coef / static_cast<double>(*slot.count) : 0.0;
      if (slot.seq_coef) coef *= slot.seq_coef[seq];
      if (slot.weights) {
        coef *= slot.weights_dtype == DType::Float64 ? static_cast<const double*>(slot.weights)[i]
                                                     : static_cast<double>(static_cast<const float*>(slot.weights)[i]);
      }
      c = static_cast<A>(coef);
    }
    if (labels->count == 1 && labels->y[0] == y) {
      labels->c[0] += c;
      label_of_slot[s] = 0;
    } else {
      label_of_slot[s] = labels->count;
      labels->y[labels->count] = static_cast<int32_t>(y);
      labels->c[labels->count] = c;
      ++labels->count;
    }
  }
}

// Row i's per-slot outputs (nll, nll_dropped) from its result; `r` may be
// null when the row has no supervised slot.
template <typename A>
LMK_HOST_DEVICE void ce_row_store_nll(const CeRowsJob& job, int64_t i, const CeRowResult<A>* r,
                                      const int* label_of_slot, const bool* kept) {
  for (int s = 0; s < 2; ++s) {
    const CeSlot& slot = job.slot[s];
    int a = label_of_slot[s];
    if (slot.nll) {
      A value = A(0);
      if (a >= 0 && kept[s]) {
        value = r->nll[a];
        if (slot.weights) {
          value *= slot.weights_dtype == DType::Float64 ? static_cast<A>(static_cast<const double*>(slot.weights)[i])
                                                        : static_cast<A>(static_cast<const float*>(slot.weights)[i]);
        }
      }
      static_cast<A*>(slot.nll)[i] = value;
    }
    if (slot.nll_dropped) static_cast<A*>(slot.nll_dropped)[i] = (a >= 0 && !kept[s]) ? r->nll[a] : A(0);
  }
}

void ce_rows_cpu(const CeRowsJob& job);
void ce_rows_cuda(const CeRowsJob& job, void* stream);

}  // namespace lmk::kernels
