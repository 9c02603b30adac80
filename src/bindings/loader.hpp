// The load walk's Loader, shared by its two files: from_tree.cpp (containers, references, entry points) and
// from_tree_tagged.cpp (tagged nodes: collections, tagged scalars, tensors, bytes, what Python constructs).
#pragma once

#include <Python.h>

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bindings.hpp"
#include "hooks.hpp"
#include "load_bounds.hpp"
#include "safestructures/schema.hpp"

namespace safestructures::bindings::load_walk {

enum class Tag { List, Dict, Tuple, Set, FrozenSet, OrderedDict, DefaultDict, Counter, Deque, Ref, Int, Float, Str, Bytes, ByteArray, Tensor, Other };

inline Tag tag_of(std::string_view tag) {
  static const std::unordered_map<std::string_view, Tag> tags{
      {"list", Tag::List},       {"dict", Tag::Dict},         {"tuple", Tag::Tuple},      {"set", Tag::Set},
      {"frozenset", Tag::FrozenSet}, {"OrderedDict", Tag::OrderedDict}, {"defaultdict", Tag::DefaultDict},
      {"Counter", Tag::Counter}, {"deque", Tag::Deque},       {"ref", Tag::Ref},          {"int", Tag::Int},
      {"float", Tag::Float},     {"str", Tag::Str},           {"bytes", Tag::Bytes},      {"bytearray", Tag::ByteArray},
      {"tensor", Tag::Tensor},
  };
  const auto it = tags.find(tag);
  return it == tags.end() ? Tag::Other : it->second;
}

struct LoadPath {
  enum class Type { Key, Index, Field } type;
  std::string_view key;
  std::size_t index = 0;
};

class Loader {
 public:
  Loader(const Tape& tape, const TensorSource& source, const LoadOptions& options, const TreeIndex* index)
      : tape_(tape), source_(source), index_(index), context_(options.context), hooks_(hooks()), ids_(tape.size() + 1, index != nullptr),
        hash_budget_(hash_budget(tape.size())), max_depth_(options.max_depth) {
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
  nb::object build_tagged(std::size_t i, std::string_view tag);
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
  bool is_ref(std::size_t i) const { return tape_[i].kind == NodeKind::Object && tape_.tag(i) == "ref"; }
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
inline bool own_field(std::string_view tag, std::string_view field) {
  if (tag == "dataclass") return field == "fields" || field == "value";
  if (tag == "namedtuple") return field == "fields" || field == "items";
  if (tag == "object") return field == "value" || field == "attrs";
  return tag == "torch.Size" && field == "dims";
}

// Leaf tags stand for one value, not a level of nesting; the saver does not count them either.
inline bool is_leaf_tag(std::string_view tag) {
  switch (tag_of(tag)) {
    case Tag::Ref:
    case Tag::Int:
    case Tag::Float:
    case Tag::Str:
    case Tag::Bytes:
    case Tag::ByteArray:
    case Tag::Tensor: return true;
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
