// Loading: builds Python objects from the schema tape in C++, tensors as views of the file's bytes.
#include <Python.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "bindings.hpp"
#include "hooks.hpp"
#include "safestructures/codec.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/stack.hpp"
#include "safestructures/structure.hpp"

namespace safestructures::bindings {
namespace {

enum class Tag { List, Dict, Tuple, Set, FrozenSet, OrderedDict, DefaultDict, Counter, Deque, Ref, Int, Float, Str, Bytes, ByteArray, Tensor, Other };

Tag tag_of(std::string_view tag) {
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
      : tape_(tape), source_(source), index_(index), context_(options.context), hooks_(hooks()), ids_(tape.size() + 1),
        max_depth_(options.max_depth) {}

  nb::object build(std::size_t i);
  // A partial load's target: the node the caller asked for (see build_target).
  nb::object build_target(std::size_t i) {
    target_ = i;
    nb::object out = build(i);
    return inner_target_.is_valid() ? inner_target_ : out;
  }

 private:
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
  nb::object call_python(const char* what, const std::function<nb::object()>& call);

  const Tape& tape_;
  const TensorSource& source_;
  // Set when loading a part of the tree: where to find what the part refers to outside itself.
  const TreeIndex* index_;
  // Tensors built so far, by name (partial loads only: a view of a storage the part does not hold builds it first).
  std::unordered_set<std::string_view> built_tensors_;
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
  // (first, one past the last) node of each plugin node's subtree, found when first needed.
  std::optional<std::vector<std::pair<std::size_t, std::size_t>>> plugin_ranges_;
  nb::handle context_;
  const Hooks& hooks_;
  std::vector<nb::object> ids_;
  std::vector<LoadPath> path_;
  // Dict keys decoded so far; the views point into the parsed schema, which outlives the loader.
  std::unordered_map<std::string_view, nb::object> keys_;
  // Levels of containers being built: the same count the saver limits, whatever JSON depth each level takes.
  std::uint32_t depth_ = 0;
  std::uint32_t max_depth_;
  // Plugin nodes being built around the current node.
  std::uint32_t plugin_depth_ = 0;
};

std::string Loader::path_text() const {
  return bindings::path_text(path_, [](std::string& out, const LoadPath& part) {
    switch (part.type) {
      case LoadPath::Type::Index: out += "[" + std::to_string(part.index) + "]"; break;
      case LoadPath::Type::Field: out += "."; out += part.key; break;
      case LoadPath::Type::Key: out += "[" + quote_name(part.key) + "]"; break;
    }
  });
}

nb::object Loader::call_python(const char* what, const std::function<nb::object()>& call) {
  try {
    return call();
  } catch (nb::python_error& e) {
    // safestructures' own errors (an unknown type in strict mode) keep their class, with the path added.
    if (PyObject_IsInstance(e.value().ptr(), error_class("SafestructuresError").ptr()) == 1) {
      nb::object cls = nb::borrow(reinterpret_cast<PyObject*>(Py_TYPE(e.value().ptr())));
      nb::object again = cls(nb::str(("at " + path_text() + ": " + nb::str(e.value()).c_str()).c_str()));
      again.attr("code") = e.value().attr("code");
      PyErr_SetObject(cls.ptr(), again.ptr());
      throw nb::python_error();
    }
    invalid(std::string(what) + ": " + Py_TYPE(e.value().ptr())->tp_name + ": " + nb::str(e.value()).c_str());
  }
}

std::string_view Loader::string_field(std::size_t object, std::string_view key) {
  const std::size_t at = tape_.member(object, key);
  if (at == Tape::npos || tape_[at].kind != NodeKind::String) invalid("tagged " + quote_name(tape_.tag(object)) + " needs a string field " + quote_name(key));
  return tape_[at].text;
}

void Loader::define(std::size_t object, const nb::object& value) {
  const std::size_t at = tape_.member(object, "#");
  if (at == Tape::npos) return;
  const Node& id = tape_[at];
  if (id.kind != NodeKind::Int || id.integer < 1 || static_cast<std::uint64_t>(id.integer) >= ids_.size()) invalid("reference id \"#\" must be an integer from 1 to the node count");
  nb::object& slot = ids_[static_cast<std::size_t>(id.integer)];
  if (slot.is_valid()) {
    // In a partial load, an immutable object (a tuple, a record) on the way from the target to a reference to an
    // ancestor is built twice: inside the ancestor, which defines it, then here, in the outer build of the target
    // that build_target drops. The first definition stays.
    if (index_ != nullptr) return;
    invalid("reference id #" + std::to_string(id.integer) + " is defined twice");
  }
  slot = value;
}

std::size_t Loader::items(std::size_t i, std::uint32_t& count) {
  const std::size_t at = tape_.member(i, "items");
  if (at == Tape::npos || tape_[at].kind != NodeKind::Array) invalid("tagged " + quote_name(tape_.tag(i)) + " needs an array field \"items\"");
  count = tape_[at].count;
  return at + 1;
}

void Loader::fill_pairs(std::size_t object, const nb::object& target, bool exact_dict) {
  std::uint32_t count = 0;
  std::size_t c = items(object, count);
  for (std::uint32_t k = 0; k < count; ++k) {
    const Node& pair = tape_[c];
    if (pair.kind != NodeKind::Array || pair.count != 2) invalid("each item of a mapping must be a [key, value] pair");
    path_.push_back({LoadPath::Type::Index, {}, k});
    nb::object key = build(c + 1);
    nb::object value = build(tape_.next(c + 1));
    const int status = exact_dict ? PyDict_SetItem(target.ptr(), key.ptr(), value.ptr()) : PyObject_SetItem(target.ptr(), key.ptr(), value.ptr());
    if (status != 0) {
      nb::python_error e;
      invalid(std::string("cannot use this key: ") + nb::str(e.value()).c_str());
    }
    path_.pop_back();
    c = pair.end;
  }
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
    if (index_ != nullptr && !built_tensors_.contains(tape_[storage].text)) {
      const auto it = index_->tensor_nodes.find(tape_[storage].text);
      if (it != index_->tensor_nodes.end()) build(it->second);
    }
  } else {
    name = string_field(i, "name");
    found = find_tensor(name);
    info = found.info;
  }
  nb::dict fields;
  const Node& object = tape_[i];
  std::size_t c = i + 1;
  for (std::uint32_t k = 0; k < object.count; ++k) {
    const std::string_view key = tape_[c].text;
    if (key != "$" && key != "#") fields[nb::str(key.data(), key.size())] = build_child(c + 1, {LoadPath::Type::Field, key});
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
  if (index_ != nullptr) built_tensors_.insert(name);
  return out;
}

TensorSource::Found Loader::find_tensor(std::string_view name) {
  const TensorSource::Found found = source_.find(name);
  if (found.info == nullptr) invalid("the schema refers to tensor " + quote_name(name) + ", which the file lacks", ErrorCode::TensorNotFound);
  return found;
}

nb::object Loader::defined_elsewhere(std::int64_t id) {
  // Only a partial load gets here: the object was defined outside the part being loaded (or not at all).
  const std::size_t at = static_cast<std::uint64_t>(id) < index_->id_nodes.size() ? index_->id_nodes[static_cast<std::size_t>(id)] : Tape::npos;
  if (at == Tape::npos) invalid("ref to #" + std::to_string(id) + ", which is not defined anywhere");
  if (std::find(building_elsewhere_.begin(), building_elsewhere_.end(), id) != building_elsewhere_.end()) {
    invalid("ref to #" + std::to_string(id) + ", which is part of a cycle through an immutable object");
  }
  building_elsewhere_.push_back(id);
  struct Leave {
    std::vector<std::int64_t>& ids;
    ~Leave() { ids.pop_back(); }
  } leave{building_elsewhere_};
  build(at);
  if (!ids_[static_cast<std::size_t>(id)].is_valid()) invalid("ref to #" + std::to_string(id) + ", which is part of a cycle through an immutable object");
  return ids_[static_cast<std::size_t>(id)];
}

bool Loader::inside_plugin(std::size_t i) {
  if (!plugin_ranges_) {
    plugin_ranges_.emplace();
    for (std::size_t k = 0; k < tape_.size(); ++k) {
      if (tape_[k].kind == NodeKind::Object && tape_.tag(k) == "plugin") plugin_ranges_->emplace_back(k, tape_[k].end);
    }
  }
  return std::any_of(plugin_ranges_->begin(), plugin_ranges_->end(), [i](const auto& r) { return r.first < i && i < r.second; });
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
  return nb::steal(out);
}

nb::object Loader::key_object(std::string_view key) {
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
  return it->second;
}

nb::object Loader::build_plain_object(std::size_t i) {
  const Node& n = tape_[i];
  nb::object dict = nb::steal(PyDict_New());
  std::size_t c = i + 1;
  for (std::uint32_t k = 0; k < n.count; ++k) {
    const std::string_view key = tape_[c].text;
    if (key == "$") invalid("\"$\" must be the first key of a tagged object and name its tag");
    nb::object value = build_child(c + 1, {LoadPath::Type::Key, key});
    if (PyDict_SetItem(dict.ptr(), key_object(key).ptr(), value.ptr()) != 0) throw nb::python_error();
    c = tape_.next(c + 1);
  }
  if (static_cast<std::uint32_t>(PyDict_GET_SIZE(dict.ptr())) != n.count) invalid("an object holds the same key twice");
  return dict;
}

// Leaf tags stand for one value, not a level of nesting; the saver does not count them either.
bool is_leaf_tag(std::string_view tag) {
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

nb::object Loader::build(std::size_t i) {
  if (i != target_) return build_any(i);
  ++target_builds_;
  struct Leave {
    std::uint32_t& builds;
    ~Leave() { --builds; }
  } leave{target_builds_};
  nb::object out = build_any(i);
  if (target_builds_ > 1 && !inner_target_.is_valid()) inner_target_ = out;
  return out;
}

nb::object Loader::build_any(std::size_t i) {
  const Node& n = tape_[i];
  switch (n.kind) {
    case NodeKind::Null: return nb::none();
    case NodeKind::False: return nb::borrow(Py_False);
    case NodeKind::True: return nb::borrow(Py_True);
    case NodeKind::Int: return nb::steal(PyLong_FromLongLong(n.integer));
    case NodeKind::Float: return nb::steal(PyFloat_FromDouble(n.number));
    case NodeKind::String: {
      PyObject* s = PyUnicode_DecodeUTF8(n.text.data(), static_cast<Py_ssize_t>(n.text.size()), nullptr);
      if (s == nullptr) throw nb::python_error();
      return nb::steal(s);
    }
    case NodeKind::Array:
    case NodeKind::Object: break;
  }
  const std::string_view tag = n.kind == NodeKind::Object ? tape_.tag(i) : std::string_view();
  if (!tag.empty() && is_leaf_tag(tag)) return build_tagged(i, tag);
  if (depth_ >= max_depth_) invalid("the data nests deeper than the limit of " + std::to_string(max_depth_) + " levels", ErrorCode::NestingTooDeep);
  if (stack_nearly_exhausted()) invalid("the data nests deeper than this thread's stack can walk", ErrorCode::NestingTooDeep);
  ++depth_;
  struct Leave {
    std::uint32_t& depth;
    ~Leave() { --depth; }
  } leave{depth_};
  if (n.kind == NodeKind::Object) return tag.empty() ? build_plain_object(i) : build_tagged(i, tag);
  nb::object list = nb::steal(PyList_New(n.count));
  std::size_t c = i + 1;
  for (std::uint32_t k = 0; k < n.count; ++k) {
    nb::object item = build_child(c, {LoadPath::Type::Index, {}, k});
    PyList_SET_ITEM(list.ptr(), k, item.release().ptr());
    c = tape_.next(c);
  }
  return list;
}

nb::object Loader::build_tagged(std::size_t i, std::string_view tag) {
  if (index_ != nullptr && tag_of(tag) != Tag::Ref) {
    // A partial load may already have built this object for a reference met earlier; it stays one object.
    const std::size_t at = tape_.member(i, "#");
    if (at != Tape::npos && tape_[at].kind == NodeKind::Int && tape_[at].integer >= 1 && static_cast<std::uint64_t>(tape_[at].integer) < ids_.size() &&
        ids_[static_cast<std::size_t>(tape_[at].integer)].is_valid()) {
      return ids_[static_cast<std::size_t>(tape_[at].integer)];
    }
  }
  switch (tag_of(tag)) {
    case Tag::Ref: {
      const std::size_t at = tape_.member(i, "#");
      if (at == Tape::npos || tape_[at].kind != NodeKind::Int) invalid("a ref needs an integer \"#\"");
      const std::int64_t id = tape_[at].integer;
      if (id < 1 || static_cast<std::uint64_t>(id) >= ids_.size()) invalid("ref to #" + std::to_string(id) + ", which is not defined before this point");
      if (!ids_[static_cast<std::size_t>(id)].is_valid()) {
        if (index_ == nullptr) invalid("ref to #" + std::to_string(id) + ", which is not defined before this point");
        return defined_elsewhere(id);
      }
      return ids_[static_cast<std::size_t>(id)];
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
      nb::object list = nb::steal(PyList_New(count));
      for (std::uint32_t k = 0; k < count; ++k) {
        nb::object item = build_child(c, {LoadPath::Type::Index, {}, k});
        PyList_SET_ITEM(list.ptr(), k, item.release().ptr());
        c = tape_.next(c);
      }
      PyObject* out = nullptr;
      out = tag_of(tag) == Tag::Set ? PySet_New(list.ptr()) : PyFrozenSet_New(list.ptr());
      if (out == nullptr) {
        nb::python_error e;
        invalid(std::string("cannot build a ") + std::string(tag) + ": " + nb::str(e.value()).c_str());
      }
      nb::object result = nb::steal(out);
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
      // Wrapper fields ("fields", "items", ...) do not appear in paths, as when saving.
      fields[nb::str(key.data(), key.size())] = transparent_field(key) ? build(c + 1) : build_child(c + 1, {LoadPath::Type::Field, key});
    }
    c = tape_.next(c + 1);
  }
  nb::object value = call_python(("cannot rebuild a " + std::string(tag)).c_str(), [&] { return nb::borrow(constructor)(fields, context_); });
  define(i, value);
  return value;
}

}  // namespace

SchemaLimits schema_limits(const LoadOptions& options) {
  SchemaLimits limits;
  // In 64 bits (a huge max_depth must not wrap around to a tiny limit), and capped: the parser reserves memory per
  // level, and the stack guard stops any walk far sooner than this.
  constexpr std::uint64_t json_depth_cap = 4'000'000;
  limits.max_json_depth = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::uint64_t{options.max_depth} * json_levels_per_level + 8, json_depth_cap));
  limits.max_nodes = options.max_nodes;
  return limits;
}

