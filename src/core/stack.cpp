// The stack bounds of the calling thread, looked up once per thread, for the recursion guard.
#include "safestructures/stack.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace safestructures {
namespace {

std::uintptr_t lowest_safe_address() noexcept {
  std::uintptr_t low = 0;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* base = nullptr;
    std::size_t size = 0;
    // Room kept free for what runs inside one level (Python hooks, error handling): 256 KiB, or a quarter of a small
    // stack (musl's threads get 128 KiB), so that small stacks still walk shallow data.
    if (pthread_attr_getstack(&attr, &base, &size) == 0) {
      low = reinterpret_cast<std::uintptr_t>(base) + std::min<std::size_t>(256 * 1024, size / 4);
    }
    pthread_attr_destroy(&attr);
  }
  return low;
}

}  // namespace

std::uintptr_t stack_floor() noexcept {
  // Stacks grow down on every platform this builds for: the end is the lowest address.
  thread_local const std::uintptr_t low = lowest_safe_address();
  return low;
}

bool stack_nearly_exhausted() noexcept { return below_stack_floor(stack_floor()); }

}  // namespace safestructures
