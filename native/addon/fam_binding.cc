// fam.blockAttention / blockAttentionBackward / memoryAttention /
// memoryAttentionBackward: one options object in, named tensors out. Only
// translation here; every rule lives in core/ops/fam.cc.
#include <cmath>

#include "binding_registry.h"
#include "js_convert.h"
#include "ops/fam.h"
#include "tensor_handle.h"

namespace lmk::addon {
namespace {

// An integer option (a JS number with no fraction); range rules are the core's.
int64_t integer_field(const Napi::Value& o, const char* name, const char* fn) {
  Napi::Value v = field(o, name);
  if (!v.IsNumber()) throw_type_error(fn, ": ", name, " must be an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0) {
    throw_range_error(fn, ": ", name, " must be an integer, got ", d);
  }
  return static_cast<int64_t>(d);
}

std::optional<double> optional_number(const Napi::Value& o, const char* name, const char* fn) {
  Napi::Value v = field(o, name);
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  if (!v.IsNumber()) throw_type_error(fn, ": ", name, " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

void read_block_args(const Napi::Value& o, const char* fn, ops::FamBlockAttentionArgs* a) {
  a->q = unwrap_tensor(field(o, "q"), fn, "q");
  a->k = unwrap_tensor(field(o, "k"), fn, "k");
  a->v = unwrap_tensor(field(o, "v"), fn, "v");
  a->fam_k = unwrap_optional_tensor(field(o, "famK"), fn, "famK");
  a->fam_v = unwrap_optional_tensor(field(o, "famV"), fn, "famV");
  a->block_size = integer_field(o, "blockSize", fn);
  a->memory_blocks = integer_field(o, "memoryBlocks", fn);
  a->scale = optional_number(o, "scale", fn);
}

void read_memory_args(const Napi::Value& o, const char* fn, ops::FamMemoryAttentionArgs* a) {
  a->fam_q = unwrap_tensor(field(o, "famQ"), fn, "famQ");
  a->fam_k = unwrap_tensor(field(o, "famK"), fn, "famK");
  a->fam_v = unwrap_tensor(field(o, "famV"), fn, "famV");
  a->block_k = unwrap_tensor(field(o, "blockK"), fn, "blockK");
  a->block_v = unwrap_tensor(field(o, "blockV"), fn, "blockV");
  a->scale = optional_number(o, "scale", fn);
}

Napi::Value attention_result(Napi::Env env, const ops::FamAttentionResult& r) {
  auto out = Napi::Object::New(env);
  out.Set("out", wrap_tensor(env, r.out));
  out.Set("lse", wrap_tensor(env, r.lse));
  return out;
}

Napi::Value FamBlockAttention(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    ops::FamBlockAttentionArgs a;
    read_block_args(info[0], "fam.blockAttention", &a);
    return attention_result(info.Env(), ops::fam_block_attention(a));
  });
}

Napi::Value FamBlockAttentionBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "fam.blockAttentionBackward";
    ops::FamBlockAttentionBackwardArgs a;
    read_block_args(info[0], fn, &a);
    a.out = unwrap_tensor(field(info[0], "out"), fn, "out");
    a.lse = unwrap_tensor(field(info[0], "lse"), fn, "lse");
    a.grad_out = unwrap_tensor(field(info[0], "gOut"), fn, "gOut");
    ops::FamBlockAttentionGrads g = ops::fam_block_attention_backward(a);
    Napi::Env env = info.Env();
    auto out = Napi::Object::New(env);
    out.Set("gq", wrap_tensor(env, g.gq));
    out.Set("gk", wrap_tensor(env, g.gk));
    out.Set("gv", wrap_tensor(env, g.gv));
    if (g.g_fam_k) out.Set("gFamK", wrap_tensor(env, *g.g_fam_k));
    if (g.g_fam_v) out.Set("gFamV", wrap_tensor(env, *g.g_fam_v));
    return out;
  });
}

Napi::Value FamMemoryAttention(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    ops::FamMemoryAttentionArgs a;
    read_memory_args(info[0], "fam.memoryAttention", &a);
    return attention_result(info.Env(), ops::fam_memory_attention(a));
  });
}

Napi::Value FamMemoryAttentionBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const char* fn = "fam.memoryAttentionBackward";
    ops::FamMemoryAttentionBackwardArgs a;
    read_memory_args(info[0], fn, &a);
    a.out = unwrap_tensor(field(info[0], "out"), fn, "out");
    a.lse = unwrap_tensor(field(info[0], "lse"), fn, "lse");
    a.grad_out = unwrap_tensor(field(info[0], "gOut"), fn, "gOut");
    ops::FamMemoryAttentionGrads g = ops::fam_memory_attention_backward(a);
    Napi::Env env = info.Env();
    auto out = Napi::Object::New(env);
    out.Set("gFamQ", wrap_tensor(env, g.g_fam_q));
    out.Set("gFamK", wrap_tensor(env, g.g_fam_k));
    out.Set("gFamV", wrap_tensor(env, g.g_fam_v));
    out.Set("gBlockK", wrap_tensor(env, g.g_block_k));
    out.Set("gBlockV", wrap_tensor(env, g.g_block_v));
    return out;
  });
}

void register_fam_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("famBlockAttention", Napi::Function::New(env, FamBlockAttention));
  exports.Set("famBlockAttentionBackward", Napi::Function::New(env, FamBlockAttentionBackward));
  exports.Set("famMemoryAttention", Napi::Function::New(env, FamMemoryAttention));
  exports.Set("famMemoryAttentionBackward", Napi::Function::New(env, FamMemoryAttentionBackward));
}

BindingRegistrar registrar(register_fam_bindings);

}  // namespace
}  // namespace lmk::addon
