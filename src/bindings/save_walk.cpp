// The save walk: Python objects written through the tree writer (exact-type fast paths first), tensors and objects of
// other types described by the Python layer's hooks.
#include <Python.h>

#include <unordered_map>

#include "bindings.hpp"
#include "hooks.hpp"
#include "safestructures/tree_writer.hpp"

namespace safestructures::bindings {
namespace {

// Whether the one reference to `obj` is its container's: then nothing else in the data can reach it, so the walk meets
// it once and it needs no place in the memo of shared objects (a reference is written only for an object met twice,
// and a cycle through an object passes through one of its references). Containers made of fresh records (a run
// log's dicts, lists and tuples) are mostly such. Call it before taking a reference of one's own.
bool only_reference(PyObject* obj) { return Py_REFCNT(obj) == 1; }

// A key as UTF-8 (str() of a key that is not a str), "?" when it has none.
std::string key_text(PyObject* key) {
  nb::object text = PyUnicode_Check(key) ? nb::borrow(key) : nb::steal(PyObject_Str(key));
  Py_ssize_t size = 0;
  const char* s = text.is_valid() ? PyUnicode_AsUTF8AndSize(text.ptr(), &size) : nullptr;
  if (s == nullptr) {
    PyErr_Clear();
    return "?";
  }
  return std::string(s, static_cast<std::size_t>(size));
}

PyObject* py(const void* obj) { return static_cast<PyObject*>(const_cast<void*>(obj)); }

// Where the memory a tensor is written from is now: its first byte and its extent in bytes, through the buffer
// protocol (a numpy array), else its __array_interface__ read again, as read_array read it (ml_dtypes' arrays, with
// their nbytes: numpy may shrink an array's block in place; torch's _Memory, whose storage keeps its block when it
// shrinks: 0).
std::pair<const void*, std::size_t> memory_now(nb::handle holder) {
  const bool ndarray = is_ndarray(holder);
  Py_buffer view;
  // Only a numpy array is asked for its buffer: a failed ask costs an exception, per tensor of a torch save.
  if (ndarray && PyObject_GetBuffer(holder.ptr(), &view, PyBUF_STRIDES) == 0) {
    const std::pair<const void*, std::size_t> memory{view.buf, static_cast<std::size_t>(view.len)};
    PyBuffer_Release(&view);
    return memory;
  }
  PyErr_Clear();
  static PyObject* const interface_name = PyUnicode_InternFromString("__array_interface__");  // made once
  nb::object interface = nb::steal(PyObject_GetAttr(holder.ptr(), interface_name));
  if (!interface.is_valid()) throw nb::python_error();
  nb::tuple data = nb::cast<nb::tuple>(interface["data"]);
  return {reinterpret_cast<const void*>(static_cast<std::uintptr_t>(nb::cast<unsigned long long>(data[0]))),
          ndarray ? nb::cast<std::size_t>(nb::getattr(holder, "nbytes")) : 0};
}

// The UTF-8 text of an exact str, or false for one without a UTF-8 form (lone surrogates). An ASCII str is read in
// place: PyUnicode_AsUTF8AndSize would look up its cached UTF-8 form first, a call per key and value of every record.
bool utf8_of(PyObject* str, std::string_view& text) {
  if (PyUnicode_IS_COMPACT_ASCII(str)) {
    text = {static_cast<const char*>(PyUnicode_DATA(str)), static_cast<std::size_t>(PyUnicode_GET_LENGTH(str))};
    return true;
  }
  Py_ssize_t size = 0;
  const char* s = PyUnicode_AsUTF8AndSize(str, &size);
  if (s == nullptr) {
    PyErr_Clear();
    return false;
  }
  text = {s, static_cast<std::size_t>(size)};
  return true;
}

class SaveWalk final : public NodeText {
 public:
  SaveWalk(std::uint32_t max_depth, nb::handle context)
      : writer(max_depth, *this), hooks_(hooks()), context_(context) {}

