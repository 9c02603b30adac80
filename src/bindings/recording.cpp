// The recorder's commits (safestructures.Recorder, docs/recorder.md): its header written through the core's
// crash-safe journal (include/safestructures/recording.hpp), the GIL released while the disk works.
#include <nanobind/nanobind.h>

#include <cstdint>
#include <string_view>

#include "bindings.hpp"
#include "safestructures/recording.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace safestructures::bindings {
namespace {

void py_commit_recording(int fd, nb::bytes header_text, std::uint64_t room, std::uint64_t data_size, bool fsync) {
  const std::string_view text(header_text.c_str(), header_text.size());
  nb::gil_scoped_release release;
  commit_recording_header(fd, text, room, data_size, fsync);
}

bool py_finish_recording_commit(int fd, bool fsync) {
  nb::gil_scoped_release release;
  return finish_recording_commit(fd, fsync);
}

bool py_grow_recording(int fd, nb::bytes header_text, std::uint64_t room, std::uint64_t new_room, std::uint64_t data_size,
                       std::uint64_t new_data_size, bool fsync) {
  const std::string_view text(header_text.c_str(), header_text.size());
  nb::gil_scoped_release release;
  return grow_recording_header(fd, text, room, new_room, data_size, new_data_size, fsync);
}

}  // namespace

void register_recording(nb::module_& m) {
  m.def("commit_recording", &py_commit_recording, "fd"_a, "header_text"_a, "room"_a, "data_size"_a, "fsync"_a,
        "Commit a recording's header (padded with spaces to `room`) over the file open as `fd`, whose data buffer "
        "holds `data_size` bytes and ends the file at 8 + room + data_size: journal appended, header and `room` (the "
        "prefix) written in place, journal cut off.");
  m.def("finish_recording_commit", &py_finish_recording_commit, "fd"_a, "fsync"_a,
        "Complete the commit a killed writer left in the recording open as `fd`, if it ends in a whole journal; "
        "returns whether it did.");
  m.def("grow_recording", &py_grow_recording, "fd"_a, "header_text"_a, "room"_a, "new_room"_a, "data_size"_a,
        "new_data_size"_a, "fsync"_a,
        "Commit a header into a room grown from `room` to `new_room`, the data buffer from `data_size` to "
        "`new_data_size` bytes (a longer leading padding), by inserting blocks before the data (the data not moved); "
        "returns False, the file unchanged, where the file system cannot.");
}

}  // namespace safestructures::bindings
