// Shared by the libFuzzer targets: running a check so that safestructures::Error (the expected outcome for bad
// input) is swallowed and anything else (another exception, a broken invariant) aborts with a message.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "safestructures/error.hpp"

namespace fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ BUG: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_CHECK(cond, what)                                                                      \
  do {                                                                                              \
    if (!(cond)) ::fuzz::fail(std::string(__FILE__ ":") + std::to_string(__LINE__) + ": " #cond " -- " + (what)); \
  } while (0)

// Runs `body`; returns false when it raised safestructures::Error, true when it returned normally.
template <class F>
bool expect_ok_or_error(const char* step, F&& body) {
  try {
    body();
    return true;
  } catch (const safestructures::Error&) {
    return false;
  } catch (const std::exception& e) {
    fail(std::string(step) + ": unexpected exception: " + e.what());
  } catch (...) {
    fail(std::string(step) + ": unexpected non-std exception");
  }
}

}  // namespace fuzz
