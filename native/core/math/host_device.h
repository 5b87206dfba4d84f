// Marks scalar code shared by the CPU and CUDA kernels.
#pragma once
#if defined(__CUDACC__)
#define LMK_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LMK_HOST_DEVICE inline
#endif
