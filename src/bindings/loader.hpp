// The load walk's Loader, shared by its two files: load_walk.cpp (containers, references, entry points) and
// load_walk_tagged.cpp (tagged nodes: collections, tagged scalars, tensors, bytes, what Python constructs). It reads
// the tree through the core's TreeReader (kinds, fields, the reference index of partial loads).
#pragma once

#include <Python.h>

#include <functional>
#include <string>
#include <string_view>
#include <optional>
#include <unordered_map>
#include <vector>

#include "bindings.hpp"
#include "hooks.hpp"
#include "load_bounds.hpp"
#include "safestructures/tree_reader.hpp"

namespace safestructures::bindings::load_walk {

// The format's kinds (hooks.hpp's Kind is the save walk's).
using Kind = safestructures::Kind;

struct LoadPath {
  enum class Type { Key, Index, Field } type;
  std::string_view key;
  std::size_t index = 0;
};

class Loader {
 public:
  // With `partial`, the nodes built may be any parts of the tree (see build_target), found through its index.
  Loader(const TreeReader& tree, const TensorSource& source, const LoadOptions& options, bool partial)
      : tree_(tree), tape_(tree.tape()), source_(source), index_(partial ? &tree.index() : nullptr), context_(options.context), hooks_(hooks()),
        ids_(tape_.size() + 1, partial), hash_budget_(hash_budget(tape_.size())), max_depth_(options.max_depth) {
    expose_where();
  }
  ~Loader() { restore_where(); }
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  nb::object build(std::size_t i);
  // A partial load's target: the node the caller asked for (see build_target). One loader may build several targets
  // in turn (a walk over many nodes): what they share is built once.
  // A partial load's target that is a key of a mapping (a walk listing keys): hashed as a whole load hashes keys,
  // within the same budget and cap on equal hashes, so that the caller may put it in a dict.
  nb::object build_key(std::size_t i, HashRuns& runs) {
    nb::object key = build_target(i);
    check_hashable(key, i, runs, "key", "cannot use this key: ");
    return key;
  }
  nb::object build_target(std::size_t i) {
    target_ = i;
    inner_target_ = nb::object();
    nb::object out = build(i);
    return inner_target_.is_valid() ? inner_target_ : out;
  }

 private:
  nb::object build_tracked(std::size_t i);
  nb::object build_any(std::size_t i);
  // One per shape of tagged node: build_tagged picks by kind.
  nb::object build_tagged(std::size_t i, Kind kind);
  nb::object follow_ref(std::size_t i);
  nb::object build_appended(std::size_t i, Kind kind);
  nb::object build_tuple(std::size_t i);
  nb::object build_set(std::size_t i, Kind kind);
  nb::object build_mapping(std::size_t i, Kind kind);
  nb::object big_int(std::size_t i);
  nb::object tagged_float(std::size_t i);
  nb::object tagged_str(std::size_t i);
  // Everything else, through the fixed table of Python constructors.
  nb::object construct(std::size_t i, Kind kind);
  nb::object build_plain_object(std::size_t i);
  nb::object key_object(std::string_view key);
  nb::object build_child(std::size_t i, LoadPath part) {
    path_.push_back(part);
    nb::object out = build(i);
    path_.pop_back();
    return out;
  }
  // Children of the "items" array of tagged node `i`, in order.
  std::size_t items(std::size_t i, std::uint32_t& count);
  void fill_pairs(std::size_t object, const nb::object& target, bool exact_dict);
  // Hashes a key or set item (built from `node`) within the load's hashing budget and the cap on keys of one hash
  // value; it is charged twice, for this hash and the one its insertion computes. `unhashable` starts the message
  // for an item that cannot be hashed.
  void check_hashable(const nb::object& item, std::size_t node, HashRuns& runs, const char* what, const std::string& unhashable);
  // The nodes a walk of what node `i` built visits with every reference followed (what hashing it costs): measured
  // from the tape when needed, so that building costs nothing for it; each part measured once.
  std::uint64_t expanded_size(std::size_t i);
  // The object already built for tensor `name` (a partial load may build a node twice), or an invalid object; a whole
  // load refuses a second node naming the same tensor, which could only make it copy the same bytes again.
  nb::object named_before(std::string_view name);
  bool is_ref(std::size_t i) const { return tape_[i].kind == NodeKind::Object && tree_.kind(i) == Kind::Ref; }
  nb::object tensor(std::size_t i);
  TensorSource::Found find_tensor(std::string_view name);
  nb::object defined_elsewhere(std::int64_t id);
  // Whether node `i` lies inside the value of a plugin node (partial loads, which may start inside one).
  bool inside_plugin(std::size_t i);
  nb::object bytes_value(std::size_t i, bool mutable_copy);
  std::string_view string_field(std::size_t object, std::string_view key);
  void define(std::size_t object, const nb::object& value);
  [[noreturn]] void invalid(const std::string& what, ErrorCode code = ErrorCode::SchemaInvalid) const {
    throw Error(code, "at " + path_text() + ": " + what);
  }
  std::string path_text() const;
  // While the loader lives, the load's context holds "where": a function giving the path of the node being built
  // (constructors name it in warnings); the value it replaced comes back when the loader ends.
  void expose_where();
  void restore_where() noexcept;
  nb::object call_python(const char* what, const std::function<nb::object()>& call);

