// JS tensor handles. A handle is a number naming an entry of its
// environment's tensor table, which owns one reference to a core tensor:
//   handle = generation · 2^32 + slot   (generation ≥ 1, so never 0)
// release() drops the reference at once (dispose) and bumps the slot's
// generation, so a stale handle reads as disposed and never as the slot's
// next tensor. The JS Tensor registers its handle with a FinalizationRegistry
// that releases it when the GC collects an undisposed tensor (the safety net).
//
// Each entry's dtype, device and shape are also written into a Float64Array
// that JS reads when it wraps a handle (lib/tensor.ts), so a result reaches
// JS as one number instead of an object with four properties:
//   meta[slot·kMetaStride + 0]  dtype (the DType's value)
//   meta[slot·kMetaStride + 1]  device: -1 for the CPU, else the CUDA index
//   meta[slot·kMetaStride + 2]  rank
//   meta[slot·kMetaStride + 3 + i]  shape[i] for i < kMetaDims (a larger rank:
//                                   JS asks tensorShape(handle))
// Made by wrap_tensor and read by tensor_arg (js_convert.h); JS thread only.
#pragma once
#include <napi.h>

#include <cstdint>
#include <deque>
#include <vector>

#include "runtime/tensor.h"

namespace lmk::addon {

class TensorTable {
 public:
  static constexpr int kMetaStride = 16;
  static constexpr int kMetaDims = kMetaStride - 3;

  // A new handle owning `tensor`, its metadata written.
  double add(Napi::Env env, Tensor tensor);
  // The tensor behind a live handle; nullptr for a released or unknown one.
  const Tensor* find(double handle) const;
  // Drops the handle's reference (idempotent; unknown handles are ignored).
  void release(Napi::Env env, double handle);

  int64_t live() const { return live_; }
  // The metadata array (replaced by a larger one as the table grows).
  Napi::ArrayBuffer meta_buffer(Napi::Env env);

 private:
  struct Entry {
    Tensor tensor;
    uint32_t generation = 1;
    bool live = false;
  };
  void report_external(Napi::Env env, int64_t bytes);

  std::deque<Entry> entries_;  // a deque: references stay valid as it grows
  std::vector<uint32_t> free_;
  int64_t live_ = 0;
  Napi::Reference<Napi::ArrayBuffer> meta_;
  double* meta_data_ = nullptr;
  size_t meta_slots_ = 0;
  int64_t unreported_bytes_ = 0;  // CPU bytes not yet told to V8 (in batches)
};

}  // namespace lmk::addon
