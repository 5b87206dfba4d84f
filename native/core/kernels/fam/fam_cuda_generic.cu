// Tiled FAM kernels for any head dim up to 256 (fam_cuda_tiled.cuh), the
// dimension read at run time: 32 × 32 tiles. Shared memory grows with D (at
// D = 256: 96 KB forward, 129 KB dq, 137 KB dkv); a pass that does not fit
// the device returns false and fam_cuda.cu runs the simple kernel instead.
#include "kernels/fam/fam_cuda_tiled.cuh"

namespace lmk::kernels::fam_cuda {

using FamAny = TiledFam<static_cast<int>(kFamMaxHeadDim), false, 32, 32, 32, 32, 32, 32>;

bool fam_tiled_generic(const FamParams& p, cudaStream_t stream, bool backward, size_t smem_limit) {
  const int D = static_cast<int>(p.head_dim);
  if (!backward) {
    if (FamAny::forward_smem(D) > smem_limit) return false;
    FamAny::forward(p, stream);
  } else {
    if (FamAny::dq_smem(D) > smem_limit || FamAny::dkv_smem(D) > smem_limit) return false;
    FamAny::backward(p, stream);
  }
  return true;
}

}  // namespace lmk::kernels::fam_cuda
