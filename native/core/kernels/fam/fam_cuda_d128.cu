// Tiled FAM kernels for head dim 128 (fam_cuda_tiled.cuh): forward 64 × 64
// tiles, dq 64 queries × 32 keys, dkv 32 × 32. Shared memory: 97 KB forward,
// 97 KB dq, 73 KB dkv (sm_80 and newer; sm_75 falls back to the generic path).
#include "kernels/fam/fam_cuda_tiled.cuh"

namespace lmk::kernels::fam_cuda {

using Fam128 = TiledFam<128, true, 64, 64, 64, 32, 32, 32>;

bool fam_tiled_d128(const FamParams& p, cudaStream_t stream, bool backward, size_t smem_limit) {
  if (!backward) {
    if (Fam128::forward_smem(128) > smem_limit) return false;
    Fam128::forward(p, stream);
  } else {
    if (Fam128::dq_smem(128) > smem_limit || Fam128::dkv_smem(128) > smem_limit) return false;
    Fam128::backward(p, stream);
  }
  return true;
}

}  // namespace lmk::kernels::fam_cuda
