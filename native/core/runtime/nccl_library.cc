#include "runtime/nccl_library.h"

#include <cstdlib>

#include "runtime/dynamic_library.h"

namespace lmk::nccl {

const Library* library(std::string* why) {
  return load_once<Library>(why, [](Library& lib, std::string* failure) {
    const char* env = std::getenv("LMK_NCCL_LIBRARY");
    lib.name = env && *env ? env : "libnccl.so.2";
    DynamicLibrary dl = DynamicLibrary::open_first({lib.name.c_str()});
    bool ok = dl && dl.find("ncclGetVersion", &lib.get_version) && dl.find("ncclGetUniqueId", &lib.get_unique_id) &&
              dl.find("ncclCommInitRank", &lib.comm_init_rank) && dl.find("ncclCommDestroy", &lib.comm_destroy) &&
              dl.find("ncclGetErrorString", &lib.get_error_string) && dl.find("ncclAllReduce", &lib.all_reduce) &&
              dl.find("ncclBroadcast", &lib.broadcast) && dl.find("ncclAllGather", &lib.all_gather) &&
              dl.find("ncclReduceScatter", &lib.reduce_scatter);
    if (!ok) {
      *failure = dl.error();
      return false;
    }
    lib.get_version(&lib.version);
    dl.keep_forever();
    return true;
  });
}

}  // namespace lmk::nccl
