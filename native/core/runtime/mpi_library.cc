#include "runtime/mpi_library.h"

#include <cstdlib>

#include "runtime/dynamic_library.h"

namespace lmk::mpi {

std::string library_name() {
  const char* env = std::getenv("LMK_MPI_LIBRARY");
  return env && *env ? env : "libmpi.so.40";
}

const Library* library(std::string* why) {
  return load_once<Library>(why, [](Library& lib, std::string* failure) {
    lib.name = library_name();
    // RTLD_GLOBAL: Open MPI's components (mca_*.so, opened by libmpi itself)
    // resolve symbols of libmpi and libopen-pal in the global namespace.
    DynamicLibrary dl = DynamicLibrary::open_first({lib.name.c_str()}, RTLD_NOW | RTLD_GLOBAL);
    auto global = [&dl](const char* symbol, void** out) { return (*out = dl.address(symbol)) != nullptr; };
    bool ok =
        dl && dl.find("MPI_Init_thread", &lib.init_thread) && dl.find("MPI_Initialized", &lib.initialized) &&
        dl.find("MPI_Finalized", &lib.finalized) && dl.find("MPI_Finalize", &lib.finalize) &&
        dl.find("MPI_Abort", &lib.abort) && dl.find("MPI_Comm_rank", &lib.comm_rank) &&
        dl.find("MPI_Comm_size", &lib.comm_size) && dl.find("MPI_Comm_set_errhandler", &lib.comm_set_errhandler) &&
        dl.find("MPI_Error_string", &lib.error_string) &&
        dl.find("MPI_Get_library_version", &lib.get_library_version) && dl.find("MPI_Allreduce", &lib.allreduce) &&
        dl.find("MPI_Bcast", &lib.bcast) && dl.find("MPI_Allgather", &lib.allgather) &&
        dl.find("MPI_Reduce_scatter_block", &lib.reduce_scatter_block) && dl.find("MPI_Barrier", &lib.barrier) &&
        global("ompi_mpi_comm_world", &lib.comm_world) && global("ompi_mpi_errors_return", &lib.errors_return) &&
        global("ompi_mpi_float", &lib.float32) && global("ompi_mpi_double", &lib.float64) &&
        global("ompi_mpi_int", &lib.int32) && global("ompi_mpi_int64_t", &lib.int64) &&
        global("ompi_mpi_uint16_t", &lib.uint16) && global("ompi_mpi_op_sum", &lib.sum) &&
        global("ompi_mpi_op_max", &lib.max) && global("ompi_mpi_op_min", &lib.min);
    if (!ok) {
      *failure = dl.error();
      return false;
    }
    dl.keep_forever();
    return true;
  });
}

}  // namespace lmk::mpi
