// NCCL collectives on CUDA streams. Never run (see nccl_collectives.h).
#include <cuda_runtime.h>

#include <mutex>

#include "kernels/copy/copy.h"
#include "kernels/cuda_grid.h"
#include "kernels/cuda_launch.cuh"
#include "kernels/dist/nccl_collectives.h"
#include "runtime/cuda_check.h"
#include "runtime/error.h"
#include "runtime/nccl_library.h"

namespace lmk::kernels::dist {
namespace {

struct Communicator {
  nccl::Comm comm = nullptr;
  int device = -1;
};
Communicator& communicator() {
  static Communicator c;
  return c;
}

const nccl::Library& lib(const char* fn) {
  std::string why;
  const nccl::Library* l = nccl::library(&why);
  if (!l) throw_runtime_error(fn, ": NCCL is not available: ", why);
  return *l;
}

void check(const nccl::Library& l, int result, const char* fn, const char* call) {
  if (result != nccl::kSuccess) throw_runtime_error(fn, ": ", call, " failed: ", l.get_error_string(result));
}

int nccl_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return nccl::kFloat32;
    case DType::Float64: return nccl::kFloat64;
    case DType::Int32: return nccl::kInt32;
    case DType::BFloat16: return nccl::kBFloat16;
    case DType::Float16: return nccl::kFloat16;
  }
  return nccl::kFloat32;
}

int nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max: return nccl::kMax;
    case ReduceOp::Min: return nccl::kMin;
    default: return nccl::kSum;  // 'mean' is the sum, divided below
  }
}

template <typename T>
__global__ void divide_kernel(T* x, int64_t n, T divisor) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    x[i] /= divisor;
  }
}

// x[i] /= divisor for float32 or float64 data, as divide_cpu.
void divide_cuda(void* x, DType dtype, int64_t n, int divisor, cudaStream_t s) {
  if (n == 0) return;
  if (dtype == DType::Float64) {
    launch(divide_kernel<double>, grid_for(n), kGridThreads, 0, s, static_cast<double*>(x), n,
           static_cast<double>(divisor));
  } else {
    launch(divide_kernel<float>, grid_for(n), kGridThreads, 0, s, static_cast<float*>(x), n,
           static_cast<float>(divisor));
  }
  cuda_check_launch("dist mean");
}

}  // namespace

void nccl_init(const char* fn, const MpiWorld& world, int device) {
  const nccl::Library& l = lib(fn);
  nccl::UniqueId id{};
  if (world.rank == 0) check(l, l.get_unique_id(&id), fn, "ncclGetUniqueId");
  static_assert(sizeof id % sizeof(int32_t) == 0, "the id moves as int32 words");
  mpi_broadcast(fn, &id, sizeof id / sizeof(int32_t), DType::Int32, 0);
  cuda_check(cudaSetDevice(device), fn);
  Communicator& c = communicator();
  check(l, l.comm_init_rank(&c.comm, world.size, id, world.rank), fn, "ncclCommInitRank");
  c.device = device;
}

void nccl_finalize(const char* fn) {
  Communicator& c = communicator();
  if (!c.comm) return;
  cuda_check(cudaSetDevice(c.device), fn);
  cuda_check(cudaDeviceSynchronize(), fn);
  check(lib(fn), lib(fn).comm_destroy(c.comm), fn, "ncclCommDestroy");
  c = Communicator{};
}

int nccl_device() { return communicator().device; }

void nccl_collective_cuda(const char* fn, const CollectiveParams& p, void* stream) {
  const nccl::Library& l = lib(fn);
  nccl::Comm comm = communicator().comm;
  if (!comm) throw_runtime_error(fn, ": NCCL was not started (dist.init({ backend: 'nccl' }))");
  auto s = static_cast<cudaStream_t>(stream);
  const bool staged = staging_elements(p) > 0;
  const DType reduce_dtype = staged ? DType::Float32 : p.dtype;
  const size_t n = static_cast<size_t>(p.n);
  switch (p.kind) {
    case Collective::AllReduce: {
      void* buffer = staged ? p.staging : p.data;
      if (staged) convert_cuda(p.data, p.dtype, buffer, reduce_dtype, p.n, s);
      check(l, l.all_reduce(buffer, buffer, n, nccl_type(reduce_dtype), nccl_op(p.op), comm, s), fn, "ncclAllReduce");
      if (p.op == ReduceOp::Mean) divide_cuda(buffer, reduce_dtype, p.n, p.world_size, s);
      if (staged) convert_cuda(buffer, reduce_dtype, p.data, p.dtype, p.n, s);
      return;
    }
    case Collective::Broadcast:
      check(l, l.broadcast(p.data, p.data, n, nccl_type(p.dtype), p.root, comm, s), fn, "ncclBroadcast");
      return;
    case Collective::AllGather:
      check(l, l.all_gather(p.input, p.data, n, nccl_type(p.dtype), comm, s), fn, "ncclAllGather");
      return;
    case Collective::ReduceScatter: {
      const int64_t total = p.n * p.world_size;
      void* in = staged ? p.staging : const_cast<void*>(p.input);
      void* out = staged ? static_cast<float*>(p.staging) + total : p.data;
      if (staged) convert_cuda(p.input, p.dtype, in, reduce_dtype, total, s);
      check(l, l.reduce_scatter(in, out, n, nccl_type(reduce_dtype), nccl_op(p.op), comm, s), fn, "ncclReduceScatter");
      if (p.op == ReduceOp::Mean) divide_cuda(out, reduce_dtype, p.n, p.world_size, s);
      if (staged) convert_cuda(out, reduce_dtype, p.data, p.dtype, p.n, s);
      return;
    }
    case Collective::Barrier: return;  // CUDA tensors never barrier: dist.barrier is a CPU op
  }
}

}  // namespace lmk::kernels::dist
