// The per-block fiber scheduler of the emulated CUDA backend (docs/cuda.md
// "Emulated CUDA"). One launch runs at a time (a process-wide lock), its blocks
// one after another on the calling thread. Within a block each CUDA thread is
// a fiber; the scheduler runs every runnable fiber, in the selected order,
// until it finishes or waits at __syncthreads or a warp collective; then it
// completes the warp collectives whose lanes have all arrived, or, when every
// thread waits at __syncthreads, releases the barrier. Whatever cannot
// proceed is a diagnostic: threads waiting at different barriers, a thread
// that exited while others wait, a warp collective whose mask does not match
// the lanes that arrived, a shuffle reading a lane outside its mask.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <vector>

#include "emulator/control.h"
#include "emulator/fiber.h"
#include "emulator/launch.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define LMK_EMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define LMK_EMU_TSAN 1
#endif

namespace lmk::emulator {

namespace detail {
ThreadView* g_thread = nullptr;
uint3 g_block_idx{0, 0, 0};
dim3 g_block_dim{1, 1, 1};
dim3 g_grid_dim{1, 1, 1};
unsigned char* g_dynamic_shared = nullptr;
}  // namespace detail

namespace {

using detail::WarpOp;

constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockX = 1024, kMaxBlockY = 1024, kMaxBlockZ = 64;
constexpr uint64_t kMaxGridX = 2147483647, kMaxGridYZ = 65535;
constexpr unsigned char kSharedPoison = 0xFF;

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Sync: return "__syncwarp";
    case WarpOp::Shfl: return "__shfl_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Any: return "__any_sync";
    case WarpOp::All: return "__all_sync";
  }
  return "?";
}

std::string where(Site site) {
  const char* file = site.file;
  // Shorten to the part below native/ for readable messages.
  if (const char* n = std::strstr(file, "native/")) file = n + 7;
  return std::string(file) + ":" + std::to_string(site.line);
}
bool same_site(Site a, Site b) { return a.line == b.line && std::strcmp(a.file, b.file) == 0; }

std::string hex(unsigned mask) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", mask);
  return text;
}
std::string triple(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

// ---- thread order ---------------------------------------------------------------
struct OrderSetting {
  ThreadOrder order = ThreadOrder::Forward;
  uint64_t seed = 0;
  bool from_environment_read = false;
};
OrderSetting& order_setting() {
  static OrderSetting setting;
  return setting;
}
void read_order_from_environment() {
  OrderSetting& s = order_setting();
  if (s.from_environment_read) return;
  s.from_environment_read = true;
  if (const char* text = std::getenv("LMK_EMU_ORDER")) {
    if (!parse_thread_order(text, &s.order, &s.seed)) {
      std::fprintf(stderr, "lmk emulated CUDA: LMK_EMU_ORDER=%s is not forward, reverse or random:SEED\n", text);
      std::abort();
    }
  }
}

uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Puts `items` in the selected order; `salt` makes each random permutation
// depend on the launch, block and phase.
void arrange(std::vector<unsigned>& items, uint64_t salt) {
  const OrderSetting& s = order_setting();
  if (s.order == ThreadOrder::Reverse) {
    std::reverse(items.begin(), items.end());
  } else if (s.order == ThreadOrder::Random) {
    uint64_t state = mix(s.seed ^ mix(salt));
    for (size_t i = items.size(); i > 1; --i) {
      state = mix(state);
      std::swap(items[i - 1], items[state % i]);
    }
  }
}

// ---- statistics and kernel limits --------------------------------------------------
std::mutex& tables_mutex() {
  static std::mutex m;
  return m;
}
std::map<const void*, KernelStats>& stats_table() {
  static auto* table = new std::map<const void*, KernelStats>();
  return *table;
}
std::map<const void*, int>& shared_limits() {
  static auto* table = new std::map<const void*, int>();
  return *table;
}
int max_dynamic_shared_bytes(const void* kernel) {
  std::lock_guard<std::mutex> lock(tables_mutex());
  auto it = shared_limits().find(kernel);
  return it == shared_limits().end() ? kDefaultDynamicSharedBytes : it->second;
}

struct StatsAtExit {
  ~StatsAtExit() {
    if (std::getenv("LMK_EMU_STATS")) print_launch_stats();
  }
} stats_at_exit;

// ---- fibers ----------------------------------------------------------------------
enum class State : uint8_t { Runnable, AtBarrier, AtWarp, Done };

struct Fiber : detail::ThreadView {
  FiberContext context;
  char* stack = nullptr;
  unsigned linear = 0;
  State state = State::Runnable;
  Site site{"", 0};
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  uint64_t value = 0;
  int lane_arg = 0;
  int width = kWarpSize;
  uint64_t result = 0;
  unsigned barriers_passed = 0;
  unsigned warp_syncs_passed = 0;
  void* asan_fake_stack = nullptr;
  void* tsan_fiber = nullptr;
};

size_t stack_bytes() {
  static const size_t bytes = [] {
    size_t kib = 64;
#if defined(LMK_EMU_ASAN) || defined(LMK_EMU_TSAN)
    kib = 256;  // instrumented frames are several times larger
#endif
    if (const char* text = std::getenv("LMK_EMU_STACK_KB")) kib = std::strtoul(text, nullptr, 10);
    return kib * 1024;
  }();
  return bytes;
}

// Stacks for up to 1024 threads, each with a guard page below it, mapped once
// (pages are touched only as deep as the kernels go).
char* stack_of(unsigned thread) {
  static char* region = [] {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t slot = stack_bytes() + page;
    void* p = mmap(nullptr, slot * kMaxThreadsPerBlock, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "lmk emulated CUDA: cannot map fiber stacks\n");
      std::abort();
    }
    for (unsigned t = 0; t < kMaxThreadsPerBlock; ++t) mprotect(static_cast<char*>(p) + t * slot, page, PROT_NONE);
    return static_cast<char*>(p);
  }();
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return region + thread * (stack_bytes() + page) + page;
}

