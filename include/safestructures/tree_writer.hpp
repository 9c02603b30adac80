// The one schema writer: a front end (the C++ API's Value walk, the extension's Python save walk) walks its data and
// writes each node through it. It owns the node forms (docs/format.md section 5), the references to objects already
// written, the naming of tensors by path, the tensors collected, and the finished file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "safestructures/error.hpp"
#include "safestructures/format.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/schema_text.hpp"
#include "safestructures/seeded_hash.hpp"
#include "safestructures/structure.hpp"
#include "safestructures/writer.hpp"

namespace safestructures {

// Data that cannot be saved as it is (a type nothing stores, a cycle through an immutable object); the message names
// it and its path. An InvalidArgument error, which the Python layer raises as UnsupportedTypeError.
class UnsupportedData : public Error {
 public:
  explicit UnsupportedData(std::string message) : Error(ErrorCode::InvalidArgument, std::move(message)) {}
};

// The tensor-name rule of saves and recordings. Control characters and NUL make names that tools print badly or refuse:
// they become '_'.
void replace_control_characters(std::string& name);
// For each name that first_free_name found taken, how many of its suffixes ~1, ~2, ... it found taken.
using NameSuffixes = std::unordered_map<std::string, std::size_t, SeededStringHash, std::equal_to<>>;
// `name`, or, when `taken(name)`, the first of name~1, name~2, ... not taken. A search starts at the first suffix the
// last search for that name did not find taken (a name given out may not be claimed: a view proposes a name it does
// not store), as a taken name is never given back: keys that differ in control characters only (which all become '_')
// each tried every suffix before them, quadratic (20,000 such keys: 104 s to save).
template <class Taken>
std::string first_free_name(std::string name, const Taken& taken, NameSuffixes& suffixes) {
  if (!taken(name)) return name;
  std::size_t& taken_suffixes = suffixes[name];
  for (std::size_t k = taken_suffixes + 1;; ++k) {
    std::string candidate = name + "~" + std::to_string(k);
    if (!taken(candidate)) return candidate;
    taken_suffixes = k;
  }
}

// What a front end tells the writer about its objects, asked only when a tensor is named or an error is raised.
class NodeText {
 public:
  // str(key): the part of a tensor name ("3" for the int key 3).
  virtual std::string key_name(const void* key) const = 0;
  // The part of a path in messages, inside its brackets: "\"a\"" for a str key, repr(key) for any other.
  virtual std::string key_shown(const void* key) const = 0;
  // The type of an object, as messages name it.
  virtual std::string type_name(const void* obj) const = 0;

 protected:
  ~NodeText() = default;
};

// What a walk wrote: the schema document, escaped as the header's string holds it, and the tensors it names, in walk
// order. The tensors view the front end's data, which must stay alive until they are written.
struct WrittenTree {
  // Where a tensor's name is written in the document (a tensor's "name", a view's "storage", the "tensor" of large
  // bytes), when the writer noted them (TreeWriter::write_as_record): the escaped string, its quotes included.
  struct NameSpot {
    std::size_t at, size;
    std::string name;
  };
  std::string escaped_document;
  std::vector<WriteTensor> tensors;
  std::vector<NameSpot> name_spots;
  // The largest reference id written (for a record, the `last_id` it was given when it wrote none).
  std::uint32_t last_id = 0;

  // The schema document (a sharded save puts it in its index).
  std::string document() const;
  // The file: the document in the header's metadata beside the caller's, or spilled into a tensor (section 4). The
  // plan's metadata keeps the document's key, its text moved into the header.
  StructuredLayout plan(const Metadata& metadata, std::uint64_t max_header_size = default_max_header_size, bool checksums = true) &&;
};

// Writes one tree in pre-order as its front end walks it. Containers are written by the front end between enter and
// leave, after seen() has said whether they were met before; everything else is one call.
class TreeWriter {
 public:
  // Inline bytes up to this size are base64 in the schema; larger ones become U8 tensors.
  static constexpr std::size_t inline_bytes_limit = 64;

  TreeWriter(std::uint32_t max_depth, const NodeText& text);
  ~TreeWriter();
  TreeWriter(const TreeWriter&) = delete;
  TreeWriter& operator=(const TreeWriter&) = delete;

  // The document being written: scalars, and the containers the front end opens and closes, go straight into it.
  SchemaText out;

