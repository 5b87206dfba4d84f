// dist (core/ops/dist.h): the world and the collectives. Translation only;
// every rule and default lives in core/ops/dist.cc.
#include "addon_state.h"
#include "bindings.h"
#include "js_convert.h"
#include "ops/dist.h"

namespace lmk::addon {
namespace {

// A promise settled by `start(done)`'s callback, with undefined or the error.
template <typename Start>
Napi::Promise promise_when_done(Napi::Env env, Start&& start) {
  return settle_later(env, false, DType::Float32, [&](const SettleTicket& ticket) {
    start([ticket](const std::optional<RecordedError>& error) {
      ticket.pending()->error = error;
      ticket.complete();
    });
  });
}

// distInit({ backend? }) -> Promise<void>
Napi::Value Init(const Napi::CallbackInfo& info) {
  Options o(info[0], "dist.init");
  auto backend = o.optional_string("backend");
  return promise_when_done(info.Env(), [&](DoneCallback done) { ops::dist_init(backend, std::move(done)); });
}

// distWorld() -> { initialized, rank, worldSize, localRank, backend, library }
Napi::Value World(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ops::DistWorld w = ops::dist_world();
  auto result = Napi::Object::New(env);
  result.Set("initialized", w.initialized);
  result.Set("rank", w.rank);
  result.Set("worldSize", w.world_size);
  result.Set("localRank", w.local_rank);
  result.Set("backend", w.backend);
  result.Set("library", w.library);
  result.Set("launcher", ops::mpi_launcher_variable());
  return result;
}

// distLibraries() -> { mpi, mpiMissing, nccl, ncclMissing }: names found, or why not
Napi::Value Libraries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ops::DistLibraries found = ops::dist_libraries();
  auto result = Napi::Object::New(env);
  result.Set("mpi", found.mpi);
  result.Set("mpiMissing", found.mpi_missing);
  result.Set("nccl", found.nccl);
  result.Set("ncclMissing", found.nccl_missing);
  return result;
}

// distFinalize() -> Promise<void>
Napi::Value Finalize(const Napi::CallbackInfo& info) {
  return promise_when_done(info.Env(), [](DoneCallback done) { ops::dist_finalize(std::move(done)); });
}

// distShutdown(): blocks until MPI is finalized, when it runs (process exit).
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  ops::dist_shutdown_blocking();
  return info.Env().Undefined();
}

// distAllReduce({ t, op? })
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  Options o(info[0], "dist.allReduce");
  ops::dist_all_reduce_(o.tensor("t"), o.optional_string("op"));
  return info.Env().Undefined();
}

// distBroadcast({ t, root? })
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Options o(info[0], "dist.broadcast");
  ops::dist_broadcast_(o.tensor("t"), o.optional_integer("root"));
  return info.Env().Undefined();
}

// distAllGather({ input, output })
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Options o(info[0], "dist.allGather");
  ops::dist_all_gather(o.tensor("input"), o.tensor("output"));
  return info.Env().Undefined();
}

// distReduceScatter({ input, output, op? })
Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
  Options o(info[0], "dist.reduceScatter");
  ops::dist_reduce_scatter(o.tensor("input"), o.tensor("output"), o.optional_string("op"));
  return info.Env().Undefined();
}

// distBarrier() -> Promise<void>
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  return promise_when_done(info.Env(), [](DoneCallback done) { ops::dist_barrier(std::move(done)); });
}

}  // namespace

void register_dist_bindings(Napi::Env env, Napi::Object exports) {
  export_bindings(env, exports,
                  {
                      {"distInit", Init},
                      {"distWorld", World},
                      {"distLibraries", Libraries},
                      {"distFinalize", Finalize},
                      {"distShutdown", Shutdown},
                      {"distAllReduce", AllReduce},
                      {"distBroadcast", Broadcast},
                      {"distAllGather", AllGather},
                      {"distReduceScatter", ReduceScatter},
                      {"distBarrier", Barrier},
                  });
}

}  // namespace lmk::addon
