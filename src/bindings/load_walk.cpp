// Loading (the load walk): builds Python objects from the schema tape in C++, tensors as views of the file's bytes.
// This file: containers, references, keys and what bounds the walk's work, and the entry points.
#include <Python.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "loader.hpp"
#include "safestructures/stack.hpp"
#include "safestructures/structure.hpp"

namespace safestructures::bindings {
namespace load_walk {

std::string Loader::path_text(std::size_t longest_key) const {
  return render_path(path_->size(), [this, longest_key](std::string& out, std::size_t k) {
    const LoadPath& part = (*path_)[k];
    switch (part.type) {
      case LoadPath::Type::Index: append_index_part(out, static_cast<std::int64_t>(part.index)); break;
      case LoadPath::Type::Field:
        out += '.';
        append_shown_field(out, part.key, longest_key);
        break;
      case LoadPath::Type::Key: append_shown_key_part(out, quote_name(part.key, longest_key)); break;
    }
  });
}

namespace {

// The innermost load under way in this thread, whose path "where" gives (a constructor may load again, inside).
thread_local const Loader* current_loader = nullptr;
// safestructures._core.load_where, set at import: one function for every load, since making a function per load costs
// a tiny load a tenth of its time.
nb::handle where_function;

}  // namespace

void Loader::expose_where() {
  if (!context_.expose_where(where_function)) return;
  outer_loader_ = current_loader;
  current_loader = this;
  where_set_ = true;
}

void Loader::restore_where() noexcept {
  if (!where_set_) return;
  current_loader = outer_loader_;
  context_.restore_where();
}

nb::object Loader::call_python(const char* what, const std::function<nb::object()>& call) {
  try {
    return call();
  } catch (nb::python_error& e) {
    // safestructures' own errors (an unknown type in strict mode) keep their class, with the path added.
    if (PyObject_IsInstance(e.value().ptr(), error_class("SafestructuresError").ptr()) == 1) {
      const nb::handle cls = reinterpret_cast<PyObject*>(Py_TYPE(e.value().ptr()));
      set_error(cls, "at " + path_text() + ": " + py_text(e.value()), e.value().attr("code"));
      throw nb::python_error();
    }
    invalid(std::string(what) + ": " + Py_TYPE(e.value().ptr())->tp_name + ": " + py_text(e.value()));
  }
}

void Loader::define(std::size_t object, const nb::object& value, bool plugin_list) {
  const std::size_t at = tape_.member(object, id_member);
  if (at == Tape::npos) return;
  const Node& id = tape_[at];
  if (id.kind != NodeKind::Int || !ids_.in_range(id.integer)) invalid("reference id \"#\" must be an integer from 1 to the node count");
  IdTable::Entry& entry = ids_.slot(id.integer);
  if (entry.object.is_valid()) {
    // In a partial load, an immutable object (a tuple, a record) on the way from the target to a reference to an
    // ancestor is built twice: inside the ancestor, which defines it, then here, in the outer build of the target
    // that build_target drops. The first definition stays.
    if (index_ != nullptr) return;
    invalid("reference id #" + std::to_string(id.integer) + " is defined twice");
  }
  entry.object = value;
  entry.plugin = plugin_list ? plugin_value_ : Tape::npos;
  defining_.push_back({id.integer, object});  // its expanded size is recorded once it is complete (see build)
}

void Loader::check_hashable(const nb::object& item, std::size_t node, HashRuns& runs, const char* what, const std::string& unhashable) {
  const Expansion expansion = expanded(node);
  hash_work_ = saturating_add(hash_work_, saturating_add(expansion.size, expansion.size));
  if (hash_work_ > hash_budget_) {
    invalid(std::string("this ") + what + " is built from shared references that expand to " + std::to_string(expansion.size) +
                " nodes; hashing the keys of this file would walk more than its limit of " + std::to_string(hash_budget_) + " nodes",
            ErrorCode::LimitExceeded);
  }
  const Py_hash_t hash = PyObject_Hash(item.ptr());
  if (hash == -1) {
    nb::python_error e;
    invalid(unhashable + py_text(e.value()));
  }
  if (!runs.add(hash)) {
    invalid("more than " + std::to_string(HashRuns::max_run) + " " + what + "s of this container have the same hash value (" +
                std::to_string(hash) + "), which would make building it quadratic",
            ErrorCode::LimitExceeded);
  }
  const std::uint64_t compare_cost = runs.compare_cost(hash, expansion.int_weight);
  conversion_work_ = saturating_add(conversion_work_, compare_cost);
  if (conversion_work_ > conversion_budget_) {
    invalid(std::string("this ") + what + " has the hash value (" + std::to_string(hash) + ") of earlier " + what +
                "s of this container, and big ints in them: comparing them (a Decimal compares with an int by converting "
                "the int, at a cost that grows with the square of its size) would take this file's comparisons past their "
                "limit of " + std::to_string(conversion_budget_) + " nodes' work (this " + what + "'s: " + std::to_string(compare_cost) + ")",
            ErrorCode::LimitExceeded);
  }
}

void Loader::fill_pairs(std::size_t object, const nb::object& target, bool exact_dict) {
  HashRuns runs;
  tree_.for_each_pair(object, failing(), [&](std::uint32_t k, std::size_t key_at, std::size_t value_at) {
    path_->push_back({LoadPath::Type::Index, {}, k});
    nb::object key;
    {
      const NestedHere nested{*this, false};  // a save writes nested children as values only
      key = build(key_at);
    }
    check_hashable(key, key_at, runs, "key", "cannot use this key: ");
    // The value's path names its key when the key is a string or an int, as the lazy API's paths do: a state_dict's
    // tensor reads $["weights"]["embed.weight"], not $["weights"][0]. Other keys keep the pair's position.
    if (tape_[key_at].kind == NodeKind::String) path_->back() = {LoadPath::Type::Key, tape_[key_at].text};
    if (tape_[key_at].kind == NodeKind::Int) path_->back() = {LoadPath::Type::Index, {}, static_cast<std::size_t>(tape_[key_at].integer)};
    nb::object value = build(value_at);
    const int status = exact_dict ? PyDict_SetItem(target.ptr(), key.ptr(), value.ptr()) : PyObject_SetItem(target.ptr(), key.ptr(), value.ptr());
    if (status != 0) {
      nb::python_error e;
      invalid("cannot use this key: " + py_text(e.value()));
    }
    path_->pop_back();
    // A saved mapping never holds two equal keys: a load keeping the last would read another mapping than the one
    // the lazy API's keys() and the C++ API show. The dict tells every equal key, 1 and 1.0 too, with no set of its
    // own. (Every mapping built here is a dict or a subclass.)
    if (PyDict_GET_SIZE(target.ptr()) == static_cast<Py_ssize_t>(k)) invalid(TreeReader::repeated_key(tape_[key_at], k));
  }, false);
}

TensorSource::Found Loader::find_tensor(std::string_view name) {
  const TensorSource::Found found = source_.find(name);
  if (found.info == nullptr) invalid("the schema refers to tensor " + quote_name(name) + ", which the file lacks", ErrorCode::TensorNotFound);
  source_.fetch_bytes(found);
  if (verify_) {
    try {
      source_.verify(found);
    } catch (const Error& e) {
      invalid(e.what(), e.code());
    }
  }
  return found;
}

nb::object Loader::defined_elsewhere(std::int64_t id) {
  // Only a partial load gets here: the object was defined outside the part being loaded (or not at all).
  const std::size_t at = index_->id_nodes[static_cast<std::size_t>(id)];
  if (at == Tape::npos) invalid("ref to #" + std::to_string(id) + ", which is not defined anywhere");
  if (std::find(building_elsewhere_.begin(), building_elsewhere_.end(), id) != building_elsewhere_.end()) {
    invalid("ref to #" + std::to_string(id) + ", which is part of a cycle through an immutable object");
  }
  building_elsewhere_.push_back(id);
  OnExit leave{[this] { building_elsewhere_.pop_back(); }};
  build(at);
  IdTable::Entry* entry = ids_.find(id);
  if (entry == nullptr) invalid("ref to #" + std::to_string(id) + ", which is part of a cycle through an immutable object");
  return entry->object;
}

// Whether two short texts are equal, compared inline a word at a time (the first and last words of a text overlap
// where it is not a whole number of words): a call to memcmp, or a loop over its bytes, costs more than a record's
// key or short value.
[[gnu::always_inline]] inline bool same_text(std::string_view a, std::string_view b) {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  const auto word = [](const char* at) {
    std::uint64_t w;
    std::memcpy(&w, at, sizeof w);
    return w;
  };
  const auto half = [](const char* at) {
    std::uint32_t w;
    std::memcpy(&w, at, sizeof w);
    return w;
  };
  if (n >= 8) {
    for (std::size_t k = 0; k + 8 < n; k += 8) {
      if (word(a.data() + k) != word(b.data() + k)) return false;
    }
    return word(a.data() + n - 8) == word(b.data() + n - 8);
  }
  if (n >= 4) return half(a.data()) == half(b.data()) && half(a.data() + n - 4) == half(b.data() + n - 4);
  for (std::size_t k = 0; k < n; ++k) {
    if (a[k] != b[k]) return false;
  }
  return true;
}

// The slot of a short text in a cache of `slots` entries, from its length and three of its bytes: enough to tell a
// record's keys and values apart ("n" and "note" too) without hashing the whole text.
template <std::size_t Slots>
[[gnu::always_inline]] inline std::size_t text_slot(std::string_view text) {
  static_assert((Slots & (Slots - 1)) == 0, "a power of two: the slot is a mask, not a division");
  if (text.empty()) return 0;
  const auto byte = [&](std::size_t k) { return static_cast<std::size_t>(static_cast<unsigned char>(text[k])); };
  return (text.size() * 131 + byte(0) * 31 + byte(text.size() - 1) * 7 + byte(text.size() / 2) * 17) & (Slots - 1);
}

// Dict keys shared by every load of the process: the interned str of each ASCII key met lately, by slot as text_slot
// picks it, compared with the str's own text. A record's keys come round again and again, and so do the keys of a
// program's small loads: found here, they are neither hashed nor decoded and interned again. Each slot holds a
// reference, let go when another key takes the slot. Only touched with the GIL held (the module does not declare
// itself free-threaded, so Python keeps the GIL for it), and never across a call into Python: key_object's caller
// puts the key in its dict at once.
static std::array<PyObject*, 512> shared_keys{};

// The text of a compact ASCII str (the only kind shared_keys holds): its characters follow its header.
[[gnu::always_inline]] inline std::string_view ascii_text(PyObject* text) {
  const auto* ascii = reinterpret_cast<const PyASCIIObject*>(text);
  return {reinterpret_cast<const char*>(ascii + 1), static_cast<std::size_t>(ascii->length)};
}

// Inline, as every member of every record asks for its key; the rest is key_made's.
[[gnu::always_inline]] inline PyObject* Loader::key_object(std::string_view key) {
  PyObject* const shared = shared_keys[text_slot<std::tuple_size_v<decltype(shared_keys)>>(key)];
  if (shared != nullptr && same_text(ascii_text(shared), key)) return shared;
  return key_made(key);
}

PyObject* Loader::key_made(std::string_view key) {
  PyObject*& shared = shared_keys[text_slot<std::tuple_size_v<decltype(shared_keys)>>(key)];
  // Records share their keys: one str object per distinct key, as pickle's memo gives, saves a decode and an
  // allocation per dict entry.
  auto [it, inserted] = keys_.try_emplace(key);
  if (inserted) {
    PyObject* text = PyUnicode_DecodeUTF8(key.data(), static_cast<Py_ssize_t>(key.size()), nullptr);
    if (text == nullptr) {
      keys_.erase(it);
      throw nb::python_error();
    }
    PyUnicode_InternInPlace(&text);
    it->second = nb::steal(text);
  }
  PyObject* made = it->second.ptr();
  if (PyUnicode_IS_COMPACT_ASCII(made)) {
    Py_INCREF(made);
    Py_XSETREF(shared, made);  // a str's release runs no Python code
  }
  return made;
}

// Puts `value` under an exact str `key` whose hash is computed (interned keys are hashed as they are interned): the
// dict then skips asking the key for its hash, once per member of every record.
[[gnu::always_inline]] inline int set_str_item(PyObject* dict, PyObject* key, PyObject* value) {
#if PY_VERSION_HEX < 0x030D0000
  const Py_hash_t hash = reinterpret_cast<PyASCIIObject*>(key)->hash;
  if (hash != -1) return _PyDict_SetItem_KnownHash(dict, key, value, hash);
#endif
  return PyDict_SetItem(dict, key, value);
}

// An empty dict with room for `count` keys: a record of six keys or more would otherwise be rebuilt once as it grows
// past PyDict_New's five (CPython 3.13 made the presized constructor internal).
PyObject* new_dict(std::uint32_t count) {
#if PY_VERSION_HEX < 0x030D0000
  if (count > 5) return _PyDict_NewPresized(static_cast<Py_ssize_t>(count));
#endif
  (void)count;
  return PyDict_New();
}

nb::object Loader::build_plain_object(std::size_t i) {
  const Node& n = tape_[i];
  nb::object dict = nb::steal(new_dict(n.count));
  if (!dict.is_valid()) throw nb::python_error();
  std::size_t c = i + 1;
  for (std::uint32_t k = 0; k < n.count; ++k) {
    const std::string_view key = tape_[c].text;
    if (same_text(key, tag_member)) invalid(std::string(misplaced_tag_member));
    nb::object value = build_child(c + 1, LoadPath::Type::Key, key);
    if (set_str_item(dict.ptr(), key_object(key), value.ptr()) != 0) throw nb::python_error();
    c = tape_.next(c + 1);
  }
  return dict;
}

nb::object Loader::build(std::size_t i) {
  nb::object out;
  if (i != target_) {
    out = build_any(i);
  } else {
    ++target_builds_;
    OnExit leave{[this] { --target_builds_; }};
    out = build_any(i);
    if (target_builds_ > 1 && !inner_target_.is_valid()) inner_target_ = out;
  }
  if (!defining_.empty() && defining_.back().node == i) {
    // A node that references may name is complete: its expansion, for what hashes it later.
    ids_.find(defining_.back().id)->expansion = expanded(i);
    defining_.pop_back();
  }
  return out;
}

Expansion Loader::expanded(std::size_t i) {
  const Node& top = tape_[i];
  if (top.kind != NodeKind::Array && top.kind != NodeKind::Object) return {};  // a plain JSON scalar: nothing to keep
  const std::size_t end = top.end;
  Expansion total{0, 0};
  const auto add = [&total](const Expansion& part) {
    total.size = saturating_add(total.size, part.size);
    total.int_weight = saturating_add(total.int_weight, part.int_weight);
  };
  std::size_t n = i;
  while (n < end) {
    const Node& node = tape_[n];
    if (n != i && (node.kind == NodeKind::Array || node.kind == NodeKind::Object)) {
      // A part measured before (an object defined inside this one, a key inside a key) counts as measured.
      if (const auto known = expansions_.find(n); known != expansions_.end()) {
        add(known->second);
        n = node.end;
        continue;
      }
    }
    const std::optional<Kind> kind = node.kind == NodeKind::Object ? tree_.kind(n) : std::nullopt;
    if (kind == Kind::FrozenSet) {
      // A frozenset hashes its items' stored hashes, once, and keeps the result: it costs its item count, whatever
      // its items hold (each was measured as it went in). Comparing two frozensets looks each item of one up in the
      // other, where it may meet as many items of its hash value as a set may hold: their big ints count that often.
      const std::size_t items = tape_.member(n, "items");
      std::uint64_t weight = 0;
      std::uint32_t count = 0;
      if (items != Tape::npos && tape_[items].kind == NodeKind::Array) {
        count = tape_[items].count;
        for (std::size_t item = items + 1; item < tape_[items].end; item = tape_.next(item)) {
          if (tape_[item].kind != NodeKind::Object) continue;  // only a tagged node holds a big int
          const auto known = expansions_.find(item);
          weight = saturating_add(weight, known != expansions_.end() ? known->second.int_weight : expanded(item).int_weight);
        }
      }
      add({1 + count, saturating_multiply(weight, HashRuns::max_run)});
      n = node.end;
      continue;
    }
    add({1, kind == Kind::BigInt ? big_int_weight(n) : 0});
    if (kind == Kind::Ref) {
      // A reference counts as all it stands for (1 while that object is still being built: a cycle).
      const IdTable::Entry* entry = ids_.find(tree_.id(n));
      add(entry != nullptr ? entry->expansion : Expansion{});
    }
    ++n;
  }
  expansions_.emplace(i, total);
  return total;
}

std::uint64_t Loader::big_int_weight(std::size_t i) const {
  // Converting an int to decimal costs about a node's walk per 128 bits squared (0.27 ms for 14,300 bits, 21 s for
  // 4 million), measured against what hashing a node costs here. Leading zeros, which no writer writes, count. An int
  // of fewer (its "hex" under 32 characters) converts as fast as any comparison runs: it counts nothing, so that the
  // keys of a set of such ints are not counted one by one.
  const std::size_t hex = tape_.member(i, "hex");
  const std::uint64_t digits = hex != Tape::npos && tape_[hex].kind == NodeKind::String ? tape_[hex].text.size() : 0;
  const std::uint64_t units = digits / 32 + 1;
  return units > 1 ? units * units : 0;
}

PyObject* Loader::string_value(std::string_view text) {
  if (!recent_strings_ || text.size() > max_shared_string || text.empty()) {
    return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), nullptr);
  }
  auto& recent = (*recent_strings_)[text_slot<std::tuple_size_v<RecentStrings>>(text)];
  if (recent.second.is_valid() && same_text(recent.first, text)) return recent.second.inc_ref().ptr();
  PyObject* out = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), nullptr);
  if (out != nullptr) recent = {text, nb::borrow(out)};
  return out;
}