// One block being run.
struct BlockRun {
  const KernelLaunch* launch = nullptr;
  std::vector<Fiber>* fibers = nullptr;
  unsigned threads = 0;
  FiberContext scheduler;
  std::string failure;  // empty while all is well
  uint3 failed_thread{0, 0, 0};
  const void* asan_main_bottom = nullptr;
  size_t asan_main_size = 0;
  void* asan_main_fake_stack = nullptr;
  void* tsan_main = nullptr;
  // Sync addresses for ThreadSanitizer, fresh per block: [0, 1] block start
  // and end, [2, 3] __syncthreads by parity, then two per warp for __syncwarp.
  std::unique_ptr<char[]> sync_words;
};
BlockRun* g_run = nullptr;

Fiber* current_fiber() { return static_cast<Fiber*>(detail::current_thread()); }
void set_current_fiber(Fiber* fiber) { __atomic_store_n(&detail::g_thread, fiber, __ATOMIC_RELAXED); }

// The scheduler's own bookkeeping, touched by fibers and the scheduler with
// no happens-before between them (switches do not synchronise, so that races
// in kernels stay visible): hidden from ThreadSanitizer.
#if defined(LMK_EMU_TSAN)
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
struct InternalAccesses {
  InternalAccesses() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~InternalAccesses() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
};
#else
struct InternalAccesses {
  InternalAccesses() {}  // user-provided: no unused-variable warning
  ~InternalAccesses() {}
};
#endif

#if defined(LMK_EMU_TSAN)
void tsan_release(char* address) { __tsan_release(address); }
void tsan_acquire(char* address) { __tsan_acquire(address); }
#else
void tsan_release(char*) {}
void tsan_acquire(char*) {}
#endif
char* barrier_word(unsigned parity) { return g_run->sync_words.get() + 2 + parity; }
char* warp_word(unsigned warp, unsigned parity) { return g_run->sync_words.get() + 4 + 2 * warp + parity; }

// Not instrumented for ThreadSanitizer: these run on the fibers, read the
// scheduler's state, and never return from the fiber's first frame (an
// instrumented fiber_main would leave an entry on the reused TSan context's
// shadow stack per block).
#if defined(LMK_EMU_TSAN)
#define LMK_EMU_NO_TSAN __attribute__((no_sanitize_thread))
#else
#define LMK_EMU_NO_TSAN
#endif

// Fiber -> scheduler.
LMK_EMU_NO_TSAN void yield_to_scheduler(Fiber* self, bool finished) {
#if defined(LMK_EMU_ASAN)
  __sanitizer_start_switch_fiber(finished ? nullptr : &self->asan_fake_stack, g_run->asan_main_bottom,
                                 g_run->asan_main_size);
#endif
#if defined(LMK_EMU_TSAN)
  __tsan_switch_to_fiber(g_run->tsan_main, __tsan_switch_to_fiber_no_sync);
#endif
  switch_fiber(self->context, g_run->scheduler);
#if defined(LMK_EMU_ASAN)
  __sanitizer_finish_switch_fiber(self->asan_fake_stack, nullptr, nullptr);
#endif
  (void)finished;
}

