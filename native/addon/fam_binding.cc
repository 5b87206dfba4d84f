// fam.blockAttention / blockAttentionBackward / memoryAttention /
// memoryAttentionBackward: one options object in, named tensors out. Only
// translation here; every rule lives in core/ops/fam.cc.
#include "bindings.h"
#include "js_convert.h"
#include "ops/fam.h"

namespace lmk::addon {
namespace {

ops::FamBlockAttentionArgs block_args(const Options& o) {
  return {o.tensor("q"),
          o.tensor("k"),
          o.tensor("v"),
          o.optional_tensor("famK"),
          o.optional_tensor("famV"),
          o.integer("blockSize"),
          o.integer("memoryBlocks"),
          o.optional_number("scale")};
}

ops::FamMemoryAttentionArgs memory_args(const Options& o) {
  return {o.tensor("famQ"),   o.tensor("famK"),   o.tensor("famV"),
          o.tensor("blockK"), o.tensor("blockV"), o.optional_number("scale")};
}

// The forward's results a backward reads (both backward argument structs have them).
template <typename BackwardArgs>
void read_forward_results(const Options& o, BackwardArgs* a) {
  a->out = o.tensor("out");
  a->lse = o.tensor("lse");
  a->grad_out = o.tensor("gOut");
}

Napi::Value attention_result(Napi::Env env, const ops::FamAttentionResult& r) {
  return tensors_object(env, {{"out", r.out}, {"lse", r.lse}});
}

Napi::Value FamBlockAttention(const Napi::CallbackInfo& info) {
  return attention_result(info.Env(), ops::fam_block_attention(block_args(Options(info[0], "fam.blockAttention"))));
}

Napi::Value FamBlockAttentionBackward(const Napi::CallbackInfo& info) {
  Options o(info[0], "fam.blockAttentionBackward");
  ops::FamBlockAttentionBackwardArgs a;
  static_cast<ops::FamBlockAttentionArgs&>(a) = block_args(o);
  read_forward_results(o, &a);
  ops::FamBlockAttentionGrads g = ops::fam_block_attention_backward(a);
  return tensors_object(info.Env(),
                        {{"gq", g.gq}, {"gk", g.gk}, {"gv", g.gv}, {"gFamK", g.g_fam_k}, {"gFamV", g.g_fam_v}});
}

Napi::Value FamMemoryAttention(const Napi::CallbackInfo& info) {
  return attention_result(info.Env(), ops::fam_memory_attention(memory_args(Options(info[0], "fam.memoryAttention"))));
}

Napi::Value FamMemoryAttentionBackward(const Napi::CallbackInfo& info) {
  Options o(info[0], "fam.memoryAttentionBackward");
  ops::FamMemoryAttentionBackwardArgs a;
  static_cast<ops::FamMemoryAttentionArgs&>(a) = memory_args(o);
  read_forward_results(o, &a);
  ops::FamMemoryAttentionGrads g = ops::fam_memory_attention_backward(a);
  return tensors_object(info.Env(), {{"gFamQ", g.g_fam_q},
                                     {"gFamK", g.g_fam_k},
                                     {"gFamV", g.g_fam_v},
                                     {"gBlockK", g.g_block_k},
                                     {"gBlockV", g.g_block_v}});
}

}  // namespace

void register_fam_bindings(Napi::Env env, Napi::Object exports) {
  export_bindings(env, exports,
                  {{"famBlockAttention", FamBlockAttention},
                   {"famBlockAttentionBackward", FamBlockAttentionBackward},
                   {"famMemoryAttention", FamMemoryAttention},
                   {"famMemoryAttentionBackward", FamMemoryAttentionBackward}});
}

}  // namespace lmk::addon
