#include "runtime/blas_loader.h"

#include <dlfcn.h>

#include <mutex>

#include "runtime/thread_pool.h"

namespace lmk::blas {
namespace {

void* open_first(std::initializer_list<const char*> names, std::string* loaded) {
  for (const char* name : names) {
    // RTLD_LOCAL: the library's symbols stay out of the global namespace.
    if (void* handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)) {
      *loaded = name;
      return handle;
    }
  }
  return nullptr;
}

template <typename Fn>
bool find(void* handle, const char* name, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(handle, name));
  return *out != nullptr;
}

}  // namespace

const OpenBlas* openblas() {
  static OpenBlas library;
  static const OpenBlas* result = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* handle = open_first({"libopenblas.so.0", "libopenblas.so"}, &library.library);
    if (!handle) return;
    if (!find(handle, "cblas_sgemm", &library.sgemm) || !find(handle, "cblas_dgemm", &library.dgemm)) {
      dlclose(handle);
      return;
    }
    void (*set_num_threads)(int) = nullptr;
    if (find(handle, "openblas_set_num_threads", &set_num_threads)) set_num_threads(thread_pool_size());
    char* (*get_config)() = nullptr;
    if (find(handle, "openblas_get_config", &get_config)) {
      if (const char* config = get_config()) library.config = config;
    }
    result = &library;  // the handle stays open for the life of the process
  });
  return result;
}

const Cublas* cublas() {
  static Cublas library;
  static const Cublas* result = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(LMK_CUDA_EMULATED)
    // The emulated device's memory is host memory: a real cuBLAS cannot use it.
    return;
#endif
    void* handle = open_first({"libcublas.so.13", "libcublas.so.12", "libcublas.so"}, &library.library);
    if (!handle) return;
    if (!find(handle, "cublasCreate_v2", &library.create) || !find(handle, "cublasDestroy_v2", &library.destroy) ||
        !find(handle, "cublasSetStream_v2", &library.set_stream) ||
        !find(handle, "cublasGemmStridedBatchedEx", &library.gemm_strided_batched_ex)) {
      dlclose(handle);
      return;
    }
    result = &library;
  });
  return result;
}

}  // namespace lmk::blas
