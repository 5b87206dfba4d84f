// lmk::emulator::launch: the emulated form of `kernel<<<grid, block,
// shared_bytes, stream>>>(args...)` (kernels/cuda_launch.cuh calls it when
// LMK_CUDA_EMULATED is defined). It runs the whole grid before returning, on
// the calling thread; a bad configuration or a failed diagnostic is reported
// through cudaGetLastError, as CUDA reports launch errors.
#pragma once
#include <tuple>
#include <type_traits>
#include <utility>

#include "emulator/cuda_emulated.h"

namespace lmk::emulator {

struct KernelLaunch {
  const void* kernel;  // identifies the kernel: its name, limits, statistics
  dim3 grid;
  dim3 block;
  size_t shared_bytes;
  cudaStream_t stream;
  void (*invoke)(const void* context);  // runs the kernel body for the current thread
  const void* context;
};

// Runs every block of the launch (scheduler.cc).
void run_launch(const KernelLaunch& launch);

template <typename... KernelArgs, typename... Args>
void launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            Args&&... args) {
  static_assert(sizeof...(KernelArgs) == sizeof...(Args), "launch: wrong number of kernel arguments");
  // The parameters are copied once, as CUDA copies them to the device; each
  // thread then gets its own copy (the kernel takes them by value).
  using Parameters = std::tuple<std::decay_t<KernelArgs>...>;
  struct Context {
    void (*kernel)(KernelArgs...);
    Parameters parameters;
  };
  const Context context{kernel, Parameters(std::forward<Args>(args)...)};
  KernelLaunch spec{reinterpret_cast<const void*>(kernel),
                    grid,
                    block,
                    shared_bytes,
                    stream,
                    [](const void* c) {
                      const auto* self = static_cast<const Context*>(c);
                      std::apply(self->kernel, self->parameters);
                    },
                    &context};
  run_launch(spec);
}

}  // namespace lmk::emulator