  // `unshared`: the caller saw that its container holds the only reference to `obj` (see only_reference).
  void walk(PyObject* obj, bool unshared = false);
  TreeWriter writer;
  std::vector<nb::object> keep_alive;
  // Every object the memo (TreeWriter::seen) names by its address, held while the walk lasts: code the walk runs
  // (to_data, __getstate__, a tensor's adapter) may drop the data's last reference to one, and a new object made at
  // its address would then be written as a reference to it. (A key on the path is held while it is.)
  std::vector<nb::object> held;
  void hold(PyObject* obj) { held.push_back(nb::borrow(obj)); }

  // The objects holding the memory tensors are written from, with where it was when the walk read it: code the walk
  // runs later may move or free it (a to_data calling ndarray.resize(refcheck=False) on the array or on the one it
  // views, resizing a torch tensor or replacing its storage), and the writer would read freed memory. Checked once
  // the walk is done, before any of it is read.
  struct MemoryWritten {
    nb::object holder;
    std::pair<const void*, std::size_t> memory;
    std::string name;
  };
  std::vector<MemoryWritten> memory_written;
  void check_memory_written() const;

  std::string key_name(const void* key) const override { return key_text(py(key)); }
  std::string key_shown(const void* key) const override {
    if (PyUnicode_CheckExact(py(key))) return quote_name(key_text(py(key)));
    nb::object r = nb::steal(PyObject_Repr(py(key)));
    if (!r.is_valid()) PyErr_Clear();
    return r.is_valid() ? py_text(r) : std::string("?");
  }
  std::string type_name(const void* obj) const override { return Py_TYPE(py(obj))->tp_name; }

 private:
  // Exact types first: these are what nested data is made of, and they need no Python call.
  void walk_int(PyObject* obj);
  void walk_str(PyObject* obj);
  void walk_list(PyObject* obj, bool unshared);
  void walk_dict(PyObject* obj, bool unshared);
  void walk_items(PyObject* obj, Kind kind, bool immutable, bool unshared = false);
  void walk_bytes(PyObject* obj, Kind kind, const char* data, Py_ssize_t size);
  void walk_uncommon(PyObject* obj);
  void walk_array(PyObject* obj);
  void walk_reduced(PyObject* obj);

  // Writes a scalar of an exact type (None, str, int, float, bool) and returns true, or returns false for anything
  // else. A scalar raises nothing that names a path and holds no object others may refer to: it needs no path part.
  bool scalar(PyObject* obj) {
    PyTypeObject* type = Py_TYPE(obj);
    if (obj == Py_None) {
      writer.out.null();
    } else if (type == &PyUnicode_Type) {
      walk_str(obj);
    } else if (type == &PyLong_Type) {
      walk_int(obj);
    } else if (type == &PyFloat_Type) {
      writer.out.float_value(PyFloat_AS_DOUBLE(obj));
    } else if (type == &PyBool_Type) {
      writer.out.boolean(obj == Py_True);
    } else {
      return false;
    }
    return true;
  }
  // A field written before "items" (a deque's "maxlen", a defaultdict's "factory"): None, an int or a str.
  void leading_field(std::string_view name, nb::handle value);
  // Calls a hook about `obj`, which runs the data's own code (a to_data, a property, __getstate__, a tensor's adapter,
  // the hash of a class): see hook_failed for what leaves it.
  template <class Call>
  auto storable(PyObject* obj, Call&& call) -> decltype(call()) {
    try {
      return call();
    } catch (nb::python_error& e) {
      hook_failed(obj, e);
    }
  }
  [[noreturn]] void hook_failed(PyObject* obj, nb::python_error& e);
  [[noreturn]] void unsupported(PyObject* obj, const std::string& why = {});

 public:
  // The exception a hook raised, given as the __cause__ of the UnsupportedTypeError that names its path.
  nb::object cause;

 private:

