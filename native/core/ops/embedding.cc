#include "ops/embedding.h"

#include <algorithm>

#include "kernels/embedding/embedding.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"

namespace lmk::ops {
namespace {

// Reports an id outside [0, V) at the next sync, poisoning the task's outputs.
int64_t* ids_check(OpTask& task, const Tensor& ids, int64_t V) {
  std::string fn_name = task.fn();
  Shape shape = ids.shape;
  return task.value_check(ErrorKind::Range, [=](int64_t index) {
    return lmk::concat(fn_name, ": ids has a value outside [0, ", V, ") at flat index ", index, " (shape ",
                       shape_string(shape), ")");
  });
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const char* fn = "ops.embedding";
  check_float(weight, fn, "weight");
  check_int32(ids, weight.device(), fn, "ids", "weight");
  if (weight.shape.size() != 2)
    throw_range_error(fn, ": weight must have shape [V,D], got ", shape_string(weight.shape));
  const int64_t V = weight.shape[0], D = weight.shape[1];
  Shape shape = ids.shape;
  shape.push_back(D);
  OpTask task(fn, weight.device());
  Tensor out = task.output(shape, weight.dtype);
  task.reads(weight, ids);
  kernels::EmbeddingParams p;
  p.dtype = weight.dtype;
  p.n = ids.numel();
  p.V = V;
  p.D = D;
  p.ids = ids.data_as<int32_t>();
  p.weight = weight.data();
  p.out = out.data();
  p.first_bad_index = ids_check(task, ids, V);
  task.may_run_inline();
  task.enqueue([p] { kernels::embedding_forward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::embedding_forward_cuda(p, s)); });
  return out;
}

Tensor embedding_backward(const Tensor& gout, const Tensor& ids, int64_t num_embeddings) {
  const char* fn = "ops.embeddingBackward";
  check_float(gout, fn, "gOut");
  check_int32(ids, gout.device(), fn, "ids", "gOut");
  if (num_embeddings < 0) throw_range_error(fn, ": numEmbeddings must be >= 0, got ", num_embeddings);
  if (gout.shape.size() != ids.shape.size() + 1 ||
      !std::equal(ids.shape.begin(), ids.shape.end(), gout.shape.begin())) {
    throw_range_error(fn, ": gOut must have shape [...ids.shape, D] with ids ", shape_string(ids.shape), ", got ",
                      shape_string(gout.shape));
  }
  const int64_t D = gout.shape.back();
  OpTask task(fn, gout.device());
  Tensor out = task.output({num_embeddings, D}, gout.dtype);
  task.reads(gout, ids);
  kernels::EmbeddingParams p;
  p.dtype = gout.dtype;
  p.n = ids.numel();
  p.V = num_embeddings;
  p.D = D;
  p.ids = ids.data_as<int32_t>();
  p.gout = gout.data();
  p.gweight = out.data();
#ifdef LMK_WITH_CUDA
  if (gout.device().is_cuda()) {
    size_t bytes = kernels::embedding_backward_workspace_bytes_cuda(p);
    if (bytes > 0) p.workspace = task.workspace(bytes);
  }
#endif
  p.first_bad_index = ids_check(task, ids, num_embeddings);
  task.may_run_inline();
  task.enqueue([p] { kernels::embedding_backward_cpu(p); },
               [p](void* s) { LMK_CUDA_CALL(kernels::embedding_backward_cuda(p, s)); });
  return out;
}

}  // namespace lmk::ops
