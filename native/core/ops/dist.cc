#include "ops/dist.h"

#include <cstdlib>
#include <future>
#include <mutex>

#include "kernels/copy/copy.h"
#include "kernels/dist/collectives.h"
#include "kernels/dist/nccl_collectives.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"
#include "runtime/device.h"
#include "runtime/mpi_library.h"
#include "runtime/nccl_library.h"

namespace lmk::ops {
namespace {

using kernels::dist::Collective;
using kernels::dist::CollectiveParams;
using kernels::dist::ReduceOp;
using kernels::dist::Signature;

const Device kCpu{DeviceKind::CPU, 0};

enum class Phase { Off, Starting, Ready, Finalized };

// The world. The calling thread moves the phase Off -> Starting (dist.init)
// and Ready -> Off or Finalized (dist.finalize); dist.init's task on the CPU
// worker moves Starting -> Ready (with the world) or back to Off.
struct WorldState {
  std::mutex mutex;
  Phase phase = Phase::Off;
  DistWorld world;
};

WorldState& state() {
  static WorldState* s = new WorldState();  // leaked: read by the worker thread at exit
  return *s;
}

DistWorld ready_world(const char* fn) {
  WorldState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.phase != Phase::Ready) {
    throw_runtime_error(fn, s.phase == Phase::Starting ? ": dist.init() has not finished yet (await it first)"
                                                       : ": call dist.init() first");
  }
  return s.world;
}

ReduceOp reduce_op(const std::optional<std::string>& name, const char* fn) {
  if (!name) return ReduceOp::Sum;
  return value_from_name<ReduceOp>(
      *name, {{"sum", ReduceOp::Sum}, {"mean", ReduceOp::Mean}, {"max", ReduceOp::Max}, {"min", ReduceOp::Min}}, fn,
      "op");
}

int nccl_device_index() {
#ifdef LMK_WITH_CUDA
  return kernels::dist::nccl_device();
#else
  return -1;
#endif
}

// The collectives' tensors: present, on a usable device, and of a dtype the
// collectives move (any) or reduce (floating or int32; 'mean' floating only).
void check_collective_tensor(const Tensor& t, const char* fn, const char* arg, std::optional<ReduceOp> op) {
  check_input(t, fn, arg);
  if (op == ReduceOp::Mean && !dtype_is_float(t.dtype)) {
    throw_type_error(fn, ": op 'mean' needs a floating tensor (float32, float64, bfloat16, float16), ", arg,
                     " has dtype ", dtype_name(t.dtype));
  }
}

void check_backend_moves(const Tensor& t, const DistWorld& world, const char* fn, const char* arg) {
  if (world.world_size == 1 || t.device().is_cpu()) return;
  if (world.backend != "nccl") {
    throw_type_error(fn, ": ", arg, " is on ", t.device().to_string(), " but the backend is '", world.backend,
                     "', which moves CPU tensors only; call dist.init({ backend: 'nccl' }) for CUDA tensors");
  }
  const int device = nccl_device_index();
  if (t.device().index != device) {
    throw_type_error(fn, ": ", arg, " is on ", t.device().to_string(),
                     " but this rank's NCCL communicator is on cuda:", device, " (localRank ", world.local_rank,
                     " modulo the device count)");
  }
}

// The same storage, and byte ranges that overlap.
bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage != b.storage) return false;
  const char* a0 = static_cast<const char*>(a.data());
  const char* b0 = static_cast<const char*>(b.data());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// `big` is `small` stacked worldSize times: [W, ...small] or [W*small[0], ...small[1:]].
void check_stacked(const Tensor& big, const char* big_name, const Tensor& small, const char* small_name, int world,
                   const char* fn) {
  const Shape& s = small.shape;
  Shape stacked{world};
  stacked.insert(stacked.end(), s.begin(), s.end());
  Shape concatenated = s;
  if (!concatenated.empty()) concatenated[0] *= world;
  if (big.shape == stacked || (!s.empty() && big.shape == concatenated)) return;
  std::string expected = shape_string(stacked);
  if (!s.empty()) expected += " or " + shape_string(concatenated);
  throw_range_error(fn, ": ", big_name, " must have shape ", expected, " (worldSize ", world, " times ", small_name,
                    " ", shape_string(s), "), got ", shape_string(big.shape));
}

