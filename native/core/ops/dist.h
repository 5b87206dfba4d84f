// Distributed data parallel (`dist`, docs/api.md "Distributed"): the world
// of processes and the collectives, validated here and queued on the
// tensor's stream like any other op.
//
// Backends, opened at run time: MPI (runtime/mpi_library.h) for CPU tensors
// and start-up, NCCL (runtime/nccl_library.h) for CUDA tensors. A process no
// MPI launcher started is a world of one whatever is installed; there the
// collectives are the identities they are on one rank (allGather and
// reduceScatter copy input to output).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/stream.h"
#include "runtime/tensor.h"

namespace lmk::ops {

struct DistWorld {
  bool initialized = false;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string backend = "none";  // 'none' (world of one), 'mpi' or 'nccl'
  std::string library;           // MPI's version line, when MPI runs
};

// Which collective libraries open here (doctor): each found library's name
// (NCCL with its version, "libnccl.so.2 2.23.4"), or empty and why not.
struct DistLibraries {
  std::string mpi, mpi_missing;
  std::string nccl, nccl_missing;
};
DistLibraries dist_libraries();

// The world as dist.init left it (not initialized: rank 0 of 1).
DistWorld dist_world();

// The environment variable of an MPI launcher that is set in this process
// (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK, PMI_SIZE), or empty.
std::string mpi_launcher_variable();

// dist.init: backend 'auto' (default), 'mpi' or 'nccl'. Checks at once what
// can be checked (the name; MPI openable when a launcher started us: Error
// naming the library and how to install it), then starts MPI on the CPU
// stream's worker; `done` runs when the world is up or with the error.
// Called again while initialized: done at once with the same world (an
// explicit backend other than the running one is an Error).
void dist_init(const std::optional<std::string>& backend, DoneCallback done);

// dist.finalize: after all queued work, NCCL and MPI are shut down. A world
// of one can be initialized again; MPI cannot start twice in one process.
void dist_finalize(DoneCallback done);

// For process exit: finalizes MPI when it runs (blocking the caller until it
// did), so mpirun sees a clean end. Does nothing otherwise.
void dist_shutdown_blocking();

// In place: t = op over ranks of t; op 'sum' (default), 'mean' (sum, then
// divided by the world size), 'max', 'min'. float32, float64, bfloat16,
// float16 (reduced in float32, rounded once) and int32 (not 'mean').
void dist_all_reduce_(const Tensor& t, const std::optional<std::string>& op);
// In place: t = root's t; root in [0, worldSize), default 0. Any dtype.
void dist_broadcast_(const Tensor& t, std::optional<int64_t> root);
// output = every rank's input, in rank order: output has shape
// [worldSize, ...input.shape] or [worldSize * input.shape[0], ...input.shape[1:]].
void dist_all_gather(const Tensor& input, const Tensor& output);
// output = op over ranks of this rank's block of input (shapes as allGather's
// with input and output exchanged); op as allReduce's.
void dist_reduce_scatter(const Tensor& input, const Tensor& output, const std::optional<std::string>& op);
// dist.barrier: `done` once every rank reached it (after this process's
// earlier CPU work).
void dist_barrier(DoneCallback done);

}  // namespace lmk::ops
