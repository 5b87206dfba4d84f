// The runtime without Node: streams, pools, errors, value checks, creation and
// copy ops, and (when a GPU is present) CUDA against the CPU.
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/cuda_grid.h"
#include "kernels/test_hooks.h"
#include "math/half.h"
#include "ops/tensor_ops.h"
#include "runtime/stream.h"
#include "runtime/thread_pool.h"
#include "test_harness.h"

using namespace lmk;

static const Device kCpu{DeviceKind::CPU, 0};

template <typename T>
static std::vector<T> read(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  std::vector<T> values(bytes.size() / sizeof(T));
  if (!bytes.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

TEST(parallel_for_covers_the_range_once) {
  for (int64_t n : {0, 1, 7, 1000, 100003}) {
    std::vector<int> hits(static_cast<size_t>(n), 0);
    parallel_for(n, 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int h : hits) CHECK_EQ(h, 1);
  }
  CHECK(thread_pool_size() >= 1);
}

TEST(creation_and_conversion) {
  auto f = read<float>(ops::full({2, 3}, 1.5, DType::Float32, kCpu));
  CHECK_EQ(f.size(), size_t(6));
  CHECK_EQ(f[5], 1.5f);
  auto a = read<int32_t>(ops::arange(5, DType::Int32, kCpu));
  CHECK_EQ(a[4], 4);
  double host[3] = {1.0 / 3.0, -2.0, 65520.0};
  Tensor h = ops::from_host(host, DType::Float64, 3, {3}, DType::Float16, kCpu);
  auto hv = read<float>(h);
  CHECK_EQ(hv[0], f16_to_float(double_to_f16(1.0 / 3.0)));
  CHECK_EQ(hv[1], -2.0f);
  CHECK(std::isinf(hv[2]));
  auto d =
      read<double>(ops::to_dtype(ops::from_host(host, DType::Float64, 3, {3}, DType::Float32, kCpu), DType::Float64));
  CHECK_EQ(d[0], static_cast<double>(static_cast<float>(1.0 / 3.0)));
  Tensor r = ops::reshape(ops::arange(6, DType::Float32, kCpu), {3, -1});
  CHECK_EQ(r.shape[1], int64_t(2));
  CHECK_THROWS_KIND(ops::reshape(r, {4, -1}), ErrorKind::Range, "Tensor.reshape");
}

TEST(random_is_reproducible) {
  auto a = read<float>(ops::randn({1000}, DType::Float32, kCpu, 11, 0, 1));
  auto b = read<float>(ops::randn({1000}, DType::Float32, kCpu, 11, 0, 1));
  CHECK(a == b);
  auto c = read<float>(ops::randn({1000}, DType::Float32, kCpu, 12, 0, 1));
  CHECK(a != c);
}

TEST(bad_sizes_are_range_errors) {
  CHECK_THROWS_KIND(ops::empty({-1}, DType::Float32, kCpu), ErrorKind::Range, "empty: shape");
  CHECK_THROWS_KIND(ops::empty({int64_t(1) << 40, int64_t(1) << 20}, DType::Float32, kCpu), ErrorKind::Range,
                    "more than 2^53");
  CHECK_THROWS_KIND(ops::empty({int64_t(1) << 50}, DType::Float32, kCpu), ErrorKind::Range, "cannot allocate");
  CHECK_THROWS_KIND(ops::rand({2}, DType::Int32, kCpu, 1, 0, 1), ErrorKind::Type, "rand: dtype");
  CHECK_THROWS_KIND(ops::full({2}, 0, DType::Float32, Device{DeviceKind::CPU, 3}), ErrorKind::Type, "usable device");
  double one = 1;
  CHECK_THROWS_KIND(ops::from_host(&one, DType::Float64, 1, {2}, DType::Float32, kCpu), ErrorKind::Range,
                    "holds 2 elements but data has 1");
}

TEST(kernel_errors_surface_at_the_next_sync_and_clear) {
  int32_t values[4] = {0, 1, 9, 2};
  Tensor v = ops::from_host(values, DType::Int32, 4, {4}, DType::Int32, kCpu);
  Tensor checked = ops::check_indices(v, 3, "test.op", "labels");
  Stream& stream = stream_for(kCpu);
  CHECK_THROWS_KIND(stream.synchronize(), ErrorKind::Range,
                    "test.op: labels has a value outside [0, 3) at flat index 2");
  stream.synchronize();                                                         // reported once, then clear
  CHECK_THROWS_KIND(read<int32_t>(checked), ErrorKind::Range, "flat index 2");  // poisoned output
  auto ok = read<int32_t>(ops::check_indices(v, 10, "test.op", "labels"));
  CHECK_EQ(ok[2], 9);
  // A throwing task is recorded with the op's name and does not stop the stream.
  Tensor out = ops::empty({1}, DType::Float32, kCpu);
  stream.enqueue("test.throwing", [] { throw_range_error("bad value"); }, {out.storage}, {out.storage});
  CHECK_THROWS_KIND(stream.synchronize(), ErrorKind::Range, "test.throwing: bad value");
  CHECK_EQ(read<float>(ops::full({1}, 2, DType::Float32, kCpu))[0], 2.0f);
}

TEST(small_tasks_run_inline_only_when_the_stream_is_idle) {
  Stream& stream = stream_for(kCpu);
  const std::thread::id caller = std::this_thread::get_id();
  // Idle: an InlineWhenIdle task runs before enqueue returns, on this thread.
  // synchronize() returns when its report has run on the worker, which may
  // still be finishing that task (busy) for a moment: so try again, a bounded
  // number of times, until the stream is found idle.
  bool ran_inline = false;
  for (int attempt = 0; attempt < 1000 && !ran_inline; ++attempt) {
    stream.synchronize();
    std::atomic<bool> on_caller{false};
    stream.enqueue(
        "test.inline", [&] { on_caller = std::this_thread::get_id() == caller; }, {}, {}, Placement::InlineWhenIdle);
    stream.synchronize();
    ran_inline = on_caller;
    if (!ran_inline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(ran_inline);
  // A Worker task (what a collective uses) never runs here, idle or not.
  std::promise<std::thread::id> worker_ran;
  stream.enqueue("test.worker", [&] { worker_ran.set_value(std::this_thread::get_id()); }, {}, {});
  CHECK(worker_ran.get_future().get() != caller);
  // Busy: a small task queues behind the running one and runs after it, in order.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<int> order;
  std::mutex order_mutex;
  auto note = [&](int step) {
    std::lock_guard<std::mutex> lock(order_mutex);
    order.push_back(step);
  };
  stream.enqueue("test.blocking",
                 [&, released] {
                   released.wait();
                   note(1);
                 },
                 {}, {});
  stream.enqueue(
      "test.small", [&] { note(2); }, {}, {}, Placement::InlineWhenIdle);
  note(0);  // the small task did not run here while the stream was busy
  release.set_value();
  stream.synchronize();
  CHECK_EQ(order.size(), size_t(3));
  CHECK_EQ(order[0], 0);
  CHECK_EQ(order[1], 1);
  CHECK_EQ(order[2], 2);
  // An inline task's error is recorded like a worker task's: at the next sync, once.
  Tensor out = ops::empty({1}, DType::Float32, kCpu);
  stream.enqueue(
      "test.inline_throwing", [] { throw_range_error("bad value"); }, {out.storage}, {out.storage},
      Placement::InlineWhenIdle);
  CHECK_THROWS_KIND(stream.synchronize(), ErrorKind::Range, "test.inline_throwing: bad value");
  stream.synchronize();
  CHECK_THROWS_KIND(read<float>(out), ErrorKind::Range, "bad value");  // the poisoned output
}

TEST(storage_lives_until_queued_work_finishes) {
  // Earlier tests' tasks drop their references on the worker: let them finish.
  stream_for(kCpu).synchronize();
  int64_t before = memory_stats(kCpu).bytes_in_use;
  {
    Tensor big = ops::randn({1 << 20}, DType::Float32, kCpu, 1, 0, 1);
    Tensor copy = ops::to_dtype(big, DType::Float64);
    big = Tensor{};  // the queued conversion still holds the input
    auto values = read<double>(copy);
    CHECK(std::isfinite(values[12345]));
  }
  stream_for(kCpu).synchronize();
  CHECK_EQ(memory_stats(kCpu).bytes_in_use, before);
  empty_cache();
  CHECK_EQ(memory_stats(kCpu).bytes_reserved, memory_stats(kCpu).bytes_in_use);
}

TEST(cuda_without_a_driver_reports_a_reason) {
  const CudaInfo& info = cuda_info();
  if (info.available) return;
  CHECK(!info.reason.empty());
  CHECK_THROWS_KIND(ops::empty({2}, DType::Float32, Device{DeviceKind::CUDA, 0}), ErrorKind::Type, "not available");
}

TEST(cuda_matches_cpu_when_present) {
  if (!cuda_info().available) {
    std::printf("  (no CUDA device: skipped)\n");
    return;
  }
  Device gpu{DeviceKind::CUDA, 0};
  auto cpu_normal = read<float>(ops::randn({4099}, DType::Float32, kCpu, 5, 0, 1));
  auto gpu_normal = read<float>(ops::randn({4099}, DType::Float32, gpu, 5, 0, 1));
  CHECK(std::memcmp(cpu_normal.data(), gpu_normal.data(), cpu_normal.size() * 4) == 0);
  auto cpu_u = read<float>(ops::rand({4099}, DType::BFloat16, kCpu, 5, -1, 1));
  auto gpu_u = read<float>(ops::rand({4099}, DType::BFloat16, gpu, 5, -1, 1));
  CHECK(cpu_u == gpu_u);
  Tensor x = ops::randn({1000}, DType::Float32, kCpu, 9, 0, 1);
  auto round_trip = read<float>(ops::to_device(ops::to_dtype(ops::to_device(x, gpu), DType::Float16), kCpu));
  auto on_cpu = read<float>(ops::to_dtype(x, DType::Float16));
  CHECK(round_trip == on_cpu);
  int32_t values[3] = {0, 5, 1};
  Tensor v = ops::from_host(values, DType::Int32, 3, {3}, DType::Int32, gpu);
  Tensor checked = ops::check_indices(v, 2, "test.op", "labels");
  CHECK_THROWS_KIND(cuda_stream(0).synchronize(), ErrorKind::Range, "at flat index 1");
  cuda_stream(0).synchronize();
  CHECK_THROWS_KIND(read<int32_t>(checked), ErrorKind::Range, "flat index 1");
}

TEST(test_hooks_cap_looping_grids_and_pick_variants) {
  using kernels::KernelFamily;
  using kernels::KernelVariant;
  const int before = kernels::test_grid_cap();
  {
    kernels::ScopedGridCap cap(3);
    CHECK_EQ(kernels::looping_grid(100, 65535), 3u);
    CHECK_EQ(kernels::looping_grid(2, 65535), 2u);
    CHECK_EQ(kernels::grid_for(int64_t(1) << 20), 3u);
  }
  CHECK_EQ(kernels::test_grid_cap(), before);
  {
    kernels::ScopedGridCap off(0);
    CHECK_EQ(kernels::looping_grid(100, 65535), 100u);
    CHECK_EQ(kernels::looping_grid(100000, 65535), 65535u);
    CHECK_EQ(kernels::looping_grid(0, 65535), 1u);
    CHECK_EQ(kernels::grid_for(1000), 4u);
  }
  CHECK_THROWS_KIND(kernels::set_test_grid_cap(-1), ErrorKind::Range, "block count >= 0");
  {
    kernels::ScopedKernelVariant chunked(KernelFamily::Wkv4Forward, KernelVariant::Chunked);
    CHECK(kernels::test_kernel_variant(KernelFamily::Wkv4Forward) == KernelVariant::Chunked);
    CHECK(kernels::test_kernel_variant(KernelFamily::Fam) == KernelVariant::Default);
  }
  CHECK(kernels::test_kernel_variant(KernelFamily::Wkv4Forward) == KernelVariant::Default);
  CHECK_THROWS_KIND(kernels::set_test_kernel_variant(KernelFamily::Fam, KernelVariant::Chunked), ErrorKind::Type,
                    "fam has no variant Chunked");
  CHECK_THROWS_KIND(kernels::set_test_kernel_variant(KernelFamily::Wkv4Forward, KernelVariant::Reference),
                    ErrorKind::Type, "wkv4 forward has no variant Reference");
  CHECK(kernels::test_kernel_variant(KernelFamily::Fam) == KernelVariant::Default);
}

LMK_TEST_MAIN()
