// Saving: walks Python objects into the schema tape (exact-type fast paths first), collecting tensors by path name.
#include <Python.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "bindings.hpp"
#include "hooks.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/stack.hpp"

namespace safestructures::bindings {
namespace {

// Inline bytes up to this size are base64 in the schema; larger ones become U8 tensors.
constexpr Py_ssize_t inline_bytes_limit = 64;

std::string base64(const unsigned char* data, std::size_t size) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < size; i += 3) {
    const unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i < size) {
    const unsigned v = (data[i] << 16) | (i + 1 < size ? data[i + 1] << 8 : 0);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < size ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

struct PathPart {
  enum class Type { Key, Index, Field } type;
  PyObject* key = nullptr;  // borrowed: the key lives in the container being walked
  Py_ssize_t index = 0;
  const char* field = nullptr;
};

class UnsupportedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Memo {
  std::size_t tape_at;
  bool in_progress;
  bool immutable;
};

// The memo of visited objects, keyed by address: open addressing with linear probing in one array. The
// std::unordered_map it replaces allocated a node per container and was a tenth of a 100,000-node save.
class MemoTable {
 public:
  MemoTable() {
    std::size_t capacity = 64;
    // Sized for what the last save on this thread needed, so that saving similar data again does not regrow it; capped
    // (768 KiB), so that a small save after a huge one does not clear a huge table.
    while (capacity < 2 * last_size_ && capacity < (std::size_t{1} << 15)) capacity *= 2;
    slots_.resize(capacity);
  }
  ~MemoTable() {
    if (size_) last_size_ = size_;
  }
  MemoTable(const MemoTable&) = delete;
  MemoTable& operator=(const MemoTable&) = delete;

  Memo* find(PyObject* key) {
    for (std::size_t i = hash(key) & mask();; i = (i + 1) & mask()) {
      if (slots_[i].key == key) return &slots_[i].memo;
      if (slots_[i].key == nullptr) return nullptr;
    }
  }
  // Inserts `memo` under `key` unless the key is there already (as std::unordered_map::emplace does).
  void emplace(PyObject* key, Memo memo) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    for (std::size_t i = hash(key) & mask();; i = (i + 1) & mask()) {
      if (slots_[i].key == key) return;
      if (slots_[i].key == nullptr) {
        slots_[i] = {key, memo};
        ++size_;
        return;
      }
    }
  }

 private:
  struct Slot {
    PyObject* key = nullptr;
    Memo memo{};
  };
  static std::size_t hash(PyObject* key) {
    // Objects are 16-byte aligned: the low bits carry nothing, so the address is mixed (murmur3's finalizer).
    auto x = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(key));
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return static_cast<std::size_t>(x);
  }
  std::size_t mask() const { return slots_.size() - 1; }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    size_ = 0;
    for (const Slot& slot : old) {
      if (slot.key != nullptr) emplace(slot.key, slot.memo);
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  static thread_local std::size_t last_size_;
};

thread_local std::size_t MemoTable::last_size_ = 0;

class Saver {
 public:
  explicit Saver(const SaveOptions& options) : options_(options), hooks_(hooks()), context_(options.context) {
    // Names a generated path must never take.
    used_names_.insert(std::string(metadata_key));
    used_names_.insert(std::string(schema_spill_tensor));
  }

  void walk(PyObject* obj);
  Tape tape;
  WriteRequest request;
  std::vector<nb::object> keep_alive;

 private:
  // Exact types first: these are what nested data is made of, and they need no Python call.
  void walk_int(PyObject* obj);
  void walk_float(double value);
  void walk_str(PyObject* obj);
  void walk_list(PyObject* obj);
  void walk_dict(PyObject* obj);
  void walk_sequence(PyObject* obj, const char* tag, bool immutable);
  void walk_set(PyObject* obj, const char* tag, bool immutable);
  void walk_bytes(PyObject* obj, const char* tag, const char* data, Py_ssize_t size, bool is_mutable);
  void walk_uncommon(PyObject* obj);
  void walk_pairs(PyObject* mapping, std::size_t object_at);
  void walk_array(PyObject* obj);
  void walk_reduced(PyObject* obj);

