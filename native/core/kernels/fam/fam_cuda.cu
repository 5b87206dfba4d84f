// TransformerFAM attention on CUDA: picks the tiled kernels for the head dim
// (64, 128, or the generic path for any D <= 256) when their shared memory
// fits the device, else the simple kernels (fam_cuda_reference.cu), which
// tests also select (KernelVariant::Reference, kernels/test_hooks.h).
#include <cuda_runtime.h>

#include <mutex>

#include "kernels/fam/fam.h"
#include "kernels/fam/fam_cuda_tiled.cuh"
#include "kernels/test_hooks.h"
#include "runtime/cuda_check.h"

namespace lmk::kernels {
namespace {

// Opt-in shared memory per block of the current device, queried once per device.
size_t shared_memory_limit() {
  constexpr int kMaxDevices = 64;
  static size_t limits[kMaxDevices] = {};
  static std::mutex mutex;
  int device = 0;
  cuda_check(cudaGetDevice(&device), "fam");
  std::lock_guard<std::mutex> lock(mutex);
  if (device < 0 || device >= kMaxDevices) return 48 * 1024;
  if (limits[device] == 0) {
    int value = 0;
    cuda_check(cudaDeviceGetAttribute(&value, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "fam");
    limits[device] = value > 0 ? static_cast<size_t>(value) : 48 * 1024;
  }
  return limits[device];
}

bool run_tiled(const FamParams& p, cudaStream_t stream, bool backward) {
  const size_t limit = shared_memory_limit();
  if (p.head_dim == 64 && fam_cuda::fam_tiled_d64(p, stream, backward, limit)) return true;
  if (p.head_dim == 128 && fam_cuda::fam_tiled_d128(p, stream, backward, limit)) return true;
  return fam_cuda::fam_tiled_generic(p, stream, backward, limit);
}

bool reference_wanted() { return test_kernel_variant(KernelFamily::Fam) == KernelVariant::Reference; }

}  // namespace

void fam_forward_cuda(const FamParams& p, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  if (reference_wanted() || !run_tiled(p, s, false)) fam_forward_cuda_reference(p, stream);
}

void fam_backward_cuda(const FamParams& p, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  if (reference_wanted() || !run_tiled(p, s, true)) fam_backward_cuda_reference(p, stream);
}

}  // namespace lmk::kernels
