// Dense kernels (core/ops: elementwise, reduce, matmul, norm, embedding, rope,
// shape, optim): each binding takes one options object and returns one object
// of wrapped tensors. Translation only; every rule lives in core/ops.
#include <cmath>
#include <string>
#include <vector>

#include "binding_registry.h"
#include "js_convert.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/reduce.h"
#include "ops/rope.h"
#include "ops/shape.h"
#include "tensor_handle.h"

namespace lmk::addon {
namespace {

const Tensor& tensor_field(const Napi::Value& opts, const char* name, const char* fn) {
  return unwrap_tensor(field(opts, name), fn, name);
}

std::optional<Tensor> optional_tensor_field(const Napi::Value& opts, const char* name, const char* fn) {
  return unwrap_optional_tensor(field(opts, name), fn, name);
}

std::string string_field(const Napi::Value& opts, const char* name, const char* fn) {
  Napi::Value v = field(opts, name);
  if (!v.IsString()) throw_type_error(fn, ": ", name, " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

bool bool_field(const Napi::Value& opts, const char* name, const char* fn, bool fallback) {
  Napi::Value v = field(opts, name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw_type_error(fn, ": ", name, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

double required_number(const Napi::Value& opts, const char* name, const char* fn) {
  Napi::Value v = field(opts, name);
  if (!v.IsNumber()) throw_type_error(fn, ": ", name, " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t integer_field(const Napi::Value& opts, const char* name, const char* fn) {
  double d = required_number(opts, name, fn);
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740992.0) {
    throw_type_error(fn, ": ", name, " must be an integer, got ", d);
  }
  return static_cast<int64_t>(d);
}

std::vector<int64_t> integers_field(const Napi::Value& opts, const char* name, const char* fn) {
  Napi::Value v = field(opts, name);
  if (!v.IsArray()) throw_type_error(fn, ": ", name, " must be an array of integers");
  try {
    return to_shape(v);
  } catch (const Error&) {
    throw_type_error(fn, ": ", name, " must be an array of integers");
  }
}

std::vector<Tensor> tensors_field(const Napi::Value& opts, const char* name, const char* fn) {
  Napi::Value v = field(opts, name);
  if (!v.IsArray()) throw_type_error(fn, ": ", name, " must be an array of Tensors");
  auto array = v.As<Napi::Array>();
  std::vector<Tensor> out;
  for (uint32_t i = 0; i < array.Length(); ++i) {
    std::string arg = lmk::concat(name, "[", i, "]");
    out.push_back(unwrap_tensor(array.Get(i), fn, arg.c_str()));
  }
  return out;
}

Napi::Object one(Napi::Env env, Tensor t) {
  auto obj = Napi::Object::New(env);
  obj.Set("out", wrap_tensor(env, std::move(t)));
  return obj;
}

// ---- elementwise --------------------------------------------------------------

// denseBinary({ op, a, b }) -> { out }
Napi::Value Binary(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "binary";
    BinaryOp op = ops::binary_op_from_name(string_field(info[0], "op", fn), fn);
    return one(info.Env(), ops::binary(op, tensor_field(info[0], "a", fn), tensor_field(info[0], "b", fn)));
  });
}

// denseBinaryBackward({ op, a, b, gy }) -> { ga, gb }
Napi::Value BinaryBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "binaryBackward";
    BinaryOp op = ops::binary_op_from_name(string_field(info[0], "op", fn), fn);
    auto g = ops::binary_backward(op, tensor_field(info[0], "a", fn), tensor_field(info[0], "b", fn),
                                  tensor_field(info[0], "gy", fn));
    auto obj = Napi::Object::New(info.Env());
    obj.Set("ga", wrap_tensor(info.Env(), g.ga));
    obj.Set("gb", wrap_tensor(info.Env(), g.gb));
    return obj;
  });
}

// denseScalarOp({ op, x, s }) -> { out }
Napi::Value ScalarOpBinding(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "scalarOp";
    ScalarOp op = ops::scalar_op_from_name(string_field(info[0], "op", fn), fn);
    return one(info.Env(), ops::scalar_op(op, tensor_field(info[0], "x", fn), required_number(info[0], "s", fn)));
  });
}

