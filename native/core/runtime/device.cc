#include "runtime/device.h"

#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/thread_pool.h"

namespace lmk {

std::string Device::to_string() const { return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index); }

bool parse_dtype(const std::string& name, DType* out) {
  for (DType d : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32}) {
    if (name == dtype_name(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

int cpu_thread_count() { return thread_pool_size(); }

void check_device_usable(const Device& device, const char* fn, const char* arg) {
  if (device.is_cpu()) {
    if (device.index != 0) throw_type_error(fn, ": ", arg, " must be a usable device, got cpu:", device.index);
    return;
  }
  const CudaInfo& info = cuda_info();
  if (!info.available) {
    throw_type_error(fn, ": ", arg, " is ", device.to_string(), " but CUDA is not available (",
                     info.compiled ? info.reason : std::string("built without CUDA"), ")");
  }
  if (device.index < 0 || device.index >= static_cast<int>(info.devices.size())) {
    throw_type_error(fn, ": ", arg, " is ", device.to_string(), " but only ", info.devices.size(),
                     " CUDA device(s) are present");
  }
}

}  // namespace lmk
