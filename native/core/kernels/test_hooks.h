// Test-only switches of the kernels (docs/cuda.md, "Test hooks"). Not part of
// the public API: no binding sets them; the C++ tests and benchmarks do.
//
//   grid cap        caps the blocks of every launch whose blocks loop
//                   (grid-stride loops, several rows or items per block), so
//                   small test shapes make blocks loop too (kernels/cuda_grid.h)
//   kernel variant  which version of a kernel family runs (e.g. the simple
//                   reference kernels beside the fast ones)
//
// Both are process-wide and read when a kernel is launched on the device's
// stream: change them only while no work is queued (synchronize first, and
// before a scoped guard ends). Host code, also compiled by nvcc.
#pragma once

namespace lmk::kernels {

// Blocks at most per looping launch; 0 = no cap. Read once from the
// environment variable LMK_TEST_GRID_CAP unless set_test_grid_cap came first.
int test_grid_cap();
void set_test_grid_cap(int blocks);

enum class KernelFamily {
  Fam,          // fam attention on CUDA: Default (tiled when it fits) | Reference
  Losses,       // cross-entropy rows on CUDA: Default | Reference
  Matmul,       // builtin GEMM on CUDA: Default (tiled, or the library) | Reference
  Wkv4Forward,  // wkv4 forward on CUDA: Default (by shape) | Serial | Chunked
};
constexpr int kKernelFamilies = 4;

enum class KernelVariant {
  Default,    // what users get
  Reference,  // the simple, obviously correct kernel (one thread per output or row)
  Serial,     // wkv4: one thread per (b, c) walking all of T
  Chunked,    // wkv4: T split into chunks combined by a scan
};

// Throws a TypeError when the family has no such variant.
void set_test_kernel_variant(KernelFamily family, KernelVariant variant);
KernelVariant test_kernel_variant(KernelFamily family);

// For C++ tests: set for a scope, restored after (synchronize before it ends).
class ScopedKernelVariant {
 public:
  ScopedKernelVariant(KernelFamily family, KernelVariant variant)
      : family_(family), previous_(test_kernel_variant(family)) {
    set_test_kernel_variant(family, variant);
  }
  ~ScopedKernelVariant() { set_test_kernel_variant(family_, previous_); }
  ScopedKernelVariant(const ScopedKernelVariant&) = delete;
  ScopedKernelVariant& operator=(const ScopedKernelVariant&) = delete;

 private:
  KernelFamily family_;
  KernelVariant previous_;
};

class ScopedGridCap {
 public:
  explicit ScopedGridCap(int blocks) : previous_(test_grid_cap()) { set_test_grid_cap(blocks); }
  ~ScopedGridCap() { set_test_grid_cap(previous_); }
  ScopedGridCap(const ScopedGridCap&) = delete;
  ScopedGridCap& operator=(const ScopedGridCap&) = delete;

 private:
  int previous_;
};

}  // namespace lmk::kernels
