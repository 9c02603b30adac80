// The load walk's Loader, shared by its two files: load_walk.cpp (containers, references, entry points) and
// load_walk_tagged.cpp (tagged nodes: collections, tagged scalars, tensors, bytes, what Python constructs). It reads
// the tree through the core's TreeReader (kinds, fields, the reference index of partial loads); and what keeps a
// load's work bounded by its file: objects by reference id with the size of their expansion, the budget for hashing
// shared structure, and the cap on keys of one hash value in a mapping or set.
#pragma once

#include <Python.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <optional>
#include <unordered_map>
#include <vector>

#include "bindings.hpp"
#include "hooks.hpp"
#include "safestructures/seeded_hash.hpp"
#include "safestructures/stack.hpp"
#include "safestructures/tree_reader.hpp"
#include "thread_spare.hpp"

namespace safestructures::bindings::load_walk {

inline std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return a > std::numeric_limits<std::uint64_t>::max() - b ? std::numeric_limits<std::uint64_t>::max() : a + b;
}
inline std::uint64_t saturating_multiply(std::uint64_t a, std::uint64_t b) {
  return b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b ? std::numeric_limits<std::uint64_t>::max() : a * b;
}

// What comparing or hashing a node costs: `size`, the nodes a walk of it visits when every reference under it is
// followed; and `int_weight`, what converting the big ints it holds to decimal costs, in the same units (a node's
// walk). Python compares a Decimal with an int, or a Fraction, by converting the int to a Decimal: work that grows with
// the square of the int's size (21 s for an int of 4 million bits), so that keys of one hash value holding a Decimal
// and a big int cost that much for each comparison Python makes between them.
struct Expansion {
  std::uint64_t size = 1;
  std::uint64_t int_weight = 0;
};

// The objects defined so far, by reference id, each with its expansion: the nodes a walk of the object visits
// when every reference under it is followed (what hashing or comparing it costs). A whole load indexes a vector by
// id, grown to the largest id defined (ids count the objects referenced twice, usually few, so the vector is not
// sized to the file); a partial load, which touches few ids of what may be a large file, a hash map (so that
// building many small parts, as describe() does, stays linear in the file).
class IdTable {
 public:
  struct Entry {
    nb::object object;
    Expansion expansion;
    // For a list or dict that may hold a plugin's nested children: the plugin node; Tape::npos for any other object.
    std::size_t plugin = static_cast<std::size_t>(-1);
  };

  IdTable(std::size_t ids, bool sparse) : limit_(ids), sparse_(sparse) {}

  // Whether `id` is one a file of this many nodes may define (1 to the node count).
  bool in_range(std::int64_t id) const { return id >= 1 && static_cast<std::uint64_t>(id) < limit_; }

  // The entry of a defined id, or nullptr.
  Entry* find(std::int64_t id) {
    if (!in_range(id)) return nullptr;
    if (!sparse_) {
      const auto k = static_cast<std::size_t>(id);
      return k < dense_.size() && dense_[k].object.is_valid() ? &dense_[k] : nullptr;
    }
    const auto it = sparse_map_.find(id);
    return it == sparse_map_.end() ? nullptr : &it->second;
  }

  // The entry of an id in range, created empty when new. Growing the table moves its entries: hold ids, not
  // entries, across anything that may define another id.
  Entry& slot(std::int64_t id) {
    if (sparse_) return sparse_map_[id];
    const auto k = static_cast<std::size_t>(id);
    if (k >= dense_.size()) dense_.resize(std::max(k + 1, std::min(limit_, 2 * dense_.size())));
    return dense_[k];
  }

 private:
  std::size_t limit_;
  bool sparse_;
  std::vector<Entry> dense_;
  std::unordered_map<std::int64_t, Entry, SeededIntHash> sparse_map_;
};