nb::object Loader::build_any(std::size_t i) {
  const Node& n = tape_[i];
  if (n.kind < NodeKind::Array) return scalar(n);
  const std::string_view tag = n.kind == NodeKind::Object ? tape_.tag(i) : std::string_view();
  std::optional<Kind> kind;
  if (!tag.empty()) {
    // Most tagged nodes of a file share a few tags (a record's tuple): compared with the last one before hashing.
    if (!same_text(tag, last_tag_)) {
      last_tag_ = tag;
      last_kind_ = kind_of_tag(tag);
    }
    kind = last_kind_;
  }
  if (kind && traits(*kind).leaf) return build_tagged(i, *kind);
  if (depth_ >= max_depth_) invalid("the data nests deeper than the limit of " + std::to_string(max_depth_) + " levels", ErrorCode::NestingTooDeep);
  if (below_stack_floor(stack_floor_)) invalid("the data nests deeper than this thread's stack can walk", ErrorCode::NestingTooDeep);
  ++depth_;
  OnExit leave{[this] { --depth_; }};
  if (n.kind == NodeKind::Object) {
    if (tag.empty()) return build_plain_object(i);
    if (!kind) invalid("unknown tag " + quote_name(tag));
    return build_tagged(i, *kind);
  }
  nb::object list = nb::steal(PyList_New(n.count));
  build_items(i + 1, n.count, [&](std::uint32_t k, std::size_t, nb::object item) {
    PyList_SET_ITEM(list.ptr(), k, item.release().ptr());
  });
  return list;
}

}  // namespace load_walk