// A world of one: output = input (allGather, reduceScatter) on the tensors' stream.
void copy_on_stream(const char* fn, const Tensor& input, const Tensor& output) {
  OpTask task(fn, input.device());
  task.read(input);
  task.writes(output);
  const void* in = input.data();
  void* out = output.data();
  const DType dtype = input.dtype;
  const int64_t n = input.numel();
  task.enqueue([=] { kernels::convert_cpu(in, dtype, out, dtype, n); },
               [=](void* s) { LMK_CUDA_CALL(kernels::convert_cuda(in, dtype, out, dtype, n, s)); });
}

// Work that makes MPI calls: queued on the CPU stream, whose worker thread
// is the one that initialised MPI (MPI_THREAD_FUNNELED). Never inline on the
// calling thread: it waits on the other ranks.
void enqueue_mpi(const char* fn, OpTask& task, std::function<void()> run) {
  task.enqueue(std::move(run), [fn](void*) { throw_runtime_error(fn, ": MPI work queued on a CUDA stream"); });
}

// The ranks' signatures checked over MPI on the CPU worker, the caller
// waiting for the result (CUDA collectives: the NCCL launch must follow
// the check and stay in order on the CUDA stream).
void agree_and_wait(const char* fn, const Signature& signature, int world_size) {
  auto agreed = std::make_shared<std::promise<void>>();
  std::future<void> result = agreed->get_future();
  OpTask task(fn, kCpu);
  enqueue_mpi(fn, task, [=] {
    try {
      kernels::dist::mpi_agree(fn, signature, world_size);
      agreed->set_value();
    } catch (...) {
      agreed->set_exception(std::current_exception());
    }
  });
  result.get();
}

// Queues collective `p` on the stream of `task`'s device: every rank's
// signature is checked first (a mismatch is an Error for every rank's call,
// reported at the next sync, with the outputs poisoned), then the data moves.
//   CPU tensors:  on the CPU worker, through MPI.
//   CUDA tensors: the check on the CPU worker while this thread waits for it
//                 (the other ranks reaching the same call; not the device),
//                 then the NCCL launch on the CUDA stream.
void enqueue_collective(const char* fn, OpTask& task, const Signature& signature, const CollectiveParams& p) {
  const int world_size = p.world_size;
  task.enqueue(
      [=] {
        kernels::dist::mpi_agree(fn, signature, world_size);
        kernels::dist::mpi_collective_cpu(fn, p);
      },
      [=](void* stream) {
        agree_and_wait(fn, signature, world_size);
        LMK_CUDA_CALL(kernels::dist::nccl_collective_cuda(fn, p, stream));
      });
}

// The float32 scratch a 16-bit reduction needs, from the task's device.
void add_staging(OpTask& task, CollectiveParams& p) {
  const int64_t elements = kernels::dist::staging_elements(p);
  if (elements > 0) p.staging = task.workspace(static_cast<size_t>(elements) * sizeof(float));
}

// The backend of CUDA tensors dist.init starts: 'nccl' when asked for (an
// Error naming what is missing otherwise) or, for 'auto', when a CUDA device
// and NCCL are both here; else 'mpi' (CPU tensors only).
std::string choose_backend(const std::string& requested, const char* fn) {
  if (requested == "mpi") return "mpi";
  std::string why;
  if (!cuda_info().available) {
    why = "no CUDA device: " + cuda_info().reason;
  } else if (!nccl::library(&why)) {
    why = "NCCL cannot be opened: " + why;
  }
  if (why.empty()) return "nccl";
  if (requested == "auto") return "mpi";
  throw_runtime_error(fn, ": backend 'nccl' needs a CUDA device and NCCL 2 (libnccl.so.2): ", why,
                      ". Install NCCL (libnccl2, from NVIDIA's CUDA repository) or set LMK_NCCL_LIBRARY to its path");
}

}  // namespace

DistWorld dist_world() {
  WorldState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DistWorld world = s.world;
  world.initialized = s.phase == Phase::Ready;
  return world;
}

DistLibraries dist_libraries() {
  DistLibraries found;
  if (const mpi::Library* l = mpi::library(&found.mpi_missing)) found.mpi = l->name;
  if (const nccl::Library* l = nccl::library(&found.nccl_missing)) {
    found.nccl = concat(l->name, " ", l->version / 10000, ".", l->version / 100 % 100, ".", l->version % 100);
  }
  return found;
}

std::string mpi_launcher_variable() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    const char* value = std::getenv(name);
    if (value && *value) return name;
  }
  return "";
}