// Scheduler -> fiber.
void resume(Fiber* fiber) {
  set_current_fiber(fiber);
  FiberContext& scheduler = g_run->scheduler;  // read before TSan's switch: ours, not the fiber's
#if defined(LMK_EMU_ASAN)
  __sanitizer_start_switch_fiber(&g_run->asan_main_fake_stack, fiber->stack, stack_bytes());
#endif
#if defined(LMK_EMU_TSAN)
  __tsan_switch_to_fiber(fiber->tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  switch_fiber(scheduler, fiber->context);
#if defined(LMK_EMU_ASAN)
  __sanitizer_finish_switch_fiber(g_run->asan_main_fake_stack, nullptr, nullptr);
#endif
  set_current_fiber(nullptr);
}

LMK_EMU_NO_TSAN void fiber_main(void* argument) {
  Fiber* self = static_cast<Fiber*>(argument);
  const KernelLaunch* launch;
  {
    InternalAccesses internal;
#if defined(LMK_EMU_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &g_run->asan_main_bottom, &g_run->asan_main_size);
#endif
    tsan_acquire(g_run->sync_words.get());  // the block's setup happens before its threads
    launch = g_run->launch;
  }
  try {
    launch->invoke(launch->context);
  } catch (const std::exception& e) {
    InternalAccesses internal;
    if (g_run->failure.empty()) {
      g_run->failure = std::string("the kernel threw: ") + e.what();
      g_run->failed_thread = self->thread_idx;
    }
  } catch (...) {
    InternalAccesses internal;
    if (g_run->failure.empty()) {
      g_run->failure = "the kernel threw";
      g_run->failed_thread = self->thread_idx;
    }
  }
  {
    InternalAccesses internal;                  // closed before the last switch: the TSan context is reused
    tsan_release(g_run->sync_words.get() + 1);  // ... and its threads before what follows it
    self->state = State::Done;
  }
  yield_to_scheduler(self, true);
  std::abort();  // a finished fiber is never resumed
}

void fail(Fiber* thread, const std::string& what) {
  if (!g_run->failure.empty()) return;
  g_run->failure = what;
  g_run->failed_thread = thread->thread_idx;
}

std::string thread_name(const Fiber& f) { return "thread " + triple(f.thread_idx); }

// Completes the warp collective lane `first` waits at, if every lane of its
// mask has arrived; records a diagnostic when they cannot all arrive.
void try_complete_warp_collective(std::vector<Fiber>& fibers, unsigned threads, Fiber& first) {
  const unsigned warp = first.linear / kWarpSize;
  const unsigned base = warp * kWarpSize;
  const std::string what =
      std::string(op_name(first.op)) + " at " + where(first.site) + " with mask " + hex(first.mask);
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    if (!((first.mask >> lane) & 1)) continue;
    if (base + lane >= threads) {
      fail(&first, what + " names lane " + std::to_string(lane) + ", which does not exist (the block has " +
                       std::to_string(threads) + " threads)");
      return;
    }
    const Fiber& other = fibers[base + lane];
    if (other.state == State::Done) {
      fail(&first,
           what + " waits for lane " + std::to_string(lane) + " (" + thread_name(other) + "), which has exited");
      return;
    }
    if (other.state == State::AtBarrier) {
      fail(&first, "deadlock: " + what + " waits for lane " + std::to_string(lane) + " (" + thread_name(other) +
                       "), which waits at __syncthreads at " + where(other.site));
      return;
    }
    if (other.op != first.op || other.mask != first.mask ||
        (first.op != WarpOp::Sync && !same_site(other.site, first.site))) {
      fail(&first, "divergent warp collective: lane " + std::to_string(first.linear % kWarpSize) + " is at " + what +
                       ", lane " + std::to_string(lane) + " (" + thread_name(other) + ") at " + op_name(other.op) +
                       " at " + where(other.site) + " with mask " + hex(other.mask));
      return;
    }
  }
  // Every lane of the mask is here: compute each one's result.
  unsigned ballot = 0;
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    if (((first.mask >> lane) & 1) && fibers[base + lane].value != 0) ballot |= 1u << lane;
  }
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    if (!((first.mask >> lane) & 1)) continue;
    Fiber& f = fibers[base + lane];
    const int width = f.width;
    const int segment = static_cast<int>(lane) & ~(width - 1);
    const int position = static_cast<int>(lane) & (width - 1);
    int source = static_cast<int>(lane);
    switch (f.op) {
      case WarpOp::Sync: break;
      case WarpOp::Shfl: source = segment + (f.lane_arg & (width - 1)); break;
      case WarpOp::ShflUp:
        if (position >= f.lane_arg) source = static_cast<int>(lane) - f.lane_arg;
        break;
      case WarpOp::ShflDown:
        if (position + f.lane_arg < width) source = static_cast<int>(lane) + f.lane_arg;
        break;
      case WarpOp::ShflXor: {
        int target = static_cast<int>(lane) ^ f.lane_arg;
        // A later group (or beyond the warp) gives the lane its own value.
        if (target >= 0 && target < kWarpSize && (target & ~(width - 1)) <= segment) source = target;
        break;
      }
      case WarpOp::Ballot:
      case WarpOp::Any:
      case WarpOp::All: break;
    }
    if (f.op == WarpOp::Sync) {
      f.result = 0;
    } else if (f.op == WarpOp::Ballot || f.op == WarpOp::Any || f.op == WarpOp::All) {
      f.result = ballot;
    } else {
      if (!((f.mask >> source) & 1)) {
        fail(&f, std::string(op_name(f.op)) + " at " + where(f.site) + ": lane " + std::to_string(lane) +
                     " reads lane " + std::to_string(source) + ", outside the mask " + hex(f.mask));
        return;
      }
      f.result = fibers[base + static_cast<unsigned>(source)].value;
    }
  }
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    if ((first.mask >> lane) & 1) fibers[base + lane].state = State::Runnable;
  }
}