using load_walk::HashRuns;
using load_walk::Loader;

TensorSource::Found TensorSource::find(std::string_view name) const {
  for (const Shard& shard : shards) {
    if (const TensorInfo* info = shard.reader.header().find(name)) return {info, &shard};
  }
  return {};
}

void TensorSource::check_unique_names() const {
  if (shards.size() < 2) return;
  std::unordered_map<std::string_view, std::size_t, SeededStringHash> seen;
  for (std::size_t k = 0; k < shards.size(); ++k) {
    for (const TensorInfo& t : shards[k].reader.header().tensors) {
      if (!seen.emplace(t.name, k).second) raise(ErrorCode::TensorMismatch, "two shards hold a tensor named " + quote_name(t.name));
    }
  }
}

const std::optional<Checksums>& checksums_of(const Shard& shard) {
  if (!shard.checksums) {
    shard.checksums = read_checksums(shard.reader.header());
    if (*shard.checksums) verify_header(shard.reader, **shard.checksums);
  }
  return *shard.checksums;
}

void TensorSource::verify_headers() const {
  for (const Shard& shard : shards) checksums_of(shard);
}

void TensorSource::verify(const Found& found) const {
  if (const auto& sums = checksums_of(*found.shard)) verify_tensor(found.shard->reader, *found.info, *sums);
}

