// The CUDA runtime API subset that lmkernels uses, for the emulated device
// (docs/cuda.md "Emulated CUDA"): one device, reported as an sm_90 part;
// memory is host memory (device pointer = host pointer); streams and events
// exist but every operation runs at once, on the calling thread, so a stream
// is always idle and an event always complete. Definitions of the functions
// the real cuda_runtime_api.h declares, so the core compiles unchanged.
#include <cuda_runtime_api.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "emulator/control.h"

struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point recorded;
};
struct CUmemPoolHandle_st {
  uint64_t release_threshold;
};

namespace lmk::emulator {
namespace {

constexpr int kRuntimeVersion = CUDART_VERSION;
constexpr unsigned char kAllocationPoison = 0xFF;  // NaN in float formats: unwritten memory shows up
constexpr size_t kAllocationAlignment = 256;       // cudaMalloc's alignment

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local std::string t_message;
thread_local cudaError_t t_message_status = cudaSuccess;

std::mutex& memory_mutex() {
  static std::mutex m;
  return m;
}
std::map<void*, size_t>& allocations() {
  static auto* table = new std::map<void*, size_t>();
  return *table;
}
size_t g_bytes_allocated = 0;
// What the emulated device reports as its global memory (it is host memory).
constexpr size_t kEmulatedGlobalMemory = size_t(16) << 30;

cudaError_t fail(cudaError_t status, const std::string& message) {
  set_error(status, "emulated CUDA: " + message);
  return status;
}

cudaError_t allocate(void** out, size_t size, bool poison) {
  if (!out) return fail(cudaErrorInvalidValue, "null output pointer");
  size_t bytes = size == 0 ? 1 : size;
  void* p = operator new(bytes, std::align_val_t(kAllocationAlignment), std::nothrow);
  if (!p) {
    *out = nullptr;
    return fail(cudaErrorMemoryAllocation, "out of memory allocating " + std::to_string(size) + " bytes");
  }
  if (poison) std::memset(p, kAllocationPoison, bytes);
  std::lock_guard<std::mutex> lock(memory_mutex());
  allocations()[p] = bytes;
  g_bytes_allocated += bytes;
  *out = p;
  return cudaSuccess;
}

cudaError_t release(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(memory_mutex());
    auto it = allocations().find(p);
    if (it == allocations().end()) return fail(cudaErrorInvalidValue, "free of a pointer that was not allocated");
    g_bytes_allocated -= it->second;
    allocations().erase(it);
  }
  operator delete(p, std::align_val_t(kAllocationAlignment));
  return cudaSuccess;
}

CUmemPoolHandle_st g_default_pool{0};

// ---- output digests (control.h) ----
std::mutex& digest_mutex() {
  static std::mutex m;
  return m;
}
std::string g_digest_label = "-";
uint64_t g_digest_sequence = 0;

void record_digest(const void* data, size_t bytes) {
  static const char* path = std::getenv("LMK_EMU_DIGEST");
  if (!path || !*path) return;
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a, 64 bits
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 0x100000001b3ull;
  std::lock_guard<std::mutex> lock(digest_mutex());
  if (FILE* out = std::fopen(path, "a")) {
    std::fprintf(out, "%s:%s %llu %zu %016llx\n", program_invocation_short_name, g_digest_label.c_str(),
                 static_cast<unsigned long long>(g_digest_sequence++), bytes, static_cast<unsigned long long>(hash));
    std::fclose(out);
  }
}

cudaError_t check_device(int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice, "device " + std::to_string(device) + " does not exist");
  return cudaSuccess;
}

}  // namespace

void set_digest_label(const char* label) {
  std::lock_guard<std::mutex> lock(digest_mutex());
  g_digest_label = label;
  g_digest_sequence = 0;
}

void set_error(cudaError_t status, const std::string& message) {
  t_last_error = status;
  t_message = message;
  t_message_status = status;
}
std::string last_diagnostic() { return t_message; }
void clear_last_diagnostic() {
  t_message.clear();
  t_message_status = cudaSuccess;
}

}  // namespace lmk::emulator

