#include "ops/op_task.h"

#include <stdexcept>

#include "ops/tensor_ops.h"

namespace lmk::ops {

Tensor OpTask::output(const Shape& shape, DType dtype) {
  if (checked_) throw std::logic_error(fn_ + ": an output was declared after a value check");
  Tensor t = empty(shape, dtype, device_, fn_.c_str());
  uses_.push_back(t.storage);
  outputs_.push_back(t.storage);
  return t;
}

void OpTask::writes(const Tensor& t) {
  if (checked_) throw std::logic_error(fn_ + ": an output was declared after a value check");
  uses_.push_back(t.storage);
  outputs_.push_back(t.storage);
}

void OpTask::read(const Tensor& t) {
  if (t.storage) uses_.push_back(t.storage);
}

void OpTask::read(const std::optional<Tensor>& t) {
  if (t) read(*t);
}

void* OpTask::workspace(size_t bytes) {
  StoragePtr storage = Storage::allocate(device_, bytes, fn_.c_str());
  uses_.push_back(storage);
  return storage->data();
}

Placement compute_placement(size_t bytes) {
  return bytes <= OpTask::kInlineBytes ? Placement::InlineWhenIdle : Placement::Worker;
}

Placement OpTask::cpu_placement() const {
  if (!may_run_inline_) return Placement::Worker;
  size_t bytes = 0;
  for (const StoragePtr& s : uses_) bytes += s->bytes();
  return compute_placement(bytes);
}

int64_t* OpTask::value_check(ErrorKind kind, DescribeBadIndex describe) {
  checked_ = true;
  return stream_for(device_).add_value_check(kind, std::move(describe), outputs_).first_bad_index;
}

}  // namespace lmk::ops