  const Hooks& hooks_;
  nb::handle context_;
};

void SaveWalk::unsupported(PyObject* obj, const std::string& why) {
  PyTypeObject* type = Py_TYPE(obj);
  nb::object module = nb::getattr(nb::handle(reinterpret_cast<PyObject*>(type)), "__module__", nb::str("?"));
  // A static type's tp_name holds its module too ("numpy.ndarray"): the name after its last dot.
  const std::string_view tp_name = type->tp_name;
  const std::string_view short_name = tp_name.substr(tp_name.rfind('.') + 1);
  const std::string name =
      nb::isinstance<nb::str>(module) ? py_text(module) + "." + std::string(short_name) : std::string(tp_name);
  throw UnsupportedData("cannot save an object of type " + name + " at " + writer.path_text() + (why.empty() ? "" : ": " + why));
}

// What a hook raised, naming the path of the object it was about: a TypeError (the object cannot be stored) as
// UnsupportedTypeError with its text; safestructures' own errors keep their class and code, with the path added; any
// other exception (a to_data's ZeroDivisionError, a property's RuntimeError) as UnsupportedTypeError naming it, the
// original chained as its __cause__. A MemoryError, and what is no Exception (KeyboardInterrupt), pass as they are.
void SaveWalk::hook_failed(PyObject* obj, nb::python_error& e) {
  PyObject* raised = e.value().ptr();
  if (!PyObject_TypeCheck(raised, reinterpret_cast<PyTypeObject*>(PyExc_Exception)) || e.matches(PyExc_MemoryError)) throw;
  if (PyObject_IsInstance(raised, error_class("SafestructuresError").ptr()) == 1) {
    const nb::handle cls = reinterpret_cast<PyObject*>(Py_TYPE(raised));
    set_error(cls, "at " + writer.path_text() + ": " + py_text(e.value()), e.value().attr("code"));
    nb::python_error again;
    PyException_SetCause(again.value().ptr(), nb::borrow(raised).release().ptr());
    again.restore();
    throw nb::python_error();
  }
  cause = nb::borrow(raised);
  if (e.matches(PyExc_TypeError)) unsupported(obj, py_text(e.value()));
  unsupported(obj, std::string(Py_TYPE(raised)->tp_name) + ": " + py_text(e.value()));
}

void SaveWalk::walk(PyObject* obj, bool unshared) {
  PyTypeObject* type = Py_TYPE(obj);
  if (scalar(obj)) {
    return;
  } else if (type == &PyList_Type) {
    walk_list(obj, unshared);
  } else if (type == &PyDict_Type) {
    walk_dict(obj, unshared);
  } else if (type == &PyTuple_Type) {
    walk_items(obj, Kind::Tuple, true, unshared);
  } else {
    walk_uncommon(obj);
  }
}

void SaveWalk::walk_int(PyObject* obj) {
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(obj, &overflow);
  if (!overflow) {
    writer.out.integer(value);
    return;
  }
  nb::object hex = nb::steal(PyNumber_ToBase(obj, 16));
  if (!hex.is_valid()) throw nb::python_error();
  writer.big_int(nb::borrow<nb::str>(hex).c_str());
}

void SaveWalk::walk_str(PyObject* obj) {
  std::string_view text;
  if (utf8_of(obj, text)) {
    writer.out.string(text);
    return;
  }
  std::vector<std::uint32_t> points(static_cast<std::size_t>(PyUnicode_GET_LENGTH(obj)));
  for (std::size_t k = 0; k < points.size(); ++k) points[k] = PyUnicode_READ_CHAR(obj, static_cast<Py_ssize_t>(k));
  writer.code_points(points);
}

void SaveWalk::walk_list(PyObject* obj, bool unshared) {
  PyObject* shared = unshared ? nullptr : obj;
  if (shared && writer.seen(shared)) return;
  const std::size_t at = writer.out.begin_array();
  writer.enter(shared, at, false);
  if (shared) hold(shared);
  // Re-reads the size each step: saving must not crash if user code run by the walk mutates the list.
  for (Py_ssize_t k = 0; k < PyList_GET_SIZE(obj); ++k) {
    PyObject* value = PyList_GET_ITEM(obj, k);
    if (!scalar(value)) {
      const bool unshared_item = only_reference(value);
      nb::object item = nb::borrow(value);
      writer.push_index(static_cast<std::size_t>(k));
      walk(item.ptr(), unshared_item);
      writer.pop();
    }
  }
  writer.leave(shared, at);
}

void SaveWalk::walk_dict(PyObject* obj, bool unshared) {
  PyObject* shared = unshared ? nullptr : obj;
  if (shared && writer.seen(shared)) return;
  PyObject *key = nullptr, *value = nullptr;
  Py_ssize_t pos = 0;
  std::string_view text;
  while (PyDict_Next(obj, &pos, &key, &value)) {
    // "$" marks tagged objects, and a plain object's keys are UTF-8 strings: any other dict is written as pairs.
    if (!PyUnicode_CheckExact(key) || !utf8_of(key, text) || text == tag_member) return walk_items(obj, Kind::Dict, false, unshared);
  }
  const std::size_t at = writer.out.begin_object();
  writer.enter(shared, at, false);
  if (shared) hold(shared);
  pos = 0;
  // Code the walk runs (to_data, a tensor's adapter) may change the dict: PyDict_Next then skips or meets keys the
  // check above did not see ("$" would make the object read as a tagged node). As Python's own iteration, a dict that
  // changed size is refused, and a key checked again.
  const Py_ssize_t size = PyDict_GET_SIZE(obj);
  while (PyDict_Next(obj, &pos, &key, &value)) {
    if (!PyUnicode_CheckExact(key) || !utf8_of(key, text) || text == tag_member) unsupported(key, "a key changed while the dict was saved");
    writer.out.key(text);
    if (!scalar(value)) {
      const bool unshared_value = only_reference(value);
      nb::object value_held = nb::borrow(value), key_held = nb::borrow(key);
      writer.push_key(key);
      walk(value_held.ptr(), unshared_value);
      writer.pop();
      if (PyDict_GET_SIZE(obj) != size) unsupported(obj, "the dict changed size while it was saved");
    }
  }
  writer.leave(shared, at);
}

// A tuple, set, frozenset or deque ("maxlen" first), or any mapping ("factory" first for a defaultdict) as pairs:
// {"$":tag,"items":[...]}, a mapping's items [[k, v], ...] in iteration order.
void SaveWalk::walk_items(PyObject* obj, Kind kind, bool immutable, bool unshared) {
  // An empty tuple is not an object anyone can tell apart from another, so it is never a reference.
  PyObject* shared = unshared || (kind == Kind::Tuple && PyTuple_GET_SIZE(obj) == 0) ? nullptr : obj;
  if (shared && writer.seen(shared)) return;
  nb::object factory;
  if (kind == Kind::DefaultDict) {
    factory = storable(obj, [&] { return hooks_.factory_name(nb::getattr(nb::handle(obj), "default_factory")); });
  }
  const std::size_t at = writer.begin_tagged(kind);
  writer.enter(shared, at, immutable);
  if (shared) hold(shared);
  if (kind == Kind::Deque) leading_field("maxlen", nb::getattr(nb::handle(obj), "maxlen"));
  if (factory.is_valid()) leading_field("factory", factory);
  const bool pairs = traits(kind).shape == Shape::Mapping;
  nb::object items;
  if (kind == Kind::Tuple) {
    items = nb::borrow(obj);
  } else {
    items = nb::steal(pairs ? PyMapping_Items(obj) : PySequence_List(obj));
    if (!items.is_valid()) throw nb::python_error();
    // Sorted where the items allow it, so equal sets give equal files whatever their insertion history or hash seed. An
    // item's __lt__ that raises leaves them unsorted; an interrupt (Ctrl-C while it ran) or a MemoryError is not
    // swallowed.
    if ((kind == Kind::Set || kind == Kind::FrozenSet) && PyList_Sort(items.ptr()) != 0) {
      if (!PyErr_ExceptionMatches(PyExc_Exception) || PyErr_ExceptionMatches(PyExc_MemoryError)) throw nb::python_error();
      PyErr_Clear();
    }
  }
  const std::size_t list = writer.begin_items();
  for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(items.ptr()); ++k) {
    PyObject* item = PySequence_Fast_GET_ITEM(items.ptr(), k);
    if (!pairs) {
      if (!scalar(item)) {
        writer.push_index(static_cast<std::size_t>(k));
        walk(item, only_reference(item));
        writer.pop();
      }
      continue;
    }
    PyObject* key = PyTuple_GET_ITEM(item, 0);
    const std::size_t pair_at = writer.out.begin_array();
    writer.push_key(key);
    walk(key);
    walk(PyTuple_GET_ITEM(item, 1));
    writer.pop();
    writer.out.end_container(pair_at);
  }
  writer.out.end_container(list);
  writer.leave(shared, at);
}

void SaveWalk::leading_field(std::string_view name, nb::handle value) {
  writer.out.key(name);
  if (value.is_none()) {
    writer.out.null();
  } else if (nb::isinstance<nb::str>(value)) {
    writer.out.string(nb::cast<std::string>(value));
  } else {
    writer.out.integer(nb::cast<std::int64_t>(value));
  }
}

void SaveWalk::walk_bytes(PyObject* obj, Kind kind, const char* data, Py_ssize_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), static_cast<std::size_t>(size));
  if (writer.bytes(obj, kind, bytes, kind == Kind::ByteArray)) {
    // Written from its memory after the walk: a bytearray is held through a buffer export, so that code the walk runs
    // (a to_data that clears it) cannot resize it and free the memory under the write (BufferError instead).
    nb::object held_bytes = kind == Kind::ByteArray ? nb::steal(PyMemoryView_FromObject(obj)) : nb::borrow(obj);
    if (!held_bytes.is_valid()) throw nb::python_error();
    keep_alive.push_back(std::move(held_bytes));
  } else if (kind == Kind::ByteArray) {
    hold(obj);  // in the memo whatever its size
  }
}

