// Errors raised by the core. The addon maps ErrorKind to the JS class:
// Type -> TypeError, Range -> RangeError, Runtime -> Error.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace lmk {

enum class ErrorKind { Type, Range, Runtime };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

template <typename... Parts>
[[noreturn]] void throw_type_error(const Parts&... parts) {
  throw Error(ErrorKind::Type, concat(parts...));
}

template <typename... Parts>
[[noreturn]] void throw_range_error(const Parts&... parts) {
  throw Error(ErrorKind::Range, concat(parts...));
}

template <typename... Parts>
[[noreturn]] void throw_runtime_error(const Parts&... parts) {
  throw Error(ErrorKind::Runtime, concat(parts...));
}

// An error recorded on a stream: which op failed and why.
struct RecordedError {
  ErrorKind kind = ErrorKind::Runtime;
  std::string message;  // already prefixed with the op's name
};

}  // namespace lmk
