// The load walk's tagged nodes: built-in collections, ints, floats and strs in tagged form, tensors and bytes (no
// tensor named twice), and everything else through the fixed table of Python constructors.
#include <Python.h>

#include <array>
#include <optional>
#include <utility>

#include "loader.hpp"

namespace safestructures::bindings::load_walk {

nb::object Loader::named_before(std::string_view name) {
  const nb::object* found = named_.find(name);
  if (found == nullptr) return nb::object();
  if (index_ == nullptr) {
    invalid("tensor " + quote_name(name) + " is named by a second node (an object stored once and met again is a \"ref\")");
  }
  return *found;
}

namespace {

// The numpy dtype of each safetensors dtype, found once per process (numpy is never unloaded).
std::array<PyObject*, dtype_count> numpy_dtypes{};

}  // namespace

nb::object Loader::plain_numpy(std::size_t i, std::string_view name, const TensorInfo& info, const Shard& shard) {
  // Bool tensors take the adapter's way too, which checks that each byte is 0 or 1.
  if (index_ != nullptr || dtype_is_sub_byte(info.dtype) || info.dtype == Dtype::BOOL || !context_.loads_numpy()) return nb::object();
  PyObject* bar = nullptr;  // a bar counts the tensors make_tensor builds: shown loads take the adapter's way
  if (PyContextVar_Get(hooks_.load_bar.ptr(), nullptr, &bar) != 0) throw nb::python_error();
  const bool shown = bar != nullptr && bar != Py_None;
  Py_XDECREF(bar);
  if (shown) return nb::object();
  bool plain = true;
  tree_.for_each_field(i, [&](std::string_view key, std::size_t v) {
    plain = plain && (key == field::name || (key == field::framework && tape_[v].kind == NodeKind::String && tape_[v].text == "numpy"));
  });
  if (!plain) return nb::object();
  PyObject*& dtype = numpy_dtypes[static_cast<std::size_t>(info.dtype)];
  if (dtype == nullptr) {
    // The first such tensor of the process (of this dtype): from the numpy adapter's table.
    try {
      dtype = hooks_.numpy_dtype(py_str(dtype_name(info.dtype))).release().ptr();
    } catch (nb::python_error&) {
      return nb::object();  // the adapter says what is wrong
    }
  }
  const std::uint64_t offset = shard.reader.header().data_offset() + info.begin;
  nb::object array = numpy_view(shard.buffer, dtype, dtype_bits(info.dtype) / 8, info.shape, offset, info.nbytes());
  if (!array.is_valid()) return nb::object();  // the adapter makes it, and says what is wrong
  // As to_numpy records it: the base a later view node of this tensor looks into.
  if (!context_.record_numpy_base(name, array)) return nb::object();  // not one a load made: the adapter says so
  return array;
}

nb::object Loader::tensor(std::size_t i) {
  // A node without "name" views the storage of a tensor built earlier; the adapter finds it in the context.
  const TensorInfo* info = nullptr;
  TensorSource::Found found;
  bool view = false;
  const std::string_view name = tree_.tensor_name(i, view, failing());
  if (view) {
    if (index_ != nullptr && named_.find(name) == nullptr) {
      // As in the whole load, a view's storage is a tensor named before it.
      const auto it = index_->tensor_nodes.find(name);
      if (it != index_->tensor_nodes.end() && it->second < i) build(it->second);
    }
  } else {
    if (nb::object earlier = named_before(name); earlier.is_valid()) return earlier;
    found = find_tensor(name);
    info = found.info;
    if (nb::object array = plain_numpy(i, name, *info, *found.shard); array.is_valid()) {
      named_.add(name, array);
      return array;
    }
  }
  nb::dict fields;
  tree_.for_each_field(i, [&](std::string_view key, std::size_t v) {
    // A tensor's fields describe it alone (names, flags, a shape): JSON values, never references or tagged objects,
    // which could hand one large list to every view of a file.
    bool plain = tape_[v].kind != NodeKind::Object;
    if (tape_[v].kind == NodeKind::Array) {
      for (std::size_t e = v + 1; e < tape_[v].end && plain; ++e) plain = tape_[e].kind != NodeKind::Array && tape_[e].kind != NodeKind::Object;
    }
    if (!plain) invalid("a tensor's field " + quote_name(key) + " must be a JSON scalar or an array of scalars");
    fields[py_str(key)] = build_child(v, LoadPath::Type::Field, key);
  });
  if (info == nullptr) {
    return call_python("cannot rebuild a tensor view", [&] {
      return hooks_.make_tensor(nb::none(), nb::none(), nb::none(), nb::none(), nb::none(), fields, context_.get());
    });
  }
  nb::object out = call_python(("cannot rebuild tensor " + quote_name(name)).c_str(), [&] {
    return hooks_.make_tensor(found.shard->buffer, py_str(dtype_name(info->dtype)), shape_tuple(info->shape),
                              found.shard->reader.header().data_offset() + info->begin, info->nbytes(), fields, context_.get());
  });
  named_.add(name, out);
  return out;
}

nb::object Loader::bytes_value(std::size_t i, bool mutable_copy) {
  std::string_view name;
  const std::optional<std::vector<std::byte>> decoded = tree_.inline_bytes(i, name, failing());
  const char* data = nullptr;
  std::size_t size = 0;
  if (decoded) {
    data = reinterpret_cast<const char*>(decoded->data());
    size = decoded->size();
  } else {
    if (nb::object earlier = named_before(name); earlier.is_valid()) return earlier;
    const TensorSource::Found found = find_tensor(name);
    TreeReader::check_bytes_tensor(*found.info, failing());
    const auto view = found.shard->reader.tensor(*found.info).bytes;
    data = reinterpret_cast<const char*>(view.data());
    size = view.size();
  }
  PyObject* out = mutable_copy ? PyByteArray_FromStringAndSize(data, static_cast<Py_ssize_t>(size))
                               : PyBytes_FromStringAndSize(data, static_cast<Py_ssize_t>(size));
  if (out == nullptr) throw nb::python_error();
  nb::object value = nb::steal(out);
  if (!decoded) named_.add(name, value);
  return value;
}

nb::object Loader::build_tagged(std::size_t i, Kind kind) {
  if (index_ != nullptr && kind != Kind::Ref) {
    // A partial load may already have built this object for a reference met earlier; it stays one object.
    if (IdTable::Entry* entry = ids_.find(tree_.id(i))) return entry->object;
  }
  switch (kind) {
    case Kind::Ref: return follow_ref(i);
    case Kind::List:
    case Kind::Deque: return build_appended(i, kind);
    case Kind::Tuple: return build_tuple(i);
    case Kind::Set:
    case Kind::FrozenSet: return build_set(i, kind);
    case Kind::Dict:
    case Kind::OrderedDict:
    case Kind::Counter:
    case Kind::DefaultDict: return build_mapping(i, kind);
    case Kind::BigInt:
    case Kind::Float:
    case Kind::String: return tagged_scalar(i, kind);
    case Kind::Bytes:
    case Kind::ByteArray:
    case Kind::Tensor: {
      nb::object value = kind == Kind::Tensor ? tensor(i) : bytes_value(i, kind == Kind::ByteArray);
      define(i, value);
      return value;
    }
    default: return construct(i, kind);
  }
}

nb::object Loader::follow_ref(std::size_t i) {
  const std::size_t at = tape_.member(i, id_member);
  if (at == Tape::npos || tape_[at].kind != NodeKind::Int) invalid("a ref needs an integer \"#\"");
  const std::int64_t id = tape_[at].integer;
  if (IdTable::Entry* entry = ids_.find(id)) {
    // A list or dict of a plugin's value, which may hold its nested children, is that value's alone (plugin_value_).
    if (entry->plugin != plugin_value_ && entry->plugin != Tape::npos) {
      invalid("ref to #" + std::to_string(id) + ", a list or dict of a plugin node's value, from outside that value");
    }
    return entry->object;
  }
  if (index_ == nullptr || !ids_.in_range(id)) {
    invalid("ref to #" + std::to_string(id) + ", which is not defined before this point");
  }
  // A partial load follows a reference only where the whole load would: to an object defined before it.
  tree_.resolve(i, failing());
  return defined_elsewhere(id);
}

nb::object Loader::build_appended(std::size_t i, Kind kind) {
  // Defined before its items: a mutable container may hold itself.
  std::uint32_t count = 0;
  const std::size_t first = tree_.checked_items(i, kind, count, failing());
  nb::object out;
  if (kind == Kind::List) {
    out = nb::steal(PyList_New(0));
  } else {
    const std::optional<std::int64_t> maxlen = tree_.deque_maxlen(i, failing());
    out = hooks_.deque_type(nb::list(), maxlen ? nb::object(nb::int_(*maxlen)) : nb::none());
  }
  define(i, out, kind == Kind::List && nested_here_);
  nb::object append = kind == Kind::List ? nb::object() : out.attr("append");
  const NestedHere nested{*this, kind == Kind::List && nested_here_};
  build_items(first, count, [&](std::uint32_t, std::size_t, nb::object item) {
    if (kind != Kind::List) {
      append(item);
    } else if (PyList_Append(out.ptr(), item.ptr()) != 0) {
      throw nb::python_error();
    }
  });
  return out;
}

nb::object Loader::build_tuple(std::size_t i) {
  // Filled in place: nothing can refer to a tuple before it is complete (a cycle through one is refused), and a tuple
  // left partly filled by an error frees its filled slots only.
  // The usual tuple node, {"$":"tuple","items":[...]} and nothing more, has its items right after its tag and no id:
  // found without searching its members, and nothing to define. Any other shape goes through the tree reader.
  const bool usual = tape_[i].count == 2 && tape_[i + 4].kind == NodeKind::Array && tape_[i + 3].text == "items";
  std::uint32_t count = usual ? tape_[i + 4].count : 0;
  const std::size_t first = usual ? i + 5 : tree_.items(i, count, failing());
  nb::object tuple = nb::steal(PyTuple_New(count));
  if (!tuple.is_valid()) throw nb::python_error();
  const NestedHere nested{*this, false};
  bool atomic = true;  // whether every item is an object the garbage collector does not track
  build_items(first, count, [&](std::uint32_t k, std::size_t, nb::object item) {
    atomic = atomic && (!PyObject_IS_GC(item.ptr()) || !PyObject_GC_IsTracked(item.ptr()));
    PyTuple_SET_ITEM(tuple.ptr(), k, item.release().ptr());
  });
  // A tuple of such items can be part of no cycle: untracked now, as the collector's first pass over it would do, so
  // that the collection after the load does not visit every record's tuple.
  if (atomic && PyObject_GC_IsTracked(tuple.ptr())) PyObject_GC_UnTrack(tuple.ptr());
  if (!usual) define(i, tuple);
  return tuple;
}

nb::object Loader::build_set(std::size_t i, Kind kind) {
  const std::string what = "cannot build a " + std::string(kind_name(kind)) + ": ";
  std::uint32_t count = 0;
  const std::size_t first = tree_.items(i, count, failing());
  // A frozenset is filled in place too: nothing can refer to it before it is complete.
  nb::object result = nb::steal(kind == Kind::Set ? PySet_New(nullptr) : PyFrozenSet_New(nullptr));
  if (!result.is_valid()) throw nb::python_error();
  HashRuns runs;
  const NestedHere nested{*this, false};
  build_items(first, count, [&](std::uint32_t k, std::size_t node, nb::object item) {
    path_->push_back({LoadPath::Type::Index, {}, k});
    check_hashable(item, node, runs, "item", what);
    path_->pop_back();
    if (PySet_Add(result.ptr(), item.ptr()) != 0) {
      nb::python_error e;
      invalid(what + py_text(e.value()));
    }
    // A saved set never holds two equal items (as a mapping its keys: fill_pairs).
    if (static_cast<std::uint32_t>(PySet_GET_SIZE(result.ptr())) != k + 1) invalid(TreeReader::repeated_item(tape_[node], k, kind));
  });
  define(i, result);
  return result;
}

nb::object Loader::build_mapping(std::size_t i, Kind kind) {
  nb::object mapping;
  if (kind == Kind::Dict) {
    mapping = nb::steal(PyDict_New());
  } else if (kind == Kind::DefaultDict) {
    const std::size_t at = tape_.member(i, "factory");
    nb::object factory = nb::none();
    if (at == Tape::npos) invalid("a defaultdict needs a \"factory\" field");
    if (tape_[at].kind == NodeKind::String) {
      PyObject* found = PyDict_GetItemWithError(hooks_.factories.ptr(), py_str(tape_[at].text).ptr());
      if (found == nullptr) invalid("unknown defaultdict factory " + quote_name(tape_[at].text) + " (only built-in types are allowed)");
      factory = nb::borrow(found);
    } else if (tape_[at].kind != NodeKind::Null) {
      invalid("a defaultdict's \"factory\" must be a string or null");
    }
    mapping = hooks_.defaultdict_type(factory);
  } else {
    mapping = (kind == Kind::Counter ? hooks_.counter_type : hooks_.ordered_dict_type)();
  }
  define(i, mapping, kind == Kind::Dict && nested_here_);
  const NestedHere nested{*this, kind == Kind::Dict && nested_here_};
  fill_pairs(i, mapping, kind == Kind::Dict);
  return mapping;
}

nb::object Loader::tagged_scalar(std::size_t i, Kind kind) {
  PyObject* out = nullptr;
  if (kind == Kind::BigInt) {
    out = PyLong_FromString(std::string(tree_.big_int_hex(i, failing())).c_str(), nullptr, 16);
  } else if (kind == Kind::Float) {
    out = PyFloat_FromDouble(tree_.special_float(i, failing()));
  } else {
    const std::vector<std::uint32_t> points = tree_.code_points(i, failing());
    out = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, points.data(), static_cast<Py_ssize_t>(points.size()));
  }
  if (out == nullptr) throw nb::python_error();
  return nb::steal(out);
}

