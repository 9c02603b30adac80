// Background saves: a save walked and planned in the caller's thread with every tensor's bytes copied into memory the
// snapshot owns (SaveSnapshot), so that the caller may change its data while another thread writes the file.
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "safestructures/structure.hpp"
#include "safestructures/writer.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace safestructures::bindings {
namespace {

// The memory snapshots copy tensors into. Fresh memory costs a page fault per page on its first touch, which made the
// copy take three times as long as a copy into memory already touched, and as long as the write it stood for: so
// the buffers of snapshots that have been written are kept for the next ones (a training loop snapshots the same
// state again and again), at most max_kept of them, one per background save that may be in flight
// (_background.MAX_IN_FLIGHT). New memory is left uninitialised: the copy fills it.
class SnapshotBuffer {
 public:
  static constexpr std::size_t max_kept = 2;

  SnapshotBuffer() = default;
  // A kept buffer of at least `size` bytes (the smallest), or a new one.
  explicit SnapshotBuffer(std::size_t size) : size_(size) {
    {
      std::lock_guard<std::mutex> lock(kept_mutex());
      std::vector<Kept>& kept = kept_buffers();
      auto best = kept.end();
      for (auto it = kept.begin(); it != kept.end(); ++it) {
        if (it->capacity >= size && (best == kept.end() || it->capacity < best->capacity)) best = it;
      }
      if (best != kept.end()) {
        memory_ = std::move(best->memory);
        capacity_ = best->capacity;
        kept.erase(best);
        return;
      }
    }
    memory_.reset(new std::byte[size]);
    capacity_ = size;
  }
  SnapshotBuffer(SnapshotBuffer&&) = default;
  SnapshotBuffer& operator=(SnapshotBuffer&&) = default;
  ~SnapshotBuffer() { give_back(); }

  std::span<std::byte> bytes() { return {memory_.get(), size_}; }

  // Keeps the memory for the next snapshot (the largest max_kept buffers are kept); the buffer is empty afterwards.
  void give_back() {
    if (!memory_) return;
    std::lock_guard<std::mutex> lock(kept_mutex());
    std::vector<Kept>& kept = kept_buffers();
    kept.push_back({std::move(memory_), capacity_});
    if (kept.size() > max_kept) {
      kept.erase(std::min_element(kept.begin(), kept.end(), [](const Kept& a, const Kept& b) { return a.capacity < b.capacity; }));
    }
    size_ = capacity_ = 0;
  }

 private:
  struct Kept {
    std::unique_ptr<std::byte[]> memory;
    std::size_t capacity;
  };
  // Never destroyed: a snapshot that outlives static destruction (freed by the interpreter at exit) still gives back.
  static std::vector<Kept>& kept_buffers() {
    static auto* kept = new std::vector<Kept>();
    return *kept;
  }
  static std::mutex& kept_mutex() {
    static auto* mutex = new std::mutex();
    return *mutex;
  }

  std::unique_ptr<std::byte[]> memory_;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
};

// What a background save writes: the walk (its tensors pointing into `buffer`), and either the single file's plan or
// the sharded save's schema document, both made when the snapshot was taken. Once written, its buffer is given back
// for the next snapshot, and it cannot be written again.
struct SaveSnapshot {
  SaveResult walked;
  SnapshotBuffer buffer;
  std::optional<StructuredLayout> file;
  std::string document;
  std::uint64_t tensor_bytes = 0;
  bool written = false;

  void check_unwritten() const {
    if (written) throw nb::value_error("this snapshot was written already (its memory went to the next snapshots)");
  }
};

// Copies every tensor's bytes (strided ones gathered into C order, as the file will hold them) into one buffer the
// snapshot owns, and points the tensors there: what the caller changes afterwards no longer reaches the save.
void copy_tensors(SaveSnapshot& snapshot) {
  std::vector<WriteTensor>& tensors = snapshot.walked.tree.tensors;
  const std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();
  const Layout layout = as_argument_error([&] { return plan_layout(tensors, nullptr, unlimited); });
  snapshot.buffer = SnapshotBuffer(layout.file_size());
  {
    nb::gil_scoped_release release;  // a plain copy: other threads (a background save writing) may run meanwhile
    write_into(snapshot.buffer.bytes(), layout, tensors);
  }
  const std::byte* data = snapshot.buffer.bytes().data() + layout.header.size();
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

// Runs `write` (a write of the snapshot), after which, written or failed (a save is not retried from its snapshot),
// the snapshot is spent: its memory goes to the next snapshots.
template <class Write>
auto spending(SaveSnapshot& snapshot, Write&& write) {
  struct Spend {
    SaveSnapshot& snapshot;
    ~Spend() {
      snapshot.written = true;
      snapshot.buffer.give_back();
    }
  } spend{snapshot};
  return write();
}

void write_snapshot_file(SaveSnapshot& snapshot, const std::filesystem::path& path, bool fsync, nb::handle progress) {
  if (!snapshot.file) throw nb::value_error("this snapshot was taken for a sharded save");
  snapshot.check_unwritten();
  const auto report = progress_reporter(progress, snapshot.file->layout.data_size);
  nb::gil_scoped_release release;
  spending(snapshot, [&] { as_argument_error([&] { write_structured(path, *snapshot.file, WriteOptions{fsync, false, report}); }); });
}

nb::tuple write_snapshot_sharded(SaveSnapshot& snapshot, const std::filesystem::path& directory, const std::string& prefix,
                                 const std::string& save_id, std::uint64_t max_shard_size, bool fsync, bool checksums,
                                 nb::handle progress) {
  if (snapshot.file) throw nb::value_error("this snapshot was taken for a single file");
  snapshot.check_unwritten();
  return spending(snapshot, [&] {
    return write_sharded(snapshot.walked.tree.tensors, snapshot.document, directory, prefix, save_id, max_shard_size, fsync, checksums,
                         progress);
  });
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