void SaveWalk::walk_array(PyObject* obj) {
  if (writer.seen(obj)) return;
  hold(obj);
  // Proposed, not claimed: a tensor that views another one's storage writes no data of its own.
  std::string name = writer.free_name();
  nb::object entry = storable(obj, [&] { return hooks_.array_entry(nb::handle(obj), py_str(name), context_); });
  // The entry holds the arrays whose memory the tensors view until they are written.
  keep_alive.push_back(entry);
  nb::tuple parts = nb::borrow<nb::tuple>(entry);
  const bool stores = !parts[0].is_none();
  const std::size_t at = writer.begin_tensor(obj, stores ? name : std::string());
  for (auto [key, value] : nb::borrow<nb::dict>(parts[3])) {
    const std::string field = nb::cast<std::string>(key);
    writer.out.key(field);
    std::string_view text;
    if (writer.writes_record() && TreeWriter::names_tensor(field) && PyUnicode_CheckExact(value.ptr()) && utf8_of(value.ptr(), text)) {
      writer.tensor_name(text);  // a view's storage: renamed with the tensor it names
    } else {
      walk(value.ptr());
    }
  }
  writer.out.end_container(at);
  if (!stores) return;
  writer.tensors.push_back(make_write_tensor(py_str(name), parts[0], parts[1], parts[2]));
  nb::object holder = nb::borrow(parts[2]);
  if (is_ndarray(holder)) {
    // A view's memory is its base's (followed to the array owning it): resizing the base frees it, the view unchanged.
    static PyObject* const base_name = PyUnicode_InternFromString("base");  // looked up per array: made once
    for (nb::object base = nb::steal(PyObject_GetAttr(holder.ptr(), base_name));; base = nb::steal(PyObject_GetAttr(holder.ptr(), base_name))) {
      if (!base.is_valid()) throw nb::python_error();
      if (!is_ndarray(base)) break;
      holder = base;
    }
  }
  memory_written.push_back({holder, memory_now(holder), std::move(name)});
}

