// Run-time instruction-set dispatch for the CPU kernels' hot loops: the one
// spelling every kernel (and bench) uses. Never -march=native: the library
// binary runs on any x86-64, and each hot function is compiled for three
// levels of the x86-64 psABI:
//   x86-64-v4  AVX-512 F/BW/CD/DQ/VL, plus everything in v3
//   x86-64-v3  AVX2, FMA, BMI1/2, F16C
//   baseline   x86-64 (SSE2)
// The levels include FMA from v3 up, so the explicit fused multiply-adds of
// math/ (fmaf, one rounding) are single instructions there; the value is the
// same on every level (fmaf is correctly rounded everywhere).
//
// LMK_CPU_CLONES on a function: GCC compiles it once per level and the loader
// picks the clone for the running CPU (target_clones). Put it on small
// non-template entry points whose hot loops are templates inlined into them
// (LMK_ALWAYS_INLINE): a template or lambda called from a clone is compiled
// once, for the baseline, unless it is inlined. Off under AddressSanitizer and
// ThreadSanitizer (the ifunc resolvers would run before the sanitizer's runtime is
// set up; one level also builds faster) and off other targets.
//
// Code that must differ between levels by more than the instruction set (the
// GEMM micro-kernel's tile shape) marks one function per level with
// LMK_CPU_TARGET_V4 / LMK_CPU_TARGET_V3 and picks one by cpu_isa_level(),
// which tests the same levels as the clones' resolver.
#pragma once

#if defined(__GNUC__) && defined(__x86_64__)
#define LMK_CPU_TARGETS_X86 1
#else
#define LMK_CPU_TARGETS_X86 0
#endif

#if LMK_CPU_TARGETS_X86 && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define LMK_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LMK_CPU_CLONES
#endif

#if LMK_CPU_TARGETS_X86
#define LMK_CPU_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define LMK_CPU_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#endif

#if defined(__GNUC__)
#define LMK_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define LMK_ALWAYS_INLINE inline
#endif

namespace lmk::kernels {

// 2 on an x86-64-v4 CPU, 1 on x86-64-v3, 0 otherwise (also off x86-64).
inline int cpu_isa_level() {
#if LMK_CPU_TARGETS_X86
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 2;
    if (__builtin_cpu_supports("x86-64-v3")) return 1;
    return 0;
  }();
  return level;
#else
  return 0;
#endif
}

}  // namespace lmk::kernels