// Counts the hash values of one mapping's keys or one set's items. Python keeps keys of one hash value on one probe
// sequence, so each insertion compares with every key of that value already there: a crafted run of equal hashes
// (big ints k * (2**61 - 1) all hash to 0) makes building the mapping quadratic. Nothing is counted until the
// container outgrows the longest run allowed, so small containers cost nothing.
class HashRuns {
 public:
  static constexpr std::uint32_t max_run = 32;

  // False when `hash` is now the hash of more than max_run keys.
  bool add(Py_hash_t hash) {
    if (counts_.empty()) {
      if (seen_ < max_run) {
        first_[seen_++] = hash;
        return true;
      }
      for (const Py_hash_t h : first_) ++counts_[h];
    }
    return ++counts_[hash] <= max_run;
  }

  // What the comparisons of a key just added (of `hash`, holding big ints of `int_weight`) cost: Python compares it
  // with each earlier key of its hash value, and each comparison may convert the big ints of either to decimal. Zero,
  // with nothing counted, while no key of the container holds a big int.
  std::uint64_t compare_cost(Py_hash_t hash, std::uint64_t int_weight) {
    if (int_weight == 0 && weights_.empty()) return 0;
    std::uint64_t earlier = 0;
    if (counts_.empty()) {
      earlier = static_cast<std::uint64_t>(std::count(first_.begin(), first_.begin() + seen_, hash)) - 1;
    } else {
      earlier = counts_[hash] - 1;
    }
    std::uint64_t& weight_before = weights_[hash];
    const std::uint64_t cost = saturating_add(saturating_multiply(earlier, int_weight), weight_before);
    weight_before = saturating_add(weight_before, int_weight);
    return cost;
  }

 private:
  std::array<Py_hash_t, max_run> first_{};
  std::uint32_t seen_ = 0;
  std::unordered_map<Py_hash_t, std::uint32_t, SeededIntHash> counts_;
  // The big ints' weight of the keys of each hash value, once a key holding one is added.
  std::unordered_map<Py_hash_t, std::uint64_t, SeededIntHash> weights_;
};

// Runs `f` when the scope ends, however it ends. (The deduction guide is for clang 14, the fuzz build's compiler, which
// does not deduce an aggregate's template arguments.)
template <class F>
struct OnExit {
  F f;
  ~OnExit() { f(); }
};
template <class F>
OnExit(F) -> OnExit<F>;

struct LoadPath {
  enum class Type { Key, Index, Field } type = Type::Index;
  std::string_view key;
  std::size_t index = 0;
};

// Tensors (and bytes held in tensors) built so far, by name. A load holds few: they are searched in a list (its
// storage kept by the thread, so that a tiny load allocates nothing for it), through a hash map past `listed`.
class BuiltByName {
 public:
  const nb::object* find(std::string_view name) const {
    if (!index_.empty()) {
      const auto it = index_.find(name);
      return it == index_.end() ? nullptr : &(*list_)[it->second].second;
    }
    for (const auto& [listed_name, object] : *list_) {
      if (listed_name == name) return &object;
    }
    return nullptr;
  }
  // Adds `object` under `name` unless the name has one already.
  void add(std::string_view name, const nb::object& object) {
    if (find(name) != nullptr) return;
    list_->emplace_back(name, object);
    if (list_->size() <= listed) return;
    if (index_.empty()) {
      for (std::size_t k = 0; k < list_->size(); ++k) index_.emplace((*list_)[k].first, k);
    } else {
      index_.emplace(name, list_->size() - 1);
    }
  }

 private:
  static constexpr std::size_t listed = 8;
  SpareVector<std::pair<std::string_view, nb::object>, 1024> list_;
  std::unordered_map<std::string_view, std::size_t, SeededStringHash> index_;
};

