// The emulated CUDA backend's own tests: each primitive against CUDA's
// documented semantics (computed here on the host, lane by lane), each
// diagnostic firing with the kernel, block and thread named, and the thread
// orders.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "emulator/control.h"
#include "emulator/launch.h"
#include "test_harness.h"

using lmk::emulator::launch;
using lmk::emulator::set_thread_order;
using lmk::emulator::ThreadOrder;

namespace {

// Runs `body` once per order; restores forward order afterwards.
template <typename F>
void in_every_order(F body) {
  const std::pair<ThreadOrder, uint64_t> orders[] = {
      {ThreadOrder::Forward, 0}, {ThreadOrder::Reverse, 0}, {ThreadOrder::Random, 1}, {ThreadOrder::Random, 2}};
  for (auto [order, seed] : orders) {
    set_thread_order(order, seed);
    body();
  }
  set_thread_order(ThreadOrder::Forward);
}

// The error of the last launch, with its message; clears it.
std::string launch_error() {
  cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return "";
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

#define CHECK_LAUNCH_OK()                                                  \
  do {                                                                     \
    std::string lmk_error = launch_error();                                \
    if (!lmk_error.empty()) lmk_test::fail(__FILE__, __LINE__, lmk_error); \
  } while (0)

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- kernels -------------------------------------------------------------------------
__global__ void write_indices(unsigned* out) {
  unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  out[block * threads + thread] = block * 10000 + thread;
}

constexpr int kTree = 256;
// A shared-memory tree sum; without the barrier inside the loop (kRacy) a
// thread may read a partial sum before its writer has stored it.
template <bool kRacy>
__global__ void tree_sum(const float* x, float* out) {
  __shared__ float tree[kTree];
  tree[threadIdx.x] = x[blockIdx.x * kTree + threadIdx.x];
  __syncthreads();
  for (int width = kTree / 2; width >= 1; width /= 2) {
    if (threadIdx.x < static_cast<unsigned>(width)) tree[threadIdx.x] += tree[threadIdx.x + width];
    if (!kRacy) __syncthreads();
  }
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = tree[0];
}

// out[8 * t + k]: the k-th collective's result for thread t.
__global__ void warp_collectives(const int* in, int width, int* out) {
  const int t = threadIdx.x;
  const int v = in[t];
  int* o = out + 8 * t;
  o[0] = __shfl_sync(0xffffffffu, v, 5, width);
  o[1] = __shfl_up_sync(0xffffffffu, v, 3, width);
  o[2] = __shfl_down_sync(0xffffffffu, v, 3, width);
  o[3] = __shfl_xor_sync(0xffffffffu, v, 6, width);
  o[4] = static_cast<int>(__ballot_sync(0xffffffffu, v % 3 == 0));
  o[5] = __any_sync(0xffffffffu, v == 7);
  o[6] = __all_sync(0xffffffffu, v >= 0);
  __syncwarp();
  o[7] = __shfl_xor_sync(0x0000ffffu << (t & 16), v, 1);  // each half-warp alone
}

__global__ void shfl_double(const double* in, double* out) {
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, in[threadIdx.x], 1);
}

__global__ void atomics(int* i, unsigned long long* u, float* f, long long* m) {
  atomicAdd(&i[0], 1);
  atomicMax(&i[1], static_cast<int>(threadIdx.x));
  atomicMin(&i[2], static_cast<int>(threadIdx.x) - 3);
  atomicCAS(&i[3], 0, static_cast<int>(threadIdx.x) + 1);  // only the first thread to run wins
  atomicAdd(&u[0], 2ull);
  atomicMin(&u[1], static_cast<unsigned long long>(100 + threadIdx.x));
  atomicAdd(&f[0], 0.5f);
  atomicMax(&m[0], -static_cast<long long>(threadIdx.x));
}

__global__ void read_unwritten_dynamic_shared(unsigned* out) {
  LMK_DYNAMIC_SHARED(unsigned, smem);
  if (threadIdx.x == 0) out[blockIdx.x] = smem[1];
  __syncthreads();
  smem[1] = 7;  // the next block must see the poison again
}

__global__ void record_order(unsigned* counter, unsigned* order) { order[atomicAdd(counter, 1u)] = threadIdx.x; }

// ---- kernels with bugs for the diagnostics ---------------------------------------------
__global__ void divergent_barrier(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void exit_before_barrier(int* out) {
  if (threadIdx.x == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void mask_without_caller(int* out) {
  out[threadIdx.x] = __shfl_sync(0x1u, 1, 0);  // lanes 1.. call with a mask naming lane 0 only
}

__global__ void mask_mismatch(int* out) {
  unsigned mask = threadIdx.x == 4 ? 0x0000ffffu : 0xffffffffu;
  out[threadIdx.x] = __shfl_xor_sync(mask, 1, 1);
}

__global__ void read_outside_mask(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1, 8, 32);  // lane 8 reads lane 16
}

__global__ void shuffle_against_barrier(int* out) {
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
    __syncthreads();
  }
}

__global__ void partial_warp_full_mask(int* out) { out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1); }

__global__ void big_dynamic_shared(int* out) {
  LMK_DYNAMIC_SHARED(int, smem);
  smem[threadIdx.x] = 1;
  out[threadIdx.x] = smem[threadIdx.x];
}

}  // namespace