  // ---- A record of a recording (recording_writer.hpp), which renames its tensors once they are laid out: the writer
  // notes where each tensor name is written, numbers its references from `last_id` + 1 (ids stay unique across the
  // records) and writes floats as the records of a recording hold them (SchemaText::write_python_floats).
  void write_as_record(std::uint32_t last_id);
  bool writes_record() const { return record_; }
  // Whether a field of a tensor node holds a tensor's name (a view's "storage"): the front end then writes its
  // string value through tensor_name.
  static bool names_tensor(std::string_view member) { return member == field::name || member == field::storage || member == field::tensor; }
  // A string value that is a tensor's name, noted for a record.
  void tensor_name(std::string_view name);

  // ---- The path of the node being written: what tensors are named by and messages show.
  void push_index(std::size_t index) { path_.push_back({PathPart::Index, index, nullptr, {}}); }
  void push_key(const void* key) { path_.push_back({PathPart::Key, 0, key, {}}); }
  // A record's field; a transparent field (format.hpp) is no part of paths: nothing is pushed and false returned.
  bool push_field(std::string_view field) {
    if (is_transparent_field(field)) return false;
    path_.push_back({PathPart::Field, 0, nullptr, field});
    return true;
  }
  void pop() { path_.pop_back(); }
  // The path as messages show it (path_text.hpp).
  std::string path_text() const;
  // The tensor name of the current path, not yet taken: its parts joined with '.', "root" for the root, control
  // characters made '_', then "~N" for a name already taken or reserved.
  std::string free_name() const;

  // ---- Scalars with a tagged form.
  // An int outside int64 as its hexadecimal text ("0x1f", "-0x1f").
  void big_int(std::string hex);
  // A string without a UTF-8 form (lone surrogates) as its code points.
  void code_points(std::span<const std::uint32_t> points);
  // Bytes or a bytearray (`kind`): inline base64, or a U8 tensor viewing `data` beyond inline_bytes_limit. A
  // bytearray, or bytes that are not inline, is an object others may refer to. Returns whether a tensor was added.
  bool bytes(const void* obj, Kind kind, std::span<const std::byte> data, bool is_mutable);

  // ---- Objects that may be met again (containers, tensors, large bytes).
  // True when `obj` was written before: a reference to it is written instead. Raises UnsupportedData for a cycle
  // through an immutable object, which could not be rebuilt before its own items.
  bool seen(const void* obj);
  // {"$":tag, ...} of a tagged kind; closed by leave (or out.end_container).
  std::size_t begin_tagged(Kind kind) { return out.begin_tagged(traits(kind).tag); }
  // One level deeper, into the container opened at `at` for `obj` (nullptr for one nothing can refer to, as an empty
  // tuple); raises NestingTooDeep past the depth limit or near the end of the stack.
  void enter(const void* obj, std::size_t at, bool immutable);
  // Closes the container opened at `at` and leaves its level.
  void leave(const void* obj, std::size_t at);
  // The "items" member of the tagged object being written, its array opened; closed by out.end_container.
  std::size_t begin_items();
  // {"$":"tensor","name":NAME, ...}, `name` taken (empty: the node views an earlier tensor's storage and names none);
  // the front end adds its fields and closes it.
  std::size_t begin_tensor(const void* obj, std::string name);

  // Tensors the walk collected (bytes spilled, or added by the front end after begin_tensor).
  std::vector<WriteTensor> tensors;
  WrittenTree finish() &&;

 private:
  struct PathPart {
    enum Type : std::uint8_t { Index, Key, Field } type;
    std::size_t index;
    const void* key;
    std::string_view field;
  };
  class MemoTable;
  // Where a container others may refer to was written, and its id once something does.
  struct Written {
    std::size_t start = 0, end = 0;
    std::uint32_t id = 0;
  };

  const NodeText& text_;
  std::uint32_t max_depth_;
  std::uint32_t depth_ = 0;
  std::uint32_t next_id_ = 1;
  std::vector<PathPart> path_;
  // Enters `obj`, written at `at`, in the memo.
  void remember(const void* obj, std::size_t at, bool in_progress, bool immutable);

  std::unique_ptr<MemoTable> memo_;
  std::vector<Written> written_;
  std::unordered_set<std::string, SeededStringHash, std::equal_to<>> used_names_;
  mutable NameSuffixes name_suffixes_;  // free_name's memo
  bool record_ = false;
  std::vector<WrittenTree::NameSpot> name_spots_;
};

}  // namespace safestructures
