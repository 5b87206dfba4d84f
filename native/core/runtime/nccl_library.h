// NCCL opened at run time, never linked, no nccl.h at build time:
// `libnccl.so.2` (LMK_NCCL_LIBRARY overrides the name or path). The enum
// values below are NCCL 2's ABI (nccl.h: ncclDataType_t, ncclRedOp_t,
// ncclResult_t); ncclUniqueId is 128 opaque bytes passed by value.
// Looked for once, thread safe; the loaded library stays open.
// This path has never run: no machine with NCCL has been available (docs/api.md).
#pragma once
#include <cstddef>
#include <string>

namespace lmk::nccl {

constexpr int kSuccess = 0;  // ncclSuccess
// ncclDataType_t
constexpr int kInt32 = 2;
constexpr int kFloat16 = 6;
constexpr int kFloat32 = 7;
constexpr int kFloat64 = 8;
constexpr int kBFloat16 = 9;
// ncclRedOp_t
constexpr int kSum = 0;
constexpr int kMax = 2;
constexpr int kMin = 3;

struct UniqueId {
  char internal[128];  // NCCL_UNIQUE_ID_BYTES
};
using Comm = void*;  // ncclComm_t

struct Library {
  int (*get_version)(int* version) = nullptr;
  int (*get_unique_id)(UniqueId* id) = nullptr;
  int (*comm_init_rank)(Comm* comm, int nranks, UniqueId id, int rank) = nullptr;
  int (*comm_destroy)(Comm comm) = nullptr;
  const char* (*get_error_string)(int result) = nullptr;
  int (*all_reduce)(const void* send, void* recv, size_t count, int type, int op, Comm comm, void* stream) = nullptr;
  int (*broadcast)(const void* send, void* recv, size_t count, int type, int root, Comm comm, void* stream) = nullptr;
  int (*all_gather)(const void* send, void* recv, size_t send_count, int type, Comm comm, void* stream) = nullptr;
  int (*reduce_scatter)(const void* send, void* recv, size_t recv_count, int type, int op, Comm comm,
                        void* stream) = nullptr;
  std::string name;  // what was opened
  int version = 0;   // ncclGetVersion, e.g. 22304 for 2.23.4
};

// The library, or nullptr with *why saying what was tried and what failed.
const Library* library(std::string* why);

}  // namespace lmk::nccl
