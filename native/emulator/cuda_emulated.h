// The CUDA execution model for a host C++ compiler (LMK_CUDA=EMULATE, see
// docs/cuda.md "Emulated CUDA"). Every .cu file of the emulated build is
// compiled by g++ as C++ with this header included first (-include): the CUDA
// types and runtime declarations come from the real CUDA headers, the kernel
// keywords become plain C++, and the built-in variables, barriers, warp
// collectives and atomics below talk to the fiber scheduler
// (native/emulator/scheduler.cc), which runs each thread of a block as a fiber
// until it reaches a barrier or a warp collective.
//
// Shared memory: a static `__shared__` variable is a function-local `static`
// (one object for all blocks; blocks run one after another, so each block has
// it to itself, but it starts with whatever the previous block left there, as
// on hardware; ASan sees it as a global, so out-of-bounds accesses are caught).
// Dynamic shared memory (LMK_DYNAMIC_SHARED) is a buffer per launch, filled
// with 0xFF bytes (a NaN in every float format, -1 in every integer format)
// before each block, so reads of unwritten shared memory show up.
#pragma once
#if !defined(LMK_CUDA_EMULATED)
#error "native/emulator/cuda_emulated.h is for the emulated CUDA build only (LMK_CUDA_EMULATED)"
#endif

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

// ---- keywords ------------------------------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __launch_bounds__
// __noinline__ is left undefined: libstdc++ spells its own attribute
// __attribute__((__noinline__)), which CUDA's macro would break in headers
// included after this one (<mutex> in the NCCL collectives); no kernel uses it.
#undef __noinline__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __launch_bounds__(...)

namespace lmk::emulator {

// A place in the source, for diagnostics: where a thread waits.
struct Site {
  const char* file;
  int line;
};
#define LMK_EMU_SITE (::lmk::emulator::Site{__FILE__, __LINE__})

constexpr int kWarpSize = 32;

namespace detail {
// What a running CUDA thread sees; the scheduler points these at the current
// fiber and block (one launch at a time, see scheduler.cc).
struct ThreadView {
  uint3 thread_idx;
};
extern ThreadView* g_thread;
// Relaxed atomic: a plain load, and no data race for ThreadSanitizer (the
// scheduler rewrites it at every switch).
inline ThreadView* current_thread() { return __atomic_load_n(&g_thread, __ATOMIC_RELAXED); }
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;
extern unsigned char* g_dynamic_shared;

enum class WarpOp : uint8_t { Sync, Shfl, ShflUp, ShflDown, ShflXor, Ballot, Any, All };

void syncthreads(Site site);
// Waits until every lane of `mask` arrives at a warp collective of kind `op`
// and returns this lane's result: the shuffled value's bits for shuffles,
// the ballot of `value != 0` over `mask` for Ballot/Any/All, 0 for Sync.
uint64_t warp_collective(Site site, WarpOp op, unsigned mask, uint64_t value, int lane_arg, int width);
// Stops the block with a diagnostic naming the kernel, block and thread.
[[noreturn]] void fail_in_kernel(const char* what);

template <typename T>
uint64_t to_bits(T value) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move values of up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}
template <typename T>
T from_bits(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}
}  // namespace detail

inline void* dynamic_shared_memory() { return detail::g_dynamic_shared; }

// ---- barriers and warp collectives (32 lanes, CUDA's semantics) ------------------
inline void syncwarp(Site site, unsigned mask = 0xffffffffu) {
  detail::warp_collective(site, detail::WarpOp::Sync, mask, 0, 0, kWarpSize);
}
template <typename T>
T shfl_sync(Site site, unsigned mask, T var, int src_lane, int width = kWarpSize) {
  return detail::from_bits<T>(
      detail::warp_collective(site, detail::WarpOp::Shfl, mask, detail::to_bits(var), src_lane, width));
}
template <typename T>
T shfl_up_sync(Site site, unsigned mask, T var, unsigned delta, int width = kWarpSize) {
  return detail::from_bits<T>(detail::warp_collective(site, detail::WarpOp::ShflUp, mask, detail::to_bits(var),
                                                      static_cast<int>(delta), width));
}
template <typename T>
T shfl_down_sync(Site site, unsigned mask, T var, unsigned delta, int width = kWarpSize) {
  return detail::from_bits<T>(detail::warp_collective(site, detail::WarpOp::ShflDown, mask, detail::to_bits(var),
                                                      static_cast<int>(delta), width));
}
template <typename T>
T shfl_xor_sync(Site site, unsigned mask, T var, int lane_mask, int width = kWarpSize) {
  return detail::from_bits<T>(
      detail::warp_collective(site, detail::WarpOp::ShflXor, mask, detail::to_bits(var), lane_mask, width));
}
inline unsigned ballot_sync(Site site, unsigned mask, int predicate) {
  return static_cast<unsigned>(
      detail::warp_collective(site, detail::WarpOp::Ballot, mask, predicate != 0, 0, kWarpSize));
}
inline int any_sync(Site site, unsigned mask, int predicate) {
  return detail::warp_collective(site, detail::WarpOp::Any, mask, predicate != 0, 0, kWarpSize) != 0;
}
inline int all_sync(Site site, unsigned mask, int predicate) {
  return detail::warp_collective(site, detail::WarpOp::All, mask, predicate != 0, 0, kWarpSize) == mask;
}

