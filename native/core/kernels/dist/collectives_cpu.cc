// MPI collectives on the CPU stream's worker, and the call signatures.
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>

#include "kernels/copy/copy.h"
#include "kernels/dist/collectives.h"
#include "runtime/error.h"
#include "runtime/mpi_library.h"

namespace lmk::kernels::dist {
namespace {

// Pieces of at most 2^30 elements keep every count within MPI's int.
constexpr int64_t kMaxElementsPerCall = int64_t(1) << 30;

uint64_t fnv1a(const void* data, size_t bytes, uint64_t hash = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

const mpi::Library& lib(const char* fn) {
  std::string why;
  const mpi::Library* l = mpi::library(&why);
  if (!l) throw_runtime_error(fn, ": MPI is not available: ", why);
  return *l;
}

// Throws Error naming fn and the MPI function with MPI's own message.
void check(const mpi::Library& l, int code, const char* fn, const char* call) {
  if (code == mpi::kSuccess) return;
  char text[mpi::kMaxErrorString] = {};
  int length = 0;
  if (l.error_string(code, text, &length) != mpi::kSuccess) std::snprintf(text, sizeof text, "error %d", code);
  throw_runtime_error(fn, ": ", call, " failed: ", text);
}

mpi::Datatype mpi_type(const mpi::Library& l, DType dtype) {
  switch (dtype) {
    case DType::Float32: return l.float32;
    case DType::Float64: return l.float64;
    case DType::Int32: return l.int32;
    case DType::BFloat16:
    case DType::Float16: return l.uint16;  // moved, never reduced (ops stage them through float32)
  }
  return nullptr;
}

mpi::Op mpi_op(const mpi::Library& l, ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Mean: return l.sum;  // the caller scales the sum
    case ReduceOp::Max: return l.max;
    case ReduceOp::Min: return l.min;
  }
  return l.sum;
}

int int_count(int64_t n, const char* fn) {
  if (n < 0 || n > INT_MAX) throw_range_error(fn, ": ", n, " elements per rank exceed MPI's limit of ", INT_MAX);
  return static_cast<int>(n);
}

}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Mean: return "mean";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "unknown";
}

const char* collective_name(Collective kind) {
  switch (kind) {
    case Collective::AllReduce: return "allReduce";
    case Collective::Broadcast: return "broadcast";
    case Collective::AllGather: return "allGather";
    case Collective::ReduceScatter: return "reduceScatter";
    case Collective::Barrier: return "barrier";
  }
  return "unknown";
}

// words: [0] collective, [1] op, [2] root, [3] dtype, [4] device kind,
// [5] rank, [6] element count, [7] hash of the shape, [8..15] the first dims.
Signature make_signature(Collective kind, ReduceOp op, int64_t root, DType dtype, DeviceKind device,
                         const Shape& shape) {
  Signature s;
  s.words[0] = static_cast<int64_t>(kind);
  s.words[1] = static_cast<int64_t>(op);
  s.words[2] = root;
  s.words[3] = static_cast<int64_t>(dtype);
  s.words[4] = static_cast<int64_t>(device);
  s.words[5] = static_cast<int64_t>(shape.size());
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  s.words[6] = numel;
  s.words[7] = static_cast<int64_t>(fnv1a(shape.data(), shape.size() * sizeof(int64_t)));
  for (size_t i = 0; i < shape.size() && i < kMaxSignatureDims; ++i) s.words[8 + i] = shape[i];
  return s;
}

std::string describe_signature(const Signature& s) {
  const auto kind = static_cast<Collective>(s.words[0]);
  if (kind == Collective::Barrier) return "barrier";
  std::string shape = "[";
  const int64_t rank = s.words[5];
  for (int64_t i = 0; i < rank && i < kMaxSignatureDims; ++i) shape += (i ? "," : "") + std::to_string(s.words[8 + i]);
  if (rank > kMaxSignatureDims) shape += ",...";
  shape += "]";
  std::string text = concat(collective_name(kind), " of ", dtype_name(static_cast<DType>(s.words[3])), " ", shape,
                            " on ", static_cast<DeviceKind>(s.words[4]) == DeviceKind::CUDA ? "cuda" : "cpu");
  if (kind == Collective::AllReduce || kind == Collective::ReduceScatter) {
    text += concat(", op '", reduce_op_name(static_cast<ReduceOp>(s.words[1])), "'");
  }
  if (kind == Collective::Broadcast) text += concat(", root ", s.words[2]);
  return text;
}

