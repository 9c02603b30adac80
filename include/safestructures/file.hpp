// Reading structured files from C++: open a file, walk its tree of nodes, read scalars and zero-copy tensor views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/checksum.hpp"
#include "safestructures/container.hpp"
#include "safestructures/dtype.hpp"
#include "safestructures/error.hpp"
#include "safestructures/format.hpp"

namespace safestructures {

// Limits applied when a file is opened.
struct OpenOptions {
  std::uint64_t max_header_size = default_max_header_size;
  // Levels of nesting in the data: the schema's JSON may nest 3 levels per level (a dict in pair form takes three),
  // as for the Python loader.
  std::uint32_t max_depth = default_max_depth;
  std::uint64_t max_nodes = default_max_nodes;
};

struct Fail;
namespace tree_detail {
struct OpenFile;
struct PathPart;
}  // namespace tree_detail

// A tensor of the file: its safetensors entry and a view of its bytes in the mapping. Copies keep the file alive.
class Tensor {
 public:
  // The safetensors tensor holding the data (for a view node, the tensor whose storage it views).
  const std::string& name() const { return info_->name; }
  Dtype dtype() const { return info_->dtype; }
  const std::vector<std::uint64_t>& shape() const { return info_->shape; }
  std::uint64_t elements() const { return info_->elements(); }
  // Little-endian, C order, straight from the file's mapping (or buffer): no copy was made.
  std::span<const std::byte> bytes() const { return bytes_; }
  // The framework the tensor was saved from ("numpy", "torch", ...); empty in a plain safetensors file.
  std::string_view framework() const { return framework_; }
  // The exact numpy dtype when it is not the stored one (">i4", "<c16", "int4"...): the bytes are then those of that
  // dtype, and logical_shape() gives its shape, checked to fill bytes() exactly (byte_dtype_item_size() gives the
  // size of its elements). Empty otherwise.
  std::string_view numpy_dtype() const { return numpy_dtype_; }
  // The node's own "shape" where it has one (an array stored as U8 bytes of its numpy dtype, a view), else shape().
  const std::vector<std::uint64_t>& logical_shape() const { return logical_shape_ ? *logical_shape_ : info_->shape; }
  // True for a node that views part of another tensor's storage (torch views, section 5.4): view_offset(),
  // logical_shape() and view_stride() (in elements of dtype()) say which elements of bytes() it holds, checked to lie
  // within bytes().
  bool is_view() const { return view_; }
  std::uint64_t view_offset() const { return view_offset_; }
  const std::vector<std::int64_t>& view_stride() const { return view_stride_; }

  // The elements as T, whose size must match the dtype's width (float for F32, std::uint16_t for BF16...). Raises
  // WrongKind for another width, InvalidArgument when the bytes are not aligned for T (files this project writes
  // align every tensor to its element size).
  template <class T>
  std::span<const T> values() const {
    check_values(sizeof(T), alignof(T));
    return {reinterpret_cast<const T*>(bytes_.data()), bytes_.size() / sizeof(T)};
  }

 private:
  friend class TreeNode;
  void check_values(std::size_t size, std::size_t alignment) const;
  std::shared_ptr<const tree_detail::OpenFile> document_;
  const TensorInfo* info_ = nullptr;
  std::span<const std::byte> bytes_;
  std::string_view framework_;
  std::string_view numpy_dtype_;
  std::optional<std::vector<std::uint64_t>> logical_shape_;
  bool view_ = false;
  std::uint64_t view_offset_ = 0;
  std::vector<std::int64_t> view_stride_;
  std::string path_;
};

struct Entry;

// One value in a file's tree. A node is a cheap handle (copies share the file, which stays open while any node or
// tensor of it lives). References (`ref` nodes, section 5.3) are followed: a shared object reads the same from every
// place it is reached. Accessors check the node's kind and raise an Error whose message names the node's path in the
// data, like `at $["model"]["layers"][0]: ...`: WrongKind for a node read as what it is not, KeyNotFound,
// IndexOutOfRange, and SchemaInvalid, TensorNotFound or TensorMismatch where the file itself is wrong. A file is
// checked as it is read: parts never visited are never checked.
class TreeNode {
 public:
  Kind kind() const { return kind_; }
  // The path from the root, as error messages write it: `$`, `$["a"][3]`, `$["color"].name` (a field of a tagged node).
  std::string path() const;

  bool is_null() const { return kind_ == Kind::Null; }
  // Containers whose items are read with size() and operator[](index): list, tuple, set, frozenset, deque, namedtuple.
  bool is_sequence() const;
  // Containers of key/value entries: dict, OrderedDict, Counter, defaultdict (a plain safetensors file's root too).
  bool is_mapping() const;

  bool as_bool() const;
  // Int only (a BigInt raises WrongKind: it does not fit).
  std::int64_t as_int() const;
  // Int or BigInt as hexadecimal text, "0x1f" or "-0x1f", as the format stores big ints.
  std::string big_int_hex() const;
  // Float only; a tagged NaN keeps its sign and payload bits.
  double as_double() const;
  // A string as UTF-8. A Python string with lone surrogates (stored as code points) comes back with each surrogate in
  // the 3-byte form WTF-8 gives it.
  std::string as_string() const;
  // Bytes or ByteArray: decoded from base64, or copied from their U8 tensor.
  std::vector<std::byte> as_bytes() const;
  Tensor as_tensor() const;

