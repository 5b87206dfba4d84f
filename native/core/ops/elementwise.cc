#include "ops/elementwise.h"

#include <algorithm>
#include <cmath>

#include "kernels/copy/copy.h"
#include "kernels/creation/creation.h"
#include "kernels/elementwise/elementwise.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "ops/reduce.h"
#include "ops/tensor_ops.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {

const char* binary_op_fn(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "ops.add";
    case BinaryOp::Sub: return "ops.sub";
    case BinaryOp::Mul: return "ops.mul";
    case BinaryOp::Div: return "ops.div";
    case BinaryOp::Maximum: return "ops.maximum";
  }
  return "ops.binary";
}

const char* scalar_op_fn(ScalarOp op) {
  switch (op) {
    case ScalarOp::Add: return "ops.add";
    case ScalarOp::Mul: return "ops.mul";
    case ScalarOp::Pow: return "ops.pow";
    case ScalarOp::RSub: return "ops.rsub";
    case ScalarOp::DivBy: return "ops.divBy";
  }
  return "ops.scalarOp";
}

const char* unary_op_fn(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "ops.neg";
    case UnaryOp::Exp: return "ops.exp";
    case UnaryOp::Log: return "ops.log";
    case UnaryOp::Sigmoid: return "ops.sigmoid";
    case UnaryOp::Relu: return "ops.relu";
    case UnaryOp::Square: return "ops.square";
    case UnaryOp::Tanh: return "ops.tanh";
    case UnaryOp::Silu: return "ops.silu";
    case UnaryOp::Sqrt: return "ops.sqrt";
    case UnaryOp::Abs: return "ops.abs";
  }
  return "ops.unary";
}

const char* binary_backward_fn(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "ops.addBackward";
    case BinaryOp::Sub: return "ops.subBackward";
    case BinaryOp::Mul: return "ops.mulBackward";
    case BinaryOp::Div: return "ops.divBackward";
    case BinaryOp::Maximum: return "ops.maximumBackward";
  }
  return "ops.binaryBackward";
}

const char* unary_backward_fn(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg: return "ops.negBackward";
    case UnaryOp::Exp: return "ops.expBackward";
    case UnaryOp::Log: return "ops.logBackward";
    case UnaryOp::Sigmoid: return "ops.sigmoidBackward";
    case UnaryOp::Relu: return "ops.reluBackward";
    case UnaryOp::Square: return "ops.squareBackward";
    case UnaryOp::Tanh: return "ops.tanhBackward";
    case UnaryOp::Silu: return "ops.siluBackward";
    case UnaryOp::Sqrt: return "ops.sqrtBackward";
    case UnaryOp::Abs: return "ops.absBackward";
  }
  return "ops.unaryBackward";
}

namespace {

void check_same_shape(const Tensor& t, const Shape& shape, const char* fn, const char* arg, const char* like) {
  if (t.shape != shape) {
    throw_range_error(fn, ": ", arg, " must have the shape of ", like, " ", shape_string(shape), ", got ",
                      shape_string(t.shape));
  }
}

kernels::StridedLayout binary_layout(const Tensor& a, const Tensor& b, const Shape& out, const char* fn) {
  return kernels::make_strided_layout(
      out, {kernels::broadcast_strides(a.shape, out), kernels::broadcast_strides(b.shape, out)}, fn);
}

}  // namespace

BinaryOp binary_op_from_name(const std::string& name, const char* fn) {
  return value_from_name<BinaryOp>(name,
                                   {{"add", BinaryOp::Add},
                                    {"sub", BinaryOp::Sub},
                                    {"mul", BinaryOp::Mul},
                                    {"div", BinaryOp::Div},
                                    {"maximum", BinaryOp::Maximum}},
                                   fn, "op");
}

ScalarOp scalar_op_from_name(const std::string& name, const char* fn) {
  return value_from_name<ScalarOp>(name,
                                   {{"add", ScalarOp::Add},
                                    {"mul", ScalarOp::Mul},
                                    {"pow", ScalarOp::Pow},
                                    {"rsub", ScalarOp::RSub},
                                    {"div_by", ScalarOp::DivBy}},
                                   fn, "op");
}

