// dist without MPI: the run-time library loader, the call signatures and the
// message that reports calls that differ across ranks, the world of one (no
// launcher) with every collective and its argument checks, and a launcher's
// process where MPI cannot be opened. The 2-rank runs are in test/dist.test.ts.
#include <cstdlib>
#include <cstring>
#include <future>
#include <vector>

#include "kernels/dist/collectives.h"
#include "ops/dist.h"
#include "ops/tensor_ops.h"
#include "runtime/dynamic_library.h"
#include "test_harness.h"

using namespace lmk;
using kernels::dist::Collective;
using kernels::dist::ReduceOp;

static const Device kCpu{DeviceKind::CPU, 0};

#define CHECK_TEXT(got, want)                                                                               \
  do {                                                                                                      \
    std::string lmk_got = (got), lmk_want = (want);                                                         \
    if (lmk_got != lmk_want) lmk_test::fail(__FILE__, __LINE__, "'" + lmk_got + "' vs '" + lmk_want + "'"); \
  } while (0)

// Every value of t as float64 (exact for every dtype here).
static std::vector<double> values(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(ops::to_dtype(t, DType::Float64));
  const auto* begin = reinterpret_cast<const double*>(bytes.data());
  return std::vector<double>(begin, begin + bytes.size() / sizeof(double));
}

static Tensor floats(const std::vector<double>& values, const Shape& shape, DType dtype = DType::Float32) {
  return ops::from_host(values.data(), DType::Float64, static_cast<int64_t>(values.size()), shape, dtype, kCpu);
}

// Runs a dist call that reports through a DoneCallback; throws its error.
template <typename Call>
static void wait_done(Call&& call) {
  std::promise<std::optional<RecordedError>> promise;
  auto result = promise.get_future();
  call([&promise](const std::optional<RecordedError>& error) { promise.set_value(error); });
  auto error = result.get();
  if (error) throw Error(error->kind, error->message);
}

static void clear_launcher_environment() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) unsetenv(name);
}

TEST(dynamic_library_opens_finds_and_explains) {
  DynamicLibrary missing = DynamicLibrary::open_first({"libdoes-not-exist.so.7", "libneither.so"});
  CHECK(!missing);
  CHECK(missing.error().find("libdoes-not-exist.so.7") != std::string::npos);
  CHECK(missing.error().find("libneither.so") != std::string::npos);

  DynamicLibrary libm = DynamicLibrary::open_first({"libdoes-not-exist.so.7", "libm.so.6"});
  CHECK(static_cast<bool>(libm));
  CHECK_TEXT(libm.name(), "libm.so.6");
  double (*cosine)(double) = nullptr;
  CHECK(libm.find("cos", &cosine));
  CHECK_EQ(cosine(0.0), 1.0);
  void (*absent)() = nullptr;
  CHECK(!libm.find("lmk_no_such_symbol", &absent));
  CHECK(libm.error().find("libm.so.6 has no symbol lmk_no_such_symbol") != std::string::npos);

  DynamicLibrary moved = std::move(libm);
  CHECK(static_cast<bool>(moved));
  CHECK(!libm);  // NOLINT(bugprone-use-after-move): the move empties it
}

TEST(load_once_runs_the_loader_once) {
  struct Fake {
    int value = 0;
  };
  static int calls = 0;
  auto failing = [](Fake&, std::string* failure) {
    ++calls;
    *failure = "libfake.so.1: cannot open shared object file";
    return false;
  };
  std::string why;
  CHECK(load_once<Fake>(&why, failing) == nullptr);
  CHECK_TEXT(why, "libfake.so.1: cannot open shared object file");
  why.clear();
  CHECK(load_once<Fake>(&why, failing) == nullptr);
  CHECK_TEXT(why, "libfake.so.1: cannot open shared object file");
  CHECK_EQ(calls, 1);
  struct Other {
    int value = 0;
  };
  auto loading = [](Other& lib, std::string*) {
    lib.value = 7;
    return true;
  };
  const Other* loaded = load_once<Other>(nullptr, loading);
  CHECK(loaded != nullptr && loaded->value == 7);
  CHECK(load_once<Other>(nullptr, loading) == loaded);
}