  // Returns true when `obj` was already written (and writes a ref to it instead).
  bool seen(PyObject* obj);
  std::size_t open_tagged(const char* tag);
  void begin_items(std::size_t object_at);
  // Every container level goes through descend(), which enforces the depth limit.
  void descend();
  void enter(PyObject* obj, std::size_t tape_at, bool immutable);
  void leave(PyObject* obj);
  void child(PathPart part, PyObject* value, std::size_t container_at) {
    path_.push_back(part);
    walk(value);
    path_.pop_back();
    tape.count_child(container_at);
  }
  // The tensor name for the current path: the path joined with '.', made unique with a "~N" suffix.
  std::string free_name() const;
  std::string tensor_name();
  [[noreturn]] void unsupported(PyObject* obj, const std::string& why = {});
  std::string path_text() const;

  const SaveOptions& options_;
  const Hooks& hooks_;
  nb::handle context_;
  std::vector<PathPart> path_;
  MemoTable memo_;
  std::unordered_set<std::string> used_names_;
  std::uint32_t depth_ = 0;
  std::uint32_t next_id_ = 1;
};

std::string key_text(PyObject* key) {
  if (PyUnicode_Check(key)) {
    Py_ssize_t size = 0;
    if (const char* s = PyUnicode_AsUTF8AndSize(key, &size)) return std::string(s, static_cast<std::size_t>(size));
    PyErr_Clear();
  }
  nb::object text = nb::steal(PyObject_Str(key));
  if (!text.is_valid()) {
    PyErr_Clear();
    return "?";
  }
  Py_ssize_t size = 0;
  const char* s = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
  if (s == nullptr) {
    PyErr_Clear();
    return "?";
  }
  return std::string(s, static_cast<std::size_t>(size));
}

std::string Saver::path_text() const {
  return bindings::path_text(path_, [](std::string& out, const PathPart& part) {
    switch (part.type) {
      case PathPart::Type::Index: out += "[" + std::to_string(part.index) + "]"; break;
      case PathPart::Type::Field: out += "."; out += part.field; break;
      case PathPart::Type::Key:
        if (PyUnicode_CheckExact(part.key)) {
          out += "[" + quote_name(key_text(part.key)) + "]";
        } else {
          nb::object r = nb::steal(PyObject_Repr(part.key));
          if (!r.is_valid()) PyErr_Clear();
          out += "[" + (r.is_valid() ? py_text(r) : std::string("?")) + "]";
        }
        break;
    }
  });
}

void Saver::unsupported(PyObject* obj, const std::string& why) {
  PyTypeObject* type = Py_TYPE(obj);
  nb::object module = nb::getattr(nb::handle(reinterpret_cast<PyObject*>(type)), "__module__", nb::str("?"));
  std::string name = nb::isinstance<nb::str>(module) ? py_text(module) + "." : std::string();
  name += type->tp_name;
  if (const auto dot = std::string_view(type->tp_name).rfind('.'); dot != std::string_view::npos && name.find(type->tp_name) != 0) {
    name = py_text(module) + "." + (type->tp_name + dot + 1);
  }
  throw UnsupportedError("cannot save an object of type " + name + " at " + path_text() + (why.empty() ? "" : ": " + why));
}

std::string Saver::tensor_name() {
  std::string name = free_name();
  used_names_.insert(name);
  return name;
}

std::string Saver::free_name() const {
  std::string name;
  for (const PathPart& part : path_) {
    if (!name.empty()) name += '.';
    switch (part.type) {
      case PathPart::Type::Index: name += std::to_string(part.index); break;
      case PathPart::Type::Field: name += part.field; break;
      case PathPart::Type::Key: name += key_text(part.key); break;
    }
  }
  if (name.empty()) name = "root";
  // Control characters and NUL make names that tools print badly or refuse; they become '_'.
  for (char& c : name) {
    if (static_cast<unsigned char>(c) < 0x20) c = '_';
  }
  if (!used_names_.contains(name)) return name;
  for (std::size_t k = 1;; ++k) {
    std::string candidate = name + "~" + std::to_string(k);
    if (!used_names_.contains(candidate)) return candidate;
  }
}

bool Saver::seen(PyObject* obj) {
  Memo* found = memo_.find(obj);
  if (found == nullptr) return false;
  Memo& m = *found;
  if (m.in_progress && m.immutable) {
    throw UnsupportedError("cannot save the reference cycle at " + path_text() + ": it runs through an immutable " +
                           std::string(Py_TYPE(obj)->tp_name) + ", which cannot be rebuilt before its own items");
  }
  tape.reference(m.tape_at, next_id_);
  return true;
}

std::size_t Saver::open_tagged(const char* tag) {
  return tape.begin_tagged(tag);
}

void Saver::descend() {
  if (++depth_ > options_.max_depth) {
    throw Error(ErrorCode::NestingTooDeep, "the data nests deeper than the limit of " + std::to_string(options_.max_depth) +
                                               " levels at " + path_text());
  }
  if (stack_nearly_exhausted()) {
    throw Error(ErrorCode::NestingTooDeep, "the data nests deeper (" + std::to_string(depth_) + " levels at " + path_text() +
                                               ") than this thread's stack can walk");
  }
}

void Saver::enter(PyObject* obj, std::size_t tape_at, bool immutable) {
  descend();
  memo_.emplace(obj, Memo{tape_at, true, immutable});
}

void Saver::leave(PyObject* obj) {
  --depth_;
  memo_.find(obj)->in_progress = false;
}

void Saver::walk(PyObject* obj) {
  PyTypeObject* type = Py_TYPE(obj);
  if (obj == Py_None) {
    tape.null();
  } else if (type == &PyUnicode_Type) {
    walk_str(obj);
  } else if (type == &PyLong_Type) {
    walk_int(obj);
  } else if (type == &PyFloat_Type) {
    walk_float(PyFloat_AS_DOUBLE(obj));
  } else if (type == &PyBool_Type) {
    tape.boolean(obj == Py_True);
  } else if (type == &PyList_Type) {
    walk_list(obj);
  } else if (type == &PyDict_Type) {
    walk_dict(obj);
  } else if (type == &PyTuple_Type) {
    walk_sequence(obj, "tuple", true);
  } else {
    walk_uncommon(obj);
  }
}

void Saver::walk_int(PyObject* obj) {
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
  if (!overflow) {
    tape.integer(value);
    return;
  }
  // Hexadecimal is exact and, unlike decimal, not capped by Python's int/str conversion limit.
  nb::object hex = nb::steal(PyNumber_ToBase(obj, 16));
  if (!hex.is_valid()) throw nb::python_error();
  const std::size_t at = open_tagged("int");
  tape.string("hex");
  tape.owned_string(nb::borrow<nb::str>(hex).c_str());
  tape.count_child(at);
  tape.end_container(at);
}

void Saver::walk_float(double value) { tape.float_value(value); }

void Saver::walk_str(PyObject* obj) {
  Py_ssize_t size = 0;
  if (const char* s = PyUnicode_AsUTF8AndSize(obj, &size)) {
    tape.string({s, static_cast<std::size_t>(size)});
    return;
  }
  // Lone surrogates have no UTF-8 form (and JSON readers refuse them escaped): keep the code points instead.
  PyErr_Clear();
  const std::size_t at = open_tagged("str");
  tape.string("cp");
  const std::size_t list = tape.begin_array();
  const Py_ssize_t n = PyUnicode_GET_LENGTH(obj);
  for (Py_ssize_t k = 0; k < n; ++k) {
    tape.integer(PyUnicode_READ_CHAR(obj, k));
    tape.count_child(list);
  }
  tape.end_container(list);
  tape.count_child(at);
  tape.end_container(at);
}

void Saver::walk_list(PyObject* obj) {
  if (seen(obj)) return;
  const std::size_t at = tape.begin_array();
  enter(obj, at, false);
  // Re-reads the size each step: saving must not crash if user code run by the walk mutates the list.
  for (Py_ssize_t k = 0; k < PyList_GET_SIZE(obj); ++k) {
    nb::object item = nb::borrow(PyList_GET_ITEM(obj, k));
    child({PathPart::Type::Index, nullptr, k}, item.ptr(), at);
  }
  tape.end_container(at);
  leave(obj);
}

void Saver::walk_dict(PyObject* obj) {
  if (seen(obj)) return;
  bool plain = true;
  {
    PyObject *key = nullptr, *value = nullptr;
    Py_ssize_t pos = 0;
    while (plain && PyDict_Next(obj, &pos, &key, &value)) {
      if (!PyUnicode_CheckExact(key)) {
        plain = false;
        break;
      }
      Py_ssize_t size = 0;
      const char* s = PyUnicode_AsUTF8AndSize(key, &size);
      if (s == nullptr) {
        PyErr_Clear();
        plain = false;
      } else if (size == 1 && s[0] == '$') {
        plain = false;  // "$" marks tagged objects, so a dict holding it is written as pairs
      }
    }
  }
  if (!plain) {
    const std::size_t at = open_tagged("dict");
    enter(obj, at, false);
    walk_pairs(obj, at);
    tape.end_container(at);
    leave(obj);
    return;
  }
  const std::size_t at = tape.begin_object();
  enter(obj, at, false);
  PyObject *key = nullptr, *value = nullptr;
  Py_ssize_t pos = 0;
  while (PyDict_Next(obj, &pos, &key, &value)) {
    Py_ssize_t size = 0;
    const char* s = PyUnicode_AsUTF8AndSize(key, &size);
    tape.string({s, static_cast<std::size_t>(size)});
    nb::object held = nb::borrow(value);
    child({PathPart::Type::Key, key}, held.ptr(), at);
  }
  tape.end_container(at);
  leave(obj);
}

void Saver::begin_items(std::size_t object_at) {
  tape.string("items");
  tape.count_child(object_at);
}

// Writes "items": [[k, v], ...] for any mapping, in its iteration order.
void Saver::walk_pairs(PyObject* mapping, std::size_t object_at) {
  begin_items(object_at);
  const std::size_t list = tape.begin_array();
  nb::object items = nb::steal(PyMapping_Items(mapping));
  if (!items.is_valid()) throw nb::python_error();
  for (nb::handle pair : items) {
    PyObject* key = PyTuple_GET_ITEM(pair.ptr(), 0);
    PyObject* value = PyTuple_GET_ITEM(pair.ptr(), 1);
    const std::size_t at = tape.begin_array();
    path_.push_back({PathPart::Type::Key, key});
    walk(key);
    tape.count_child(at);
    walk(value);
    tape.count_child(at);
    path_.pop_back();
    tape.end_container(at);
    tape.count_child(list);
  }
  tape.end_container(list);
}

void Saver::walk_sequence(PyObject* obj, const char* tag, bool immutable) {
  const bool shared = !(immutable && PyObject_Length(obj) == 0);
  if (shared && seen(obj)) return;
  const std::size_t at = open_tagged(tag);
  if (shared) {
    enter(obj, at, immutable);
  } else {
    descend();
  }
  begin_items(at);
  const std::size_t list = tape.begin_array();
  nb::object items = nb::steal(PySequence_Fast(obj, "expected a sequence"));
  if (!items.is_valid()) throw nb::python_error();
  for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(items.ptr()); ++k) {
    child({PathPart::Type::Index, nullptr, k}, PySequence_Fast_GET_ITEM(items.ptr(), k), list);
  }
  tape.end_container(list);
  tape.end_container(at);
  if (shared) {
    leave(obj);
  } else {
    --depth_;
  }
}

