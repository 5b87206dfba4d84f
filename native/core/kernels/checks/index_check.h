// Finds int32 values outside [0, limit) in a buffer and records the smallest
// offending flat index into a value-check word (runtime/stream.h): the kernel
// side of "errors that depend on tensor values are found without a host round trip".
#pragma once
#include <atomic>
#include <cstdint>

namespace lmk::kernels {

// CPU kernels: lowers `first` to `index` if that is smaller (the threads of a
// parallel loop report their offending indices; the smallest one wins).
inline void record_first_bad_index(std::atomic<int64_t>& first, int64_t index) {
  int64_t seen = first.load();
  while (index < seen && !first.compare_exchange_weak(seen, index)) {
  }
}

void index_check_cpu(const int32_t* values, int64_t n, int64_t limit, int64_t* first_bad_index);
void index_check_cuda(const int32_t* values, int64_t n, int64_t limit, int64_t* first_bad_index, void* stream);

}  // namespace lmk::kernels