// denseUnary({ op, x }) -> { out }
Napi::Value Unary(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "unary";
    UnaryOp op = ops::unary_op_from_name(string_field(info[0], "op", fn), fn);
    return one(info.Env(), ops::unary(op, tensor_field(info[0], "x", fn)));
  });
}

// denseUnaryBackward({ op, x?, y?, gy }) -> { out }
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "unaryBackward";
    UnaryOp op = ops::unary_op_from_name(string_field(info[0], "op", fn), fn);
    return one(info.Env(),
               ops::unary_backward(op, optional_tensor_field(info[0], "x", fn), optional_tensor_field(info[0], "y", fn),
                                   tensor_field(info[0], "gy", fn)));
  });
}

// denseFill({ x, value })
Napi::Value Fill(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.fill_";
    ops::fill_(tensor_field(info[0], "x", fn), required_number(info[0], "value", fn));
    return info.Env().Undefined();
  });
}

// denseAddInPlace({ target, src, alpha })
Napi::Value AddInPlace(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.addInPlace_";
    ops::add_in_place_(tensor_field(info[0], "target", fn), tensor_field(info[0], "src", fn),
                       number_field(info[0], "alpha", fn, 1.0));
    return info.Env().Undefined();
  });
}

// denseCopyInto({ target, src })
Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.copyInto_";
    ops::copy_into_(tensor_field(info[0], "target", fn), tensor_field(info[0], "src", fn));
    return info.Env().Undefined();
  });
}

// ---- reductions -----------------------------------------------------------------

// denseSum({ x, dims, keepDim }) -> { out }
Napi::Value Sum(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.sum";
    return one(info.Env(), ops::sum(tensor_field(info[0], "x", fn), integers_field(info[0], "dims", fn),
                                    bool_field(info[0], "keepDim", fn, false)));
  });
}

// denseSumToShape({ x, shape }) -> { out }
Napi::Value SumToShape(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.sumToShape";
    return one(info.Env(), ops::sum_to_shape(tensor_field(info[0], "x", fn), integers_field(info[0], "shape", fn)));
  });
}

// denseExpandTo({ x, shape }) -> { out }
Napi::Value ExpandTo(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.expandTo";
    return one(info.Env(), ops::expand_to(tensor_field(info[0], "x", fn), integers_field(info[0], "shape", fn)));
  });
}

// ---- matmul ---------------------------------------------------------------------

// denseMatmul({ a, b, transA, transB }) -> { out }
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.matmul";
    return one(info.Env(),
               ops::matmul(tensor_field(info[0], "a", fn), tensor_field(info[0], "b", fn),
                           bool_field(info[0], "transA", fn, false), bool_field(info[0], "transB", fn, false)));
  });
}

// denseGemmInfo() -> { cpu, cuda, cpuLibrary, cpuIsa }
Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    ops::GemmInfo g = ops::gemm_info();
    auto obj = Napi::Object::New(info.Env());
    obj.Set("cpu", g.cpu);
    obj.Set("cuda", g.cuda);
    obj.Set("cpuLibrary", g.cpu_library);
    obj.Set("cpuIsa", g.cpu_isa);
    return obj;
  });
}

// denseSetGemmBackend({ backend: 'auto' | 'builtin' })
Napi::Value SetGemmBackend(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "setGemmBackend";
    std::string backend = string_field(info[0], "backend", fn);
    if (backend == "auto")
      ops::set_gemm_kernel(kernels::GemmKernel::Library);
    else if (backend == "builtin")
      ops::set_gemm_kernel(kernels::GemmKernel::Builtin);
    else
      throw_range_error(fn, ": backend must be 'auto' or 'builtin', got '", backend, "'");
    return info.Env().Undefined();
  });
}

// ---- norms ----------------------------------------------------------------------

