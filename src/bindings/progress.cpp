// Progress of a write, told to a Python callable: the writer's per-piece count of tensor bytes (WriteOptions::progress)
// turned into a few calls progress(done, total), made with the GIL taken from whichever thread writes.
#include <nanobind/nanobind.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "bindings.hpp"

namespace safestructures::bindings {
namespace {

// A write's count, and the callable it is told to. A bar redrawn at every piece of a save of many small tensors would
// cost more than the save: the callable hears of every step of at least 1/200 of the total (or 1 MiB), and of the end.
struct ProgressCount {
  nb::object callback;
  std::uint64_t total;
  std::uint64_t step;
  std::uint64_t done = 0;
  std::uint64_t told = 0;
  bool failed = false;

  void tell() {
    nb::gil_scoped_acquire gil;
    try {
      callback(done, total);
    } catch (nb::python_error& error) {
      // A progress display that fails must not fail the save it shows: its error is printed, and it hears no more.
      error.discard_as_unraisable(callback);
      failed = true;
    }
  }

  void advance(std::uint64_t bytes) {
    done += bytes;
    if (failed || (done - told < step && done < total)) return;
    told = done;
    tell();
  }
};

}  // namespace

std::function<void(std::uint64_t)> progress_reporter(nb::handle progress, std::uint64_t total) {
  if (progress.is_none()) return {};
  auto count = std::make_shared<ProgressCount>(ProgressCount{nb::borrow(progress), total, std::max<std::uint64_t>(total / 200, 1 << 20)});
  count->tell();  // (0, total): the bar is drawn with its total before the first byte
  return [count](std::uint64_t bytes) { count->advance(bytes); };
}

}  // namespace safestructures::bindings
