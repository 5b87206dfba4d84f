#include "tensor_handle.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace lmk::addon {
namespace {

constexpr double kSlotsPerGeneration = 4294967296.0;    // 2^32
constexpr uint32_t kMaxGeneration = uint32_t(1) << 20;  // generation · 2^32 stays below 2^53
constexpr size_t kFirstMetaSlots = 1024;
// V8 hears of CPU memory in steps of this much, not tensor by tensor.
constexpr int64_t kExternalReportBytes = 1 << 20;

}  // namespace

double TensorTable::add(Napi::Env env, Tensor tensor) {
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back();
  }
  if (slot >= meta_slots_) {
    size_t slots = std::max(kFirstMetaSlots, meta_slots_ * 2);
    auto buffer = Napi::ArrayBuffer::New(env, slots * kMetaStride * sizeof(double));
    auto* data = static_cast<double*>(buffer.Data());
    if (meta_slots_) std::memcpy(data, meta_data_, meta_slots_ * kMetaStride * sizeof(double));
    meta_ = Napi::Persistent(buffer);
    meta_data_ = data;
    meta_slots_ = slots;
  }
  Entry& entry = entries_[slot];
  double* meta = meta_data_ + static_cast<size_t>(slot) * kMetaStride;
  meta[0] = static_cast<double>(static_cast<int32_t>(tensor.dtype));
  meta[1] = tensor.device().is_cpu() ? -1.0 : static_cast<double>(tensor.device().index);
  meta[2] = static_cast<double>(tensor.shape.size());
  for (size_t i = 0; i < tensor.shape.size() && i < static_cast<size_t>(kMetaDims); ++i) {
    meta[3 + i] = static_cast<double>(tensor.shape[i]);
  }
  if (tensor.device().is_cpu()) report_external(env, static_cast<int64_t>(tensor.nbytes()));
  entry.tensor = std::move(tensor);
  entry.live = true;
  ++live_;
  return static_cast<double>(entry.generation) * kSlotsPerGeneration + slot;
}

const Tensor* TensorTable::find(double handle) const {
  if (!(handle >= kSlotsPerGeneration) || handle != std::floor(handle)) return nullptr;
  double generation = std::floor(handle / kSlotsPerGeneration);
  double slot = handle - generation * kSlotsPerGeneration;
  if (slot >= static_cast<double>(entries_.size())) return nullptr;
  const Entry& entry = entries_[static_cast<size_t>(slot)];
  if (!entry.live || entry.generation != generation) return nullptr;
  return &entry.tensor;
}

void TensorTable::release(Napi::Env env, double handle) {
  if (find(handle) == nullptr) return;
  auto slot = static_cast<uint32_t>(handle - std::floor(handle / kSlotsPerGeneration) * kSlotsPerGeneration);
  Entry& entry = entries_[slot];
  if (entry.tensor.device().is_cpu()) report_external(env, -static_cast<int64_t>(entry.tensor.nbytes()));
  entry.tensor = Tensor{};
  entry.live = false;
  --live_;
  // A slot whose generations ran out is retired, so no handle is ever reused.
  if (++entry.generation < kMaxGeneration) free_.push_back(slot);
}

Napi::ArrayBuffer TensorTable::meta_buffer(Napi::Env env) {
  if (meta_.IsEmpty()) {
    auto buffer = Napi::ArrayBuffer::New(env, kFirstMetaSlots * kMetaStride * sizeof(double));
    meta_ = Napi::Persistent(buffer);
    meta_data_ = static_cast<double*>(buffer.Data());
    meta_slots_ = kFirstMetaSlots;
  }
  return meta_.Value();
}

void TensorTable::report_external(Napi::Env env, int64_t bytes) {
  unreported_bytes_ += bytes;
  if (std::llabs(unreported_bytes_) < kExternalReportBytes) return;
  Napi::MemoryManagement::AdjustExternalMemory(env, unreported_bytes_);
  unreported_bytes_ = 0;
}

}  // namespace lmk::addon
