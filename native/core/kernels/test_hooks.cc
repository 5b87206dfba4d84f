// The test-only switches of kernels/test_hooks.h.
#include "kernels/test_hooks.h"

#include <atomic>
#include <cstdlib>

#include "runtime/error.h"

namespace lmk::kernels {
namespace {

constexpr int kUnread = -1;
std::atomic<int> grid_cap{kUnread};
std::atomic<int> variants[kKernelFamilies] = {};  // KernelVariant::Default is 0

int grid_cap_from_env() {
  const char* text = std::getenv("LMK_TEST_GRID_CAP");
  if (!text || !*text) return 0;
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < 0 || value > (1L << 30)) {
    throw_range_error("LMK_TEST_GRID_CAP: expected a block count >= 0 (0 = off), got '", text, "'");
  }
  return static_cast<int>(value);
}

const char* family_name(KernelFamily family) {
  switch (family) {
    case KernelFamily::Fam: return "fam";
    case KernelFamily::Losses: return "losses";
    case KernelFamily::Matmul: return "matmul";
    case KernelFamily::Wkv4Forward: return "wkv4 forward";
  }
  return "?";
}

const char* variant_name(KernelVariant variant) {
  switch (variant) {
    case KernelVariant::Default: return "Default";
    case KernelVariant::Reference: return "Reference";
    case KernelVariant::Serial: return "Serial";
    case KernelVariant::Chunked: return "Chunked";
  }
  return "?";
}

bool supports(KernelFamily family, KernelVariant variant) {
  if (variant == KernelVariant::Default) return true;
  if (family == KernelFamily::Wkv4Forward) return variant == KernelVariant::Serial || variant == KernelVariant::Chunked;
  return variant == KernelVariant::Reference;
}

}  // namespace

int test_grid_cap() {
  int value = grid_cap.load();
  if (value == kUnread) {
    grid_cap.compare_exchange_strong(value, grid_cap_from_env());
    value = grid_cap.load();
  }
  return value;
}

void set_test_grid_cap(int blocks) {
  if (blocks < 0) throw_range_error("set_test_grid_cap: expected a block count >= 0 (0 = off), got ", blocks);
  grid_cap.store(blocks);
}

void set_test_kernel_variant(KernelFamily family, KernelVariant variant) {
  const int index = static_cast<int>(family);
  if (index < 0 || index >= kKernelFamilies) throw_type_error("set_test_kernel_variant: unknown kernel family");
  if (!supports(family, variant)) {
    throw_type_error("set_test_kernel_variant: ", family_name(family), " has no variant ", variant_name(variant));
  }
  variants[index].store(static_cast<int>(variant));
}

KernelVariant test_kernel_variant(KernelFamily family) {
  return static_cast<KernelVariant>(variants[static_cast<int>(family)].load());
}

}  // namespace lmk::kernels
