// Dense kernels (core/ops: elementwise, reduce, matmul, norm, embedding, rope,
// shape, optim): each binding takes one options object and returns one object
// of wrapped tensors (the handle alone when there is one result, `-> out`).
// Translation only; every rule and default lives in core/ops.
#include "bindings.h"
#include "js_convert.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/optim.h"
#include "ops/reduce.h"
#include "ops/rope.h"
#include "ops/shape.h"

namespace lmk::addon {
namespace {

// A binding with one result returns its handle alone.
Napi::Value one(Napi::Env env, Tensor t) { return wrap_tensor(env, std::move(t)); }

// ---- elementwise --------------------------------------------------------------

// denseBinary({ op, a, b }) -> out
Napi::Value Binary(const Napi::CallbackInfo& info) {
  BinaryOp op = ops::binary_op_from_name(Options(info[0], "binary").string("op"), "binary");
  Options o(info[0], ops::binary_op_fn(op));
  return one(info.Env(), ops::binary(op, o.tensor("a"), o.tensor("b")));
}

// denseBinaryBackward({ op, a, b, gy }) -> { ga, gb }
Napi::Value BinaryBackward(const Napi::CallbackInfo& info) {
  BinaryOp op = ops::binary_op_from_name(Options(info[0], "binaryBackward").string("op"), "binaryBackward");
  Options o(info[0], ops::binary_backward_fn(op));
  auto g = ops::binary_backward(op, o.tensor("a"), o.tensor("b"), o.tensor("gy"));
  return tensors_object(info.Env(), {{"ga", g.ga}, {"gb", g.gb}});
}

// denseScalarOp({ op, x, s }) -> out
Napi::Value ScalarOpBinding(const Napi::CallbackInfo& info) {
  ScalarOp op = ops::scalar_op_from_name(Options(info[0], "scalarOp").string("op"), "scalarOp");
  Options o(info[0], ops::scalar_op_fn(op));
  return one(info.Env(), ops::scalar_op(op, o.tensor("x"), o.number("s")));
}

// denseUnary({ op, x }) -> out
Napi::Value Unary(const Napi::CallbackInfo& info) {
  UnaryOp op = ops::unary_op_from_name(Options(info[0], "unary").string("op"), "unary");
  Options o(info[0], ops::unary_op_fn(op));
  return one(info.Env(), ops::unary(op, o.tensor("x")));
}

// denseUnaryBackward({ op, x?, y?, gy }) -> out
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  UnaryOp op = ops::unary_op_from_name(Options(info[0], "unaryBackward").string("op"), "unaryBackward");
  Options o(info[0], ops::unary_backward_fn(op));
  return one(info.Env(), ops::unary_backward(op, o.optional_tensor("x"), o.optional_tensor("y"), o.tensor("gy")));
}

// denseFill({ x, value })
Napi::Value Fill(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.fill_");
  ops::fill_(o.tensor("x"), o.number("value"));
  return info.Env().Undefined();
}

// denseAddInPlace({ target, src, alpha? })
Napi::Value AddInPlace(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.addInPlace_");
  ops::add_in_place_(o.tensor("target"), o.tensor("src"), o.optional_number("alpha"));
  return info.Env().Undefined();
}

// denseCopyInto({ target, src })
Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.copyInto_");
  ops::copy_into_(o.tensor("target"), o.tensor("src"));
  return info.Env().Undefined();
}

// ---- reductions -----------------------------------------------------------------

// denseSum({ x, dims, keepDim? }) -> out
Napi::Value Sum(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.sum");
  return one(info.Env(), ops::sum(o.tensor("x"), o.integers("dims"), o.optional_bool("keepDim")));
}

// denseSumToShape({ x, shape }) -> out
Napi::Value SumToShape(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.sumToShape");
  return one(info.Env(), ops::sum_to_shape(o.tensor("x"), o.integers("shape")));
}

// denseExpandTo({ x, shape }) -> out
Napi::Value ExpandTo(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.expandTo");
  return one(info.Env(), ops::expand_to(o.tensor("x"), o.integers("shape")));
}

