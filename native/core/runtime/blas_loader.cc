#include "runtime/blas_loader.h"

#include <mutex>

#include "runtime/dynamic_library.h"
#include "runtime/thread_pool.h"

namespace lmk::blas {

const OpenBlas* openblas() {
  static OpenBlas library;
  static const OpenBlas* result = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    DynamicLibrary lib = DynamicLibrary::open_first({"libopenblas.so.0", "libopenblas.so"});
    if (!lib || !lib.find("cblas_sgemm", &library.sgemm) || !lib.find("cblas_dgemm", &library.dgemm)) return;
    library.library = lib.name();
    void (*set_num_threads)(int) = nullptr;
    if (lib.find("openblas_set_num_threads", &set_num_threads)) set_num_threads(thread_pool_size());
    char* (*get_config)() = nullptr;
    if (lib.find("openblas_get_config", &get_config)) {
      if (const char* config = get_config()) library.config = config;
    }
    lib.keep_forever();
    result = &library;
  });
  return result;
}

const Cublas* cublas() {
  static Cublas library;
  static const Cublas* result = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    DynamicLibrary lib = DynamicLibrary::open_first({"libcublas.so.13", "libcublas.so.12", "libcublas.so"});
    if (!lib || !lib.find("cublasCreate_v2", &library.create) || !lib.find("cublasDestroy_v2", &library.destroy) ||
        !lib.find("cublasSetStream_v2", &library.set_stream) ||
        !lib.find("cublasGemmStridedBatchedEx", &library.gemm_strided_batched_ex)) {
      return;
    }
    library.library = lib.name();
    lib.keep_forever();
    result = &library;
  });
  return result;
}

}  // namespace lmk::blas