void Saver::walk_set(PyObject* obj, const char* tag, bool immutable) {
  if (seen(obj)) return;
  const std::size_t at = open_tagged(tag);
  enter(obj, at, immutable);
  begin_items(at);
  const std::size_t list = tape.begin_array();
  // Sorted where the items allow it, so equal sets give equal files whatever their insertion history or hash seed.
  nb::object items = nb::steal(PySequence_List(obj));
  if (!items.is_valid()) throw nb::python_error();
  if (PyList_Sort(items.ptr()) != 0) PyErr_Clear();
  for (Py_ssize_t k = 0; k < PyList_GET_SIZE(items.ptr()); ++k) {
    child({PathPart::Type::Index, nullptr, k}, PyList_GET_ITEM(items.ptr(), k), list);
  }
  tape.end_container(list);
  tape.end_container(at);
  leave(obj);
}

void Saver::walk_bytes(PyObject* obj, const char* tag, const char* data, Py_ssize_t size, bool is_mutable) {
  // A bytearray's identity matters whatever its size; small bytes are cheaper inline than as references.
  const bool shared = is_mutable || size > inline_bytes_limit;
  if (shared && seen(obj)) return;
  const std::size_t at = open_tagged(tag);
  if (shared) memo_.emplace(obj, Memo{at, false, false});
  if (size <= inline_bytes_limit) {
    tape.string("b64");
    tape.owned_string(base64(reinterpret_cast<const unsigned char*>(data), static_cast<std::size_t>(size)));
    tape.count_child(at);
    tape.end_container(at);
    return;
  }
  std::string name = tensor_name();
  tape.string("tensor");
  tape.owned_string(name);
  tape.count_child(at);
  tape.end_container(at);
  WriteTensor& t = request.tensors.emplace_back();
  t.name = std::move(name);
  t.dtype = Dtype::U8;
  t.shape = {static_cast<std::uint64_t>(size)};
  t.data = reinterpret_cast<const std::byte*>(data);
  keep_alive.push_back(nb::borrow(obj));
}

