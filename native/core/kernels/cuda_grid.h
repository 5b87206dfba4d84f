// Grid sizes of the CUDA kernels whose blocks loop: grid-stride loops over
// items, or blocks that walk several rows (`for (r = blockIdx.x; r < rows;
// r += gridDim.x)`). Such a kernel is correct for any grid size >= 1, so the
// grid is capped (kernels get their parallelism from the first blocks, the
// rest loop), and a test may cap it further (test_grid_cap, kernels/test_hooks.h)
// to make blocks loop at small test shapes. Host code.
#pragma once
#include <cstdint>

#include "kernels/test_hooks.h"

namespace lmk::kernels {

constexpr int kGridThreads = 256;
constexpr int64_t kGridMaxBlocks = 65535 * 8;

// `blocks` (the count that gives every item or row its own thread or block)
// limited to max_blocks and to the test cap, and at least 1.
inline unsigned looping_grid(int64_t blocks, int64_t max_blocks) {
  if (blocks > max_blocks) blocks = max_blocks;
  const int cap = test_grid_cap();
  if (cap > 0 && blocks > cap) blocks = cap;
  return static_cast<unsigned>(blocks > 0 ? blocks : 1);
}

// n items walked by a grid-stride loop in blocks of kGridThreads threads: one
// item per thread up to kGridMaxBlocks blocks.
inline unsigned grid_for(int64_t n) { return looping_grid((n + kGridThreads - 1) / kGridThreads, kGridMaxBlocks); }

}  // namespace lmk::kernels