uint64_t g_launch_counter = 0;
bool g_stacks_dirty = false;

// TSan contexts, one per thread index, made once: blocks are ordered one
// after another anyway (below), so reusing them hides nothing.
#if defined(LMK_EMU_TSAN)
void* g_tsan_contexts[kMaxThreadsPerBlock] = {};
#endif
void* tsan_fiber_of(unsigned thread) {
#if defined(LMK_EMU_TSAN)
  if (!g_tsan_contexts[thread]) g_tsan_contexts[thread] = __tsan_create_fiber(0);
  return g_tsan_contexts[thread];
#else
  (void)thread;
  return nullptr;
#endif
}
// After a failed launch: threads abandoned mid-way may hold TSan ignore
// scopes open; start from fresh contexts.
void drop_tsan_fibers() {
#if defined(LMK_EMU_TSAN)
  for (void*& context : g_tsan_contexts) {
    if (context) __tsan_destroy_fiber(context);
    context = nullptr;
  }
#endif
}

// Runs one block to completion; returns false with g_run->failure set when a
// diagnostic stopped it.
bool run_block(BlockRun& run, uint64_t block_salt) {
  std::vector<Fiber>& fibers = *run.fibers;
  const unsigned n = run.threads;
  const dim3 bd = detail::g_block_dim;
  for (unsigned t = 0; t < n; ++t) {
    Fiber& f = fibers[t];
    f = Fiber();
    f.thread_idx = uint3{t % bd.x, (t / bd.x) % bd.y, t / (bd.x * bd.y)};
    f.linear = t;
    f.stack = stack_of(t);
    prepare_fiber(f.context, f.stack, stack_bytes(), &fiber_main, &f);
    f.tsan_fiber = tsan_fiber_of(t);
  }
#if defined(LMK_EMU_ASAN)
  // Frames of threads abandoned by a failed launch left their redzones behind.
  if (g_stacks_dirty) {
    for (unsigned t = 0; t < kMaxThreadsPerBlock; ++t) __asan_unpoison_memory_region(stack_of(t), stack_bytes());
    g_stacks_dirty = false;
  }
#endif
  if (detail::g_dynamic_shared) std::memset(detail::g_dynamic_shared, kSharedPoison, run.launch->shared_bytes);
  tsan_release(run.sync_words.get());

  std::vector<unsigned> order;
  order.reserve(n);
  bool ok = true;
  for (uint64_t phase = 0;; ++phase) {
    order.clear();
    for (unsigned t = 0; t < n; ++t) {
      if (fibers[t].state == State::Runnable) order.push_back(t);
    }
    if (!order.empty()) {
      arrange(order, block_salt * 0x100000001b3ull + phase);
      for (unsigned t : order) {
        resume(&fibers[t]);
        if (!run.failure.empty()) break;
      }
      if (!run.failure.empty()) {
        ok = false;
        break;
      }
    }
    // Everyone has run as far as it can: complete the warp collectives.
    bool progressed = false;
    for (unsigned t = 0; t < n && run.failure.empty(); ++t) {
      if (fibers[t].state != State::AtWarp) continue;
      try_complete_warp_collective(fibers, n, fibers[t]);
      if (fibers[t].state == State::Runnable) progressed = true;
    }
    if (!run.failure.empty()) {
      ok = false;
      break;
    }
    if (progressed) continue;
    // Then the block-wide barrier.
    const Fiber* waiting = nullptr;
    const Fiber* exited = nullptr;
    unsigned waiting_count = 0;
    for (unsigned t = 0; t < n; ++t) {
      const Fiber& f = fibers[t];
      if (f.state == State::AtBarrier) {
        if (!waiting) waiting = &f;
        ++waiting_count;
        if (!same_site(f.site, waiting->site)) {
          fail(const_cast<Fiber*>(waiting), "divergent __syncthreads: " + thread_name(*waiting) + " waits at " +
                                                where(waiting->site) + ", " + thread_name(f) + " at " + where(f.site));
          break;
        }
      } else if (f.state == State::Done) {
        if (!exited) exited = &f;
      } else if (f.state == State::AtWarp) {
        fail(const_cast<Fiber*>(&f), "deadlock: " + thread_name(f) + " waits at " + op_name(f.op) + " at " +
                                         where(f.site) + " and nothing can proceed");
        break;
      }
    }
    if (!run.failure.empty()) {
      ok = false;
      break;
    }
    if (!waiting) break;  // every thread has finished
    if (exited) {
      fail(const_cast<Fiber*>(waiting), thread_name(*exited) + " exited while " + std::to_string(waiting_count) +
                                            " threads wait at __syncthreads at " + where(waiting->site) +
                                            " (every thread must reach each barrier)");
      ok = false;
      break;
    }
    for (unsigned t = 0; t < n; ++t) fibers[t].state = State::Runnable;
  }
#if defined(LMK_EMU_TSAN)
  // Blocks run one after another and reuse the static shared memory: order
  // each block after the previous one (cross-block races are left to the
  // order variation).
  __tsan_acquire(run.sync_words.get() + 1);
#endif
  return ok;
}