void Saver::walk_array(PyObject* obj) {
  if (seen(obj)) return;
  // Proposed, not claimed: a tensor that views another one's storage writes no data of its own.
  const std::string name = free_name();
  nb::object entry;
  try {
    entry = hooks_.array_entry(nb::handle(obj), nb::str(name.data(), name.size()), context_);
  } catch (nb::python_error& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    unsupported(obj, py_text(e.value()));
  }
  // The tape views strings inside the entry's fields until the schema is rendered.
  keep_alive.push_back(entry);
  nb::tuple parts = nb::borrow<nb::tuple>(entry);
  const bool stores = !parts[0].is_none();
  const std::size_t at = open_tagged("tensor");
  memo_.emplace(obj, Memo{at, false, false});
  if (stores) {
    used_names_.insert(name);
    tape.string("name");
    tape.owned_string(name);
    tape.count_child(at);
  }
  for (auto [key, value] : nb::borrow<nb::dict>(parts[3])) {
    tape.owned_string(nb::cast<std::string>(key));
    walk(value.ptr());
    tape.count_child(at);
  }
  tape.end_container(at);
  if (!stores) return;
  request.tensors.push_back(make_write_tensor(nb::str(name.data(), name.size()), parts[0], parts[1], parts[2]));
}

void Saver::walk_reduced(PyObject* obj) {
  if (seen(obj)) return;
  nb::object reduced;
  try {
    reduced = hooks_.reduce(nb::handle(obj), context_);
  } catch (nb::python_error& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    unsupported(obj, py_text(e.value()));
  }
  // The tape views strings inside the reduced fields until the schema is rendered.
  keep_alive.push_back(reduced);
  nb::tuple parts = nb::borrow<nb::tuple>(reduced);
  const std::string tag = nb::cast<std::string>(parts[0]);
  const std::size_t at = open_tagged(tape.own(tag).data());
  // Registered like a tuple: an object rebuilt from its fields cannot exist before them, so a cycle through it is
  // refused, while a second reference to it is stored once.
  enter(obj, at, true);
  for (auto [key, value] : nb::borrow<nb::dict>(parts[1])) {
    const std::string field = nb::cast<std::string>(key);
    tape.owned_string(field);
    const bool named = !transparent_field(field);
    if (named) path_.push_back({PathPart::Type::Field, nullptr, 0, tape.own(field).data()});
    walk(value.ptr());
    if (named) path_.pop_back();
    tape.count_child(at);
  }
  tape.end_container(at);
  leave(obj);
}