// denseLayerNorm({ x, weight?, bias?, eps }) -> { y, mean, rstd }
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.layerNorm";
    auto r = ops::layer_norm(tensor_field(info[0], "x", fn), optional_tensor_field(info[0], "weight", fn),
                             optional_tensor_field(info[0], "bias", fn), required_number(info[0], "eps", fn));
    auto obj = Napi::Object::New(info.Env());
    obj.Set("y", wrap_tensor(info.Env(), r.y));
    obj.Set("mean", wrap_tensor(info.Env(), r.mean));
    obj.Set("rstd", wrap_tensor(info.Env(), r.rstd));
    return obj;
  });
}

Napi::Object norm_grads(Napi::Env env, const ops::NormGrads& g) {
  auto obj = Napi::Object::New(env);
  obj.Set("gx", wrap_tensor(env, g.gx));
  if (g.gweight) obj.Set("gWeight", wrap_tensor(env, *g.gweight));
  if (g.gbias) obj.Set("gBias", wrap_tensor(env, *g.gbias));
  return obj;
}

// denseLayerNormBackward({ x, weight?, mean, rstd, gy, hasBias }) -> { gx, gWeight?, gBias? }
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.layerNormBackward";
    auto g = ops::layer_norm_backward(tensor_field(info[0], "x", fn), optional_tensor_field(info[0], "weight", fn),
                                      tensor_field(info[0], "mean", fn), tensor_field(info[0], "rstd", fn),
                                      tensor_field(info[0], "gy", fn), bool_field(info[0], "hasBias", fn, false));
    return norm_grads(info.Env(), g);
  });
}

// denseRmsNorm({ x, weight?, eps }) -> { y, rstd }
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.rmsNorm";
    auto r = ops::rms_norm(tensor_field(info[0], "x", fn), optional_tensor_field(info[0], "weight", fn),
                           required_number(info[0], "eps", fn));
    auto obj = Napi::Object::New(info.Env());
    obj.Set("y", wrap_tensor(info.Env(), r.y));
    obj.Set("rstd", wrap_tensor(info.Env(), r.rstd));
    return obj;
  });
}

// denseRmsNormBackward({ x, weight?, rstd, gy }) -> { gx, gWeight? }
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.rmsNormBackward";
    auto g = ops::rms_norm_backward(tensor_field(info[0], "x", fn), optional_tensor_field(info[0], "weight", fn),
                                    tensor_field(info[0], "rstd", fn), tensor_field(info[0], "gy", fn));
    return norm_grads(info.Env(), g);
  });
}

// ---- embedding, rope ----------------------------------------------------------------

// denseEmbedding({ weight, ids }) -> { out }
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.embedding";
    return one(info.Env(), ops::embedding(tensor_field(info[0], "weight", fn), tensor_field(info[0], "ids", fn)));
  });
}

// denseEmbeddingBackward({ gOut, ids, numEmbeddings }) -> { out }
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.embeddingBackward";
    return one(info.Env(), ops::embedding_backward(tensor_field(info[0], "gOut", fn), tensor_field(info[0], "ids", fn),
                                                   integer_field(info[0], "numEmbeddings", fn)));
  });
}

// denseRope({ x, positions, base, inverse }) -> { out }
Napi::Value Rope(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.rope";
    return one(info.Env(), ops::rope(tensor_field(info[0], "x", fn), tensor_field(info[0], "positions", fn),
                                     required_number(info[0], "base", fn), bool_field(info[0], "inverse", fn, false)));
  });
}

// ---- shape ----------------------------------------------------------------------

// denseTokenShift({ x, backward }) -> { out }
Napi::Value TokenShift(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    bool backward = bool_field(info[0], "backward", "ops.tokenShift", false);
    const char* fn = backward ? "ops.tokenShiftBackward" : "ops.tokenShift";
    const Tensor& x = tensor_field(info[0], "x", fn);
    return one(info.Env(), backward ? ops::token_shift_backward(x) : ops::token_shift(x));
  });
}

// denseConcat({ xs, dim }) -> { out }
Napi::Value Concat(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.concat";
    return one(info.Env(), ops::concat(tensors_field(info[0], "xs", fn), integer_field(info[0], "dim", fn)));
  });
}

