// The collectives' work on the ranks (docs/api.md "Distributed"): the
// signature every rank's call is checked against before data moves, and the
// MPI calls that run on the CPU stream's worker thread. MPI is initialised at
// MPI_THREAD_FUNNELED on that thread and every MPI call is made there, queued
// in order with the other CPU ops; none runs on the JS thread.
// The NCCL side (CUDA tensors) is in nccl_collectives.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/tensor.h"

namespace lmk::kernels::dist {

enum class ReduceOp : int32_t { Sum = 0, Mean = 1, Max = 2, Min = 3 };
enum class Collective : int32_t { AllReduce = 1, Broadcast = 2, AllGather = 3, ReduceScatter = 4, Barrier = 5 };

const char* reduce_op_name(ReduceOp op);       // "sum", "mean", ...
const char* collective_name(Collective kind);  // "allReduce", "broadcast", ...

// What one rank's call is, as fixed-size words that an allgather exchanges:
// the collective, its reduction and root, the tensor's dtype, device kind and
// shape (the first kMaxSignatureDims dims, the rank, the element count and a
// hash of the whole shape). The data collective runs only when every rank's
// signature is the same, so a mismatch is an Error on every rank, never a
// hang or a write past a buffer.
constexpr int kMaxSignatureDims = 8;
constexpr int kSignatureWords = 16;
struct Signature {
  int64_t words[kSignatureWords] = {};
};
Signature make_signature(Collective kind, ReduceOp op, int64_t root, DType dtype, DeviceKind device,
                         const Shape& shape);
// One rank's call as a message shows it: "allReduce of float32 [2,3] on cpu, op 'sum'".
std::string describe_signature(const Signature& s);
// Empty when every signature equals the first; otherwise each distinct call
// with the ranks that made it: "rank 0: allReduce of float32 [2,3] on cpu,
// op 'sum'; rank 1: allReduce of float32 [4] on cpu, op 'sum'".
std::string describe_mismatch(const std::vector<Signature>& by_rank);

// ---- MPI, on the CPU stream's worker only -------------------------------------

struct MpiWorld {
  int rank = 0;
  int size = 1;
  int local_rank = 0;   // among the ranks on this host (same host name)
  std::string version;  // MPI_Get_library_version, first line
};

// MPI_Init_thread(FUNNELED) on the calling thread (the CPU worker), errors
// returned rather than fatal on MPI_COMM_WORLD, rank, size and local rank.
// Throws lmk::Error naming `fn` when MPI does not open or does not start.
MpiWorld mpi_init(const char* fn);
// MPI_Finalize; MPI cannot start again in this process afterwards.
void mpi_finalize(const char* fn);
// Exchanges the ranks' signatures; throws Error naming `fn` and every rank's
// call when they differ (every rank throws the same message).
void mpi_agree(const char* fn, const Signature& mine, int world_size);

// One collective's work, as both backends take it.
struct CollectiveParams {
  Collective kind = Collective::AllReduce;
  ReduceOp op = ReduceOp::Sum;
  DType dtype = DType::Float32;  // the tensors' dtype
  int64_t n = 0;                 // allReduce, broadcast: elements; allGather, reduceScatter: per rank
  int root = 0;
  int rank = 0;
  int world_size = 1;
  const void* input = nullptr;  // allGather (may be this rank's block of data), reduceScatter
  void* data = nullptr;         // allReduce, broadcast: in place; allGather, reduceScatter: the output
  void* staging = nullptr;      // float32 scratch of staging_elements(p) for 16-bit reductions
};

// bfloat16/float16 reductions run in float32 (MPI has no 16-bit float
// reduction): the values are widened into float32 scratch, reduced there and
// rounded once on the way back. This many float32 elements (0: none needed).
int64_t staging_elements(const CollectiveParams& p);

// The collective on host memory, on the CPU worker; 'mean' is the sum
// divided by the world size, in the reduction's dtype.
void mpi_collective_cpu(const char* fn, const CollectiveParams& p);

// Data collectives on host memory, element counts as int64 (split into calls
// of at most 2^30 elements where MPI's int counts need it). Reductions take
// float32, float64 or int32 data ('mean' reduces as 'sum'); broadcast and
// gather move any dtype.
void mpi_all_reduce(const char* fn, void* data, int64_t n, DType dtype, ReduceOp op);
void mpi_broadcast(const char* fn, void* data, int64_t n, DType dtype, int root);
void mpi_barrier(const char* fn);

// The largest element count allGather and reduceScatter move per rank in one
// call (MPI counts are int).
constexpr int64_t kMaxElementsPerRank = 2147483647;

}  // namespace lmk::kernels::dist
