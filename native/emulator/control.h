// Settings and reports of the emulated CUDA backend that are not CUDA API:
// thread order, kernel names, launch statistics, the error channel between
// the scheduler and the runtime API (docs/cuda.md "Emulated CUDA").
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lmk::emulator {

// Order in which the threads of a block run between two barriers (and in
// which the blocks of a grid run). LMK_EMU_ORDER=forward|reverse|random:SEED
// sets it at the first launch; a correct kernel gives bit-identical results
// in every order.
enum class ThreadOrder { Forward, Reverse, Random };
void set_thread_order(ThreadOrder order, uint64_t seed = 0);
ThreadOrder thread_order();
// Parses "forward", "reverse" or "random:SEED"; false when malformed.
bool parse_thread_order(const std::string& text, ThreadOrder* order, uint64_t* seed);

// A kernel's name (demangled) and the source file it was compiled from, read
// from the binary's symbol table ("?" when stripped).
struct KernelName {
  std::string name;
  std::string file;
};
KernelName kernel_name(const void* kernel);
// The kernel family: the source file's name up to "_cuda" (reduce_cuda.cu -> reduce).
std::string kernel_family(const KernelName& name);

struct KernelStats {
  const void* kernel;
  uint64_t launches;
  uint64_t blocks;
  uint64_t threads;
};
std::vector<KernelStats> launch_stats();
// Prints launches per kernel family and per kernel (to stderr, or appended to
// the file LMK_EMU_STATS names when it is not "1").
void print_launch_stats();

// Output digests for comparing runs in different thread orders: with
// LMK_EMU_DIGEST=FILE, every device-to-host copy appends a line
// "PROGRAM:LABEL COPY BYTES FNV1A64" to FILE. The test harness sets the label
// to the running test's name.
void set_digest_label(const char* label);

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes).
void set_max_dynamic_shared_bytes(const void* kernel, int bytes);
constexpr int kDefaultDynamicSharedBytes = 48 * 1024;
constexpr int kMaxDynamicSharedBytesOptIn = 227 * 1024;  // sm_90

// The runtime's error channel (runtime.cc): the launch's error, with the
// diagnostic cudaGetErrorString returns for it.
void set_error(cudaError_t status, const std::string& message);
// The last diagnostic message (empty when none since the last clear).
std::string last_diagnostic();
void clear_last_diagnostic();

}  // namespace lmk::emulator