  // Items of a sequence, or entries of a mapping.
  std::size_t size() const;
  // The item at `index` of a sequence (linear in the index: iterate with items() to visit all).
  TreeNode operator[](std::size_t index) const;
  // For a mapping: the value of string key `key`. For a dataclass: field `key`. Raises KeyNotFound when absent.
  TreeNode operator[](std::string_view key) const;
  TreeNode at(std::size_t index) const { return (*this)[index]; }
  TreeNode at(std::string_view key) const { return (*this)[key]; }
  std::optional<TreeNode> find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key).has_value(); }
  // All items of a sequence, in order.
  std::vector<TreeNode> items() const;
  // All entries of a mapping in order; keys are nodes, since Python dict keys need not be strings. For a dataclass,
  // its fields (string keys).
  std::vector<Entry> entries() const;

  // The format's tag of a tagged node ("tuple", "dataclass"...); empty for plain JSON (null, bool, int, float,
  // string, list, dict with string keys).
  std::string_view tag() const;
  // The class name of a dataclass, namedtuple, enum, object, ext or plugin node, e.g. "mypkg.Config"; empty for
  // every other kind.
  std::string type_name() const;
  // A field of a tagged node, as section 5.2 names them ("iso" of a date, "name" and "value" of an enum, "re" of a
  // complex...); nullopt when the node has no such field.
  std::optional<TreeNode> field(std::string_view name) const;
  // Every field of a tagged node but its tag and id, in file order, keys as string nodes.
  std::vector<Entry> fields() const;

  // The reference id of a shared object (reached from more than one place in the data), 0 otherwise.
  std::int64_t shared_id() const { return shared_id_; }
  // True when this node was reached through a reference: a walk that prints a tree should not descend into it again
  // (a cycle would never end).
  bool via_ref() const { return via_ref_; }

 private:
  friend class File;
  TreeNode(std::shared_ptr<const tree_detail::OpenFile> document, std::uint32_t index,
           std::shared_ptr<const tree_detail::PathPart> path);
  [[noreturn]] void fail(ErrorCode code, const std::string& what) const;
  // The tree reader's complaints about this node, raised with its path.
  Fail failing() const;
  // The file's tensor `name` (the schema's reference to it), which must exist.
  const TensorInfo& find_tensor(std::string_view name) const;
  [[noreturn]] void wrong_kind(std::string_view wanted) const;
  // Raises unless a tensor's dtype other than its stored one fills its bytes as its shape says.
  void check_named_dtype(const Tensor& t) const;
  TreeNode child(std::uint32_t index, std::shared_ptr<const tree_detail::PathPart> part) const;
  // Index of the first item (or member) of a sequence's or mapping's items and their count.
  std::uint32_t first_item(std::uint32_t& count) const;
  // The "fields" of a dataclass, checked to be a plain object.
  TreeNode dataclass_fields() const;
  // Calls fn(k, key node, value node) for each entry of a mapping (a plain object's members or a tagged one's
  // pairs), checking each entry's form.
  template <class Fn>
  void for_each_entry(Fn fn) const;

  std::shared_ptr<const tree_detail::OpenFile> document_;
  std::shared_ptr<const tree_detail::PathPart> path_;
  std::uint32_t index_ = 0;
  Kind kind_ = Kind::Null;
  bool via_ref_ = false;
  std::int64_t shared_id_ = 0;
};

struct Entry {
  TreeNode key;
  TreeNode value;
};

// An open file: its metadata and the root of its tree. Files written by safestructures (format version 2) read as
// the structure they hold; a plain safetensors file reads as a dict of its tensors, in header order. (Files of
// safestructures 1.0.0 raise SchemaVersion: `safestructures upgrade` rewrites them.)
class File {
 public:
  // Maps the file privately (copy-on-write) and validates its header and schema document.
  static File open(const std::filesystem::path& path, const OpenOptions& options = {});
  // Reads a whole file held in memory; the bytes are moved into the File.
  static File from_bytes(std::vector<std::byte> bytes, const OpenOptions& options = {});
  // Reads bytes that `owner` keeps alive, without copying them.
  static File from_buffer(std::shared_ptr<const void> owner, std::span<const std::byte> bytes, const OpenOptions& options = {});

  // The caller's metadata (safestructures' own keys removed), in file order (sorted by key in files this project
  // writes).
  const Metadata& metadata() const;
  // False for a plain safetensors file (no schema).
  bool structured() const;
  const Header& header() const;
  TreeNode root() const;
  // Checks the checksums saved with the data (docs/format.md section 8): the header's and every tensor's. A file
  // without them reports has_checksums == false; a malformed entry raises ChecksumsInvalid.
  VerifyReport verify() const;

 private:
  explicit File(std::shared_ptr<const tree_detail::OpenFile> document) : document_(std::move(document)) {}
  std::shared_ptr<const tree_detail::OpenFile> document_;
};

}  // namespace safestructures
