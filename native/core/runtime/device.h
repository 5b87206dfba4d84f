// Devices and what the backend can do on this machine.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmk {

enum class DeviceKind : int32_t { CPU = 0, CUDA = 1 };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool is_cuda() const { return kind == DeviceKind::CUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string to_string() const;
};

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  std::string compute_capability;  // "9.0"
  uint64_t total_memory = 0;
};

struct CudaInfo {
  bool compiled = false;
  bool available = false;
  std::string reason;  // why not available; empty when available
  int runtime_version = 0;
  int driver_version = 0;
  std::vector<CudaDeviceInfo> devices;
};

// Probed once (thread-safe); never throws, never crashes without a driver.
const CudaInfo& cuda_info();
int cpu_thread_count();

// Throws TypeError naming `fn`/`arg` when the device is not usable here.
void check_device_usable(const Device& device, const char* fn, const char* arg);

}  // namespace lmk