nb::object build_node(const TreeReader& tree, std::size_t node, const TensorSource& source, const LoadOptions& options, bool partial) {
  if (options.verify) source.verify_headers();
  Loader loader(tree, source, options, partial);
  GcPause pause;
  return partial ? loader.build_target(node) : loader.build(node);
}

nb::list build_nodes(const TreeReader& tree, const std::vector<std::size_t>& nodes, const TensorSource& source, const LoadOptions& options,
                     bool keys, std::size_t& built) {
  if (options.verify) source.verify_headers();
  Loader loader(tree, source, options, true);
  GcPause pause;
  HashRuns runs;
  nb::list out;
  for (built = 0; built < nodes.size(); ++built) out.append(keys ? loader.build_key(nodes[built], runs) : loader.build_target(nodes[built]));
  return out;
}

void register_load_where(nb::module_& m) {
  // A constructor may ask once per node (a warning per object of a changed class): keys and fields are cut, so that
  // each answer is short however long the keys above (20 keys of 100 KB made each warning 2 MB, from a 2 MB file).
  m.def("load_where", []() -> std::string {
    const load_walk::Loader* loader = load_walk::current_loader;
    return loader != nullptr ? loader->path_text(64) : std::string();
  },
        "The path of the node the innermost load under way in this thread is building ('' outside a load), keys longer "
        "than 64 bytes cut: what a load's context holds as \"where\", for constructors to name the node in warnings.");
  load_walk::where_function = m.attr("load_where");
  // The one rule on runs of equal hashes, for the loaders written in Python (the 1.0.0 reader) to build their
  // mappings and sets by.
  nb::class_<HashRuns>(m, "HashRuns", "Counts the hash values of one mapping's keys or one set's items.")
      .def(nb::init<>())
      .def("add", &HashRuns::add, nb::arg("hash"), "Counts `hash`; False when it is now the hash of more than max_run keys.")
      .def_ro_static("max_run", &HashRuns::max_run, "Keys of one hash value a mapping or set may hold.");
}

nb::object build_data(const TensorSource& file, const LoadOptions& options) {
  std::optional<Tape> document = read_schema(file.shards.front().reader, schema_limits(options.max_depth, options.max_nodes));
  if (!document) return nb::object();
  const TreeReader tree(std::move(*document));
  return build_node(tree, tree.root(), file, options, false);
}

}  // namespace safestructures::bindings
