// A guard for the recursive walks: tells when the calling thread's stack is close to its end.
#pragma once

#include <cstdint>

namespace safestructures {

// True when less than a safety margin (256 KiB, or a quarter of a smaller stack) of the calling thread's stack is
// left. The recursive walkers (schema parsing and rendering, and the Python walkers) check it at each level, so data
// nested deeper than the stack can hold raises NestingTooDeep instead of crashing, whatever the thread's stack size.
// The bounds are looked up once per thread.
bool stack_nearly_exhausted() noexcept;

// The address below which stack_nearly_exhausted() holds on the calling thread, for a walk that checks at every node
// (the load walk) and looks the bound up once rather than through thread-local storage each time.
std::uintptr_t stack_floor() noexcept;
inline bool below_stack_floor(std::uintptr_t floor) noexcept {
  char probe = 0;
  return reinterpret_cast<std::uintptr_t>(&probe) < floor;
}

}  // namespace safestructures
