#include "ops/dist.h"

#include <cstdlib>
#include <future>
#include <mutex>

#include "kernels/copy/copy.h"
#include "kernels/dist/collectives.h"
#include "ops/arg_checks.h"
#include "ops/op_task.h"
#include "runtime/cuda_call.h"
#include "runtime/mpi_library.h"

namespace lmk::ops {
namespace {

using kernels::dist::Collective;
using kernels::dist::ReduceOp;

const Device kCpu{DeviceKind::CPU, 0};

enum class Phase { Off, Starting, Ready, Finalized };

// The world, written by dist_init's task on the CPU worker and read on the
// JS thread; phase changes only on the JS thread except for a failed start.
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

bool is_half(DType dtype) { return dtype == DType::BFloat16 || dtype == DType::Float16; }

// Reductions of bfloat16/float16 run in float32 (MPI has no 16-bit float
// reduction): the values are widened into a float32 buffer, reduced there
// and rounded once on the way back.
DType reduction_dtype(DType dtype) { return is_half(dtype) ? DType::Float32 : dtype; }

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
  if (world.world_size == 1 || t.device().is_cpu() || world.backend == "nccl") return;
  throw_type_error(fn, ": ", arg, " is on ", t.device().to_string(), " but the backend is '", world.backend,
                   "', which moves CPU tensors only; call dist.init({ backend: 'nccl' }) for CUDA tensors");
}

// x[i] /= divisor for float32 or float64 data (the 'mean' after the sum).
void divide_cpu(void* data, DType dtype, int64_t n, double divisor) {
  if (dtype == DType::Float64) {
    auto* x = static_cast<double*>(data);
    for (int64_t i = 0; i < n; ++i) x[i] /= divisor;
  } else {
    auto* x = static_cast<float*>(data);
    const float d = static_cast<float>(divisor);
    for (int64_t i = 0; i < n; ++i) x[i] /= d;
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
// is the one that initialised MPI (MPI_THREAD_FUNNELED).
void enqueue_mpi(const char* fn, OpTask& task, std::function<void()> run) {
  task.enqueue(std::move(run), [fn](void*) { throw_runtime_error(fn, ": MPI work queued on a CUDA stream"); });
}

}  // namespace

DistWorld dist_world() {
  WorldState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DistWorld world = s.world;
  world.initialized = s.phase == Phase::Ready;
  return world;
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
        throw_runtime_error(fn, ": dist is already initialized with backend '", s.world.backend, "', not '",
                            requested, "' (call dist.finalize() first)");
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
        if (requested == "nccl") {
          throw_runtime_error(fn, ": backend 'nccl' is not available in this build yet");
        }
        s.phase = Phase::Starting;
        OpTask task(fn, kCpu);
        enqueue_mpi(fn, task, [fn] {
          WorldState& st = state();
          try {
            kernels::dist::MpiWorld mpi_world = kernels::dist::mpi_init(fn);
            std::lock_guard<std::mutex> lock(st.mutex);
            st.world = DistWorld{true, mpi_world.rank, mpi_world.size, mpi_world.local_rank, "mpi", mpi_world.version};
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
      enqueue_mpi(fn, task, [fn] { kernels::dist::mpi_finalize(fn); });
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
  const auto signature =
      kernels::dist::make_signature(Collective::AllReduce, op, 0, t.dtype, t.device().kind, t.shape);
  OpTask task(fn, t.device());
  task.writes(t);
  const int64_t n = t.numel();
  const DType dtype = t.dtype, reduce_dtype = reduction_dtype(t.dtype);
  void* data = t.data();
  void* staging = is_half(dtype) ? task.workspace(static_cast<size_t>(n) * 4) : data;
  const int world_size = world.world_size;
  enqueue_mpi(fn, task, [=] {
    kernels::dist::mpi_agree(fn, signature, world_size);
    if (staging != data) kernels::convert_cpu(data, dtype, staging, reduce_dtype, n);
    kernels::dist::mpi_all_reduce(fn, staging, n, reduce_dtype, op);
    if (op == ReduceOp::Mean) divide_cpu(staging, reduce_dtype, n, world_size);
    if (staging != data) kernels::convert_cpu(staging, reduce_dtype, data, dtype, n);
  });
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
  const auto signature =
      kernels::dist::make_signature(Collective::Broadcast, ReduceOp::Sum, root, t.dtype, t.device().kind, t.shape);
  OpTask task(fn, t.device());
  task.writes(t);
  void* data = t.data();
  const int64_t n = t.numel();
  const DType dtype = t.dtype;
  const int world_size = world.world_size;
  enqueue_mpi(fn, task, [=] {
    kernels::dist::mpi_agree(fn, signature, world_size);
    kernels::dist::mpi_broadcast(fn, data, n, dtype, static_cast<int>(root));
  });
}

void dist_all_gather(const Tensor& input, const Tensor& output) {
  const char* fn = "dist.allGather";
  check_collective_tensor(input, fn, "input", std::nullopt);
  check_like(output, input, fn, "output", "input");
  const DistWorld world = ready_world(fn);
  check_stacked(output, "output", input, "input", world.world_size, fn);
  check_backend_moves(input, world, fn, "input");
  const int64_t n = input.numel();
  const size_t slot_bytes = static_cast<size_t>(n) * dtype_size(input.dtype);
  // Input may be this rank's own block of output (gathered in place); no other overlap.
  const bool in_place =
      input.storage == output.storage &&
      static_cast<const char*>(input.data()) == static_cast<const char*>(output.data()) + world.rank * slot_bytes;
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
  const auto signature = kernels::dist::make_signature(Collective::AllGather, ReduceOp::Sum, 0, input.dtype,
                                                       input.device().kind, input.shape);
  OpTask task(fn, input.device());
  task.read(input);
  task.writes(output);
  const void* in = in_place ? mpi::in_place() : input.data();
  void* out = output.data();
  const DType dtype = input.dtype;
  const int world_size = world.world_size;
  enqueue_mpi(fn, task, [=] {
    kernels::dist::mpi_agree(fn, signature, world_size);
    kernels::dist::mpi_all_gather(fn, in, out, n, dtype);
  });
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
  const auto signature = kernels::dist::make_signature(Collective::ReduceScatter, op, 0, input.dtype,
                                                       input.device().kind, input.shape);
  OpTask task(fn, input.device());
  task.read(input);
  task.writes(output);
  const DType dtype = input.dtype, reduce_dtype = reduction_dtype(input.dtype);
  const int world_size = world.world_size;
  const void* in = input.data();
  void* out = output.data();
  const bool staged = is_half(dtype);
  const size_t total = static_cast<size_t>(n) * static_cast<size_t>(world_size);
  void* in_staging = staged ? task.workspace(total * 4) : nullptr;
  void* out_staging = staged ? task.workspace(static_cast<size_t>(n) * 4) : out;
  enqueue_mpi(fn, task, [=] {
    kernels::dist::mpi_agree(fn, signature, world_size);
    if (staged) kernels::convert_cpu(in, dtype, in_staging, reduce_dtype, static_cast<int64_t>(total));
    kernels::dist::mpi_reduce_scatter(fn, staged ? in_staging : in, out_staging, n, reduce_dtype, op);
    if (op == ReduceOp::Mean) divide_cpu(out_staging, reduce_dtype, n, world_size);
    if (staged) kernels::convert_cpu(out_staging, reduce_dtype, out, dtype, n);
  });
}

void dist_barrier(DoneCallback done) {
  const char* fn = "dist.barrier";
  const DistWorld world = ready_world(fn);
  if (world.world_size > 1) {
    const auto signature =
        kernels::dist::make_signature(Collective::Barrier, ReduceOp::Sum, 0, DType::Float32, DeviceKind::CPU, {});
    const int world_size = world.world_size;
    OpTask task(fn, kCpu);
    enqueue_mpi(fn, task, [=] {
      kernels::dist::mpi_agree(fn, signature, world_size);
      kernels::dist::mpi_barrier(fn);
    });
  }
  stream_for(kCpu).when_done(std::move(done));
}

}  // namespace lmk::ops
