// Finds int32 values outside [0, limit) in a buffer and records the smallest
// offending flat index into a value-check word (runtime/stream.h): the kernel
// side of "errors that depend on tensor values are found without a host round trip".
#pragma once
#include <cstdint>

namespace lmk::kernels {

void index_check_cpu(const int32_t* values, int64_t n, int64_t limit, int64_t* first_bad_index);
void index_check_cuda(const int32_t* values, int64_t n, int64_t limit, int64_t* first_bad_index, void* stream);

}  // namespace lmk::kernels
