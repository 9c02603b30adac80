// The names of the error codes and the single raise function.
#include "safestructures/error.hpp"

#include <cstring>
#include <iterator>

namespace safestructures {

std::string_view error_code_name(ErrorCode code) {
#define SAFESTRUCTURES_ERROR_CODE_NAME(name) #name,
  static constexpr std::string_view names[] = {SAFESTRUCTURES_ERROR_CODES(SAFESTRUCTURES_ERROR_CODE_NAME)};
#undef SAFESTRUCTURES_ERROR_CODE_NAME
  const auto index = static_cast<std::size_t>(code);
  return index < std::size(names) ? names[index] : "Unknown";
}

void raise(ErrorCode code, std::string message, int sys_errno, std::string path) {
  throw Error(code, std::move(message), sys_errno, std::move(path));
}

void raise_io(std::string_view operation, std::string_view path, int sys_errno) {
  std::string message;
  message.append(operation).append(" '").append(path).append("': ").append(std::strerror(sys_errno));
  raise(ErrorCode::Io, std::move(message), sys_errno, std::string(path));
}

}  // namespace safestructures