void SaveWalk::check_memory_written() const {
  for (const MemoryWritten& written : memory_written) {
    if (memory_now(written.holder) != written.memory) {
      throw UnsupportedData("tensor " + quote_name(written.name) + " changed while the data was saved: code the save ran (a to_data, "
                            "a __getstate__) resized it, the array it views or its storage");
    }
  }
}

void SaveWalk::walk_reduced(PyObject* obj) {
  if (writer.seen(obj)) return;
  hold(obj);
  nb::object reduced = storable(obj, [&] { return hooks_.reduce(nb::handle(obj), context_); });
  // Fields the reduction made may hold memory a tensor views until it is written.
  keep_alive.push_back(reduced);
  nb::tuple parts = nb::borrow<nb::tuple>(reduced);
  const std::size_t at = writer.out.begin_tagged(nb::cast<std::string>(parts[0]));
  // Registered like a tuple: an object rebuilt from its fields cannot exist before them, so a cycle through it is
  // refused, while a second reference to it is stored once.
  writer.enter(obj, at, true);
  for (auto [key, value] : nb::borrow<nb::dict>(parts[1])) {
    const std::string field = nb::cast<std::string>(key);
    writer.out.key(field);
    const bool named = writer.push_field(field);
    nb::object value_held = nb::borrow(value);  // the fields may be a plugin's own dict, which a walk may change
    walk(value_held.ptr());
    if (named) writer.pop();
  }
  writer.leave(obj, at);
}

