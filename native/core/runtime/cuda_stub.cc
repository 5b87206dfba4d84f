// Built when CUDA is not compiled in: every CUDA entry point reports why.
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/storage.h"
#include "runtime/stream.h"

namespace lmk {

const CudaInfo& cuda_info() {
  static const CudaInfo info = [] {
    CudaInfo i;
    i.compiled = false;
    i.available = false;
    i.reason = "lmkernels was built without CUDA (no CUDA compiler was found, or LMK_CUDA=OFF)";
    return i;
  }();
  return info;
}

Stream& cuda_stream(int) { throw_type_error("cuda: lmkernels was built without CUDA"); }
void* cuda_stream_handle(int) { throw_type_error("cuda: lmkernels was built without CUDA"); }
void* cuda_pool_allocate(int, size_t) { throw_type_error("cuda: lmkernels was built without CUDA"); }
void cuda_pool_release(int, void*, size_t) {}
MemoryStats cuda_pool_stats(int) { return {}; }
void cuda_pool_empty_cache() {}
uint64_t cuda_free_memory(int) { return 0; }

}  // namespace lmk
