// The stack bounds of the calling thread, looked up once per thread, for the recursion guard.
#include "safestructures/stack.hpp"

#include <pthread.h>

#include <cstddef>
#include <cstdint>

namespace safestructures {
namespace {

constexpr std::uintptr_t margin = 256 * 1024;

std::uintptr_t lowest_safe_address() noexcept {
  std::uintptr_t low = 0;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* base = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &base, &size) == 0) low = reinterpret_cast<std::uintptr_t>(base) + margin;
    pthread_attr_destroy(&attr);
  }
  return low;
}

}  // namespace

bool stack_nearly_exhausted() noexcept {
  // Stacks grow down on every platform this builds for: the end is the lowest address.
  thread_local const std::uintptr_t low = lowest_safe_address();
  char probe = 0;
  return reinterpret_cast<std::uintptr_t>(&probe) < low;
}

}  // namespace safestructures
