// Tiled FAM kernels for head dim 64 (fam_cuda_tiled.cuh): 64-row query and
// key tiles (dkv: 64 keys × 32 queries). Shared memory: 49 KB forward, 65 KB
// dq, 66 KB dkv.
#include "kernels/fam/fam_cuda_tiled.cuh"

namespace lmk::kernels::fam_cuda {

using Fam64 = TiledFam<64, true, 64, 64, 64, 64, 64, 32>;

bool fam_tiled_d64(const FamParams& p, cudaStream_t stream, bool backward, size_t smem_limit) {
  if (!backward) {
    if (Fam64::forward_smem(64) > smem_limit) return false;
    Fam64::forward(p, stream);
  } else {
    if (Fam64::dq_smem(64) > smem_limit || Fam64::dkv_smem(64) > smem_limit) return false;
    Fam64::backward(p, stream);
  }
  return true;
}

}  // namespace lmk::kernels::fam_cuda
