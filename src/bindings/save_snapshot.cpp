// Background saves: a save walked and planned in the caller's thread with every tensor's bytes copied into memory the
// snapshot owns (SaveSnapshot), so that the caller may change its data while another thread writes the file.
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/string.h>

#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "safestructures/structure.hpp"
#include "safestructures/writer.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace safestructures::bindings {
namespace {

// What a background save writes: the walk (its tensors pointing into `bytes`), and either the single file's plan or
// the sharded save's schema document, both made when the snapshot was taken.
struct SaveSnapshot {
  SaveResult walked;
  std::vector<std::byte> bytes;
  std::optional<StructuredLayout> file;
  std::string document;
  std::uint64_t tensor_bytes = 0;
};

// Copies every tensor's bytes (strided ones gathered into C order, as the file will hold them) into one buffer the
// snapshot owns, and points the tensors there: what the caller changes afterwards no longer reaches the save.
void copy_tensors(SaveSnapshot& snapshot) {
  std::vector<WriteTensor>& tensors = snapshot.walked.tree.tensors;
  const std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();
  const Layout layout = as_argument_error([&] { return plan_layout(tensors, nullptr, unlimited); });
  snapshot.bytes.resize(layout.file_size());
  {
    nb::gil_scoped_release release;  // a plain copy: other threads (a background save writing) may run meanwhile
    write_into(snapshot.bytes, layout, tensors);
  }
  const std::byte* data = snapshot.bytes.data() + layout.header.size();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    tensors[i].data = data + layout.offsets[i];
    tensors[i].strides.clear();
  }
  snapshot.tensor_bytes = layout.data_size;
}

// Once the tensors are copied and the header planned (or the schema rendered), nothing the walk viewed is read again:
// the caller's objects, and the host copies of GPU tensors made for the walk, are let go now rather than held until
// the file is written, so that the snapshot costs one copy of the tensor bytes.
void release_caller_objects(SaveSnapshot& snapshot) { snapshot.walked.keep_alive.clear(); }

SaveSnapshot* snapshot_file(nb::handle data, nb::handle metadata, std::uint32_t max_depth, std::uint64_t max_header_size,
                            nb::handle context, bool checksums) {
  auto snapshot = std::make_unique<SaveSnapshot>();
  const Metadata meta = make_metadata(metadata).value_or(Metadata{});
  snapshot->walked = walk_data(data, max_depth, context);
  copy_tensors(*snapshot);
  snapshot->file.emplace(as_argument_error([&] { return std::move(snapshot->walked.tree).plan(meta, max_header_size, checksums); }));
  release_caller_objects(*snapshot);
  return snapshot.release();
}

SaveSnapshot* snapshot_sharded(nb::handle data, std::uint32_t max_depth, nb::handle context) {
  auto snapshot = std::make_unique<SaveSnapshot>();
  snapshot->walked = walk_data(data, max_depth, context);
  copy_tensors(*snapshot);
  snapshot->document = snapshot->walked.tree.document();
  release_caller_objects(*snapshot);
  return snapshot.release();
}

void write_snapshot_file(const SaveSnapshot& snapshot, const std::filesystem::path& path, bool fsync, nb::handle progress) {
  if (!snapshot.file) throw nb::value_error("this snapshot was taken for a sharded save");
  const auto report = progress_reporter(progress, snapshot.file->layout.data_size);
  nb::gil_scoped_release release;
  as_argument_error([&] { write_structured(path, *snapshot.file, WriteOptions{fsync, false, report}); });
}

nb::tuple write_snapshot_sharded(const SaveSnapshot& snapshot, const std::filesystem::path& directory, const std::string& prefix,
                                 const std::string& save_id, std::uint64_t max_shard_size, bool fsync, bool checksums,
                                 nb::handle progress) {
  if (snapshot.file) throw nb::value_error("this snapshot was taken for a single file");
  return write_sharded(snapshot.walked.tree.tensors, snapshot.document, directory, prefix, save_id, max_shard_size, fsync, checksums,
                       progress);
}

}  // namespace

void register_save_snapshot(nb::module_& m) {
  nb::class_<SaveSnapshot>(m, "SaveSnapshot",
                           "A save walked and planned, its tensor bytes copied into memory it owns: what a background save writes.")
      .def_ro("tensor_bytes", &SaveSnapshot::tensor_bytes, "The bytes of tensor data the snapshot holds.");
  m.def("snapshot_file", &snapshot_file, "data"_a.none(), "metadata"_a.none(), "max_depth"_a, "max_header_size"_a, "context"_a.none(),
        "checksums"_a, nb::rv_policy::take_ownership,
        "Walk and plan the save of `data` as one file, every check made and every tensor's bytes copied.");
  m.def("snapshot_sharded", &snapshot_sharded, "data"_a.none(), "max_depth"_a, "context"_a.none(), nb::rv_policy::take_ownership,
        "Walk `data` for a sharded save, every tensor's bytes copied.");
  m.def("write_snapshot_file", &write_snapshot_file, "snapshot"_a, "path"_a, "fsync"_a, "progress"_a.none() = nb::none(),
        "Write a snapshot_file snapshot to `path` atomically, as save_file does (`progress` as save_file takes it).");
  m.def("write_snapshot_sharded", &write_snapshot_sharded, "snapshot"_a, "directory"_a, "prefix"_a, "save_id"_a, "max_shard_size"_a,
        "fsync"_a, "checksums"_a, "progress"_a.none() = nb::none(), "Write a snapshot_sharded snapshot's shards under temporary names, as save_sharded does.");
}

}  // namespace safestructures::bindings