std::string describe_mismatch(const std::vector<Signature>& by_rank) {
  auto same = [](const Signature& a, const Signature& b) { return std::memcmp(a.words, b.words, sizeof a.words) == 0; };
  if (std::all_of(by_rank.begin(), by_rank.end(), [&](const Signature& s) { return same(s, by_rank[0]); })) {
    return "";
  }
  // Each distinct call once, in the order of its first rank, with its ranks.
  std::vector<std::pair<size_t, std::vector<size_t>>> calls;
  for (size_t r = 0; r < by_rank.size(); ++r) {
    auto it =
        std::find_if(calls.begin(), calls.end(), [&](const auto& c) { return same(by_rank[c.first], by_rank[r]); });
    if (it == calls.end()) {
      calls.push_back({r, {r}});
    } else {
      it->second.push_back(r);
    }
  }
  std::string text;
  for (const auto& [first, ranks] : calls) {
    if (!text.empty()) text += "; ";
    text += ranks.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (i == 8) {
        text += ",...";
        break;
      }
      text += (i ? "," : "") + std::to_string(ranks[i]);
    }
    text += ": " + describe_signature(by_rank[first]);
  }
  return text;
}

MpiWorld mpi_init(const char* fn) {
  const mpi::Library& l = lib(fn);
  int finalized = 0;
  check(l, l.finalized(&finalized), fn, "MPI_Finalized");
  if (finalized) throw_runtime_error(fn, ": MPI was finalized in this process and cannot start again (an MPI rule)");
  int initialized = 0;
  check(l, l.initialized(&initialized), fn, "MPI_Initialized");
  if (!initialized) {
    int provided = 0;
    check(l, l.init_thread(nullptr, nullptr, mpi::kThreadFunneled, &provided), fn, "MPI_Init_thread");
    if (provided < mpi::kThreadFunneled) {
      throw_runtime_error(fn, ": MPI provides thread level ", provided, ", MPI_THREAD_FUNNELED (1) is needed");
    }
  }
  check(l, l.comm_set_errhandler(l.comm_world, l.errors_return), fn, "MPI_Comm_set_errhandler");
  MpiWorld world;
  check(l, l.comm_rank(l.comm_world, &world.rank), fn, "MPI_Comm_rank");
  check(l, l.comm_size(l.comm_world, &world.size), fn, "MPI_Comm_size");
  // Local rank: the ranks before this one with the same host name.
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  int64_t mine = static_cast<int64_t>(fnv1a(host, std::strlen(host)));
  std::vector<int64_t> hosts(static_cast<size_t>(world.size));
  check(l, l.allgather(&mine, 1, l.int64, hosts.data(), 1, l.int64, l.comm_world), fn, "MPI_Allgather");
  world.local_rank = static_cast<int>(std::count(hosts.begin(), hosts.begin() + world.rank, mine));
  char version[mpi::kMaxLibraryVersionString] = {};
  int length = 0;
  if (l.get_library_version(version, &length) == mpi::kSuccess) {
    world.version = std::string(version, std::strlen(version));
    world.version = world.version.substr(0, world.version.find_first_of(",\n"));
  }
  return world;
}

void mpi_finalize(const char* fn) {
  const mpi::Library& l = lib(fn);
  int finalized = 0;
  check(l, l.finalized(&finalized), fn, "MPI_Finalized");
  if (!finalized) check(l, l.finalize(), fn, "MPI_Finalize");
}

void mpi_agree(const char* fn, const Signature& mine, int world_size) {
  const mpi::Library& l = lib(fn);
  std::vector<Signature> all(static_cast<size_t>(world_size));
  check(l, l.allgather(mine.words, kSignatureWords, l.int64, all.data(), kSignatureWords, l.int64, l.comm_world), fn,
        "MPI_Allgather");
  std::string mismatch = describe_mismatch(all);
  if (!mismatch.empty()) {
    throw_runtime_error(fn, ": the ranks' calls do not match, so no data was exchanged: ", mismatch);
  }
}

void mpi_all_reduce(const char* fn, void* data, int64_t n, DType dtype, ReduceOp op) {
  const mpi::Library& l = lib(fn);
  const size_t size = dtype_size(dtype);
  for (int64_t begin = 0; begin < n; begin += kMaxElementsPerCall) {
    int count = static_cast<int>(std::min(kMaxElementsPerCall, n - begin));
    check(l,
          l.allreduce(mpi::in_place(), static_cast<char*>(data) + begin * size, count, mpi_type(l, dtype),
                      mpi_op(l, op), l.comm_world),
          fn, "MPI_Allreduce");
  }
}