nb::object Loader::construct(std::size_t i, Kind kind) {
  const std::string_view tag = traits(kind).tag;
  PyObject* constructor = PyDict_GetItemWithError(hooks_.construct.ptr(), py_str(tag).ptr());
  if (constructor == nullptr) invalid("unknown tag " + quote_name(tag));
  if (kind == Kind::NamedTuple) {
    std::uint32_t count = 0;
    tree_.checked_items(i, kind, count, failing());
  }
  // A "nested" node only stands for a child a 1.0.0-style plugin put into its value; anywhere else it would hand
  // the loader's internal wrapper to the caller.
  const bool plugin = kind == Kind::Plugin;
  if (kind == Kind::Nested && plugin_depth_ == 0 && index_ != nullptr && index_->in_plugin[i]) {
    // A partial load of a part of a plugin's value, without the plugin node around it: each nested value is itself,
    // as in the record a load without the plugin makes.
    const std::size_t v = tape_.member(i, "v");
    if (v == Tape::npos) invalid("a \"nested\" node needs a value \"v\"");
    return build(v);
  }
  if (kind == Kind::Nested && !nested_here_) {
    invalid("a \"nested\" node may only appear inside a plugin node's value, at its top or in its lists and dicts");
  }
  // A save writes each nested child afresh: one with an id could be referred to from outside the plugin's value.
  if (kind == Kind::Nested && tape_.member(i, id_member) != Tape::npos) invalid("a \"nested\" node cannot have an id \"#\"");
  plugin_depth_ += plugin;
  OnExit leave{[this, plugin] { plugin_depth_ -= plugin; }};
  const NestedHere nested{*this, plugin};
  const std::size_t outer_plugin = plugin_value_;
  if (plugin) plugin_value_ = i;
  if (kind == Kind::Nested) plugin_value_ = Tape::npos;
  OnExit restore{[this, outer_plugin] { plugin_value_ = outer_plugin; }};
  nb::dict fields;
  tree_.for_each_field(i, [&](std::string_view key, std::size_t v) {
    if (tree_.kind(v) == Kind::Ref && is_own_field(kind, key)) {
      invalid("the field " + quote_name(key) + " of a " + quote_name(tag) + " node describes that node alone and cannot be a \"ref\"");
    }
    // Wrapper fields ("fields", "items", ...) do not appear in paths, as when saving.
    fields[py_str(key)] = is_transparent_field(key) ? build(v) : build_child(v, LoadPath::Type::Field, key);
  });
  nb::object value = call_python(("cannot rebuild a " + std::string(tag)).c_str(), [&] { return nb::borrow(constructor)(fields, context_.get()); });
  define(i, value);
  return value;
}

}  // namespace safestructures::bindings::load_walk