TEST(indices_cover_a_3d_grid_of_3d_blocks) {
  in_every_order([] {
    dim3 grid(3, 2, 2), block(4, 3, 2);
    std::vector<unsigned> out(12 * 24, 0xdeadbeef);
    launch(write_indices, grid, block, 0, nullptr, out.data());
    CHECK_LAUNCH_OK();
    for (unsigned b = 0; b < 12; ++b) {
      for (unsigned t = 0; t < 24; ++t) CHECK_EQ(out[b * 24 + t], b * 10000 + t);
    }
  });
}

TEST(syncthreads_orders_a_shared_memory_tree) {
  std::vector<float> x(4 * kTree);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 101) - 50.0f;
  std::vector<float> expected(4);
  for (int b = 0; b < 4; ++b) {
    std::vector<float> tree(x.begin() + b * kTree, x.begin() + (b + 1) * kTree);
    for (int width = kTree / 2; width >= 1; width /= 2) {
      for (int t = 0; t < width; ++t) tree[t] += tree[t + width];
    }
    expected[b] = tree[0];
  }
  in_every_order([&] {
    std::vector<float> out(4, -1.0f);
    launch(tree_sum<false>, dim3(4), dim3(kTree), 0, nullptr, x.data(), out.data());
    CHECK_LAUNCH_OK();
    CHECK(out == expected);
  });
}

TEST(a_missing_barrier_changes_the_result_with_the_order) {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer must report this race: scripts/test-cpp.sh emulate-tsan
  // runs it alone with LMK_EMU_EXPECT_RACE=1 and requires the report.
  if (!std::getenv("LMK_EMU_EXPECT_RACE")) {
    std::printf("  (ThreadSanitizer build: runs only with LMK_EMU_EXPECT_RACE=1)\n");
    return;
  }
#endif
  std::vector<float> x(kTree);
  for (int i = 0; i < kTree; ++i) x[i] = static_cast<float>(i + 1);
  std::vector<float> results;
  in_every_order([&] {
    float out = 0;
    launch(tree_sum<true>, dim3(1), dim3(kTree), 0, nullptr, x.data(), &out);
    results.push_back(out);
  });
  CHECK(std::adjacent_find(results.begin(), results.end(), std::not_equal_to<float>()) != results.end());
}

TEST(warp_collectives_follow_cuda_semantics) {
  for (int width : {32, 16, 8}) {
    std::vector<int> in(64);
    for (int t = 0; t < 64; ++t) in[t] = (t * 7 + 3) % 50;
    std::vector<int> expected(64 * 8);
    for (int t = 0; t < 64; ++t) {
      const int warp = t / 32 * 32, lane = t % 32, seg = lane / width * width, pos = lane % width;
      int* e = &expected[8 * t];
      e[0] = in[warp + seg + 5 % width];
      e[1] = pos >= 3 ? in[t - 3] : in[t];
      e[2] = pos + 3 < width ? in[t + 3] : in[t];
      int x = lane ^ 6;
      e[3] = x / width <= lane / width ? in[warp + x] : in[t];
      unsigned ballot = 0, any = 0;
      bool all = true;
      for (int l = 0; l < 32; ++l) {
        ballot |= static_cast<unsigned>(in[warp + l] % 3 == 0) << l;
        any |= in[warp + l] == 7;
        all = all && in[warp + l] >= 0;
      }
      e[4] = static_cast<int>(ballot);
      e[5] = static_cast<int>(any);
      e[6] = all;
      e[7] = in[warp + (lane ^ 1)];
    }
    in_every_order([&] {
      std::vector<int> out(64 * 8, -1);
      launch(warp_collectives, dim3(1), dim3(64), 0, nullptr, in.data(), width, out.data());
      CHECK_LAUNCH_OK();
      CHECK(out == expected);
    });
  }
  std::vector<double> d(32), out(32);
  for (int i = 0; i < 32; ++i) d[i] = 1.0 / (i + 1);
  launch(shfl_double, dim3(1), dim3(32), 0, nullptr, d.data(), out.data());
  for (int i = 0; i < 32; ++i) CHECK_EQ(out[i], d[i < 31 ? i + 1 : i]);
}