UnaryOp unary_op_from_name(const std::string& name, const char* fn) {
  return value_from_name<UnaryOp>(name,
                                  {{"neg", UnaryOp::Neg},
                                   {"exp", UnaryOp::Exp},
                                   {"log", UnaryOp::Log},
                                   {"sigmoid", UnaryOp::Sigmoid},
                                   {"relu", UnaryOp::Relu},
                                   {"square", UnaryOp::Square},
                                   {"tanh", UnaryOp::Tanh},
                                   {"silu", UnaryOp::Silu},
                                   {"sqrt", UnaryOp::Sqrt},
                                   {"abs", UnaryOp::Abs}},
                                  fn, "op");
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* fn, const char* a_name, const char* b_name) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw_range_error(fn, ": ", a_name, " has shape ", shape_string(a), " and ", b_name, " has shape ",
                        shape_string(b), ", which do not broadcast (sizes ", da, " and ", db, " at dim ",
                        static_cast<int64_t>(i) - static_cast<int64_t>(rank), ")");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* fn = binary_op_fn(op);
  check_float(a, fn, "a");
  check_like(b, a.device(), a.dtype, fn, "b", "a");
  Shape shape = broadcast_shapes(a.shape, b.shape, fn, "a", "b");
  OpTask task(fn, a.device());
  Tensor out = task.output(shape, a.dtype);
  task.reads(a, b);
  kernels::BinaryParams p;
  p.dtype = a.dtype;
  p.op = op;
  p.layout = binary_layout(a, b, shape, fn);
  p.a = a.data();
  p.b = b.data();
  p.out = out.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::binary_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::binary_cuda(p, s)); });
  return out;
}

BinaryGrads binary_backward(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& gy) {
  const char* fn = binary_backward_fn(op);
  check_float(a, fn, "a");
  check_like(b, a.device(), a.dtype, fn, "b", "a");
  check_like(gy, a.device(), a.dtype, fn, "gy", "a");
  Shape shape = broadcast_shapes(a.shape, b.shape, fn, "a", "b");
  if (gy.shape != shape) {
    throw_range_error(fn, ": gy must have the broadcast shape of a ", shape_string(a.shape), " and b ",
                      shape_string(b.shape), ", which is ", shape_string(shape), ", got ", shape_string(gy.shape));
  }
  OpTask task(fn, a.device());
  Tensor ga_full = task.output(shape, a.dtype);
  Tensor gb_full = task.output(shape, a.dtype);
  task.reads(a, b, gy);
  kernels::BinaryBackwardParams p;
  p.dtype = a.dtype;
  p.op = op;
  p.layout = binary_layout(a, b, shape, fn);
  p.a = a.data();
  p.b = b.data();
  p.gy = gy.data();
  p.ga = ga_full.data();
  p.gb = gb_full.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::binary_backward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::binary_backward_cuda(p, s)); });
  BinaryGrads grads;
  grads.ga = a.shape == shape ? ga_full : sum_to_shape(ga_full, a.shape);
  grads.gb = b.shape == shape ? gb_full : sum_to_shape(gb_full, b.shape);
  return grads;
}

Tensor scalar_op(ScalarOp op, const Tensor& x, double s) {
  const char* fn = scalar_op_fn(op);
  check_float(x, fn, "x");
  OpTask task(fn, x.device());
  Tensor out = task.output(x.shape, x.dtype);
  task.read(x);
  kernels::ScalarParams p;
  p.dtype = x.dtype;
  p.op = op;
  p.n = x.numel();
  p.s = s;
  p.x = x.data();
  p.out = out.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::scalar_op_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::scalar_op_cuda(p, s)); });
  return out;
}