TEST(signatures_agree_or_name_every_rank) {
  using kernels::dist::describe_mismatch;
  using kernels::dist::make_signature;
  auto a = make_signature(Collective::AllReduce, ReduceOp::Sum, 0, DType::Float32, DeviceKind::CPU, {2, 3});
  auto a2 = make_signature(Collective::AllReduce, ReduceOp::Sum, 0, DType::Float32, DeviceKind::CPU, {2, 3});
  CHECK_TEXT(describe_mismatch({a, a2, a}), "");
  auto b = make_signature(Collective::AllReduce, ReduceOp::Sum, 0, DType::Float32, DeviceKind::CPU, {3, 2});
  CHECK_TEXT(describe_mismatch({a, b, a}),
             "ranks 0,2: allReduce of float32 [2,3] on cpu, op 'sum'; rank 1: allReduce of float32 [3,2] on cpu, "
             "op 'sum'");
  // Everything that must agree is in the signature.
  auto op = make_signature(Collective::AllReduce, ReduceOp::Mean, 0, DType::Float32, DeviceKind::CPU, {2, 3});
  auto dtype = make_signature(Collective::AllReduce, ReduceOp::Sum, 0, DType::BFloat16, DeviceKind::CPU, {2, 3});
  auto device = make_signature(Collective::AllReduce, ReduceOp::Sum, 0, DType::Float32, DeviceKind::CUDA, {2, 3});
  auto kind = make_signature(Collective::Broadcast, ReduceOp::Sum, 0, DType::Float32, DeviceKind::CPU, {2, 3});
  auto root = make_signature(Collective::Broadcast, ReduceOp::Sum, 1, DType::Float32, DeviceKind::CPU, {2, 3});
  for (const auto& other : {op, dtype, device, kind}) CHECK(!describe_mismatch({a, other}).empty());
  CHECK_TEXT(describe_mismatch({kind, root}),
             "rank 0: broadcast of float32 [2,3] on cpu, root 0; rank 1: broadcast of float32 [2,3] on cpu, root 1");
  // Shapes beyond the dims shown still differ (hash of the whole shape).
  Shape long_a(10, 2), long_b(10, 2);
  long_b[9] = 3;
  auto la = make_signature(Collective::AllGather, ReduceOp::Sum, 0, DType::Float64, DeviceKind::CPU, long_a);
  auto lb = make_signature(Collective::AllGather, ReduceOp::Sum, 0, DType::Float64, DeviceKind::CPU, long_b);
  CHECK(describe_mismatch({la, lb}).find("allGather of float64 [2,2,2,2,2,2,2,2,...]") != std::string::npos);
}