TensorSource::Found TensorSource::find(std::string_view name) const {
  for (const Shard& shard : shards) {
    if (const TensorInfo* info = shard.reader.header().find(name)) return {info, &shard};
  }
  return {};
}

void TensorSource::check_unique_names() const {
  if (shards.size() < 2) return;
  std::unordered_map<std::string_view, std::size_t> seen;
  for (std::size_t k = 0; k < shards.size(); ++k) {
    for (const TensorInfo& t : shards[k].reader.header().tensors) {
      if (!seen.emplace(t.name, k).second) raise(ErrorCode::TensorMismatch, "two shards hold a tensor named " + quote_name(t.name));
    }
  }
}

TreeIndex::TreeIndex(const Tape& tape) : id_nodes(tape.size() + 1, Tape::npos) {
  for (std::size_t i = 0; i < tape.size(); ++i) {
    if (tape[i].kind != NodeKind::Object) continue;
    const std::string_view tag = tape.tag(i);
    if (tag.empty() || tag == "ref") continue;
    const std::size_t id = tape.member(i, "#");
    if (id != Tape::npos && tape[id].kind == NodeKind::Int && tape[id].integer >= 1 && static_cast<std::uint64_t>(tape[id].integer) < id_nodes.size() &&
        id_nodes[static_cast<std::size_t>(tape[id].integer)] == Tape::npos) {
      id_nodes[static_cast<std::size_t>(tape[id].integer)] = i;
    }
    if (tag == "tensor") {
      const std::size_t name = tape.member(i, "name");
      if (name != Tape::npos && tape[name].kind == NodeKind::String) tensor_nodes.emplace(tape[name].text, i);
    }
  }
}

nb::object build_node(const Tape& tape, std::size_t node, const TensorSource& source, const LoadOptions& options, const TreeIndex* index) {
  Loader loader(tape, source, options, index);
  // Building creates container objects by the thousand; letting the cyclic GC scan them over and over as they are
  // made costs more than the build itself (as unpicklers also find). Its state is restored, whatever happens.
  struct GcPause {
    int was_enabled = PyGC_Disable();
    ~GcPause() {
      if (was_enabled) PyGC_Enable();
    }
  } pause;
  return index != nullptr ? loader.build_target(node) : loader.build(node);
}

nb::object build_data(const TensorSource& file, const LoadOptions& options) {
  const std::optional<Tape> document = read_schema(file.shards.front().reader, schema_limits(options));
  if (!document) return nb::object();
  return build_node(*document, schema_root(*document), file, options, nullptr);
}

}  // namespace safestructures::bindings