// classify(type) for every type the walker has no fast path for, remembered here so that each further object of a
// known type (every tensor) costs a hash lookup instead of a Python call. The answer for a type never changes:
// classify is itself cached on the Python side. Each type is held by a strong reference, so its address cannot be
// reused by another type while its answer is remembered; the GIL guards the map.
Kind kind_of(PyTypeObject* type) {
  static auto* known = new std::unordered_map<PyTypeObject*, Kind>();  // leaked: types must not be released at exit
  if (const auto it = known->find(type); it != known->end()) return it->second;
  nb::object answer = hooks().classify(nb::handle(reinterpret_cast<PyObject*>(type)));
  const Kind kind = static_cast<Kind>(nb::cast<int>(answer));
  Py_INCREF(type);
  known->emplace(type, kind);
  return kind;
}

void Saver::walk_uncommon(PyObject* obj) {
  PyTypeObject* type = Py_TYPE(obj);
  if (type == &PyBytes_Type) return walk_bytes(obj, "bytes", PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj), false);
  if (type == &PyByteArray_Type) return walk_bytes(obj, "bytearray", PyByteArray_AS_STRING(obj), PyByteArray_GET_SIZE(obj), true);
  if (type == &PySet_Type) return walk_set(obj, "set", false);
  if (type == &PyFrozenSet_Type) return walk_set(obj, "frozenset", true);

  const Kind kind = kind_of(type);
  switch (kind) {
    case Kind::Tensor: return walk_array(obj);
    case Kind::Reduce: return walk_reduced(obj);
    case Kind::OrderedDict:
    case Kind::Counter: {
      if (seen(obj)) return;
      const std::size_t at = open_tagged(kind == Kind::Counter ? "Counter" : "OrderedDict");
      enter(obj, at, false);
      walk_pairs(obj, at);
      tape.end_container(at);
      leave(obj);
      return;
    }
    case Kind::DefaultDict: {
      if (seen(obj)) return;
      nb::object factory = nb::getattr(nb::handle(obj), "default_factory");
      nb::object name;
      try {
        name = hooks_.factory_name(factory);
      } catch (nb::python_error& e) {
        if (!e.matches(PyExc_TypeError)) throw;
        unsupported(obj, py_text(e.value()));
      }
      const std::size_t at = open_tagged("defaultdict");
      enter(obj, at, false);
      tape.string("factory");
      if (name.is_none()) {
        tape.null();
      } else {
        tape.owned_string(nb::cast<std::string>(name));
      }
      tape.count_child(at);
      walk_pairs(obj, at);
      tape.end_container(at);
      leave(obj);
      return;
    }
    case Kind::Deque: {
      if (seen(obj)) return;
      const std::size_t at = open_tagged("deque");
      enter(obj, at, false);
      nb::object maxlen = nb::getattr(nb::handle(obj), "maxlen");
      tape.string("maxlen");
      if (maxlen.is_none()) {
        tape.null();
      } else {
        tape.integer(nb::cast<std::int64_t>(maxlen));
      }
      tape.count_child(at);
      begin_items(at);
      const std::size_t list = tape.begin_array();
      nb::object items = nb::steal(PySequence_List(obj));
      if (!items.is_valid()) throw nb::python_error();
      for (Py_ssize_t k = 0; k < PyList_GET_SIZE(items.ptr()); ++k) {
        child({PathPart::Type::Index, nullptr, k}, PyList_GET_ITEM(items.ptr(), k), list);
      }
      tape.end_container(list);
      tape.end_container(at);
      leave(obj);
      return;
    }
    case Kind::Unsupported: break;
  }
  unsupported(obj);
}

}  // namespace

