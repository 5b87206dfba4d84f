// The collectives of CUDA tensors through NCCL (runtime/nccl_library.h).
// Built only with CUDA; never run so far: no machine with NCCL and a GPU has
// been available (docs/api.md "Distributed").
//
// The communicator is made in dist.init on the CPU stream's worker (where MPI
// runs): rank 0's ncclUniqueId is broadcast over MPI, then ncclCommInitRank on
// this process's device, localRank modulo the device count. The collectives
// are launched on the tensor's CUDA stream, in order with its other kernels;
// 16-bit floats are reduced in float32 as on the CPU, and 'mean' divides the
// sum by the world size.
#pragma once
#include <cstdint>

#include "kernels/dist/collectives.h"

namespace lmk::kernels::dist {

// On the CPU worker, after mpi_init. Throws lmk::Error naming `fn`.
void nccl_init(const char* fn, const MpiWorld& world, int device);
// Destroys the communicator after the device's work (CPU worker).
void nccl_finalize(const char* fn);
// The device of the communicator, -1 when there is none.
int nccl_device();

// Launches one collective on `stream` (cudaStream_t), as mpi_collective_cpu
// computes it on the CPU (the same staging and 'mean').
void nccl_collective_cuda(const char* fn, const CollectiveParams& p, void* stream);

}  // namespace lmk::kernels::dist