// denseSlice({ x, dim, start, end }) -> { out }
Napi::Value Slice(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.slice";
    return one(info.Env(), ops::slice(tensor_field(info[0], "x", fn), integer_field(info[0], "dim", fn),
                                      integer_field(info[0], "start", fn), integer_field(info[0], "end", fn)));
  });
}

// denseSliceBackward({ g, inputShape, dim, start, end }) -> { out }
Napi::Value SliceBackward(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.sliceBackward";
    return one(info.Env(),
               ops::slice_backward(tensor_field(info[0], "g", fn), integers_field(info[0], "inputShape", fn),
                                   integer_field(info[0], "dim", fn), integer_field(info[0], "start", fn),
                                   integer_field(info[0], "end", fn)));
  });
}

// densePermute({ x, dims }) -> { out }
Napi::Value Permute(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "ops.permute";
    return one(info.Env(), ops::permute(tensor_field(info[0], "x", fn), integers_field(info[0], "dims", fn)));
  });
}

// ---- optimizer ------------------------------------------------------------------

// denseAdamwStep({ param, grad, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, step })
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "optim.AdamW.step";
    const Napi::Value& o = info[0];
    ops::AdamwArgs args;
    args.param = tensor_field(o, "param", fn);
    args.grad = tensor_field(o, "grad", fn);
    args.exp_avg = tensor_field(o, "expAvg", fn);
    args.exp_avg_sq = tensor_field(o, "expAvgSq", fn);
    args.lr = required_number(o, "lr", fn);
    args.beta1 = required_number(o, "beta1", fn);
    args.beta2 = required_number(o, "beta2", fn);
    args.eps = required_number(o, "eps", fn);
    args.weight_decay = required_number(o, "weightDecay", fn);
    args.step = required_number(o, "step", fn);
    ops::adamw_step_(args);
    return info.Env().Undefined();
  });
}

// denseGradNormClip({ grads, maxNorm }) -> { norm }
Napi::Value GradNormClip(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    const char* fn = "clipGradNorm";
    Tensor norm = ops::grad_norm_clip_(tensors_field(info[0], "grads", fn), required_number(info[0], "maxNorm", fn));
    auto obj = Napi::Object::New(info.Env());
    obj.Set("norm", wrap_tensor(info.Env(), norm));
    return obj;
  });
}

void register_dense_bindings(Napi::Env env, Napi::Object exports) {
  struct Entry {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  };
  const Entry entries[] = {
      {"denseBinary", Binary},
      {"denseBinaryBackward", BinaryBackward},
      {"denseScalarOp", ScalarOpBinding},
      {"denseUnary", Unary},
      {"denseUnaryBackward", UnaryBackward},
      {"denseFill", Fill},
      {"denseAddInPlace", AddInPlace},
      {"denseCopyInto", CopyInto},
      {"denseSum", Sum},
      {"denseSumToShape", SumToShape},
      {"denseExpandTo", ExpandTo},
      {"denseMatmul", Matmul},
      {"denseGemmInfo", GemmInfo},
      {"denseSetGemmBackend", SetGemmBackend},
      {"denseLayerNorm", LayerNorm},
      {"denseLayerNormBackward", LayerNormBackward},
      {"denseRmsNorm", RmsNorm},
      {"denseRmsNormBackward", RmsNormBackward},
      {"denseEmbedding", Embedding},
      {"denseEmbeddingBackward", EmbeddingBackward},
      {"denseRope", Rope},
      {"denseTokenShift", TokenShift},
      {"denseConcat", Concat},
      {"denseSlice", Slice},
      {"denseSliceBackward", SliceBackward},
      {"densePermute", Permute},
      {"denseAdamwStep", AdamwStep},
      {"denseGradNormClip", GradNormClip},
  };
  for (const Entry& e : entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
}

static BindingRegistrar registrar(register_dense_bindings);

}  // namespace
}  // namespace lmk::addon
