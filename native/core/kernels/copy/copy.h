// Element-wise dtype conversion within one device (contiguous buffers).
#pragma once
#include <cstdint>

#include "runtime/dtype.h"

namespace lmk::kernels {

void convert_cpu(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);
void convert_cuda(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n, void* stream);

}  // namespace lmk::kernels
