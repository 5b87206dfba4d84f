#include "ops/embedding.h"

#include <algorithm>

#include "kernels/embedding/embedding.h"
#include "ops/dense_checks.h"
#include "ops/tensor_ops.h"
#include "runtime/cuda_call.h"
#include "runtime/stream.h"

namespace lmk::ops {
namespace {

ValueCheck ids_check(const Tensor& ids, int64_t V, const char* fn, const Tensor& output) {
  std::string fn_name = fn;
  Shape shape = ids.shape;
  return stream_for(ids.device())
      .add_value_check(ErrorKind::Range,
                       [=](int64_t index) {
                         return lmk::concat(fn_name, ": ids has a value outside [0, ", V, ") at flat index ", index,
                                            " (shape ", shape_string(shape), ")");
                       },
                       {output.storage});
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const char* fn = "ops.embedding";
  dense::check_float(weight, fn, "weight");
  dense::check_int32(ids, weight.device(), fn, "ids", "weight");
  if (weight.shape.size() != 2)
    throw_range_error(fn, ": weight must have shape [V,D], got ", shape_string(weight.shape));
  const int64_t V = weight.shape[0], D = weight.shape[1];
  Shape shape = ids.shape;
  shape.push_back(D);
  Tensor out = empty(shape, weight.dtype, weight.device(), fn);
  kernels::EmbeddingParams p;
  p.dtype = weight.dtype;
  p.n = ids.numel();
  p.V = V;
  p.D = D;
  p.ids = ids.data_as<int32_t>();
  p.weight = weight.data();
  p.out = out.data();
  p.first_bad_index = ids_check(ids, V, fn, out).first_bad_index;
  dense::launch(
      fn, weight.device(), [p] { kernels::embedding_forward_cpu(p); },
      [p](void* s) { LMK_CUDA_CALL(kernels::embedding_forward_cuda(p, s)); }, dense::storages({&weight, &ids, &out}),
      dense::storages({&out}));
  return out;
}

Tensor embedding_backward(const Tensor& gout, const Tensor& ids, int64_t num_embeddings) {
  const char* fn = "ops.embeddingBackward";
  dense::check_float(gout, fn, "gOut");
  dense::check_int32(ids, gout.device(), fn, "ids", "gOut");
  if (num_embeddings < 0) throw_range_error(fn, ": numEmbeddings must be >= 0, got ", num_embeddings);
  if (gout.shape.size() != ids.shape.size() + 1 ||
      !std::equal(ids.shape.begin(), ids.shape.end(), gout.shape.begin())) {
    throw_range_error(fn, ": gOut must have shape [...ids.shape, D] with ids ", shape_string(ids.shape), ", got ",
                      shape_string(gout.shape));
  }
  const int64_t D = gout.shape.back();
  Tensor out = empty({num_embeddings, D}, gout.dtype, gout.device(), fn);
  kernels::EmbeddingParams p;
  p.dtype = gout.dtype;
  p.n = ids.numel();
  p.V = num_embeddings;
  p.D = D;
  p.ids = ids.data_as<int32_t>();
  p.gout = gout.data();
  p.gweight = out.data();
  Tensor workspace;
#ifdef LMK_WITH_CUDA
  if (gout.device().is_cuda()) {
    size_t bytes = kernels::embedding_backward_workspace_bytes_cuda(p);
    if (bytes > 0) {
      workspace = empty({static_cast<int64_t>(bytes / 4)}, DType::Float32, gout.device(), fn);
      p.workspace = workspace.data();
    }
  }
#endif
  p.first_bad_index = ids_check(ids, num_embeddings, fn, out).first_bad_index;
  dense::launch(
      fn, gout.device(), [p] { kernels::embedding_backward_cpu(p); },
      [p](void* s) { LMK_CUDA_CALL(kernels::embedding_backward_cuda(p, s)); },
      dense::storages({&gout, &ids, &out, &workspace}), dense::storages({&out}));
  return out;
}

}  // namespace lmk::ops
