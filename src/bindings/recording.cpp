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

// Writes one record's tensor bytes at `offset` of the recording open as `fd`, straight from their memory, and returns
// the header a save of the record alone would have (its JSON, without prefix or padding): its entries give each
// tensor's place in the bytes written, its metadata the record's structure. A structure too large for a header (which
// a save would spill into a tensor) is refused before anything is written.
nb::bytes py_write_recording_record(nb::handle data, int fd, std::uint64_t offset, std::uint32_t max_depth, nb::handle context) {
  SaveResult walked;
  const StructuredLayout plan = plan_save(data, nb::none(), max_depth, default_max_header_size, context, false, walked);
  if (!plan.spilled_schema.empty()) throw ArgumentError(ErrorCode::InvalidArgument, "its structure alone is over the header limit");
  {
    nb::gil_scoped_release release;
    write_recording_data(fd, offset, plan.layout, plan.tensors);
  }
  const std::string_view json = std::string_view(plan.layout.header).substr(8);
  return nb::bytes(json.data(), json.size());
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
  m.def("write_recording_record", &py_write_recording_record, "data"_a.none(), "fd"_a, "offset"_a, "max_depth"_a,
        "context"_a.none(),
        "Write a record's tensor bytes at `offset` of the recording open as `fd`, from their memory; returns the JSON "
        "header a save of the record alone would have, which places them.");
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
