// A recording's header (docs/format.md section 9), kept as records are appended and rendered at each commit: the
// caller's metadata, each stream's records (their nodes as the header's schema string holds them, tensors renamed
// STREAM.I.PATH, reference ids after the records' before), the tensor entries in data order, the room the header is
// written in and the padding before the records' data. The file's bytes are written through recording.hpp; what to
// record and when to commit is the caller's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/mapped_memory.hpp"
#include "safestructures/seeded_hash.hpp"
#include "safestructures/tree_writer.hpp"
#include "safestructures/writer.hpp"

namespace safestructures {

class RecordingWriter {
 public:
  // A stream's name; nullopt for plain records (the root a list of them).
  using Stream = std::optional<std::string>;

  // A new recording: the caller's `metadata` (safestructures' keys refused), a room of at least `header_room` bytes
  // (less what makes the data start on a page, at least a page), a padding of `header_reserve` bytes (whole pages).
  RecordingWriter(Metadata metadata, std::uint64_t header_room, std::uint64_t header_reserve);
  // The recording whose header `header` is (read from `name`, its room the header's size): its records, tensors,
  // padding and metadata, which `metadata` replaces when given. Raises InvalidFile for a file that is not a recording,
  // a structure that is not a list of records or a dict of lists, a padding that does not start the data, or a
  // tensor inside it.
  RecordingWriter(const Header& header, const std::optional<Metadata>& metadata, std::uint64_t header_reserve, const std::string& name);
  // Moved, never copied (its views and containers point into its mapped memory, which a move keeps in place).
  RecordingWriter(RecordingWriter&&) noexcept = default;
  RecordingWriter& operator=(RecordingWriter&&) = delete;
  RecordingWriter(const RecordingWriter&) = delete;
  RecordingWriter& operator=(const RecordingWriter&) = delete;

  // ---- Records.
  // The records of `stream` so far, and of every stream.
  std::size_t count(const Stream& stream) const;
  std::size_t count() const { return records_; }
  // Raises InvalidArgument unless a record of `stream` may be appended: a recording holds plain records or streams.
  void check_stream(const Stream& stream) const;
  // The largest reference id the records hold: the next record's walk numbers its ids after it (write_as_record).
  std::uint32_t last_id() const { return last_id_; }
  // Where the next record's tensor bytes go in the file: after the room, the padding and the records' data.
  std::uint64_t data_end() const { return 8 + room_ + padding_ + data_size_; }
  std::uint64_t data_size() const { return data_size_; }
  // A record of `stream`, walked as a record (write_as_record after last_id()), whose tensors `layout` laid out and
  // whose bytes the caller wrote at data_end(): its tensors are named STREAM.I.PATH (I its index, PATH the name its walk
  // gave, "~N" added to a name taken), its node joins the stream's. Raises InvalidArgument, nothing taken, when its
  // structure alone would be over the header limit.
  void add(const Stream& stream, const WrittenTree& tree, const Layout& layout);
  // Raises InvalidArgument when the record's structure alone (its own header, as a save would write it) is over the
  // header limit: a save would spill it, a record cannot.
  static void check_record(const WrittenTree& tree, const Layout& layout);

  // ---- Commits.
  // The header's JSON for the records so far, with `padding` bytes of padding before their data (valid until the
  // next call).
  std::string_view header(std::uint64_t padding);
  // Commits the header over the recording open as `fd` (ending at data_end()): in place within its room, or in a room
  // grown into the padding, or in a larger room with a fresh padding where the file system inserts blocks before the
  // data (recording.hpp). Returns false where the data must move: the caller writes the file anew as rewrite() says,
  // then calls rewritten(). Raises InvalidArgument for a header over the limit (nothing written).
  bool commit(int fd, bool fsync);
  // A file to write anew: prefix (the room), `header` padded to `room`, `padding` bytes of zeros, then the records'
  // data, `data_size` bytes, copied from `data_at` of the file as it is.
  struct Rewrite {
    std::string header;
    std::uint64_t room = 0, padding = 0, data_at = 0, data_size = 0;
  };
  // The rewrite pending: the new recording's whole file (a fresh writer's), a commit that could not grow in place, or
  // a padding dropped.
  const Rewrite& rewrite() const { return rewrite_; }
  // The file was written as rewrite() said: its room and padding are the recording's.
  void rewritten();
  // At close: when the records' data is no larger than the padding, sets the rewrite of the file without its padding
  // and returns true (a short recording is not mostly padding once closed); a larger recording keeps its padding.
  bool drop_padding();

 private:
  struct StreamNodes {
    std::optional<std::string_view> name;  // kept
    std::pmr::vector<std::string_view> nodes;  // the records' nodes, escaped
  };
  struct Entry {
    std::string_view head;  // "NAME":{"dtype":..,"shape":[..],"data_offsets":[
    std::uint64_t begin, end;  // from the start of the records' data (after the padding)
  };
  StreamNodes& stream_nodes(const Stream& stream);
  // The name STREAM.I.PATH, "~N" added where it is taken, taken.
  std::string take_name(std::string base);
  void add_entry(const std::string& name, Dtype dtype, const std::vector<std::uint64_t>& shape, std::uint64_t begin, std::uint64_t end);
  void plan_rewrite(std::string_view header, std::uint64_t room, std::uint64_t padding);

  // What the recording keeps and regrows over its run (each record's node, each entry's head, each name, the lists and
  // the table of them, the header's text), off the allocator's heap (mapped_memory.hpp). First: the containers below
  // let its memory go before it is unmapped. A pointer, so that a move keeps it where their allocators point.
  std::unique_ptr<MappedMemory> memory_ = std::make_unique<MappedMemory>();
  Metadata metadata_;
  std::pmr::vector<StreamNodes> streams_{memory_.get()};
  // Each stream's index in streams_, by its name (kept).
  std::pmr::unordered_map<std::string_view, std::size_t, SeededStringHash, std::equal_to<>> stream_index_{memory_.get()};
  std::size_t records_ = 0;
  std::uint32_t last_id_ = 0;
  std::pmr::vector<Entry> entries_{memory_.get()};
  // The tensor names taken: open addressing over views of the kept text (a hash set allocates a node a name).
  std::pmr::vector<std::string_view> names_ = std::pmr::vector<std::string_view>(64, memory_.get());
  std::size_t name_count_ = 0;
  NameSuffixes name_suffixes_;
  bool name_taken(std::string_view name) const;
  // Takes `name`, a view of the kept text.
  void take(std::string_view name);
  std::string scratch_;
  std::uint64_t data_size_ = 0;
  std::uint64_t room_ = 0, padding_ = 0, reserve_ = 0;
  // The entries rendered (",ENTRY" each) for the padding `rendered_for_`: a commit renders only the new ones.
  std::pmr::string rendered_{memory_.get()};
  std::size_t rendered_count_ = 0;
  std::uint64_t rendered_for_ = 0;
  std::pmr::string header_{memory_.get()};
  Rewrite rewrite_;
};

}  // namespace safestructures