// ---- matmul ---------------------------------------------------------------------

// denseMatmul({ a, b, transA?, transB? }) -> out
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.matmul");
  return one(info.Env(),
             ops::matmul(o.tensor("a"), o.tensor("b"), o.optional_bool("transA"), o.optional_bool("transB")));
}

// gemmInfo() -> { cpu, cuda, cpuLibrary, cpuIsa }
Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  ops::GemmInfo g = ops::gemm_info();
  auto obj = Napi::Object::New(info.Env());
  obj.Set("cpu", g.cpu);
  obj.Set("cuda", g.cuda);
  obj.Set("cpuLibrary", g.cpu_library);
  obj.Set("cpuIsa", g.cpu_isa);
  return obj;
}

// setGemmBackend({ backend: 'auto' | 'builtin' })
Napi::Value SetGemmBackend(const Napi::CallbackInfo& info) {
  Options o(info[0], "setGemmBackend");
  ops::set_gemm_kernel(ops::gemm_kernel_from_name(o.string("backend"), o.fn()));
  return info.Env().Undefined();
}

// ---- norms ----------------------------------------------------------------------

// denseLayerNorm({ x, weight?, bias?, eps? }) -> { y, mean, rstd }
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.layerNorm");
  auto r =
      ops::layer_norm(o.tensor("x"), o.optional_tensor("weight"), o.optional_tensor("bias"), o.optional_number("eps"));
  return tensors_object(info.Env(), {{"y", r.y}, {"mean", r.mean}, {"rstd", r.rstd}});
}

Napi::Object norm_grads(Napi::Env env, const ops::NormGrads& g) {
  return tensors_object(env, {{"gx", g.gx}, {"gWeight", g.gweight}, {"gBias", g.gbias}});
}

// denseLayerNormBackward({ x, weight?, mean, rstd, gy, hasBias }) -> { gx, gWeight?, gBias? }
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.layerNormBackward");
  auto g = ops::layer_norm_backward(o.tensor("x"), o.optional_tensor("weight"), o.tensor("mean"), o.tensor("rstd"),
                                    o.tensor("gy"), o.boolean("hasBias"));
  return norm_grads(info.Env(), g);
}

// denseRmsNorm({ x, weight?, eps? }) -> { y, rstd }
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.rmsNorm");
  auto r = ops::rms_norm(o.tensor("x"), o.optional_tensor("weight"), o.optional_number("eps"));
  return tensors_object(info.Env(), {{"y", r.y}, {"rstd", r.rstd}});
}

// denseRmsNormBackward({ x, weight?, rstd, gy }) -> { gx, gWeight? }
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.rmsNormBackward");
  auto g = ops::rms_norm_backward(o.tensor("x"), o.optional_tensor("weight"), o.tensor("rstd"), o.tensor("gy"));
  return norm_grads(info.Env(), g);
}

// ---- embedding, rope ----------------------------------------------------------------

// denseEmbedding({ weight, ids }) -> out
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.embedding");
  return one(info.Env(), ops::embedding(o.tensor("weight"), o.tensor("ids")));
}

// denseEmbeddingBackward({ gOut, ids, numEmbeddings }) -> out
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.embeddingBackward");
  return one(info.Env(), ops::embedding_backward(o.tensor("gOut"), o.tensor("ids"), o.integer("numEmbeddings")));
}

// denseRope({ x, positions, base?, inverse? }) -> out
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.rope");
  return one(info.Env(),
             ops::rope(o.tensor("x"), o.tensor("positions"), o.optional_number("base"), o.optional_bool("inverse")));
}

// ---- shape ----------------------------------------------------------------------

// denseTokenShift({ x }) -> out
Napi::Value TokenShift(const Napi::CallbackInfo& info) {
  return one(info.Env(), ops::token_shift(Options(info[0], "ops.tokenShift").tensor("x")));
}

// denseTokenShiftBackward({ g }) -> out
Napi::Value TokenShiftBackward(const Napi::CallbackInfo& info) {
  return one(info.Env(), ops::token_shift_backward(Options(info[0], "ops.tokenShiftBackward").tensor("g")));
}