class Loader {
 public:
  // The path of the node being built ($["a"][3]), keys and fields shown as shown_text.hpp shows them (cut shorter,
  // to `longest_key` bytes, for the context's "where").
  std::string path_text(std::size_t longest_key = shown_text_limit) const;
  // With `partial`, the nodes built may be any parts of the tree (see build_target), found through its index.
  Loader(const TreeReader& tree, const TensorSource& source, const LoadOptions& options, bool partial)
      : tree_(tree), tape_(tree.tape()), source_(source), index_(partial ? &tree.index() : nullptr), context_(options.context), hooks_(hooks()),
        ids_(tape_.size() + 1, partial),
        hash_budget_(saturating_add(16 * static_cast<std::uint64_t>(tape_.size()), std::uint64_t{1} << 20)),
        conversion_budget_(saturating_add(16 * static_cast<std::uint64_t>(tape_.size()), std::uint64_t{1} << 24)),
        max_depth_(options.max_depth), verify_(options.verify) {
    if (tape_.size() >= large_tape) {
      // What only pays off over many nodes, kept from small loads, whose time is their fixed cost: room for the usual
      // depth (pushing a part is then a store, not a call), and the cache of str values.
      path_->reserve(64);
      recent_strings_ = std::make_unique<RecentStrings>();
    }
    expose_where();
  }
  ~Loader() { restore_where(); }
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  nb::object build(std::size_t i);
  // A partial load's target that is a key of a mapping (a walk listing keys): hashed as a whole load hashes keys,
  // within the same budget and cap on equal hashes, so that the caller may put it in a dict.
  nb::object build_key(std::size_t i, HashRuns& runs) {
    nb::object key = build_target(i);
    check_hashable(key, i, runs, "key", "cannot use this key: ");
    return key;
  }
  // A partial load's target: the node the caller asked for. One loader may build several targets in turn (a walk over
  // many nodes): what they share is built once.
  nb::object build_target(std::size_t i) {
    target_ = i;
    inner_target_ = nb::object();
    nb::object out = build(i);
    return inner_target_.is_valid() ? inner_target_ : out;
  }