// classify(type) for every type the walker has no fast path for, remembered here so that each further object of a
// known type (every tensor) costs a hash lookup instead of a Python call. The answer for a type never changes:
// classify is itself cached on the Python side. Each type is held by a strong reference, so its address cannot be
// reused by another type while its answer is remembered; the GIL guards the map.
SaveRoute route_of(PyTypeObject* type) {
  static auto* known = new std::unordered_map<PyTypeObject*, SaveRoute>();  // leaked: types must not be released at exit
  if (const auto it = known->find(type); it != known->end()) return it->second;
  nb::object answer = hooks().classify(nb::handle(reinterpret_cast<PyObject*>(type)));
  const SaveRoute route = static_cast<SaveRoute>(nb::cast<int>(answer));
  Py_INCREF(type);
  known->emplace(type, route);
  return route;
}

void SaveWalk::walk_uncommon(PyObject* obj) {
  PyTypeObject* type = Py_TYPE(obj);
  if (type == &PyBytes_Type) return walk_bytes(obj, Kind::Bytes, PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj));
  if (type == &PyByteArray_Type) return walk_bytes(obj, Kind::ByteArray, PyByteArray_AS_STRING(obj), PyByteArray_GET_SIZE(obj));
  if (type == &PySet_Type) return walk_items(obj, Kind::Set, false);
  if (type == &PyFrozenSet_Type) return walk_items(obj, Kind::FrozenSet, true);
  switch (storable(obj, [&] { return route_of(type); })) {
    case SaveRoute::Tensor: return walk_array(obj);
    case SaveRoute::Reduce: return walk_reduced(obj);
    case SaveRoute::Deque: return walk_items(obj, Kind::Deque, false);
    case SaveRoute::OrderedDict: return walk_items(obj, Kind::OrderedDict, false);
    case SaveRoute::Counter: return walk_items(obj, Kind::Counter, false);
    case SaveRoute::DefaultDict: return walk_items(obj, Kind::DefaultDict, false);
    case SaveRoute::Unsupported: break;
  }
  unsupported(obj);
}

}  // namespace

namespace {

SaveResult walk_tree(nb::handle data, std::uint32_t max_depth, nb::handle context, const std::uint32_t* record_last_id) {
  GcPause pause;
  SaveWalk walk(max_depth, context);
  if (record_last_id != nullptr) walk.writer.write_as_record(*record_last_id);
  try {
    walk.walk(data.ptr());
    walk.check_memory_written();
  } catch (const UnsupportedData& e) {
    nb::object error = error_class("UnsupportedTypeError")(python_text(e.what()));
    if (walk.cause.is_valid()) PyException_SetCause(error.ptr(), walk.cause.release().ptr());
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
    throw nb::python_error();
  } catch (const Error& e) {
    throw ArgumentError(e);
  }
  return SaveResult{std::move(walk.writer).finish(), std::move(walk.keep_alive)};
}

}  // namespace

SaveResult walk_data(nb::handle data, std::uint32_t max_depth, nb::handle context) {
  return walk_tree(data, max_depth, context, nullptr);
}

SaveResult walk_record(nb::handle data, std::uint32_t max_depth, nb::handle context, std::uint32_t last_id) {
  return walk_tree(data, max_depth, context, &last_id);
}

}  // namespace safestructures::bindings
