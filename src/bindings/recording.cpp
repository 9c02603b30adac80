// The recorder's core (safestructures.Recorder, docs/recorder.md): its header kept and rendered by RecordingWriter
// (include/safestructures/recording_writer.hpp), its records walked and written, its commits through the crash-safe
// journal (include/safestructures/recording.hpp), the GIL released while the disk works.
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <string_view>

#include "bindings.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/recording.hpp"
#include "safestructures/recording_writer.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace safestructures::bindings {
namespace {

void py_commit_recording(int fd, nb::bytes header_text, std::uint64_t room, std::uint64_t data_size, bool fsync) {
  const std::string_view text(header_text.c_str(), header_text.size());
  nb::gil_scoped_release release;
  commit_recording_header(fd, text, room, data_size, fsync);
}

// Walks one record of `stream` (None: a plain record) as the recording `writer` numbers and names it, writes its tensor
// bytes at the end of the recording open as `fd`, straight from their memory, and adds it to the header. A structure
// too large for a header is refused before anything is written; a failed write leaves the writer as it was (the
// caller cuts the file back to writer.data_end).
void py_write_recording_record(RecordingWriter& writer, const RecordingWriter::Stream& stream, nb::handle data, int fd,
                               std::uint32_t max_depth, nb::handle context) {
  as_argument_error([&] { writer.check_stream(stream); });
  SaveResult walked = walk_record(data, max_depth, context, writer.last_id());
  const Layout layout = as_argument_error([&] {
    Layout planned = plan_layout(walked.tree.tensors, nullptr, default_max_header_size);
    RecordingWriter::check_record(walked.tree, planned);
    return planned;
  });
  {
    nb::gil_scoped_release release;
    // (A record whose bytes would end the file as a journal does is the caller's to change.)
    as_argument_error([&] { write_recording_data(fd, writer.data_end(), layout, walked.tree.tensors); });
  }
  writer.add(stream, walked.tree, layout);
  // The record's text goes back to the writer of the next, as a save's does.
  SchemaText::recycle(std::move(walked.tree.escaped_document));
}

RecordingWriter continuing_recording(const std::filesystem::path& path, nb::handle metadata, std::uint64_t header_reserve) {
  const std::optional<Metadata> given = metadata.is_none() ? std::nullopt : make_metadata(metadata);
  if (given) as_argument_error([&] { check_user_metadata(*given); });
  // The recorder names the file in what it raises (a core error here would name it twice).
  const Reader reader = Reader::open(path);
  return RecordingWriter(reader.header(), given, header_reserve, path.string());
}

nb::tuple rewrite_of(const RecordingWriter& writer) {
  const RecordingWriter::Rewrite& r = writer.rewrite();
  return nb::make_tuple(nb::bytes(r.header.data(), r.header.size()), r.room, r.padding, r.data_at, r.data_size);
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
  nb::class_<RecordingWriter>(m, "RecordingWriter",
                              "A recording's header (docs/format.md section 9): its records, tensor entries, room and padding.")
      .def(
          "__init__",
          [](RecordingWriter* self, nb::handle metadata, std::uint64_t header_room, std::uint64_t header_reserve) {
            Metadata meta = make_metadata(metadata).value_or(Metadata{});
            as_argument_error([&] { new (self) RecordingWriter(std::move(meta), header_room, header_reserve); });
          },
          "metadata"_a.none(), "header_room"_a, "header_reserve"_a,
          "A new recording: the caller's metadata, the room asked for the header, the padding reserved; rewrite() gives "
          "the file to write.")
      .def_static("continuing", &continuing_recording, "path"_a, "metadata"_a.none(), "header_reserve"_a,
                  "The recording at `path` (its commit completed), to append to; `metadata` replaces its own when given.")
      .def("count", nb::overload_cast<const RecordingWriter::Stream&>(&RecordingWriter::count, nb::const_), "stream"_a.none(),
           "The records of `stream` (None: plain records).")
      .def("__len__", nb::overload_cast<>(&RecordingWriter::count, nb::const_))
      .def(
          "check_stream", [](const RecordingWriter& writer, const RecordingWriter::Stream& stream) { as_argument_error([&] { writer.check_stream(stream); }); },
          "stream"_a.none(), "Raise InvalidArgumentError unless a record of `stream` may be appended (plain records or streams).")
      .def_prop_ro("data_end", &RecordingWriter::data_end, "Where the next record's tensor bytes go in the file.")
      .def(
          "commit",
          [](RecordingWriter& writer, int fd, bool fsync) {
            nb::gil_scoped_release release;
            return as_argument_error([&] { return writer.commit(fd, fsync); });
          },
          "fd"_a, "fsync"_a,
          "Commit the header over the recording open as `fd`; False where the data must move: write the file as "
          "rewrite() says, then call rewritten().")
      .def("rewrite", &rewrite_of, "(header, room, padding, data_at, data_size) of the file to write anew.")
      .def("rewritten", &RecordingWriter::rewritten, "The file was written as rewrite() said.")
      .def("drop_padding", &RecordingWriter::drop_padding,
           "At close: True, and rewrite() set without the padding, when the data is no larger than the padding.");
  m.def("write_recording_record", &py_write_recording_record, "writer"_a, "stream"_a.none(), "data"_a.none(), "fd"_a,
        "max_depth"_a, "context"_a.none(),
        "Walk a record of `stream` as `writer` names it, write its tensor bytes at writer.data_end of the recording "
        "open as `fd` from their memory, and add it to the header.");
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