// ---- atomics: relaxed read-modify-writes (fibers never preempt each other,
// but ThreadSanitizer must see them as atomic) ----------------------------------
template <typename T>
T atomic_add(T* address, T value) {
  if constexpr (std::is_integral_v<T>) {
    return __atomic_fetch_add(address, value, __ATOMIC_RELAXED);
  } else {
    // Floating point: a compare-and-swap loop on the bits, as CUDA documents it.
    T old;
    __atomic_load(address, &old, __ATOMIC_RELAXED);
    for (;;) {
      T next = old + value;
      if (__atomic_compare_exchange(address, &old, &next, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return old;
    }
  }
}
template <typename T>
T atomic_update(T* address, T value, bool take_min) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  for (;;) {
    T next = take_min ? (value < old ? value : old) : (value > old ? value : old);
    if (__atomic_compare_exchange_n(address, &old, next, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return old;
  }
}

}  // namespace lmk::emulator

// ---- built-in variables --------------------------------------------------------------
#define threadIdx (static_cast<const uint3&>(::lmk::emulator::detail::current_thread()->thread_idx))
#define blockIdx (static_cast<const uint3&>(::lmk::emulator::detail::g_block_idx))
#define blockDim (static_cast<const dim3&>(::lmk::emulator::detail::g_block_dim))
#define gridDim (static_cast<const dim3&>(::lmk::emulator::detail::g_grid_dim))
static constexpr int warpSize = ::lmk::emulator::kWarpSize;

#define __syncthreads() ::lmk::emulator::detail::syncthreads(LMK_EMU_SITE)
#define __syncwarp(...) ::lmk::emulator::syncwarp(LMK_EMU_SITE, ##__VA_ARGS__)
#define __shfl_sync(...) ::lmk::emulator::shfl_sync(LMK_EMU_SITE, __VA_ARGS__)
#define __shfl_up_sync(...) ::lmk::emulator::shfl_up_sync(LMK_EMU_SITE, __VA_ARGS__)
#define __shfl_down_sync(...) ::lmk::emulator::shfl_down_sync(LMK_EMU_SITE, __VA_ARGS__)
#define __shfl_xor_sync(...) ::lmk::emulator::shfl_xor_sync(LMK_EMU_SITE, __VA_ARGS__)
#define __ballot_sync(mask, predicate) ::lmk::emulator::ballot_sync(LMK_EMU_SITE, mask, predicate)
#define __any_sync(mask, predicate) ::lmk::emulator::any_sync(LMK_EMU_SITE, mask, predicate)
#define __all_sync(mask, predicate) ::lmk::emulator::all_sync(LMK_EMU_SITE, mask, predicate)
// One address space and one OS thread: fences order nothing the scheduler
// does not already order (weak-memory bugs are out of the emulator's sight).
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] inline void __trap() { ::lmk::emulator::detail::fail_in_kernel("__trap() was called"); }
template <typename T>
inline T __ldg(const T* address) {
  return *address;
}

// ---- CUDA-only math: the host's correctly rounded functions (GPU numerics
// such as rsqrtf's 2 ulp are out of the emulator's sight) -----------------------------
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }

// The runtime's typed overload (cuda_runtime.h has it for nvcc only).
template <typename... KernelArgs>
cudaError_t cudaFuncSetAttribute(void (*kernel)(KernelArgs...), cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

// ---- reinterpreting intrinsics ------------------------------------------------------------
inline float __int_as_float(int x) { return ::lmk::emulator::detail::from_bits<float>(static_cast<uint32_t>(x)); }
inline float __uint_as_float(unsigned x) { return ::lmk::emulator::detail::from_bits<float>(x); }
inline int __float_as_int(float x) { return static_cast<int>(::lmk::emulator::detail::to_bits(x)); }
inline unsigned __float_as_uint(float x) { return static_cast<unsigned>(::lmk::emulator::detail::to_bits(x)); }
inline double __longlong_as_double(long long x) { return ::lmk::emulator::detail::from_bits<double>(x); }
inline long long __double_as_longlong(double x) { return static_cast<long long>(::lmk::emulator::detail::to_bits(x)); }

// ---- atomics (the overloads CUDA has) --------------------------------------------------------
#define LMK_EMU_ATOMIC_ADD(T) \
  inline T atomicAdd(T* address, T value) { return ::lmk::emulator::atomic_add(address, value); }
LMK_EMU_ATOMIC_ADD(int)
LMK_EMU_ATOMIC_ADD(unsigned)
LMK_EMU_ATOMIC_ADD(unsigned long long)
LMK_EMU_ATOMIC_ADD(float)
LMK_EMU_ATOMIC_ADD(double)
#undef LMK_EMU_ATOMIC_ADD
#define LMK_EMU_ATOMIC_MIN_MAX(T)                                                                            \
  inline T atomicMin(T* address, T value) { return ::lmk::emulator::atomic_update(address, value, true); }   \
  inline T atomicMax(T* address, T value) { return ::lmk::emulator::atomic_update(address, value, false); }  \
  inline T atomicExch(T* address, T value) { return __atomic_exchange_n(address, value, __ATOMIC_RELAXED); } \
  inline T atomicCAS(T* address, T compare, T value) {                                                       \
    __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);        \
    return compare;                                                                                          \
  }
LMK_EMU_ATOMIC_MIN_MAX(int)
LMK_EMU_ATOMIC_MIN_MAX(unsigned)
LMK_EMU_ATOMIC_MIN_MAX(long long)
LMK_EMU_ATOMIC_MIN_MAX(unsigned long long)
#undef LMK_EMU_ATOMIC_MIN_MAX
inline float atomicExch(float* address, float value) {
  float old;
  __atomic_exchange(address, &value, &old, __ATOMIC_RELAXED);
  return old;
}

// Dynamic shared memory of the running block (the launch's shared_bytes).
#define LMK_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(::lmk::emulator::dynamic_shared_memory())
