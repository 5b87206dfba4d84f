#include "runtime/blas_loader.h"

#include "runtime/dynamic_library.h"
#include "runtime/thread_pool.h"

namespace lmk::blas {

const OpenBlas* openblas() {
  return load_once<OpenBlas>(nullptr, [](OpenBlas& library, std::string*) {
#if defined(__SANITIZE_THREAD__)
    // OpenBLAS's worker threads are not instrumented, so ThreadSanitizer cannot
    // see their synchronisation and reports every GEMM output as a race. The
    // ThreadSanitizer build checks our own kernels, the built-in GEMM included.
    return false;
#endif
    DynamicLibrary lib = DynamicLibrary::open_first({"libopenblas.so.0", "libopenblas.so"});
    if (!lib || !lib.find("cblas_sgemm", &library.sgemm) || !lib.find("cblas_dgemm", &library.dgemm)) return false;
    library.library = lib.name();
    void (*set_num_threads)(int) = nullptr;
    if (lib.find("openblas_set_num_threads", &set_num_threads)) set_num_threads(thread_pool_size());
    char* (*get_config)() = nullptr;
    if (lib.find("openblas_get_config", &get_config)) {
      if (const char* config = get_config()) library.config = config;
    }
    lib.keep_forever();
    return true;
  });
}

const Cublas* cublas() {
  return load_once<Cublas>(nullptr, [](Cublas& library, std::string*) {
#if defined(LMK_CUDA_EMULATED)
    // The emulated device's memory is host memory: a real cuBLAS cannot use it.
    return false;
#endif
    DynamicLibrary lib = DynamicLibrary::open_first({"libcublas.so.13", "libcublas.so.12", "libcublas.so"});
    if (!lib || !lib.find("cublasCreate_v2", &library.create) || !lib.find("cublasDestroy_v2", &library.destroy) ||
        !lib.find("cublasSetStream_v2", &library.set_stream) ||
        !lib.find("cublasGemmStridedBatchedEx", &library.gemm_strided_batched_ex)) {
      return false;
    }
    library.library = lib.name();
    lib.keep_forever();
    return true;
  });
}

}  // namespace lmk::blas
