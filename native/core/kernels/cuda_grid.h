// Grid size of the CUDA kernels that walk n items with a grid-stride loop in
// blocks of kGridThreads threads: one item per thread up to kGridMaxBlocks
// blocks (beyond that each thread loops), and at least one block. Host code.
#pragma once
#include <cstdint>

namespace lmk::kernels {

constexpr int kGridThreads = 256;
constexpr int64_t kGridMaxBlocks = 65535 * 8;

inline unsigned grid_for(int64_t n) {
  int64_t blocks = (n + kGridThreads - 1) / kGridThreads;
  return static_cast<unsigned>(blocks < kGridMaxBlocks ? (blocks > 0 ? blocks : 1) : kGridMaxBlocks);
}

}  // namespace lmk::kernels