std::string describe_block_failure(const KernelLaunch& launch, const BlockRun& run) {
  KernelName name = kernel_name(launch.kernel);
  return "emulated CUDA: kernel " + name.name + " (" + name.file + "), block " + triple(detail::g_block_idx) +
         ", thread " + triple(run.failed_thread) + ": " + run.failure;
}

void report(cudaError_t status, const std::string& message) {
  std::fprintf(stderr, "lmk %s\n", message.c_str());
  set_error(status, message);
  if (const char* abort_flag = std::getenv("LMK_EMU_ABORT"); abort_flag && std::strcmp(abort_flag, "1") == 0) {
    std::abort();
  }
}

std::string check_configuration(const KernelLaunch& launch) {
  const dim3 b = launch.block, g = launch.grid;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  std::ostringstream out;
  if (threads == 0 || g.x == 0 || g.y == 0 || g.z == 0) {
    out << "empty launch configuration (grid " << g.x << "x" << g.y << "x" << g.z << ", block " << b.x << "x" << b.y
        << "x" << b.z << ")";
  } else if (b.x > kMaxBlockX || b.y > kMaxBlockY || b.z > kMaxBlockZ || threads > kMaxThreadsPerBlock) {
    out << "block " << b.x << "x" << b.y << "x" << b.z << " is over sm_90's limits (1024 threads, 1024x1024x64)";
  } else if (g.x > kMaxGridX || g.y > kMaxGridYZ || g.z > kMaxGridYZ) {
    out << "grid " << g.x << "x" << g.y << "x" << g.z << " is over sm_90's limits (2^31-1 x 65535 x 65535)";
  } else {
    const int limit = max_dynamic_shared_bytes(launch.kernel);
    if (launch.shared_bytes > static_cast<size_t>(limit)) {
      out << launch.shared_bytes << " bytes of dynamic shared memory is over the kernel's limit of " << limit
          << " bytes (48 KiB unless raised with cudaFuncSetAttribute, at most 227 KiB on sm_90)";
    }
  }
  return out.str();
}

}  // namespace

