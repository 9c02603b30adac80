// The one reader of a file's schema tree (docs/format.md section 5): each node's kind from the tape, the reference-id
// index and how references resolve, field lookup, the tree made up for a plain safetensors file. The C++ API
// (file.hpp), the extension's load walk and its lazy file read through it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/format.hpp"
#include "safestructures/path_text.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/seeded_hash.hpp"

namespace safestructures {

// Why a "$" key met among a plain object's keys makes the file invalid.
inline constexpr std::string_view misplaced_tag_member = "\"$\" must be the first key of a tagged object and name its tag";

// How a reader's method raises when the file breaks a rule: through its caller, which adds where in the tree it is
// ("at $.a: "). `caller` is what `raise` is called with.
struct Fail {
  const void* caller;
  void (*raise)(const void* caller, const std::string& why, ErrorCode code);
  [[noreturn]] void operator()(const std::string& why, ErrorCode code = ErrorCode::SchemaInvalid) const {
    raise(caller, why, code);
    std::abort();  // `raise` does not return
  }
};

// The parser limits that a reader's limits imply: levels of data may take json_levels_per_level levels of JSON each
// (in 64 bits, so that a huge max_depth cannot wrap around; capped, since the parser reserves memory per level and
// the stack guard stops any walk far sooner).
SchemaLimits schema_limits(std::uint32_t max_depth, std::uint64_t max_nodes);

// Where each reference id and each named tensor is defined: what following a reference, or loading a part of a tree
// that refers outside itself, needs. Ids run from 1 to the node count; the first definition of an id counts.
struct TreeIndex {
  std::vector<std::size_t> id_nodes;  // id -> node, Tape::npos where undefined
  std::unordered_map<std::string_view, std::size_t, SeededStringHash> tensor_nodes;
  std::vector<bool> in_plugin;  // node -> whether it lies inside a plugin node's value
  // The first definition that breaks the rules (an id that is not 1 to the node count, or defined twice), and why.
  std::string problem;
  explicit TreeIndex(const Tape& tape);
};

// The string and int nodes met so far among a mapping's keys, a set's items or a namedtuple's fields, which must be
// distinct (equal ones of other kinds, 1 and 1.0, only a load building them can tell). The first few are compared
// one by one, without a set's allocations (most such containers are small); past them, sets seeded against the file's
// choice of values.
class DistinctScalars {
 public:
  // False when `node` is a string or an int equal to one added before.
  bool add(const Node& node) {
    if (node.kind != NodeKind::String && node.kind != NodeKind::Int) return true;
    if (count_ < few) {
      for (std::size_t k = 0; k < count_; ++k) {
        if (equal(*few_[k], node)) return false;
      }
      few_[count_++] = &node;
      return true;
    }
    if (count_ == few) {
      for (const Node* seen : few_) insert(*seen);
      ++count_;
    }
    return insert(node);
  }

 private:
  static constexpr std::size_t few = 16;
  static bool equal(const Node& a, const Node& b) {
    return a.kind == b.kind && (a.kind == NodeKind::String ? a.text == b.text : a.integer == b.integer);
  }
  bool insert(const Node& node) {
    return node.kind == NodeKind::String ? strings_.insert(node.text).second : integers_.insert(node.integer).second;
  }
  std::array<const Node*, few> few_{};
  std::size_t count_ = 0;  // few + 1 once the sets hold them all
  std::unordered_set<std::string_view, SeededStringHash> strings_;
  std::unordered_set<std::int64_t, SeededIntHash> integers_;
};

class TreeReader {
 public:
  // A parsed schema document, its envelope checked (SchemaInvalid, SchemaVersion).
  explicit TreeReader(Tape document);
  // The tree a plain safetensors file reads as: {"$":"dict","items":[[NAME,{"$":"tensor","name":NAME}],...]}, in
  // header order (the pair form, since a tensor may be named "$"), each tensor with "fw": `framework` when one is
  // given. Names are views of `header` and `framework`, which must outlive the reader.
  static TreeReader of_plain_file(const Header& header, std::string_view framework = {});
  // The same over tensors of several files (a checkpoint of plain shards), in the order given.
  static TreeReader of_plain_tensors(std::span<const TensorInfo* const> tensors, std::string_view framework = {});

  const Tape& tape() const { return tape_; }
  std::size_t root() const { return root_; }
  // Built on first use (File builds it as it opens, so that its nodes may be read from several threads).
  const TreeIndex& index() const;

  // What node `i` holds (Ref for a reference, BigInt for a tagged int); nullopt for a tag the format does not define.
  std::optional<Kind> kind(std::size_t i) const;
  // The reference id "#" of tagged object `i`; 0 when it has none (or one that is not an integer).
  std::int64_t id(std::size_t i) const {
    const std::size_t at = tape_.member(i, id_member);
    return at != Tape::npos && tape_[at].kind == NodeKind::Int ? tape_[at].integer : 0;
  }
  // Why a node cannot be read at all (an unknown tag, a misplaced "$"), or empty.
  std::string malformed(std::size_t i) const;

  // The node that reference `i` stands for, under section 5.3's rules: an object is referred to after its node ends,
  // a mutable container (which exists before its items) also from inside itself.
  std::size_t resolve(std::size_t i, Fail fail) const;
  // For walks that show a tree (the lazy file, the command line): references (under resolve's rules) and the values
  // a 1.0.0-style plugin nested ("nested" nodes) followed to the node they stand for; `ref_id` gets the first
  // reference's id (0 for none). Fails for one that leads nowhere, or where the load would not follow it.
  std::size_t follow(std::size_t i, std::int64_t& ref_id, Fail fail) const;

