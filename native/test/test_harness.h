// A minimal test harness: TEST(name) registers a function, CHECK* record
// failures with file:line, main() runs everything (or the tests whose name
// contains LMK_TEST_FILTER) and prints a summary line.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#if defined(LMK_CUDA_EMULATED)
#include "emulator/control.h"
#endif

namespace lmk_test {

struct TestCase {
  const char* name;
  std::function<void()> fn;
};

inline std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}
inline int& failures() {
  static int count = 0;
  return count;
}

struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline void fail(const char* file, int line, const std::string& what) {
  ++failures();
  std::fprintf(stderr, "  FAILED %s:%d: %s\n", file, line, what.c_str());
}

// ‖out − ref‖ / ‖ref‖ (docs/kernels.md's accuracy measure); ref all zero gives ‖out‖.
template <typename A, typename B>
double relative_error(const A& out, const B& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = static_cast<double>(out[i]) - static_cast<double>(ref[i]);
    diff += d * d;
    norm += static_cast<double>(ref[i]) * static_cast<double>(ref[i]);
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace lmk_test

#define LMK_CONCAT_INNER(a, b) a##b
#define LMK_CONCAT(a, b) LMK_CONCAT_INNER(a, b)
#define TEST(name)                                                    \
  static void name();                                                 \
  static lmk_test::Register LMK_CONCAT(register_, name)(#name, name); \
  static void name()

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) lmk_test::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)
#define CHECK_EQ(a, b)                                                                                         \
  do {                                                                                                         \
    auto lmk_a = (a);                                                                                          \
    auto lmk_b = (b);                                                                                          \
    if (!(lmk_a == lmk_b))                                                                                     \
      lmk_test::fail(__FILE__, __LINE__,                                                                       \
                     std::string(#a " == " #b ": ") + std::to_string(lmk_a) + " vs " + std::to_string(lmk_b)); \
  } while (0)
#define CHECK_LE(a, b)                                                                                         \
  do {                                                                                                         \
    auto lmk_a = (a);                                                                                          \
    auto lmk_b = (b);                                                                                          \
    if (!(lmk_a <= lmk_b))                                                                                     \
      lmk_test::fail(__FILE__, __LINE__,                                                                       \
                     std::string(#a " <= " #b ": ") + std::to_string(lmk_a) + " vs " + std::to_string(lmk_b)); \
  } while (0)
#define CHECK_THROWS_KIND(expr, expected_kind, fragment)                                                  \
  do {                                                                                                    \
    bool lmk_threw = false;                                                                               \
    try {                                                                                                 \
      (void)(expr);                                                                                       \
    } catch (const lmk::Error& e) {                                                                       \
      lmk_threw = true;                                                                                   \
      if (e.kind() != (expected_kind))                                                                    \
        lmk_test::fail(__FILE__, __LINE__, "wrong error kind: " + std::string(e.what()));                 \
      if (std::string(e.what()).find(fragment) == std::string::npos)                                      \
        lmk_test::fail(__FILE__, __LINE__, std::string("message lacks '") + fragment + "': " + e.what()); \
    }                                                                                                     \
    if (!lmk_threw) lmk_test::fail(__FILE__, __LINE__, "expected " #expr " to throw");                    \
  } while (0)

// Emulated CUDA: outputs copied to the host are digested per test, so that
// runs in different thread orders can be compared (scripts/test-cpp.sh emulate).
#if defined(LMK_CUDA_EMULATED)
#define LMK_TEST_LABEL(name) lmk::emulator::set_digest_label(name)
#else
#define LMK_TEST_LABEL(name) (void)(name)
#endif

#define LMK_TEST_MAIN()                                                            \
  int main() {                                                                     \
    int passed = 0, failed = 0;                                                    \
    const char* filter = std::getenv("LMK_TEST_FILTER");                           \
    for (auto& t : lmk_test::registry()) {                                         \
      if (filter && !std::strstr(t.name, filter)) continue;                        \
      int before = lmk_test::failures();                                           \
      std::printf("[ RUN  ] %s\n", t.name);                                        \
      LMK_TEST_LABEL(t.name);                                                      \
      try {                                                                        \
        t.fn();                                                                    \
      } catch (const std::exception& e) {                                          \
        lmk_test::fail(__FILE__, __LINE__, std::string("exception: ") + e.what()); \
      }                                                                            \
      bool ok = lmk_test::failures() == before;                                    \
      std::printf("[ %s ] %s\n", ok ? " OK " : "FAIL", t.name);                    \
      (ok ? passed : failed)++;                                                    \
    }                                                                              \
    std::printf("%d passed, %d failed\n", passed, failed);                         \
    return failed == 0 ? 0 : 1;                                                    \
  }