SaveResult walk_data(nb::handle data, const SaveOptions& options) {
  // The walk allocates a few objects per tensor (the adapters' entries, kept alive until the file is written) and
  // none of them can form garbage cycles that need collecting mid-walk; without this pause, the generational
  // collector ran over the caller's whole data every few hundred tensors (a third of a 10,000-tensor save).
  struct GcPause {
    int was_enabled = PyGC_Disable();
    ~GcPause() {
      if (was_enabled) PyGC_Enable();
    }
  } pause;
  Saver saver(options);
  try {
    saver.walk(data.ptr());
  } catch (const UnsupportedError& e) {
    nb::object cls = nb::module_::import_("safestructures._errors").attr("UnsupportedTypeError");
    PyErr_SetString(cls.ptr(), e.what());
    throw nb::python_error();
  } catch (const Error& e) {
    throw ArgumentError(e);
  }
  SaveResult result;
  if (options.escaped) {
    // Sized from the last save's schema: a large one is not grown by doubling, copy after copy.
    thread_local std::size_t last_size = 0;
    result.schema_document = make_escaped_schema_document(saver.tape, last_size + last_size / 8).text;
    last_size = std::min<std::size_t>(result.schema_document.size(), std::size_t{64} << 20);
  } else {
    result.schema_document = make_schema_document(saver.tape);
  }
  result.request = std::move(saver.request);
  result.keep_alive = std::move(saver.keep_alive);
  return result;
}

}  // namespace safestructures::bindings