 private:
  nb::object build_any(std::size_t i);
  // One per shape of tagged node: build_tagged picks by kind.
  nb::object build_tagged(std::size_t i, Kind kind);
  nb::object follow_ref(std::size_t i);
  nb::object build_appended(std::size_t i, Kind kind);
  nb::object build_tuple(std::size_t i);
  nb::object build_set(std::size_t i, Kind kind);
  nb::object build_mapping(std::size_t i, Kind kind);
  // An int beyond int64, a float JSON cannot hold, a str that is not valid UTF-8: as the tree reader decodes them.
  nb::object tagged_scalar(std::size_t i, Kind kind);
  // Everything else, through the fixed table of Python constructors.
  nb::object construct(std::size_t i, Kind kind);
  nb::object build_plain_object(std::size_t i);
  // The object of a scalar node (null, a bool, a number, a string). Inline: most nodes are scalars.
  [[gnu::always_inline]] nb::object scalar(const Node& n) {
    PyObject* out = nullptr;
    switch (n.kind) {
      case NodeKind::Null: return nb::none();
      case NodeKind::False: return nb::borrow(Py_False);
      case NodeKind::True: return nb::borrow(Py_True);
      case NodeKind::Int: out = PyLong_FromLongLong(n.integer); break;
      case NodeKind::Float: out = PyFloat_FromDouble(n.number); break;
      case NodeKind::String: out = string_value(n.text); break;
      case NodeKind::Array:
      case NodeKind::Object: return nb::object();
    }
    if (out == nullptr) throw nb::python_error();
    return nb::steal(out);
  }
  // A str value, shared with the last equal short one built (see recent_strings_).
  PyObject* string_value(std::string_view text);
  // The str of a dict key, borrowed: shared_keys (load_walk.cpp) or keys_ holds it; to be put in a dict at once.
  PyObject* key_object(std::string_view key);
  // The same for a key not found in shared_keys: made (or found in keys_), and put there.
  PyObject* key_made(std::string_view key);
  // Always inlined, its path part passed in pieces and put together only for a container: a scalar child (most
  // children) then costs no LoadPath assembled on the stack, whose piecewise stores and whole reload stalled the load
  // walk more than anything else in it.
  [[gnu::always_inline]] nb::object build_child(std::size_t i, LoadPath::Type type, std::string_view key, std::size_t index = 0) {
    // Most children are scalars, built in place: a scalar defines no id, is not a partial load's target built twice
    // through a cycle, and fails only for want of memory, so it needs no path.
    if (tape_[i].kind < NodeKind::Array && i != target_) return scalar(tape_[i]);
    return build_container_child(i, type, key, index);
  }
  nb::object build_container_child(std::size_t i, LoadPath::Type type, std::string_view key, std::size_t index) {
    // Stored field by field into its slot: a part built on the stack and copied in was reloaded whole before its
    // stores had landed, a stall for every container.
    LoadPath& part = path_->emplace_back();
    part.type = type;
    part.key = key;
    part.index = index;
    nb::object out = build(i);
    path_->pop_back();
    return out;
  }
  // Builds the `count` items from node `c` on, each with its index on the path: put(k, node, item) takes each.
  template <class Put>
  void build_items(std::size_t c, std::uint32_t count, Put&& put) {
    for (std::uint32_t k = 0; k < count; ++k, c = tape_.next(c)) {
      put(k, c, build_child(c, LoadPath::Type::Index, {}, k));
    }
  }
  void fill_pairs(std::size_t object, const nb::object& target, bool exact_dict);
  // Hashes a key or set item (built from `node`) within the load's hashing budget and the cap on keys of one hash
  // value; it is charged twice, for this hash and the one its insertion computes. `unhashable` starts the message
  // for an item that cannot be hashed.
  void check_hashable(const nb::object& item, std::size_t node, HashRuns& runs, const char* what, const std::string& unhashable);
  // The nodes a walk of what node `i` built visits with every reference followed (what hashing it costs): measured
  // from the tape when needed, so that building costs nothing for it; each part measured once.
  Expansion expanded(std::size_t i);
  // What converting the big int of node `i` to decimal costs, in a node's walks (see Expansion).
  std::uint64_t big_int_weight(std::size_t i) const;
  // The object already built for tensor `name` (a partial load may build a node twice), or an invalid object; a whole
  // load refuses a second node naming the same tensor, which could only make it copy the same bytes again.
  nb::object named_before(std::string_view name);
  nb::object tensor(std::size_t i);
  // A tensor of a plain numpy node ("fw": "numpy" and its name, nothing else) in a whole load asking for no framework
  // or numpy: what frameworks/numpy.py's to_numpy makes of it (a frombuffer view of its bytes, shaped, recorded in the
  // context's "numpy_bases" for the views after it), made here through numpy's C API (numpy_view), without the
  // adapters' Python calls, which cost a tiny load a tenth of its time. An invalid object where the node or the load is not that plain, or where anything fails:
  // the adapter then builds the tensor, and says what is wrong.
  nb::object plain_numpy(std::size_t i, std::string_view name, const TensorInfo& info, const Shard& shard);
  TensorSource::Found find_tensor(std::string_view name);
  nb::object defined_elsewhere(std::int64_t id);
  nb::object bytes_value(std::size_t i, bool mutable_copy);
  // `plugin_list`: the object is a list or dict of a plugin's value reached through its lists and dicts, which may hold
  // the plugin's nested children (see plugin_value_).
  void define(std::size_t object, const nb::object& value, bool plugin_list = false);
  [[noreturn]] void invalid(const std::string& what, ErrorCode code = ErrorCode::SchemaInvalid) const {
    throw Error(code, "at " + path_text() + ": " + what);
  }
  // The tree reader's complaints, raised at the node being built.
  Fail failing() const {
    return {this, [](const void* self, const std::string& why, ErrorCode code) {
              static_cast<const Loader*>(self)->invalid(why, code);
            }};
  }
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
  // Tensors (and bytes held in tensors) built so far: a view of a storage a partial load does not hold builds it
  // first, and no tensor is named by two nodes.
  BuiltByName named_;
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
  LoadContext context_;
  const Loader* outer_loader_ = nullptr;
  bool where_set_ = false;
  const Hooks& hooks_;
  IdTable ids_;
  // The ids being defined by the builds under way, innermost last, with their nodes; and the expanded size of each
  // node measured (see expanded).
  struct Defining {
    std::int64_t id;
    std::size_t node;
  };
  std::vector<Defining> defining_;
  std::unordered_map<std::size_t, Expansion, SeededIntHash> expansions_;
  // Nodes walked so far by hashing keys and set items, and how many the load may walk: generous for any real data
  // (whose keys are small and mostly unshared), and still linear in the file, where a key built from shared references
  // (each level holding the one below twice) would expand exponentially.
  std::uint64_t hash_work_ = 0;
  std::uint64_t hash_budget_;
  // What comparing keys of one hash value costs in conversions of big ints to decimal (see Expansion), and how much the
  // load may spend: a third of a second, and more in proportion to a larger file.
  std::uint64_t conversion_work_ = 0;
  std::uint64_t conversion_budget_;
  // Its storage kept by the thread: pushing the first part would otherwise allocate, in every load.
  SpareVector<LoadPath, 4096> path_;
  // Dict keys decoded so far; the views point into the parsed schema, which outlives the loader.
  std::unordered_map<std::string_view, nb::object, SeededStringHash> keys_;
  // Short str values built lately, by slot as for keys: records repeat their values too ("train", "ok"), and an
  // immutable str can be one object wherever it appears, as pickle's memo makes it. Each slot holds a reference.
  static constexpr std::size_t max_shared_string = 24;
  static constexpr std::size_t large_tape = 512;
  using RecentStrings = std::array<std::pair<std::string_view, nb::object>, 256>;
  std::unique_ptr<RecentStrings> recent_strings_;  // only for a tape of large_tape nodes or more
  // The last tag classified, and its kind (see build_any).
  std::string_view last_tag_;
  std::optional<Kind> last_kind_;
  // The stack's floor on this thread (see stack.hpp), looked up once.
  std::uintptr_t stack_floor_ = stack_floor();
  // Levels of containers being built: the same count the saver limits, whatever JSON depth each level takes.
  std::uint32_t depth_ = 0;
  std::uint32_t max_depth_;
  bool verify_;
  // Plugin nodes being built around the current node.
  std::uint32_t plugin_depth_ = 0;
  // Whether a "nested" node may stand here: in a plugin node's fields, or in their lists and dicts (their values, not
  // their keys), where a save writes them (plugins._map_nested). Anywhere else (a tuple, a set, a record, a key) the
  // loader's internal wrapper would reach the caller, in a record of the plugin or in what the plugin builds.
  bool nested_here_ = false;
  // The plugin node whose value (outside its nested children, which are data saved as any other) is being built,
  // Tape::npos for none. A save writes the lists and dicts of a plugin's value afresh (plugins._map_nested): no
  // reference from outside that value reaches one of them, which would hand the caller the loader's wrappers of
  // nested children.
  std::size_t plugin_value_ = Tape::npos;
  // Sets nested_here_ for the children of the container being built, until the end of the scope.
  struct NestedHere {
    Loader& loader;
    bool outer;
    NestedHere(Loader& l, bool here) : loader(l), outer(l.nested_here_) { l.nested_here_ = here; }
    ~NestedHere() { loader.nested_here_ = outer; }
    NestedHere(const NestedHere&) = delete;
    NestedHere& operator=(const NestedHere&) = delete;
  };
};

}  // namespace safestructures::bindings::load_walk
