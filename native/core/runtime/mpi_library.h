// MPI opened at run time, never linked, no mpi.h at build time: Open MPI >= 4
// (`libmpi.so.40`; LMK_MPI_LIBRARY overrides the name or path, for tests and
// unusual installs). Open MPI's handles (MPI_Comm, MPI_Datatype, MPI_Op,
// MPI_Errhandler) are the addresses of its predefined global objects, so the
// ones used here are found with dlsym like the functions; the few constants
// below are Open MPI's ABI values (mpi.h of Open MPI 4 and 5).
// Looked for once, thread safe; the loaded library stays open.
#pragma once
#include <string>

namespace lmk::mpi {

// Opaque handles: pointers in Open MPI's ABI.
using Comm = void*;
using Datatype = void*;
using Op = void*;
using Errhandler = void*;

constexpr int kSuccess = 0;                                     // MPI_SUCCESS
constexpr int kThreadFunneled = 1;                              // MPI_THREAD_FUNNELED
constexpr int kMaxErrorString = 256;                            // MPI_MAX_ERROR_STRING
constexpr int kMaxLibraryVersionString = 256;                   // MPI_MAX_LIBRARY_VERSION_STRING
inline void* in_place() { return reinterpret_cast<void*>(1); }  // MPI_IN_PLACE

struct Library {
  int (*init_thread)(int* argc, char*** argv, int required, int* provided) = nullptr;
  int (*initialized)(int* flag) = nullptr;
  int (*finalized)(int* flag) = nullptr;
  int (*finalize)() = nullptr;
  int (*abort)(Comm comm, int code) = nullptr;
  int (*comm_rank)(Comm comm, int* rank) = nullptr;
  int (*comm_size)(Comm comm, int* size) = nullptr;
  int (*comm_set_errhandler)(Comm comm, Errhandler handler) = nullptr;
  int (*error_string)(int code, char* text, int* length) = nullptr;
  int (*get_library_version)(char* text, int* length) = nullptr;
  int (*allreduce)(const void* send, void* recv, int count, Datatype type, Op op, Comm comm) = nullptr;
  int (*bcast)(void* buffer, int count, Datatype type, int root, Comm comm) = nullptr;
  int (*allgather)(const void* send, int send_count, Datatype send_type, void* recv, int recv_count, Datatype recv_type,
                   Comm comm) = nullptr;
  int (*reduce_scatter_block)(const void* send, void* recv, int recv_count, Datatype type, Op op, Comm comm) = nullptr;
  int (*barrier)(Comm comm) = nullptr;

  Comm comm_world = nullptr;           // ompi_mpi_comm_world
  Errhandler errors_return = nullptr;  // ompi_mpi_errors_return
  Datatype float32 = nullptr, float64 = nullptr, int32 = nullptr, int64 = nullptr, uint16 = nullptr;
  Op sum = nullptr, max = nullptr, min = nullptr;

  std::string name;  // what was opened: "libmpi.so.40" or LMK_MPI_LIBRARY's value
};

// The library, or nullptr with *why saying what was tried and what failed
// (the name, dlerror's reason, a missing symbol).
const Library* library(std::string* why);

// The name `library` opens: LMK_MPI_LIBRARY when set and not empty, else libmpi.so.40.
std::string library_name();

}  // namespace lmk::mpi
