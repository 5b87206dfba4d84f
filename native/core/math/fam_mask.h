// The TransformerFAM attention mask (docs/kernels.md#fam), shared
// by the CPU and CUDA kernels and their tests.
//
// Keys come in two kinds. FAM keys (famK[b, kvh, τ], F rows) are always all
// visible to the queries of block τ. Sequence keys (k, or blockK for the FAM
// update) are visible through a window [begin, end):
//
//   block attention (causal):  query t of block τ = ⌊t/L⌋ sees sequence keys
//       max(0, (τ−m)·L) .. t — the memory segment (previous m blocks, no mask)
//       followed by its own block up to itself (causal). The two parts of the
//       table in docs/kernels.md meet at τ·L, so one window covers both.
//   memory attention (not causal): every query (all in block 0) sees every
//       sequence key 0 .. key_count−1: no mask at all.
//
// Every query sees at least one key (itself when causal; the F FAM keys or the
// block keys otherwise, or there are no queries), so no softmax row is empty.
#pragma once
#include <cstdint>

#include "math/host_device.h"

namespace lmk {

struct FamMask {
  int64_t block_size = 1;     // L: queries (and sequence keys) per block; >= 1
  int64_t memory_blocks = 0;  // m: previous blocks in the memory segment; >= 0
  int64_t key_count = 0;      // sequence keys (T for block attention, L' for memory attention)
  bool causal = true;         // block attention; false: memory attention (no mask)
};

// Block τ of query (or sequence key) position t.
LMK_HOST_DEVICE int64_t fam_block_of(const FamMask& mask, int64_t t) { return t / mask.block_size; }

// First sequence key visible to the queries of block τ: start of the memory segment.
LMK_HOST_DEVICE int64_t fam_window_begin(const FamMask& mask, int64_t block) {
  if (!mask.causal) return 0;
  // Written so that a huge memory_blocks cannot overflow.
  return block > mask.memory_blocks ? (block - mask.memory_blocks) * mask.block_size : 0;
}

// One past the last sequence key visible to query t.
LMK_HOST_DEVICE int64_t fam_window_end(const FamMask& mask, int64_t t) { return mask.causal ? t + 1 : mask.key_count; }

LMK_HOST_DEVICE bool fam_key_visible(const FamMask& mask, int64_t t, int64_t j) {
  return j >= fam_window_begin(mask, fam_block_of(mask, t)) && j < fam_window_end(mask, t);
}

// Queries [*q_begin, *q_end) that may see some sequence key of [k0, k1)
// (k0 < k1): when causal, queries at or after k0 in blocks up to m after the
// block of the last key. Queries outside this range see none of these keys.
LMK_HOST_DEVICE void fam_queries_seeing(const FamMask& mask, int64_t query_count, int64_t k0, int64_t k1,
                                        int64_t* q_begin, int64_t* q_end) {
  if (!mask.causal) {
    *q_begin = 0;
    *q_end = query_count;
    return;
  }
  *q_begin = k0 < query_count ? k0 : query_count;
  int64_t last_block = fam_block_of(mask, k1 - 1);
  int64_t query_blocks = (query_count + mask.block_size - 1) / mask.block_size;
  // Blocks last_block .. last_block + m see the key; compare before multiplying (no overflow).
  if (query_blocks - last_block - 1 <= mask.memory_blocks) {
    *q_end = query_count;
  } else {
    *q_end = (last_block + mask.memory_blocks + 1) * mask.block_size;
  }
  if (*q_end < *q_begin) *q_end = *q_begin;
}

// How a tile of queries [q0, q1) — all in one block — meets a tile of sequence
// keys [k0, k1): none visible (skip), all visible (no per-element mask), or
// some (check fam_key_visible per element).
enum FamTileKind : int { kFamTileSkip = 0, kFamTileFull = 1, kFamTilePartial = 2 };

LMK_HOST_DEVICE int fam_tile_kind(const FamMask& mask, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
  int64_t begin = fam_window_begin(mask, fam_block_of(mask, q0));
  int64_t first_end = fam_window_end(mask, q0);  // the window end grows with t
  int64_t last_end = fam_window_end(mask, q1 - 1);
  if (k1 <= begin || k0 >= last_end) return kFamTileSkip;
  if (k0 >= begin && k1 <= first_end) return kFamTileFull;
  return kFamTilePartial;
}

// Query tiles: each block of L queries is cut into tiles of `tile` rows, so a
// tile never spans two blocks (its rows share the window start and the FAM).
// Tile index i is (block i / tiles_per_block, tile i % tiles_per_block); tiles
// past the end of a short last block are empty (q0 >= q1) and are skipped.
LMK_HOST_DEVICE int64_t fam_tiles_per_block(const FamMask& mask, int64_t query_count, int64_t tile) {
  int64_t rows = mask.block_size < query_count ? mask.block_size : query_count;
  return (rows + tile - 1) / tile;
}

LMK_HOST_DEVICE void fam_query_tile(const FamMask& mask, int64_t query_count, int64_t tile, int64_t tiles_per_block,
                                    int64_t index, int64_t* q0, int64_t* q1) {
  int64_t block = index / tiles_per_block;
  int64_t block_start = block * mask.block_size;
  int64_t block_end = block_start + mask.block_size < query_count ? block_start + mask.block_size : query_count;
  *q0 = block_start + (index % tiles_per_block) * tile;
  *q1 = *q0 + tile < block_end ? *q0 + tile : block_end;
}

}  // namespace lmk