namespace detail {

void syncthreads(Site site) {
  Fiber* self = current_fiber();
  if (!self) {
    std::fprintf(stderr, "lmk emulated CUDA: __syncthreads at %s outside a kernel\n", where(site).c_str());
    std::abort();
  }
  InternalAccesses internal;
  self->state = State::AtBarrier;
  self->site = site;
  const unsigned parity = self->barriers_passed & 1;
  tsan_release(barrier_word(parity));
  yield_to_scheduler(self, false);
  tsan_acquire(barrier_word(parity));
  ++self->barriers_passed;
}

uint64_t warp_collective(Site site, WarpOp op, unsigned mask, uint64_t value, int lane_arg, int width) {
  Fiber* self = current_fiber();
  if (!self) {
    std::fprintf(stderr, "lmk emulated CUDA: %s at %s outside a kernel\n", op_name(op), where(site).c_str());
    std::abort();
  }
  InternalAccesses internal;
  const unsigned lane = self->linear % kWarpSize;
  const std::string what = std::string(op_name(op)) + " at " + where(site);
  if (!((mask >> lane) & 1)) {
    fail_in_kernel(
        (what + ": the mask " + hex(mask) + " does not include the calling lane " + std::to_string(lane)).c_str());
  }
  if (width < 1 || width > kWarpSize || (width & (width - 1)) != 0) {
    fail_in_kernel((what + ": width " + std::to_string(width) + " is not a power of two up to 32").c_str());
  }
  if ((op == WarpOp::ShflUp || op == WarpOp::ShflDown) && lane_arg < 0) {
    fail_in_kernel((what + ": negative delta").c_str());
  }
  self->state = State::AtWarp;
  self->site = site;
  self->op = op;
  self->mask = mask;
  self->value = value;
  self->lane_arg = lane_arg;
  self->width = width;
  const unsigned warp = self->linear / kWarpSize;
  const unsigned parity = self->warp_syncs_passed & 1;
  if (op == WarpOp::Sync) tsan_release(warp_word(warp, parity));
  yield_to_scheduler(self, false);
  if (op == WarpOp::Sync) {
    tsan_acquire(warp_word(warp, parity));
    ++self->warp_syncs_passed;
  }
  return self->result;
}

void fail_in_kernel(const char* what) {
  Fiber* self = current_fiber();
  if (!self) {
    std::fprintf(stderr, "lmk emulated CUDA: %s (outside a kernel)\n", what);
    std::abort();
  }
  InternalAccesses internal;
  fail(self, what);
  self->state = State::Done;
  yield_to_scheduler(self, true);
  std::abort();  // a failed thread is never resumed
}

}  // namespace detail