using namespace lmk::emulator;

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (cudaError_t status = check_device(device)) return status;
  std::memset(prop, 0, sizeof(*prop));
  std::strncpy(prop->name, "lmkernels emulated CUDA device (sm_90 limits)", sizeof(prop->name) - 1);
  prop->major = 9;
  prop->minor = 0;
  prop->totalGlobalMem = kEmulatedGlobalMemory;
  prop->sharedMemPerBlock = kDefaultDynamicSharedBytes;
  prop->sharedMemPerBlockOptin = kMaxDynamicSharedBytesOptIn;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->multiProcessorCount = 132;
  prop->canMapHostMemory = 1;
  prop->unifiedAddressing = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (cudaError_t status = check_device(device)) return status;
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = kMaxDynamicSharedBytesOptIn; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = kDefaultDynamicSharedBytes; break;
    case cudaDevAttrMultiProcessorCount: *value = 132; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    default: return fail(cudaErrorInvalidValue, "device attribute " + std::to_string(int(attr)) + " is not emulated");
  }
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return check_device(device); }
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = kRuntimeVersion;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
  *version = kRuntimeVersion;
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  cudaError_t status = t_last_error;
  t_last_error = cudaSuccess;
  return status;
}
cudaError_t cudaPeekAtLastError(void) { return t_last_error; }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
  }
}
// The emulator's diagnostic for the error it reported last on this thread,
// else CUDA's generic text.
const char* cudaGetErrorString(cudaError_t error) {
  if (error != cudaSuccess && error == t_message_status && !t_message.empty()) return t_message.c_str();
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error";
  }
}

// ---- streams and events: everything has already happened --------------------------------
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  *stream = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaLaunchHostFunc(cudaStream_t, cudaHostFn_t fn, void* user_data) {
  fn(user_data);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  *event = new CUevent_st{std::chrono::steady_clock::now()};
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  event->recorded = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->recorded - start->recorded).count();
  return cudaSuccess;
}

// ---- memory -----------------------------------------------------------------------------------
cudaError_t cudaMalloc(void** pointer, size_t size) { return allocate(pointer, size, true); }
cudaError_t cudaFree(void* pointer) { return release(pointer); }
cudaError_t cudaMallocAsync(void** pointer, size_t size, cudaStream_t) { return allocate(pointer, size, true); }
cudaError_t cudaFreeAsync(void* pointer, cudaStream_t) { return release(pointer); }
cudaError_t cudaMallocHost(void** pointer, size_t size) { return allocate(pointer, size, false); }
cudaError_t cudaHostAlloc(void** pointer, size_t size, unsigned int) { return allocate(pointer, size, false); }
cudaError_t cudaFreeHost(void* pointer) { return release(pointer); }
// Free = the reported global memory less what is allocated now.
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (!free_bytes || !total_bytes) return fail(cudaErrorInvalidValue, "cudaMemGetInfo: null output pointer");
  std::lock_guard<std::mutex> lock(memory_mutex());
  *total_bytes = kEmulatedGlobalMemory;
  *free_bytes = g_bytes_allocated < kEmulatedGlobalMemory ? kEmulatedGlobalMemory - g_bytes_allocated : 0;
  return cudaSuccess;
}
cudaError_t cudaHostGetDevicePointer(void** device, void* host, unsigned int) {
  *device = host;  // one address space
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (count) std::memmove(dst, src, count);
  if (kind == cudaMemcpyDeviceToHost) record_digest(dst, count);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, count, kind);
}
cudaError_t cudaMemset(void* pointer, int value, size_t count) {
  if (count) std::memset(pointer, value, count);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t count, cudaStream_t) {
  return cudaMemset(pointer, value, count);
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
  if (cudaError_t status = check_device(device)) return status;
  *pool = &g_default_pool;
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  if (attr == cudaMemPoolAttrReleaseThreshold) pool->release_threshold = *static_cast<uint64_t*>(value);
  return cudaSuccess;
}
// Freed memory goes back to the host at once: reserved = in use.
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attr, void* value) {
  std::lock_guard<std::mutex> lock(memory_mutex());
  switch (attr) {
    case cudaMemPoolAttrReservedMemCurrent:
    case cudaMemPoolAttrUsedMemCurrent: *static_cast<uint64_t*>(value) = g_bytes_allocated; break;
    case cudaMemPoolAttrReleaseThreshold: *static_cast<uint64_t*>(value) = pool->release_threshold; break;
    default: *static_cast<uint64_t*>(value) = 0; break;
  }
  return cudaSuccess;
}
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t) { return cudaSuccess; }

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > kMaxDynamicSharedBytesOptIn) {
      return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                             " bytes of dynamic shared memory is over sm_90's 227 KiB");
    }
    set_max_dynamic_shared_bytes(func, value);
  }
  return cudaSuccess;
}

}  // extern "C"
