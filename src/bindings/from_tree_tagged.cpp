// The load walk's tagged nodes: built-in collections, ints, floats and strs in tagged form, tensors and bytes (no
// tensor named twice), and everything else through the fixed table of Python constructors.
#include <Python.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <optional>

#include "loader.hpp"
#include "safestructures/codec.hpp"

namespace safestructures::bindings::load_walk {

nb::object Loader::named_before(std::string_view name) {
  const auto it = named_.find(name);
  if (it == named_.end()) return nb::object();
  if (index_ == nullptr) {
    invalid("tensor " + quote_name(name) + " is named by a second node (an object stored once and met again is a \"ref\")");
  }
  return it->second;
}

nb::object Loader::tensor(std::size_t i) {
  // A node without "name" views the storage of a tensor built earlier; the adapter finds it in the context.
  const TensorInfo* info = nullptr;
  TensorSource::Found found;
  std::string_view name;
  if (tape_.member(i, "name") == Tape::npos) {
    const std::size_t storage = tape_.member(i, "storage");
    if (storage == Tape::npos || tape_[storage].kind != NodeKind::String) {
      invalid("tagged \"tensor\" needs a string field \"name\" (or \"storage\", for a view of an earlier tensor)");
    }
    if (index_ != nullptr && !named_.contains(tape_[storage].text)) {
      const auto it = index_->tensor_nodes.find(tape_[storage].text);
      if (it != index_->tensor_nodes.end()) build(it->second);
    }
  } else {
    name = string_field(i, "name");
    if (nb::object earlier = named_before(name); earlier.is_valid()) return earlier;
    found = find_tensor(name);
    info = found.info;
  }
  nb::dict fields;
  const Node& object = tape_[i];
  std::size_t c = i + 1;
  for (std::uint32_t k = 0; k < object.count; ++k) {
    const std::string_view key = tape_[c].text;
    if (key != "$" && key != "#") {
      // A tensor's fields describe it alone (names, flags, a shape): JSON values, never references or tagged objects,
      // which could hand one large list to every view of a file.
      const std::size_t v = c + 1;
      bool plain = tape_[v].kind != NodeKind::Object;
      if (tape_[v].kind == NodeKind::Array) {
        for (std::size_t e = v + 1; e < tape_[v].end && plain; ++e) plain = tape_[e].kind != NodeKind::Array && tape_[e].kind != NodeKind::Object;
      }
      if (!plain) invalid("a tensor's field " + quote_name(key) + " must be a JSON scalar or an array of scalars");
      fields[nb::str(key.data(), key.size())] = build_child(v, {LoadPath::Type::Field, key});
    }
    c = tape_.next(c + 1);
  }
  if (info == nullptr) {
    return call_python("cannot rebuild a tensor view", [&] {
      return hooks_.make_tensor(nb::none(), nb::none(), nb::none(), nb::none(), nb::none(), fields, context_);
    });
  }
  nb::tuple shape = nb::steal<nb::tuple>(PyTuple_New(static_cast<Py_ssize_t>(info->shape.size())));
  for (std::size_t d = 0; d < info->shape.size(); ++d) PyTuple_SET_ITEM(shape.ptr(), d, PyLong_FromUnsignedLongLong(info->shape[d]));
  const auto dtype = dtype_name(info->dtype);
  nb::object out = call_python(("cannot rebuild tensor " + quote_name(name)).c_str(), [&] {
    return hooks_.make_tensor(found.shard->buffer, nb::str(dtype.data(), dtype.size()), shape,
                              found.shard->reader.header().data_offset() + info->begin, info->nbytes(), fields, context_);
  });
  named_.emplace(name, out);
  return out;
}

nb::object Loader::bytes_value(std::size_t i, bool mutable_copy) {
  std::optional<std::vector<std::byte>> decoded;
  const char* data = nullptr;
  std::size_t size = 0;
  if (const std::size_t b64 = tape_.member(i, "b64"); b64 != Tape::npos) {
    if (tape_[b64].kind == NodeKind::String) decoded = codec::base64_decode(tape_[b64].text);
    if (!decoded) invalid("\"b64\" is not valid base64");
    data = reinterpret_cast<const char*>(decoded->data());
    size = decoded->size();
  } else {
    const std::string_view name = string_field(i, "tensor");
    if (nb::object earlier = named_before(name); earlier.is_valid()) return earlier;
    const TensorSource::Found found = find_tensor(name);
    const TensorInfo* info = found.info;
    if (info->dtype != Dtype::U8 || info->shape.size() != 1) invalid("bytes tensor " + quote_name(name) + " must be a 1-D U8 tensor", ErrorCode::TensorMismatch);
    const auto view = found.shard->reader.tensor(*info).bytes;
    data = reinterpret_cast<const char*>(view.data());
    size = view.size();
  }
  PyObject* out = mutable_copy ? PyByteArray_FromStringAndSize(data, static_cast<Py_ssize_t>(size))
                               : PyBytes_FromStringAndSize(data, static_cast<Py_ssize_t>(size));
  if (out == nullptr) throw nb::python_error();
  nb::object value = nb::steal(out);
  if (!decoded) named_.emplace(string_field(i, "tensor"), value);
  return value;
}

nb::object Loader::build_tagged(std::size_t i, std::string_view tag) {
  if (index_ != nullptr && tag_of(tag) != Tag::Ref) {
    // A partial load may already have built this object for a reference met earlier; it stays one object.
    const std::size_t at = tape_.member(i, "#");
    if (at != Tape::npos && tape_[at].kind == NodeKind::Int) {
      if (IdTable::Entry* entry = ids_.find(tape_[at].integer)) return entry->object;
    }
  }
  switch (tag_of(tag)) {
    case Tag::Ref: {
      const std::size_t at = tape_.member(i, "#");
      if (at == Tape::npos || tape_[at].kind != NodeKind::Int) invalid("a ref needs an integer \"#\"");
      const std::int64_t id = tape_[at].integer;
      if (!ids_.in_range(id)) invalid("ref to #" + std::to_string(id) + ", which is not defined before this point");
      IdTable::Entry* entry = ids_.find(id);
      if (entry == nullptr) {
        if (index_ == nullptr) invalid("ref to #" + std::to_string(id) + ", which is not defined before this point");
        return defined_elsewhere(id);
      }
      return entry->object;
    }
    case Tag::List: {
      nb::object list = nb::steal(PyList_New(0));
      define(i, list);
      std::uint32_t count = 0;
      std::size_t c = items(i, count);
      for (std::uint32_t k = 0; k < count; ++k) {
        nb::object item = build_child(c, {LoadPath::Type::Index, {}, k});
        if (PyList_Append(list.ptr(), item.ptr()) != 0) throw nb::python_error();
        c = tape_.next(c);
      }
      return list;
    }
    case Tag::Tuple: {
      // Filled in place: nothing can refer to a tuple before it is complete (a cycle through one is refused), and a
      // tuple left partly filled by an error frees its filled slots only.
      std::uint32_t count = 0;
      std::size_t c = items(i, count);
      nb::object tuple = nb::steal(PyTuple_New(count));
      if (!tuple.is_valid()) throw nb::python_error();
      for (std::uint32_t k = 0; k < count; ++k) {
        nb::object item = build_child(c, {LoadPath::Type::Index, {}, k});
        PyTuple_SET_ITEM(tuple.ptr(), k, item.release().ptr());
        c = tape_.next(c);
      }
      define(i, tuple);
      return tuple;
    }
    case Tag::Set:
    case Tag::FrozenSet: {
      std::uint32_t count = 0;
      std::size_t c = items(i, count);
      // A frozenset is filled in place too: nothing can refer to it before it is complete.
      nb::object result = nb::steal(tag_of(tag) == Tag::Set ? PySet_New(nullptr) : PyFrozenSet_New(nullptr));
      if (!result.is_valid()) throw nb::python_error();
      HashRuns runs;
      for (std::uint32_t k = 0; k < count; ++k) {
        nb::object item = build_child(c, {LoadPath::Type::Index, {}, k});
        path_.push_back({LoadPath::Type::Index, {}, k});
        check_hashable(item, c, runs, "item", "cannot build a " + std::string(tag) + ": ");
        path_.pop_back();
        if (PySet_Add(result.ptr(), item.ptr()) != 0) {
          nb::python_error e;
          invalid(std::string("cannot build a ") + std::string(tag) + ": " + py_text(e.value()));
        }
        c = tape_.next(c);
      }
      define(i, result);
      return result;
    }
    case Tag::Dict: {
      nb::object dict = nb::steal(PyDict_New());
      define(i, dict);
      fill_pairs(i, dict, true);
      return dict;
    }
    case Tag::OrderedDict:
    case Tag::Counter: {
      nb::object mapping = (tag_of(tag) == Tag::Counter ? hooks_.counter_type : hooks_.ordered_dict_type)();
      define(i, mapping);
      fill_pairs(i, mapping, false);
      return mapping;
    }
    case Tag::DefaultDict: {
      const std::size_t at = tape_.member(i, "factory");
      nb::object factory = nb::none();
      if (at == Tape::npos) invalid("a defaultdict needs a \"factory\" field");
      if (tape_[at].kind == NodeKind::String) {
        nb::object name = nb::str(tape_[at].text.data(), tape_[at].text.size());
        PyObject* found = PyDict_GetItemWithError(hooks_.factories.ptr(), name.ptr());
        if (found == nullptr) invalid("unknown defaultdict factory " + quote_name(tape_[at].text) + " (only built-in types are allowed)");
        factory = nb::borrow(found);
      } else if (tape_[at].kind != NodeKind::Null) {
        invalid("a defaultdict's \"factory\" must be a string or null");
      }
      nb::object mapping = hooks_.defaultdict_type(factory);
      define(i, mapping);
      fill_pairs(i, mapping, false);
      return mapping;
    }
    case Tag::Deque: {
      const std::size_t at = tape_.member(i, "maxlen");
      nb::object maxlen = nb::none();
      if (at != Tape::npos && tape_[at].kind == NodeKind::Int && tape_[at].integer >= 0) {
        maxlen = nb::int_(tape_[at].integer);
      } else if (at != Tape::npos && tape_[at].kind != NodeKind::Null) {
        invalid("a deque's \"maxlen\" must be a non-negative integer or null");
      }
      nb::object deque = hooks_.deque_type(nb::list(), maxlen);
      define(i, deque);
      nb::object append = deque.attr("append");
      std::uint32_t count = 0;
      std::size_t c = items(i, count);
      for (std::uint32_t k = 0; k < count; ++k) {
        append(build_child(c, {LoadPath::Type::Index, {}, k}));
        c = tape_.next(c);
      }
      return deque;
    }
    case Tag::Int: {
      const std::string_view hex = string_field(i, "hex");
      std::size_t k = hex.starts_with('-') ? 1 : 0;
      bool ok = hex.substr(k, 2) == "0x" && hex.size() > k + 2;
      for (std::size_t j = k + 2; ok && j < hex.size(); ++j) ok = std::isxdigit(static_cast<unsigned char>(hex[j]));
      if (!ok) invalid("an int's \"hex\" must look like 0x1f or -0x1f");
      const std::string text(hex);
      PyObject* value = PyLong_FromString(text.c_str(), nullptr, 16);
      if (value == nullptr) throw nb::python_error();
      return nb::steal(value);
    }
    case Tag::Float: {
      const std::string_view v = string_field(i, "v");
      double value = 0;
      if (v == "nan") {
        value = std::nan("");
        if (const std::size_t at = tape_.member(i, "bits"); at != Tape::npos) {
          const std::string_view bits = tape_[at].kind == NodeKind::String ? tape_[at].text : std::string_view();
          std::uint64_t raw = 0;
          bool ok = bits.size() == 16;
          for (char ch : bits) {
            if (!std::isxdigit(static_cast<unsigned char>(ch))) ok = false;
          }
          if (ok) raw = std::stoull(std::string(bits), nullptr, 16);
          std::memcpy(&value, &raw, sizeof value);
          if (!ok || !std::isnan(value)) invalid("a NaN's \"bits\" must be 16 hex digits of a NaN");
        }
      } else if (v == "inf") {
        value = HUGE_VAL;
      } else if (v == "-inf") {
        value = -HUGE_VAL;
      } else {
        invalid("a tagged float must be nan, inf or -inf");
      }
      return nb::steal(PyFloat_FromDouble(value));
    }
    case Tag::Str: {
      const std::size_t at = tape_.member(i, "cp");
      if (at == Tape::npos || tape_[at].kind != NodeKind::Array) invalid("a tagged str needs an array \"cp\" of code points");
      std::vector<Py_UCS4> points;
      points.reserve(tape_[at].count);
      for (std::size_t c = at + 1; c < tape_[at].end; ++c) {
        const Node& p = tape_[c];
        if (p.kind != NodeKind::Int || p.integer < 0 || p.integer > 0x10FFFF) invalid("code points must be integers from 0 to 0x10FFFF");
        points.push_back(static_cast<Py_UCS4>(p.integer));
      }
      PyObject* s = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, points.data(), static_cast<Py_ssize_t>(points.size()));
      if (s == nullptr) throw nb::python_error();
      return nb::steal(s);
    }
    case Tag::Bytes:
    case Tag::ByteArray: {
      nb::object value = bytes_value(i, tag_of(tag) == Tag::ByteArray);
      define(i, value);
      return value;
    }
    case Tag::Tensor: {
      nb::object value = tensor(i);
      define(i, value);
      return value;
    }
    case Tag::Other: break;
  }
  nb::object tag_obj = nb::str(tag.data(), tag.size());
  PyObject* constructor = PyDict_GetItemWithError(hooks_.construct.ptr(), tag_obj.ptr());
  if (constructor == nullptr) invalid("unknown tag " + quote_name(tag));
  // A "nested" node only stands for a child a 1.0.0-style plugin put into its value; anywhere else it would hand
  // the loader's internal wrapper to the caller.
  const bool plugin = tag == "plugin";
  if (tag == "nested" && plugin_depth_ == 0 && index_ != nullptr && inside_plugin(i)) {
    // A partial load of a part of a plugin's value, without the plugin node around it: each nested value is itself,
    // as in the record a load without the plugin makes.
    const std::size_t v = tape_.member(i, "v");
    if (v == Tape::npos) invalid("a \"nested\" node needs a value \"v\"");
    return build(v);
  }
  if (tag == "nested" && plugin_depth_ == 0) invalid("a \"nested\" node may only appear inside a plugin node's value");
  plugin_depth_ += plugin;
  struct Leave {
    std::uint32_t& depth;
    bool active;
    ~Leave() { depth -= active; }
  } leave{plugin_depth_, plugin};
  nb::dict fields;
  const Node& object = tape_[i];
  std::size_t c = i + 1;
  for (std::uint32_t k = 0; k < object.count; ++k) {
    const std::string_view key = tape_[c].text;
    if (key != "$" && key != "#") {
      if (is_ref(c + 1) && own_field(tag, key)) {
        invalid("the field " + quote_name(key) + " of a " + quote_name(tag) + " node describes that node alone and cannot be a \"ref\"");
      }
      // Wrapper fields ("fields", "items", ...) do not appear in paths, as when saving.
      fields[nb::str(key.data(), key.size())] = transparent_field(key) ? build(c + 1) : build_child(c + 1, {LoadPath::Type::Field, key});
    }
    c = tape_.next(c + 1);
  }
  nb::object value = call_python(("cannot rebuild a " + std::string(tag)).c_str(), [&] { return nb::borrow(constructor)(fields, context_); });
  define(i, value);
  return value;
}

}  // namespace safestructures::bindings::load_walk