void run_launch(const KernelLaunch& launch) {
  static std::mutex launch_mutex;
  std::lock_guard<std::mutex> lock(launch_mutex);
  read_order_from_environment();
  const uint64_t launch_number = ++g_launch_counter;

  std::string bad = check_configuration(launch);
  if (!bad.empty()) {
    KernelName name = kernel_name(launch.kernel);
    report(cudaErrorInvalidConfiguration, "emulated CUDA: kernel " + name.name + " (" + name.file + "): " + bad);
    return;
  }
  const unsigned threads = launch.block.x * launch.block.y * launch.block.z;
  const uint64_t blocks = uint64_t(launch.grid.x) * launch.grid.y * launch.grid.z;
  {
    std::lock_guard<std::mutex> stats_lock(tables_mutex());
    KernelStats& s = stats_table()[launch.kernel];
    s.kernel = launch.kernel;
    s.launches += 1;
    s.blocks += blocks;
    s.threads += blocks * threads;
  }

  static std::vector<Fiber> fibers(kMaxThreadsPerBlock);
  // Exactly shared_bytes (so ASan sees one past the end), over-aligned like
  // CUDA's shared window.
  struct AlignedFree {
    void operator()(unsigned char* p) const { operator delete[](p, std::align_val_t(128)); }
  };
  std::unique_ptr<unsigned char[], AlignedFree> dynamic_shared;
  if (launch.shared_bytes > 0) {
    dynamic_shared.reset(static_cast<unsigned char*>(operator new[](launch.shared_bytes, std::align_val_t(128))));
  }
  detail::g_dynamic_shared = dynamic_shared.get();
  detail::g_block_dim = launch.block;
  detail::g_grid_dim = launch.grid;

  BlockRun run;
  run.launch = &launch;
  run.fibers = &fibers;
  run.threads = threads;
#if defined(LMK_EMU_TSAN)
  run.tsan_main = __tsan_get_current_fiber();
#endif
  g_run = &run;

  // Block order: forward, reverse or a random permutation, as threads.
  const OrderSetting& setting = order_setting();
  std::vector<unsigned> block_order;
  if (setting.order == ThreadOrder::Random) {
    block_order.resize(blocks);
    for (uint64_t b = 0; b < blocks; ++b) block_order[b] = static_cast<unsigned>(b);
    arrange(block_order, launch_number);
  }
  for (uint64_t i = 0; i < blocks; ++i) {
    uint64_t b = setting.order == ThreadOrder::Forward   ? i
                 : setting.order == ThreadOrder::Reverse ? blocks - 1 - i
                                                         : block_order[i];
    detail::g_block_idx =
        uint3{static_cast<unsigned>(b % launch.grid.x), static_cast<unsigned>((b / launch.grid.x) % launch.grid.y),
              static_cast<unsigned>(b / (uint64_t(launch.grid.x) * launch.grid.y))};
    run.sync_words.reset(new char[4 + 2 * ((threads + kWarpSize - 1) / kWarpSize)]);
    run.failure.clear();
    if (!run_block(run, launch_number * 0x9e3779b97f4a7c15ull + b)) {
      std::string message = describe_block_failure(launch, run);
      g_stacks_dirty = true;
      drop_tsan_fibers();
      g_run = nullptr;
      detail::g_dynamic_shared = nullptr;
      report(cudaErrorLaunchFailure, message);
      return;
    }
  }
  g_run = nullptr;
  detail::g_dynamic_shared = nullptr;
}

// ---- settings and reports ------------------------------------------------------------
void set_thread_order(ThreadOrder order, uint64_t seed) {
  OrderSetting& s = order_setting();
  s.from_environment_read = true;
  s.order = order;
  s.seed = seed;
}
ThreadOrder thread_order() {
  read_order_from_environment();
  return order_setting().order;
}
bool parse_thread_order(const std::string& text, ThreadOrder* order, uint64_t* seed) {
  if (text == "forward") {
    *order = ThreadOrder::Forward;
  } else if (text == "reverse") {
    *order = ThreadOrder::Reverse;
  } else if (text.rfind("random:", 0) == 0 && text.size() > 7) {
    char* end = nullptr;
    unsigned long long value = std::strtoull(text.c_str() + 7, &end, 10);
    if (*end != '\0') return false;
    *order = ThreadOrder::Random;
    *seed = value;
  } else {
    return false;
  }
  return true;
}

void set_max_dynamic_shared_bytes(const void* kernel, int bytes) {
  std::lock_guard<std::mutex> lock(tables_mutex());
  shared_limits()[kernel] = bytes;
}

std::vector<KernelStats> launch_stats() {
  std::lock_guard<std::mutex> lock(tables_mutex());
  std::vector<KernelStats> out;
  for (auto& [kernel, s] : stats_table()) out.push_back(s);
  return out;
}

void print_launch_stats() {
  struct Row {
    std::string family, kernel;
    KernelStats stats;
  };
  std::vector<Row> rows;
  for (const KernelStats& s : launch_stats()) {
    KernelName name = kernel_name(s.kernel);
    rows.push_back(Row{kernel_family(name), name.name, s});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return a.family != b.family ? a.family < b.family : a.kernel < b.kernel;
  });
  const char* target = std::getenv("LMK_EMU_STATS");
  FILE* out = stderr;
  bool to_file = target && std::strcmp(target, "1") != 0;
  if (to_file) out = std::fopen(target, "a");
  if (!out) return;
  // One line per kernel: family, launches, blocks, threads, name.
  for (const Row& r : rows) {
    std::fprintf(out, "%s%s %llu %llu %llu %s\n", to_file ? "" : "lmk emulated CUDA launches: ", r.family.c_str(),
                 static_cast<unsigned long long>(r.stats.launches), static_cast<unsigned long long>(r.stats.blocks),
                 static_cast<unsigned long long>(r.stats.threads), r.kernel.c_str());
  }
  if (to_file) std::fclose(out);
}

}  // namespace lmk::emulator
