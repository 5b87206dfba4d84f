// Copy bandwidth of each device through the library's own clone op: the
// ceiling every memory-bound kernel is compared with. Validates, then times
// (median of runs after a warm-up); prints (read + write) bytes per second.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <vector>

#include "ops/tensor_ops.h"
#include "runtime/stream.h"

using namespace lmk;

static std::vector<float> read_floats(const Tensor& t) {
  std::vector<uint8_t> bytes = ops::read_to_host_blocking(t);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

static double bench_device(const Device& device, int64_t n) {
  Tensor src = ops::rand({n}, DType::Float32, device, 1, 0, 1);
  Tensor probe = ops::clone(src);
  if (read_floats(probe) != read_floats(src)) {
    std::fprintf(stderr, "copy_bench: clone on %s is not exact\n", device.to_string().c_str());
    std::exit(1);
  }
  Stream& stream = stream_for(device);
  std::vector<double> ms;
  for (int run = 0; run < 12; ++run) {
    stream.synchronize();
    auto t0 = std::chrono::steady_clock::now();
    Tensor copy = ops::clone(src);
    stream.synchronize();
    auto t1 = std::chrono::steady_clock::now();
    if (run >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  double gbps = 2.0 * static_cast<double>(n) * 4 / (median / 1e3) / 1e9;
  std::printf("copy_bench  %-7s  %8.1f MiB  %9.3f ms  %8.1f GB/s (read+write)\n", device.to_string().c_str(),
              n * 4 / 1048576.0, median, gbps);
  return gbps;
}

int main() {
  bench_device(Device{DeviceKind::CPU, 0}, int64_t(64) << 20);
  if (cuda_info().available) {
    double gbps = bench_device(Device{DeviceKind::CUDA, 0}, int64_t(1) << 30);
    std::printf("copy_bench  cuda:0 fraction of 4.3 TB/s: %.2f\n", gbps / 4300.0);
  } else {
    std::printf("copy_bench  cuda: not available (%s)\n", cuda_info().reason.c_str());
  }
  return 0;
}