void mpi_broadcast(const char* fn, void* data, int64_t n, DType dtype, int root) {
  const mpi::Library& l = lib(fn);
  const size_t size = dtype_size(dtype);
  for (int64_t begin = 0; begin < n; begin += kMaxElementsPerCall) {
    int count = static_cast<int>(std::min(kMaxElementsPerCall, n - begin));
    check(l, l.bcast(static_cast<char*>(data) + begin * size, count, mpi_type(l, dtype), root, l.comm_world), fn,
          "MPI_Bcast");
  }
}

namespace {

// output[r * n + i] = input_r[i]; input may be this rank's block of output.
void all_gather(const char* fn, const CollectiveParams& p) {
  const mpi::Library& l = lib(fn);
  const int count = int_count(p.n, fn);
  const mpi::Datatype type = mpi_type(l, p.dtype);
  const bool in_place = p.input == static_cast<const char*>(p.data) + p.rank * p.n * int64_t(dtype_size(p.dtype));
  check(l, l.allgather(in_place ? mpi::in_place() : p.input, count, type, p.data, count, type, l.comm_world), fn,
        "MPI_Allgather");
}

// output[i] = op over r of input_r[rank * n + i], input already in `dtype`.
void reduce_scatter(const char* fn, const void* input, void* output, int64_t n, DType dtype, ReduceOp op) {
  const mpi::Library& l = lib(fn);
  check(l, l.reduce_scatter_block(input, output, int_count(n, fn), mpi_type(l, dtype), mpi_op(l, op), l.comm_world), fn,
        "MPI_Reduce_scatter_block");
}

bool is_half(DType dtype) { return dtype == DType::BFloat16 || dtype == DType::Float16; }

// x[i] /= divisor for float32 or float64 data (the 'mean' after the sum).
void divide(void* data, DType dtype, int64_t n, int divisor) {
  if (dtype == DType::Float64) {
    auto* x = static_cast<double*>(data);
    for (int64_t i = 0; i < n; ++i) x[i] /= divisor;
  } else {
    auto* x = static_cast<float*>(data);
    const float d = static_cast<float>(divisor);
    for (int64_t i = 0; i < n; ++i) x[i] /= d;
  }
}

}  // namespace

int64_t staging_elements(const CollectiveParams& p) {
  if (!is_half(p.dtype)) return 0;
  if (p.kind == Collective::AllReduce) return p.n;
  if (p.kind == Collective::ReduceScatter) return p.n * (p.world_size + 1);  // input, then output
  return 0;
}

void mpi_collective_cpu(const char* fn, const CollectiveParams& p) {
  const bool staged = staging_elements(p) > 0;
  const DType reduce_dtype = staged ? DType::Float32 : p.dtype;
  switch (p.kind) {
    case Collective::AllReduce: {
      void* buffer = staged ? p.staging : p.data;
      if (staged) convert_cpu(p.data, p.dtype, buffer, reduce_dtype, p.n);
      mpi_all_reduce(fn, buffer, p.n, reduce_dtype, p.op);
      if (p.op == ReduceOp::Mean) divide(buffer, reduce_dtype, p.n, p.world_size);
      if (staged) convert_cpu(buffer, reduce_dtype, p.data, p.dtype, p.n);
      return;
    }
    case Collective::Broadcast: mpi_broadcast(fn, p.data, p.n, p.dtype, p.root); return;
    case Collective::AllGather: all_gather(fn, p); return;
    case Collective::ReduceScatter: {
      const int64_t total = p.n * p.world_size;
      const void* in = staged ? p.staging : p.input;
      void* out = staged ? static_cast<float*>(p.staging) + total : p.data;
      if (staged) convert_cpu(p.input, p.dtype, p.staging, reduce_dtype, total);
      reduce_scatter(fn, in, out, p.n, reduce_dtype, p.op);
      if (p.op == ReduceOp::Mean) divide(out, reduce_dtype, p.n, p.world_size);
      if (staged) convert_cpu(out, reduce_dtype, p.data, p.dtype, p.n);
      return;
    }
    case Collective::Barrier: mpi_barrier(fn); return;
  }
}

void mpi_barrier(const char* fn) {
  const mpi::Library& l = lib(fn);
  check(l, l.barrier(l.comm_world), fn, "MPI_Barrier");
}

}  // namespace lmk::kernels::dist