// One TEST, so the order is fixed: MPI's library is looked for once per process.
TEST(launcher_without_mpi_then_world_of_one) {
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  setenv("LMK_MPI_LIBRARY", "/nonexistent/libmpi.so.40", 1);
  CHECK_THROWS_KIND(wait_done([](DoneCallback done) { ops::dist_init(std::nullopt, std::move(done)); }),
                    ErrorKind::Runtime, "apt-get install openmpi-bin libopenmpi-dev");
  CHECK_THROWS_KIND(wait_done([](DoneCallback done) { ops::dist_init(std::nullopt, std::move(done)); }),
                    ErrorKind::Runtime, "OMPI_COMM_WORLD_SIZE is set) but MPI cannot be opened: /nonexistent");
  CHECK(!ops::dist_world().initialized);
  clear_launcher_environment();

  CHECK_THROWS_KIND(ops::dist_all_reduce_(floats({1}, {1}), std::nullopt), ErrorKind::Runtime,
                    "dist.allReduce: call dist.init() first");
  CHECK_THROWS_KIND(wait_done([](DoneCallback done) { ops::dist_init(std::string("gloo"), std::move(done)); }),
                    ErrorKind::Range, "dist.init: backend must be one of 'auto', 'mpi', 'nccl', got 'gloo'");
  wait_done([](DoneCallback done) { ops::dist_init(std::nullopt, std::move(done)); });
  ops::DistWorld world = ops::dist_world();
  CHECK(world.initialized);
  CHECK_EQ(world.rank, 0);
  CHECK_EQ(world.world_size, 1);
  CHECK_TEXT(world.backend, "none");

  // Every collective over one rank is the identity.
  for (DType dtype : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16}) {
    for (const char* op : {"sum", "mean", "max", "min"}) {
      Tensor t = floats({1.5, -2, 0.25}, {3}, dtype);
      ops::dist_all_reduce_(t, std::string(op));
      CHECK(values(t) == (std::vector<double>{1.5, -2, 0.25}));
    }
  }
  Tensor input = floats({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor gathered = floats({0, 0, 0, 0, 0, 0}, {1, 3, 2});
  ops::dist_all_gather(input, gathered);
  CHECK(values(gathered) == (std::vector<double>{1, 2, 3, 4, 5, 6}));
  Tensor scattered = floats({0, 0, 0, 0, 0, 0}, {3, 2});
  ops::dist_reduce_scatter(gathered, scattered, std::string("max"));
  CHECK(values(scattered) == (std::vector<double>{1, 2, 3, 4, 5, 6}));
  ops::dist_broadcast_(input, 0);
  wait_done([](DoneCallback done) { ops::dist_barrier(std::move(done)); });

  // Argument checks, once, in core.
  CHECK_THROWS_KIND(ops::dist_all_reduce_(input, std::string("avg")), ErrorKind::Range,
                    "dist.allReduce: op must be one of 'sum', 'mean', 'max', 'min', got 'avg'");
  CHECK_THROWS_KIND(ops::dist_all_reduce_(ops::arange(3, DType::Int32, kCpu), std::string("mean")), ErrorKind::Type,
                    "dist.allReduce: op 'mean' needs a floating tensor");
  CHECK_THROWS_KIND(ops::dist_all_reduce_(Tensor{}, std::nullopt), ErrorKind::Type, "dist.allReduce: t");
  CHECK_THROWS_KIND(ops::dist_broadcast_(input, -1), ErrorKind::Range,
                    "dist.broadcast: root must be a rank in [0, 1), got -1");
  CHECK_THROWS_KIND(ops::dist_all_gather(input, floats({0, 0, 0, 0, 0, 0}, {6})), ErrorKind::Range,
                    "dist.allGather: output must have shape [1,3,2] or [3,2] (worldSize 1 times input [3,2]), got [6]");
  CHECK_THROWS_KIND(ops::dist_all_gather(input, ops::to_dtype(gathered, DType::Float64)), ErrorKind::Type,
                    "dist.allGather: output");
  CHECK_THROWS_KIND(ops::dist_reduce_scatter(input, ops::reshape(input, {1, 3, 2}), std::nullopt), ErrorKind::Range,
                    "dist.reduceScatter: input must have shape [1,1,3,2] or [1,3,2]");
  CHECK_THROWS_KIND(ops::dist_reduce_scatter(ops::reshape(input, {1, 3, 2}), input, std::nullopt), ErrorKind::Range,
                    "dist.reduceScatter: input and output overlap");

  wait_done([](DoneCallback done) { ops::dist_finalize(std::move(done)); });
  CHECK(!ops::dist_world().initialized);
  CHECK_THROWS_KIND(wait_done([](DoneCallback done) { ops::dist_barrier(std::move(done)); }), ErrorKind::Runtime,
                    "dist.barrier: call dist.init() first");
  // A world of one starts again.
  wait_done([](DoneCallback done) { ops::dist_init(std::string("auto"), std::move(done)); });
  CHECK(ops::dist_world().initialized);
}

LMK_TEST_MAIN()