void dist_init(const std::optional<std::string>& backend_name, DoneCallback done) {
  const char* fn = "dist.init";
  const std::string requested = backend_name.value_or("auto");
  value_from_name<int>(requested, {{"auto", 0}, {"mpi", 1}, {"nccl", 2}}, fn, "backend");
  WorldState& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.phase == Phase::Starting || s.phase == Phase::Ready) {
      if (requested != "auto" && s.world.world_size > 1 && requested != s.world.backend) {
        throw_runtime_error(fn, ": dist is already initialized with backend '", s.world.backend, "', not '", requested,
                            "' (call dist.finalize() first)");
      }
    } else if (s.phase == Phase::Finalized) {
      throw_runtime_error(fn, ": MPI was finalized in this process and cannot start again (an MPI rule)");
    } else {
      const std::string launcher = mpi_launcher_variable();
      if (launcher.empty()) {
        // No launcher started this process: a world of one, nothing opened.
        s.world = DistWorld{};
        s.phase = Phase::Ready;
      } else {
        std::string why;
        if (!mpi::library(&why)) {
          throw_runtime_error(fn, ": this process was started by an MPI launcher (", launcher,
                              " is set) but MPI cannot be opened: ", why,
                              ". lmkernels needs Open MPI >= 4 (libmpi.so.40): on Debian or Ubuntu, apt-get install "
                              "openmpi-bin libopenmpi-dev; or set LMK_MPI_LIBRARY to the path of libmpi.so.40");
        }
        const std::string backend = choose_backend(requested, fn);
        s.phase = Phase::Starting;
        OpTask task(fn, kCpu);
        enqueue_mpi(fn, task, [fn, backend] {
          WorldState& st = state();
          try {
            kernels::dist::MpiWorld mpi_world = kernels::dist::mpi_init(fn);
            if (backend == "nccl") {
              const int devices = static_cast<int>(cuda_info().devices.size());
              LMK_CUDA_CALL(kernels::dist::nccl_init(fn, mpi_world, mpi_world.local_rank % devices));
            }
            std::lock_guard<std::mutex> lock(st.mutex);
            st.world =
                DistWorld{true, mpi_world.rank, mpi_world.size, mpi_world.local_rank, backend, mpi_world.version};
            st.phase = Phase::Ready;
          } catch (...) {
            std::lock_guard<std::mutex> lock(st.mutex);
            st.phase = Phase::Off;
            throw;
          }
        });
      }
    }
  }
  stream_for(kCpu).when_done(std::move(done));
}

void dist_finalize(DoneCallback done) {
  const char* fn = "dist.finalize";
  WorldState& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.phase == Phase::Ready && s.world.backend != "none") {
      s.phase = Phase::Finalized;
      OpTask task(fn, kCpu);
      const bool nccl = s.world.backend == "nccl";
      enqueue_mpi(fn, task, [fn, nccl] {
        if (nccl) LMK_CUDA_CALL(kernels::dist::nccl_finalize(fn));
        kernels::dist::mpi_finalize(fn);
      });
    } else if (s.phase == Phase::Ready) {
      s.phase = Phase::Off;
      s.world = DistWorld{};
    }
  }
  stream_for(kCpu).when_done(std::move(done));
}

void dist_shutdown_blocking() {
  WorldState& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.phase != Phase::Ready || s.world.backend == "none") return;
  }
  std::promise<void> finished;
  dist_finalize([&finished](const std::optional<RecordedError>&) { finished.set_value(); });
  finished.get_future().wait();
}

void dist_all_reduce_(const Tensor& t, const std::optional<std::string>& op_name) {
  const char* fn = "dist.allReduce";
  const ReduceOp op = reduce_op(op_name, fn);
  check_collective_tensor(t, fn, "t", op);
  const DistWorld world = ready_world(fn);
  check_backend_moves(t, world, fn, "t");
  if (world.world_size == 1) return;  // every op over one rank is the identity
  OpTask task(fn, t.device());
  task.writes(t);
  CollectiveParams p{Collective::AllReduce, op, t.dtype, t.numel(), 0, world.rank, world.world_size, nullptr, t.data()};
  add_staging(task, p);
  enqueue_collective(fn, task, kernels::dist::make_signature(p.kind, op, 0, t.dtype, t.device().kind, t.shape), p);
}