Tensor unary(UnaryOp op, const Tensor& x) {
  const char* fn = unary_op_fn(op);
  check_float(x, fn, "x");
  OpTask task(fn, x.device());
  Tensor out = task.output(x.shape, x.dtype);
  task.read(x);
  kernels::UnaryParams p;
  p.dtype = x.dtype;
  p.op = op;
  p.n = x.numel();
  p.x = x.data();
  p.out = out.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::unary_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::unary_cuda(p, s)); });
  return out;
}

Tensor unary_backward(UnaryOp op, const std::optional<Tensor>& x, const std::optional<Tensor>& y, const Tensor& gy) {
  const char* fn = unary_backward_fn(op);
  check_float(gy, fn, "gy");
  const bool need_x = unary_grad_needs_x(op), need_y = unary_grad_needs_y(op);
  if (need_x && !x) throw_type_error(fn, ": x (the forward's input) is required");
  if (need_y && !y) throw_type_error(fn, ": y (the forward's output) is required");
  if (x) {
    check_like(*x, gy.device(), gy.dtype, fn, "x", "gy");
    check_same_shape(*x, gy.shape, fn, "x", "gy");
  }
  if (y) {
    check_like(*y, gy.device(), gy.dtype, fn, "y", "gy");
    check_same_shape(*y, gy.shape, fn, "y", "gy");
  }
  OpTask task(fn, gy.device());
  Tensor gx = task.output(gy.shape, gy.dtype);
  task.read(gy);
  if (need_x) task.read(*x);
  if (need_y) task.read(*y);
  kernels::UnaryBackwardParams p;
  p.dtype = gy.dtype;
  p.op = op;
  p.n = gy.numel();
  p.x = need_x ? x->data() : nullptr;
  p.y = need_y ? y->data() : nullptr;
  p.gy = gy.data();
  p.gx = gx.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::unary_backward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::unary_backward_cuda(p, s)); });
  return gx;
}

void fill_(const Tensor& x, double value) {
  const char* fn = "ops.fill_";
  check_input(x, fn, "x");
  check_fill_value(value, x.dtype, fn);
  OpTask task(fn, x.device());
  task.writes(x);
  int64_t n = x.numel();
  void* data = x.data();
  DType dtype = x.dtype;
  task.may_run_inline();
  task.enqueue([=] { kernels::fill_cpu(data, dtype, n, value); },
               [=](void* s) { LMK_CUDA_CALL(kernels::fill_cuda(data, dtype, n, value, s)); });
}

void add_in_place_(const Tensor& target, const Tensor& src, std::optional<double> alpha) {
  const char* fn = "ops.addInPlace_";
  check_float(target, fn, "target");
  check_like(src, target.device(), target.dtype, fn, "src", "target");
  check_same_shape(src, target.shape, fn, "src", "target");
  OpTask task(fn, target.device());
  task.writes(target);
  task.read(src);
  kernels::AxpyParams p;
  p.dtype = target.dtype;
  p.n = target.numel();
  p.alpha = alpha.value_or(1.0);
  p.target = target.data();
  p.src = src.data();
  task.may_run_inline();
  task.enqueue([p] { kernels::axpy_cpu(p); }, [p](void* s) { LMK_CUDA_CALL(kernels::axpy_cuda(p, s)); });
}

void copy_into_(const Tensor& target, const Tensor& src) {
  const char* fn = "ops.copyInto_";
  check_input(target, fn, "target");
  check_tensor(src, fn, "src");
  check_device(src, target.device(), fn, "src", "target");
  check_same_shape(src, target.shape, fn, "src", "target");
  int64_t n = target.numel();
  const void* in = src.data();
  void* out = target.data();
  DType sd = src.dtype, td = target.dtype;
  if (in == out && sd == td) return;
  OpTask task(fn, target.device());
  task.writes(target);
  task.read(src);
  task.may_run_inline();
  task.enqueue([=] { kernels::convert_cpu(in, sd, out, td, n); },
               [=](void* s) { LMK_CUDA_CALL(kernels::convert_cuda(in, sd, out, td, n, s)); });
}

}  // namespace lmk::ops