  // The text of string member `name` of tagged object `object` (fails with "tagged "x" needs a string field "name"").
  std::string_view string_field(std::size_t object, std::string_view name, Fail fail) const;
  // Calls fn(name, value node) for each member of tagged object `object` but its tag and its id, in file order.
  template <class Fn>
  void for_each_field(std::size_t object, Fn fn) const {
    std::size_t c = object + 1;
    for (std::uint32_t k = 0; k < tape_[object].count; ++k, c = tape_.next(c + 1)) {
      if (tape_[c].text != tag_member && tape_[c].text != id_member) fn(tape_[c].text, c + 1);
    }
  }
  // The first item of tagged sequence or mapping `object` (its "items" array), and their count.
  std::size_t items(std::size_t object, std::uint32_t& count, Fail fail) const;
  // The same for `object` of kind `kind`, checked by that kind's rules on its items: a namedtuple's "fields" name them,
  // as many strings, none twice (a record of the tuple would read the first item of a name as r.x and the last in
  // _asdict()); a deque holds at most its maxlen (appending more drops the first ones); a set or frozenset holds a
  // string or int item once (equal items of other kinds, 1 and 1.0, only a load can tell). Every reader asks this, so
  // that an item read alone is never one of a container the whole load refuses.
  std::size_t checked_items(std::size_t object, Kind kind, std::uint32_t& count, Fail fail) const;
  // A deque's "maxlen": a non-negative integer, or nullopt where it is absent or null (no limit).
  std::optional<std::int64_t> deque_maxlen(std::size_t object, Fail fail) const;
  // Calls fn(k, key node, value node) for each item of tagged mapping `object`, checked to be a [key, value] pair
  // whose key, a string or an int, no earlier pair holds: a saved mapping never holds two equal keys, and a reader
  // keeping either would read another mapping than a load does (equal keys of other kinds, 1 and 1.0, only a load
  // building them can tell). `check_keys` false: the caller tells equal keys itself (the load walk, by its dict).
  template <class Fn>
  void for_each_pair(std::size_t object, Fail fail, Fn fn, bool check_keys = true) const {
    std::uint32_t count = 0;
    std::size_t c = items(object, count, fail);
    DistinctScalars keys;
    for (std::uint32_t k = 0; k < count; ++k, c = tape_.next(c)) {
      if (tape_[c].kind != NodeKind::Array || tape_[c].count != 2) {
        fail("item " + std::to_string(k) + " of a mapping must be a [key, value] pair");
      }
      if (check_keys && !keys.add(tape_[c + 1])) fail(repeated_key(tape_[c + 1], k));
      fn(k, c + 1, tape_.next(c + 1));
    }
  }
  // Why pair k's key (its node) makes the mapping invalid, given that it equals an earlier pair's.
  static std::string repeated_key(const Node& key, std::uint32_t k);
  // Why item k (its node) makes the set or frozenset (`kind`) invalid, given that it equals an earlier item.
  static std::string repeated_item(const Node& item, std::uint32_t k, Kind kind);

  // The values of tagged scalars (section 5.2), checked: a big int's hexadecimal text ("0x1f", "-0x1f"), a non-finite
  // float (a NaN keeps its "bits"), a str's code points.
  std::string_view big_int_hex(std::size_t i, Fail fail) const;
  double special_float(std::size_t i, Fail fail) const;
  std::vector<std::uint32_t> code_points(std::size_t i, Fail fail) const;

  // The tensor that tensor node `i` names: its "name", or for a view of an earlier tensor, its "storage" (`view` set).
  // In a schema, never a tensor the format reserves for the file's own use (data_tensor).
  std::string_view tensor_name(std::size_t i, bool& view, Fail fail) const;
  // The bytes of bytes node `i` decoded from its "b64", or nullopt when a tensor holds them: `name` gets the tensor's
  // name, and the tensor goes to check_bytes_tensor.
  std::optional<std::vector<std::byte>> inline_bytes(std::size_t i, std::string_view& name, Fail fail) const;
  static void check_bytes_tensor(const TensorInfo& info, Fail fail);
  // The elements of its storage (`size` of them) that view node `i` reaches: its "offset", "shape" and "stride"
  // fields, checked so that every element lies within the storage (an empty view may start at its end).
  struct ViewGeometry {
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> shape;
    std::vector<std::int64_t> stride;
  };
  ViewGeometry view_geometry(std::size_t i, std::uint64_t size, Fail fail) const;
  // Why a view of `shape` and `stride` at `offset` does not lie within a storage of `size` elements (an empty view may
  // start at its end), or empty: the one rule of views, which Python's loads apply through _core too.
  static std::string view_reach_problem(std::uint64_t offset, std::span<const std::uint64_t> shape, std::span<const std::int64_t> stride,
                                        std::uint64_t size);

 private:
  // Member `name` of tagged object `object`, of JSON kind `want`.
  std::size_t required(std::size_t object, std::string_view name, NodeKind want, Fail fail) const;
  // The node defining the id of reference `i`, or npos; `id` gets the id (0 when its "#" is not an integer).
  std::size_t definition(std::size_t i, std::int64_t& id) const;
  // `name`, failing where a schema names the tensor holding its own spilled text or a recording's padding (which an
  // append shrinks): the writer never names data so, and a load reading them would change under a recorder.
  std::string_view data_tensor(std::string_view name, Fail fail) const;
  TreeReader(Tape tape, std::size_t root) : tape_(std::move(tape)), root_(root) {}
  Tape tape_;
  std::size_t root_ = 0;
  bool schema_ = false;  // read from a file's schema, not made up for a plain file (whose tensors may have any name)
  mutable std::optional<TreeIndex> index_;
};

}  // namespace safestructures