TEST(atomics_are_read_modify_writes) {
  in_every_order([] {
    int i[4] = {0, -1, 1000, 0};
    unsigned long long u[2] = {0, ~0ull};
    float f = 0;
    long long m = -1000;
    launch(atomics, dim3(2), dim3(100), 0, nullptr, i, u, &f, &m);
    CHECK_LAUNCH_OK();
    CHECK_EQ(i[0], 200);
    CHECK_EQ(i[1], 99);
    CHECK_EQ(i[2], -3);
    CHECK(i[3] >= 1 && i[3] <= 100);
    CHECK_EQ(u[0], 400ull);
    CHECK_EQ(u[1], 100ull);
    CHECK_EQ(f, 100.0f);
    CHECK_EQ(m, 0ll);
  });
}

TEST(dynamic_shared_memory_is_poisoned_before_each_block) {
  std::vector<unsigned> out(3, 0);
  launch(read_unwritten_dynamic_shared, dim3(3), dim3(64), 16, nullptr, out.data());
  CHECK_LAUNCH_OK();
  for (unsigned v : out) CHECK_EQ(v, 0xffffffffu);
}

TEST(thread_orders_are_forward_reverse_and_seeded_random) {
  auto run = [](ThreadOrder order, uint64_t seed) {
    set_thread_order(order, seed);
    unsigned counter = 0;
    std::vector<unsigned> order_seen(96);
    launch(record_order, dim3(1), dim3(96), 0, nullptr, &counter, order_seen.data());
    set_thread_order(ThreadOrder::Forward);
    return order_seen;
  };
  std::vector<unsigned> forward(96), reverse(96);
  std::iota(forward.begin(), forward.end(), 0u);
  std::iota(reverse.rbegin(), reverse.rend(), 0u);
  CHECK(run(ThreadOrder::Forward, 0) == forward);
  CHECK(run(ThreadOrder::Reverse, 0) == reverse);
  auto r1 = run(ThreadOrder::Random, 7), r1_again = run(ThreadOrder::Random, 7), r2 = run(ThreadOrder::Random, 8);
  CHECK(r1 != forward && r1 != reverse && r1 != r2);
  auto sorted = r1;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == forward);
  ThreadOrder order;
  uint64_t seed = 0;
  CHECK(lmk::emulator::parse_thread_order("random:42", &order, &seed) && order == ThreadOrder::Random && seed == 42);
  CHECK(!lmk::emulator::parse_thread_order("backwards", &order, &seed));
  // The launch counter salts the permutation, so only the same launch sequence repeats
  // it: r1_again is the next launch and may differ, but it is still a permutation.
  std::sort(r1_again.begin(), r1_again.end());
  CHECK(r1_again == forward);
}

TEST(diagnostics_name_the_kernel_block_and_thread) {
  struct Case {
    void (*kernel)(int*);
    unsigned threads;
    std::vector<std::string> fragments;
  };
  const Case cases[] = {
      {divergent_barrier,
       64,
       {"cudaErrorLaunchFailure", "divergent_barrier", "(emulator_test.cc)", "block (1,0,0)", "divergent __syncthreads",
        "emulator/test/emulator_test.cc:"}},
      {exit_before_barrier, 32, {"thread (3,0,0) exited while 31 threads wait at __syncthreads"}},
      {mask_without_caller, 32, {"mask_without_caller", "does not include the calling lane"}},
      {mask_mismatch, 32, {"divergent warp collective", "0x0000ffff"}},
      {read_outside_mask, 32, {"reads lane 16, outside the mask 0x0000ffff"}},
      {shuffle_against_barrier, 32, {"deadlock", "waits at __syncthreads"}},
      {partial_warp_full_mask, 48, {"does not exist (the block has 48 threads)"}},
  };
  std::vector<int> out(64, 0);
  for (const Case& c : cases) {
    // Block 1 runs first in reverse order: the diagnostic names the block that failed.
    set_thread_order(ThreadOrder::Reverse);
    launch(c.kernel, dim3(2), dim3(c.threads), 0, nullptr, out.data());
    set_thread_order(ThreadOrder::Forward);
    const std::string e = launch_error();
    for (const std::string& fragment : c.fragments) {
      if (!contains(e, fragment)) lmk_test::fail(__FILE__, __LINE__, "'" + fragment + "' missing from: " + e);
    }
  }
  // A failed launch leaves no error behind for the next one.
  launch(write_indices, dim3(1), dim3(8), 0, nullptr, reinterpret_cast<unsigned*>(out.data()));
  CHECK_LAUNCH_OK();
}

