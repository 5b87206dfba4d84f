// ORPO's per-sequence and batch-level steps (docs/kernels.md#orpo), shared by
// orpo_cpu.cc and orpo_cuda.cu so the two backends compute them alike, in
// double, in the same order: orpo_sequence for each pair b (independent),
// then orpo_reduce once, over b in order.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/losses/ce_rows.h"
#include "kernels/losses/losses.h"
#include "kernels/workspace_layout.h"
#include "math/host_device.h"
#include "math/log1mexp.h"

namespace lmk::kernels {

// Workspace layout (kernels/workspace_layout.h). Acc is the accumulation
// type (4 or 8 bytes).
struct OrpoWorkspace {
  int64_t* n_chosen;      // [B] supervised chosen tokens per pair
  int64_t* n_rejected;    // [B]
  int64_t* n_sft_pair;    // [B] supervised (and kept) nll tokens per pair
  int64_t* n_sft;         // [1] their total
  double* coef_chosen;    // [B] gradient coefficient of chosen OR tokens (before grad_scale)
  double* coef_rejected;  // [B]
  double* pair;           // [B][5]: a_w, a_l, logOdds, logσ(logOdds), Σ sft nll of the pair
  void* nll_chosen;       // [B·Tw] acc: −log p of chosen labels
  void* nll_sft;          // [B·Tw] acc: −log p of nll labels (kept)
  void* nll_rejected;     // [B·Tl] acc
  void* max_chosen;       // [B·Tw] acc, saved row stats (gradient only)
  void* sum_chosen;
  void* max_rejected;  // [B·Tl]
  void* sum_rejected;
  size_t bytes;
};

inline OrpoWorkspace orpo_workspace(const OrpoParams& p, void* base, bool with_grad) {
  size_t acc = p.dtype == DType::Float64 ? 8 : 4;
  size_t B = static_cast<size_t>(p.B), nw = B * static_cast<size_t>(p.T_chosen),
         nl = B * static_cast<size_t>(p.T_rejected);
  WorkspaceLayout layout(base);
  OrpoWorkspace w;
  w.n_chosen = layout.take<int64_t>(B * 8);
  w.n_rejected = layout.take<int64_t>(B * 8);
  w.n_sft_pair = layout.take<int64_t>(B * 8);
  w.n_sft = layout.take<int64_t>(8);
  w.coef_chosen = layout.take<double>(B * 8);
  w.coef_rejected = layout.take<double>(B * 8);
  w.pair = layout.take<double>(B * 5 * 8);
  w.nll_chosen = layout.take(nw * acc);
  w.nll_sft = layout.take(nw * acc);
  w.nll_rejected = layout.take(nl * acc);
  w.max_chosen = with_grad ? layout.take(nw * acc) : nullptr;
  w.sum_chosen = with_grad ? layout.take(nw * acc) : nullptr;
  w.max_rejected = with_grad ? layout.take(nl * acc) : nullptr;
  w.sum_rejected = with_grad ? layout.take(nl * acc) : nullptr;
  w.bytes = layout.bytes();
  return w;
}

template <typename Out>
LMK_HOST_DEVICE void orpo_store(void* p, int64_t i, double v) {
  if (p) static_cast<Out*>(p)[i] = static_cast<Out>(v);
}

// Pair b: mean log-probabilities, log-odds, the OR gradient coefficients.
// A pair with no supervised token (reported by the pre-pass) gets a = clamp
// value so nothing here divides by zero.
template <typename Acc, typename Out>
LMK_HOST_DEVICE void orpo_sequence(const OrpoParams& p, const OrpoWorkspace& w, int64_t b) {
  const Acc* nll_w = static_cast<const Acc*>(w.nll_chosen) + b * p.T_chosen;
  const Acc* nll_s = static_cast<const Acc*>(w.nll_sft) + b * p.T_chosen;
  const Acc* nll_l = static_cast<const Acc*>(w.nll_rejected) + b * p.T_rejected;
  double sum_w = 0, sum_s = 0, sum_l = 0;
  for (int64_t t = 0; t < p.T_chosen; ++t) {
    sum_w += static_cast<double>(nll_w[t]);
    sum_s += static_cast<double>(nll_s[t]);
  }
  for (int64_t t = 0; t < p.T_rejected; ++t) sum_l += static_cast<double>(nll_l[t]);
  int64_t n_w = w.n_chosen[b], n_l = w.n_rejected[b];
  double a_w = n_w > 0 ? -sum_w / static_cast<double>(n_w) : kOrpoMaxMeanLogProb;
  double a_l = n_l > 0 ? -sum_l / static_cast<double>(n_l) : kOrpoMaxMeanLogProb;
  double cw = a_w < kOrpoMaxMeanLogProb ? a_w : kOrpoMaxMeanLogProb;
  double cl = a_l < kOrpoMaxMeanLogProb ? a_l : kOrpoMaxMeanLogProb;
  double log_odds = (cw - cl) - (log1mexp(cw) - log1mexp(cl));
  double s = sigmoid(-log_odds);
  double batch = static_cast<double>(p.B);
  // d(λ·orLoss)/dz = c·(softmax − onehot), c = ±λ·s / (B·n·(1 − e^a)).
  w.coef_chosen[b] = n_w > 0 ? p.lambda * s / (batch * static_cast<double>(n_w) * -::expm1(cw)) : 0.0;
  w.coef_rejected[b] = n_l > 0 ? -p.lambda * s / (batch * static_cast<double>(n_l) * -::expm1(cl)) : 0.0;
  double* pair = w.pair + b * 5;
  pair[0] = a_w;
  pair[1] = a_l;
  pair[2] = log_odds;
  pair[3] = log_sigmoid(log_odds);
  pair[4] = sum_s;
  orpo_store<Out>(p.chosen_logps, b, a_w);
  orpo_store<Out>(p.rejected_logps, b, a_l);
  orpo_store<Out>(p.log_odds, b, log_odds);
}

// The batch-level results, over b in order.
template <typename Out>
LMK_HOST_DEVICE void orpo_reduce(const OrpoParams& p, const OrpoWorkspace& w) {
  double sum_w = 0, sum_l = 0, wins = 0, margin = 0, log_sig = 0, log_odds = 0, sft = 0;
  for (int64_t b = 0; b < p.B; ++b) {
    const double* pair = w.pair + b * 5;
    sum_w += pair[0];
    sum_l += pair[1];
    wins += pair[0] > pair[1] ? 1.0 : 0.0;
    margin += pair[0] - pair[1];
    log_odds += pair[2];
    log_sig += pair[3];
    sft += pair[4];
  }
  double batch = static_cast<double>(p.B);
  double nll_loss = *w.n_sft > 0 ? sft / static_cast<double>(*w.n_sft) : 0.0;
  double or_loss = -log_sig / batch;
  orpo_store<Out>(p.nll_loss, 0, nll_loss);
  orpo_store<Out>(p.or_loss, 0, or_loss);
  orpo_store<Out>(p.loss, 0, nll_loss + p.lambda * or_loss);
  orpo_store<Out>(p.rewards_chosen, 0, p.lambda * sum_w / batch);
  orpo_store<Out>(p.rewards_rejected, 0, p.lambda * sum_l / batch);
  orpo_store<Out>(p.rewards_accuracy, 0, wins / batch);
  orpo_store<Out>(p.rewards_margin, 0, p.lambda * margin / batch);
  orpo_store<Out>(p.log_odds_ratio, 0, log_sig / batch);
  orpo_store<Out>(p.log_odds_chosen, 0, log_odds / batch);
}

// The two row jobs of ORPO's stats pass (host code, both backends): chosen
// rows carry the odds-ratio label (slot 0) and the SFT label (slot 1, with
// goldfish); rejected rows only the odds-ratio label.
struct OrpoRowJobs {
  CeRowsJob chosen, rejected;
};

inline OrpoRowJobs orpo_stats_jobs(const OrpoParams& p, const OrpoWorkspace& w) {
  OrpoRowJobs j;
  CeRowsJob& chosen = j.chosen;
  chosen.dtype = p.dtype;
  chosen.rows = p.B * p.T_chosen;
  chosen.V = p.V;
  chosen.T = p.T_chosen;
  chosen.ignore_index = p.ignore_index;
  chosen.logits = p.chosen_logits;
  chosen.goldfish = p.goldfish;
  chosen.slot[0].labels = p.chosen_labels;
  chosen.slot[0].nll = w.nll_chosen;
  chosen.slot[1].labels = p.nll_labels;
  chosen.slot[1].goldfish = p.goldfish.strategy != kGoldfishOff;
  chosen.slot[1].nll = w.nll_sft;
  chosen.row_max = w.max_chosen;
  chosen.row_sum = w.sum_chosen;
  CeRowsJob& rejected = j.rejected;
  rejected = chosen;
  rejected.rows = p.B * p.T_rejected;
  rejected.T = p.T_rejected;
  rejected.logits = p.rejected_logits;
  rejected.goldfish = GoldfishRule{};
  rejected.slot[0].labels = p.rejected_labels;
  rejected.slot[0].nll = w.nll_rejected;
  rejected.slot[1] = CeSlot{};
  rejected.row_max = w.max_rejected;
  rejected.row_sum = w.sum_rejected;
  chosen.mode = rejected.mode = kCeStats;
  return j;
}

// The stages of orpo_cpu / _cuda around the row passes, for callers that run
// the row kernel themselves (the losses from hidden states, chunk by chunk):
// the per-sequence counts and label checks, and the per-pair coefficients
// with the batch results (after the stats pass).
void orpo_count_cpu(const OrpoParams& p);
void orpo_pairs_cpu(const OrpoParams& p);
void orpo_count_cuda(const OrpoParams& p, void* stream);
void orpo_pairs_cuda(const OrpoParams& p, void* stream);

// The stats jobs turned into the gradient pass: g = c·(softmax − onehot)
// from the saved row stats, with the per-pair OR coefficients (coef_*, from
// orpo_sequence) and, on chosen rows, the SFT mean (1 / n_sft).
inline void orpo_to_grad_jobs(const OrpoParams& p, const OrpoWorkspace& w, OrpoRowJobs* jobs) {
  CeRowsJob& chosen = jobs->chosen;
  CeRowsJob& rejected = jobs->rejected;
  chosen.mode = rejected.mode = kCeGrad;
  chosen.grad = p.grad_chosen;
  chosen.slot[0].grad_scale = p.grad_scale;
  chosen.slot[0].seq_coef = w.coef_chosen;
  chosen.slot[1].grad_scale = p.grad_scale;
  chosen.slot[1].count = w.n_sft;
  rejected.grad = p.grad_rejected;
  rejected.slot[0].grad_scale = p.grad_scale;
  rejected.slot[0].seq_coef = w.coef_rejected;
}

}  // namespace lmk::kernels