  const TreeReader& tree_;
  const Tape& tape_;
  const TensorSource& source_;
  // Set when loading a part of the tree: where to find what the part refers to outside itself.
  const TreeIndex* index_;
  // Tensors (and bytes held in tensors) built so far, by name: a view of a storage a partial load does not hold builds
  // it first, and no tensor is named by two nodes.
  std::unordered_map<std::string_view, nb::object> named_;
  // Partial loads: the node asked for, how many builds of it are under way, and the object its innermost build made.
  // A reference from inside the node to an object that contains it (a cycle through an ancestor) builds that
  // ancestor, and the node again inside it: that inner build is the object the rest of the data holds, so it is the
  // one returned (the outer build, made before the ancestor existed, is dropped).
  std::size_t target_ = Tape::npos;
  std::uint32_t target_builds_ = 0;
  nb::object inner_target_;
  // Ids whose definition elsewhere is being built: a reference to one of them from inside its own definition is a
  // cycle through an object that only exists once built (a file can hold one only by being crafted).
  std::vector<std::int64_t> building_elsewhere_;
  nb::handle context_;
  nb::object where_before_;
  bool where_set_ = false;
  const Hooks& hooks_;
  IdTable ids_;
  // The ids being defined by the builds under way, innermost last, with their nodes; and the expanded size of each
  // node measured (see expanded_size).
  struct Defining {
    std::int64_t id;
    std::size_t node;
  };
  std::vector<Defining> defining_;
  std::unordered_map<std::size_t, std::uint64_t> expanded_sizes_;
  // Nodes walked so far by hashing keys and set items, and how many the load may walk.
  std::uint64_t hash_work_ = 0;
  std::uint64_t hash_budget_;
  std::vector<LoadPath> path_;
  // Dict keys decoded so far; the views point into the parsed schema, which outlives the loader.
  std::unordered_map<std::string_view, nb::object> keys_;
  // Levels of containers being built: the same count the saver limits, whatever JSON depth each level takes.
  std::uint32_t depth_ = 0;
  std::uint32_t max_depth_;
  // Plugin nodes being built around the current node.
  std::uint32_t plugin_depth_ = 0;
};

// Fields the saver writes afresh for each node: a record's fields, a named tuple's names and items, a built-in
// subclass's content and attributes, a torch.Size's dims. A reference there would hand one container to every node
// naming it, each of which copies it (or rehashes its keys) again.
inline bool own_field(Kind kind, std::string_view field) {
  switch (kind) {
    case Kind::Dataclass: return field == "fields" || field == "value";
    case Kind::NamedTuple: return field == "fields" || field == "items";
    case Kind::Object: return field == "value" || field == "attrs";
    case Kind::TorchSize: return field == "dims";
    default: return false;
  }
}

// Leaf kinds stand for one value, not a level of nesting; the saver does not count them either.
inline bool is_leaf(Kind kind) {
  switch (kind) {
    case Kind::Ref:
    case Kind::BigInt:
    case Kind::Float:
    case Kind::String:
    case Kind::Bytes:
    case Kind::ByteArray:
    case Kind::Tensor: return true;
    default: return false;
  }
}

// Building creates container objects by the thousand; letting the cyclic GC scan them over and over as they are made
// costs more than the build itself (as unpicklers also find). Its state is restored, whatever happens.
struct GcPause {
  int was_enabled = PyGC_Disable();
  ~GcPause() {
    if (was_enabled) PyGC_Enable();
  }
};

}  // namespace safestructures::bindings::load_walk