// denseConcat({ xs, dim }) -> out
Napi::Value Concat(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.concat");
  return one(info.Env(), ops::concat(o.tensors("xs"), o.integer("dim")));
}

// denseSlice({ x, dim, start, end }) -> out
Napi::Value Slice(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.slice");
  return one(info.Env(), ops::slice(o.tensor("x"), o.integer("dim"), o.integer("start"), o.integer("end")));
}

// denseSliceBackward({ g, inputShape, dim, start, end }) -> out
Napi::Value SliceBackward(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.sliceBackward");
  return one(info.Env(), ops::slice_backward(o.tensor("g"), o.integers("inputShape"), o.integer("dim"),
                                             o.integer("start"), o.integer("end")));
}

// densePermute({ x, dims }) -> out
Napi::Value Permute(const Napi::CallbackInfo& info) {
  Options o(info[0], "ops.permute");
  return one(info.Env(), ops::permute(o.tensor("x"), o.integers("dims")));
}

// ---- optimizer ------------------------------------------------------------------

// adamwOptions({ lr, beta1?, beta2?, eps?, weightDecay? }) -> the same with defaults, checked.
Napi::Value AdamwOptions(const Napi::CallbackInfo& info) {
  Options o(info[0], "optim.AdamW");
  ops::AdamwHyper h = ops::adamw_hyper(o.optional_number("lr"), o.optional_number("beta1"), o.optional_number("beta2"),
                                       o.optional_number("eps"), o.optional_number("weightDecay"), o.fn());
  auto obj = Napi::Object::New(info.Env());
  obj.Set("lr", h.lr);
  obj.Set("beta1", h.beta1);
  obj.Set("beta2", h.beta2);
  obj.Set("eps", h.eps);
  obj.Set("weightDecay", h.weight_decay);
  return obj;
}

// denseAdamwStep({ param, grad, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, step })
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Options o(info[0], "optim.AdamW.step");
  ops::AdamwArgs args;
  args.param = o.tensor("param");
  args.grad = o.tensor("grad");
  args.exp_avg = o.tensor("expAvg");
  args.exp_avg_sq = o.tensor("expAvgSq");
  args.lr = o.number("lr");
  args.beta1 = o.number("beta1");
  args.beta2 = o.number("beta2");
  args.eps = o.number("eps");
  args.weight_decay = o.number("weightDecay");
  args.step = o.number("step");
  ops::adamw_step_(args);
  return info.Env().Undefined();
}

// denseGradNormClip({ grads, maxNorm }) -> { norm }
Napi::Value GradNormClip(const Napi::CallbackInfo& info) {
  Options o(info[0], "clipGradNorm");
  return tensors_object(info.Env(), {{"norm", ops::grad_norm_clip_(o.tensors("grads"), o.number("maxNorm"))}});
}

}  // namespace

void register_dense_bindings(Napi::Env env, Napi::Object exports) {
  export_bindings(env, exports,
                  {
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
                      {"gemmInfo", GemmInfo},
                      {"setGemmBackend", SetGemmBackend},
                      {"denseLayerNorm", LayerNorm},
                      {"denseLayerNormBackward", LayerNormBackward},
                      {"denseRmsNorm", RmsNorm},
                      {"denseRmsNormBackward", RmsNormBackward},
                      {"denseEmbedding", Embedding},
                      {"denseEmbeddingBackward", EmbeddingBackward},
                      {"denseRope", Rope},
                      {"denseTokenShift", TokenShift},
                      {"denseTokenShiftBackward", TokenShiftBackward},
                      {"denseConcat", Concat},
                      {"denseSlice", Slice},
                      {"denseSliceBackward", SliceBackward},
                      {"densePermute", Permute},
                      {"adamwOptions", AdamwOptions},
                      {"denseAdamwStep", AdamwStep},
                      {"denseGradNormClip", GradNormClip},
                  });
}

}  // namespace lmk::addon
