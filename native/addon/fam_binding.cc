// fam.blockAttention / blockAttentionBackward / memoryAttention /
// memoryAttentionBackward: one options object in, named tensors out. Only
// translation here; every rule lives in core/ops/fam.cc.
#include "bindings.h"
#include "js_convert.h"
#include "ops/fam.h"

namespace lmk::addon {
namespace {

void read_block_args(const Options& o, ops::FamBlockAttentionArgs* a) {
  a->q = o.tensor("q");
  a->k = o.tensor("k");
  a->v = o.tensor("v");
  a->fam_k = o.optional_tensor("famK");
  a->fam_v = o.optional_tensor("famV");
  a->block_size = o.integer("blockSize");
  a->memory_blocks = o.integer("memoryBlocks");
  a->scale = o.optional_number("scale");
}

void read_memory_args(const Options& o, ops::FamMemoryAttentionArgs* a) {
  a->fam_q = o.tensor("famQ");
  a->fam_k = o.tensor("famK");
  a->fam_v = o.tensor("famV");
  a->block_k = o.tensor("blockK");
  a->block_v = o.tensor("blockV");
  a->scale = o.optional_number("scale");
}

Napi::Value attention_result(Napi::Env env, const ops::FamAttentionResult& r) {
  auto out = Napi::Object::New(env);
  out.Set("out", wrap_tensor(env, r.out));
  out.Set("lse", wrap_tensor(env, r.lse));
  return out;
}

Napi::Value FamBlockAttention(const Napi::CallbackInfo& info) {
  ops::FamBlockAttentionArgs a;
  read_block_args(Options(info[0], "fam.blockAttention"), &a);
  return attention_result(info.Env(), ops::fam_block_attention(a));
}

Napi::Value FamBlockAttentionBackward(const Napi::CallbackInfo& info) {
  Options o(info[0], "fam.blockAttentionBackward");
  ops::FamBlockAttentionBackwardArgs a;
  read_block_args(o, &a);
  a.out = o.tensor("out");
  a.lse = o.tensor("lse");
  a.grad_out = o.tensor("gOut");
  ops::FamBlockAttentionGrads g = ops::fam_block_attention_backward(a);
  auto out = Napi::Object::New(info.Env());
  out.Set("gq", wrap_tensor(info.Env(), g.gq));
  out.Set("gk", wrap_tensor(info.Env(), g.gk));
  out.Set("gv", wrap_tensor(info.Env(), g.gv));
  set_tensor(out, "gFamK", g.g_fam_k);
  set_tensor(out, "gFamV", g.g_fam_v);
  return out;
}

Napi::Value FamMemoryAttention(const Napi::CallbackInfo& info) {
  ops::FamMemoryAttentionArgs a;
  read_memory_args(Options(info[0], "fam.memoryAttention"), &a);
  return attention_result(info.Env(), ops::fam_memory_attention(a));
}

Napi::Value FamMemoryAttentionBackward(const Napi::CallbackInfo& info) {
  Options o(info[0], "fam.memoryAttentionBackward");
  ops::FamMemoryAttentionBackwardArgs a;
  read_memory_args(o, &a);
  a.out = o.tensor("out");
  a.lse = o.tensor("lse");
  a.grad_out = o.tensor("gOut");
  ops::FamMemoryAttentionGrads g = ops::fam_memory_attention_backward(a);
  auto out = Napi::Object::New(info.Env());
  out.Set("gFamQ", wrap_tensor(info.Env(), g.g_fam_q));
  out.Set("gFamK", wrap_tensor(info.Env(), g.g_fam_k));
  out.Set("gFamV", wrap_tensor(info.Env(), g.g_fam_v));
  out.Set("gBlockK", wrap_tensor(info.Env(), g.g_block_k));
  out.Set("gBlockV", wrap_tensor(info.Env(), g.g_block_v));
  return out;
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