void dist_broadcast_(const Tensor& t, std::optional<int64_t> root_arg) {
  const char* fn = "dist.broadcast";
  check_collective_tensor(t, fn, "t", std::nullopt);
  const DistWorld world = ready_world(fn);
  const int64_t root = root_arg.value_or(0);
  if (root < 0 || root >= world.world_size) {
    throw_range_error(fn, ": root must be a rank in [0, ", world.world_size, "), got ", root);
  }
  check_backend_moves(t, world, fn, "t");
  if (world.world_size == 1) return;
  OpTask task(fn, t.device());
  task.writes(t);
  CollectiveParams p{Collective::Broadcast, ReduceOp::Sum, t.dtype, t.numel(), static_cast<int>(root), world.rank,
                     world.world_size,      nullptr,       t.data()};
  enqueue_collective(fn, task, kernels::dist::make_signature(p.kind, p.op, root, t.dtype, t.device().kind, t.shape), p);
}

void dist_all_gather(const Tensor& input, const Tensor& output) {
  const char* fn = "dist.allGather";
  check_collective_tensor(input, fn, "input", std::nullopt);
  check_like(output, input, fn, "output", "input");
  const DistWorld world = ready_world(fn);
  check_stacked(output, "output", input, "input", world.world_size, fn);
  check_backend_moves(input, world, fn, "input");
  const int64_t n = input.numel();
  const size_t block_bytes = static_cast<size_t>(n) * dtype_size(input.dtype);
  // Input may be this rank's own block of output (gathered in place); no other overlap.
  const bool in_place =
      input.storage == output.storage &&
      static_cast<const char*>(input.data()) == static_cast<const char*>(output.data()) + world.rank * block_bytes;
  if (!in_place && overlaps(input, output)) {
    throw_range_error(fn, ": input and output overlap (input may only be this rank's block of output)");
  }
  if (n > kernels::dist::kMaxElementsPerRank) {
    throw_range_error(fn, ": input has ", n, " elements, more than MPI moves in one call (",
                      kernels::dist::kMaxElementsPerRank, ")");
  }
  if (world.world_size == 1) {
    if (!in_place) copy_on_stream(fn, input, output);
    return;
  }
  OpTask task(fn, input.device());
  task.read(input);
  task.writes(output);
  CollectiveParams p{Collective::AllGather, ReduceOp::Sum, input.dtype,  n, 0, world.rank,
                     world.world_size,      input.data(),  output.data()};
  enqueue_collective(fn, task,
                     kernels::dist::make_signature(p.kind, p.op, 0, input.dtype, input.device().kind, input.shape), p);
}

void dist_reduce_scatter(const Tensor& input, const Tensor& output, const std::optional<std::string>& op_name) {
  const char* fn = "dist.reduceScatter";
  const ReduceOp op = reduce_op(op_name, fn);
  check_collective_tensor(input, fn, "input", op);
  check_like(output, input, fn, "output", "input");
  const DistWorld world = ready_world(fn);
  check_stacked(input, "input", output, "output", world.world_size, fn);
  check_backend_moves(input, world, fn, "input");
  if (overlaps(input, output)) throw_range_error(fn, ": input and output overlap");
  const int64_t n = output.numel();
  if (n > kernels::dist::kMaxElementsPerRank) {
    throw_range_error(fn, ": output has ", n, " elements, more than MPI moves in one call (",
                      kernels::dist::kMaxElementsPerRank, ")");
  }
  if (world.world_size == 1) {
    copy_on_stream(fn, input, output);
    return;
  }
  OpTask task(fn, input.device());
  task.read(input);
  task.writes(output);
  CollectiveParams p{Collective::ReduceScatter, op,           input.dtype,  n, 0, world.rank,
                     world.world_size,          input.data(), output.data()};
  add_staging(task, p);
  enqueue_collective(fn, task,
                     kernels::dist::make_signature(p.kind, op, 0, input.dtype, input.device().kind, input.shape), p);
}

void dist_barrier(DoneCallback done) {
  const char* fn = "dist.barrier";
  const DistWorld world = ready_world(fn);
  if (world.world_size > 1) {
    OpTask task(fn, kCpu);
    CollectiveParams p{Collective::Barrier, ReduceOp::Sum, DType::Float32, 0, 0, world.rank, world.world_size};
    enqueue_collective(fn, task, kernels::dist::make_signature(p.kind, p.op, 0, p.dtype, DeviceKind::CPU, {}), p);
  }
  stream_for(kCpu).when_done(std::move(done));
}

}  // namespace lmk::ops
