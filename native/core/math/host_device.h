// Marks scalar code shared by the CPU and CUDA kernels. Always inlined, on the
// host as on CUDA: these helpers sit in the hot loops, which are compiled once
// per instruction-set level (kernels/cpu_dispatch.h); an out-of-line copy
// would be compiled for the baseline level only, called per element, and keep
// the loop from vectorising (GCC's size heuristics do stop inlining, e.g. the
// wkv4 step into the backward's replay loop).
#pragma once
#if defined(__CUDACC__)
#define LMK_HOST_DEVICE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define LMK_HOST_DEVICE inline __attribute__((always_inline))
#else
#define LMK_HOST_DEVICE inline
#endif
