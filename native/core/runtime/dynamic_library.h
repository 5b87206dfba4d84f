// A shared library opened at run time (dlopen), never linked: the prebuilt
// binary must load on machines without BLAS, MPI or NCCL
// (docs/architecture.md "Optional libraries"). Owns the handle (dlclose on
// destruction) unless keep_forever() hands it to the process, as the loaders
// do once every symbol they need was found.
//
//   DynamicLibrary lib = DynamicLibrary::open_first({"libfoo.so.1", "libfoo.so"});
//   if (!lib || !lib.find("foo_init", &init)) return nullptr;   // lib.error() says why
//   lib.keep_forever();
#pragma once
#include <dlfcn.h>

#include <initializer_list>
#include <mutex>
#include <string>
#include <utility>

namespace lmk {

class DynamicLibrary {
 public:
  DynamicLibrary() = default;
  DynamicLibrary(const DynamicLibrary&) = delete;
  DynamicLibrary& operator=(const DynamicLibrary&) = delete;
  DynamicLibrary(DynamicLibrary&& other) noexcept { *this = std::move(other); }
  DynamicLibrary& operator=(DynamicLibrary&& other) noexcept {
    if (this != &other) {
      close();
      handle_ = std::exchange(other.handle_, nullptr);
      name_ = std::move(other.name_);
      error_ = std::move(other.error_);
    }
    return *this;
  }
  ~DynamicLibrary() { close(); }

  // The first of `names` that opens. RTLD_LOCAL by default: the library's
  // symbols stay out of the global namespace. Without success, error() has
  // dlerror()'s reason for each name tried.
  static DynamicLibrary open_first(std::initializer_list<const char*> names, int flags = RTLD_NOW | RTLD_LOCAL) {
    DynamicLibrary lib;
    for (const char* name : names) {
      if (void* handle = dlopen(name, flags)) {
        lib.handle_ = handle;
        lib.name_ = name;
        lib.error_.clear();
        return lib;
      }
      const char* reason = dlerror();
      if (!lib.error_.empty()) lib.error_ += "; ";
      lib.error_ += reason ? reason : std::string(name) + ": cannot be opened";
    }
    return lib;
  }

  explicit operator bool() const { return handle_ != nullptr; }
  const std::string& name() const { return name_; }    // the name that opened
  const std::string& error() const { return error_; }  // why open or find failed

  // The address of symbol `symbol` (a function or a global), or nullptr.
  void* address(const char* symbol) {
    void* found = handle_ ? dlsym(handle_, symbol) : nullptr;
    if (!found) {
      if (!error_.empty()) error_ += "; ";
      error_ += name_ + " has no symbol " + symbol;
    }
    return found;
  }

  // *out = the function `symbol`; false (and error() says which) when missing.
  template <typename Fn>
  bool find(const char* symbol, Fn* out) {
    *out = reinterpret_cast<Fn>(address(symbol));
    return *out != nullptr;
  }

  // The library stays open for the life of the process; the handle is no
  // longer closed by this object.
  void keep_forever() { handle_ = nullptr; }

 private:
  void close() {
    if (handle_) dlclose(handle_);
    handle_ = nullptr;
  }

  void* handle_ = nullptr;
  std::string name_;
  std::string error_;
};

// A loader's result, computed once per process (thread safe): load(library,
// &failure) fills `library` from what it opens and returns true, or false
// with `failure` saying why. Returns the library, or nullptr with *why (when
// given) set to the failure, on every call.
//
//   const Mpi* mpi(std::string* why) {
//     return load_once<Mpi>(why, [](Mpi& lib, std::string* failure) { ... });
//   }
template <typename Library, typename Load>
const Library* load_once(std::string* why, Load&& load) {
  static Library library;
  static const Library* result = nullptr;
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [&] {
    if (load(library, &failure)) result = &library;
  });
  if (!result && why) *why = failure;
  return result;
}

}  // namespace lmk