TEST(launches_over_sm90_limits_are_configuration_errors) {
  std::vector<int> out(1024, 0);
  launch(big_dynamic_shared, dim3(1), dim3(1025), 0, nullptr, out.data());
  std::string e = launch_error();
  CHECK(contains(e, "cudaErrorInvalidConfiguration"));
  CHECK(contains(e, "over sm_90's limits"));
  launch(big_dynamic_shared, dim3(1), dim3(2, 2, 65), 0, nullptr, out.data());
  CHECK(contains(launch_error(), "over sm_90's limits"));
  launch(big_dynamic_shared, dim3(1, 65536), dim3(1), 0, nullptr, out.data());
  CHECK(contains(launch_error(), "grid 1x65536x1"));
  launch(big_dynamic_shared, dim3(0), dim3(1), 0, nullptr, out.data());
  CHECK(contains(launch_error(), "empty launch configuration"));
  launch(big_dynamic_shared, dim3(1), dim3(32), 64 * 1024, nullptr, out.data());
  e = launch_error();
  CHECK(contains(e, "65536 bytes of dynamic shared memory is over the kernel's limit of 49152"));
  CHECK(contains(e, "big_dynamic_shared"));
  CHECK_EQ(cudaFuncSetAttribute(reinterpret_cast<const void*>(&big_dynamic_shared),
                                cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
           cudaSuccess);
  launch(big_dynamic_shared, dim3(1), dim3(32), 64 * 1024, nullptr, out.data());
  CHECK_LAUNCH_OK();
  CHECK_EQ(out[31], 1);
  CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(&big_dynamic_shared),
                             cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024) == cudaErrorInvalidValue);
  cudaGetLastError();
}

TEST(runtime_api_is_synchronous_host_memory) {
  int count = 0;
  CHECK_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  CHECK_EQ(count, 1);
  cudaDeviceProp prop;
  CHECK_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  CHECK_EQ(prop.major, 9);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  CHECK(cudaGetLastError() == cudaErrorInvalidDevice);
  CHECK(cudaGetLastError() == cudaSuccess);
  cudaStream_t stream;
  CHECK_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  void* p = nullptr;
  CHECK_EQ(cudaMallocAsync(&p, 64, stream), cudaSuccess);
  CHECK_EQ(static_cast<unsigned char*>(p)[63], 0xFF);  // fresh device memory is poisoned
  CHECK_EQ(cudaMemsetAsync(p, 0, 64, stream), cudaSuccess);
  int host[16];
  for (int i = 0; i < 16; ++i) host[i] = i;
  CHECK_EQ(cudaMemcpyAsync(p, host, sizeof(host), cudaMemcpyHostToDevice, stream), cudaSuccess);
  int called = 0;
  CHECK_EQ(cudaLaunchHostFunc(
               stream, [](void* c) { ++*static_cast<int*>(c); }, &called),
           cudaSuccess);
  CHECK_EQ(called, 1);
  CHECK_EQ(static_cast<int*>(p)[15], 15);
  cudaEvent_t event;
  CHECK_EQ(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), cudaSuccess);
  CHECK_EQ(cudaEventRecord(event, stream), cudaSuccess);
  CHECK_EQ(cudaEventSynchronize(event), cudaSuccess);
  CHECK_EQ(cudaEventDestroy(event), cudaSuccess);
  CHECK_EQ(cudaFreeAsync(p, stream), cudaSuccess);
  CHECK_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

TEST(launch_statistics_count_each_kernel) {
  auto stats = lmk::emulator::launch_stats();
  bool found = false;
  for (const auto& s : stats) {
    if (lmk::emulator::kernel_name(s.kernel).name.find("tree_sum<false>") != std::string::npos) {
      found = true;
      CHECK_EQ(s.launches, uint64_t(4));
      CHECK_EQ(s.blocks, uint64_t(16));
    }
  }
  CHECK(found);
  CHECK(lmk::emulator::kernel_family({"x", "reduce_cuda.cu"}) == "reduce");
  CHECK(lmk::emulator::kernel_family({"x", "fam_cuda_d128.cu"}) == "fam");
  CHECK(lmk::emulator::kernel_family({"void lmk::kernels::fam_cuda::dq_kernel<64>(int)", "?"}) == "fam");
}

LMK_TEST_MAIN()
