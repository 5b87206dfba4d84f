#include <algorithm>
#include <atomic>

#include "kernels/checks/index_check.h"
#include "runtime/thread_pool.h"

namespace lmk::kernels {

void index_check_cpu(const int32_t* values, int64_t n, int64_t limit, int64_t* first_bad_index) {
  std::atomic<int64_t> first{*first_bad_index};
  parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (values[i] < 0 || values[i] >= limit) {
        record_first_bad_index(first, i);
        return;  // later indices in this chunk cannot be smaller
      }
    }
  });
  *first_bad_index = first.load();
}

}  // namespace lmk::kernels
