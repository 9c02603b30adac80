// The one reader of a schema tree: kinds, the reference-id index and resolution, field lookup, plain files' tree.
#include "safestructures/tree_reader.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>

#include "safestructures/codec.hpp"

namespace safestructures {

namespace {

// Mutable containers exist before their items are built, so a reference from inside one to itself is valid; every
// other object is only defined once its node ends (section 5.3). Every mapping kind is mutable.
bool defined_before_items(Kind kind) {
  return traits(kind).shape == Shape::Mapping || kind == Kind::List || kind == Kind::Deque;
}

}  // namespace

SchemaLimits schema_limits(std::uint32_t max_depth, std::uint64_t max_nodes) {
  SchemaLimits limits;
  limits.max_json_depth = static_cast<std::uint32_t>(std::min<std::uint64_t>(std::uint64_t{max_depth} * json_levels_per_level + 8, 4'000'000));
  limits.max_nodes = max_nodes;
  return limits;
}

TreeIndex::TreeIndex(const Tape& tape) : id_nodes(tape.size() + 1, Tape::npos), in_plugin(tape.size(), false) {
  std::size_t plugin_end = 0;  // one past the outermost plugin node's subtree around the current node
  for (std::size_t i = 0; i < tape.size(); ++i) {
    if (i < plugin_end) in_plugin[i] = true;
    if (tape[i].kind != NodeKind::Object) continue;
    const std::string_view tag = tape.tag(i);
    if (tag.empty()) continue;
    const std::optional<Kind> kind = kind_of_tag(tag);
    if (kind == Kind::Ref) continue;
    if (kind == Kind::Plugin) plugin_end = std::max<std::size_t>(plugin_end, tape[i].end);
    if (const std::size_t at = tape.member(i, id_member); at != Tape::npos) {
      const Node& id = tape[at];
      if (id.kind != NodeKind::Int || id.integer < 1 || static_cast<std::uint64_t>(id.integer) >= id_nodes.size()) {
        if (problem.empty()) problem = "reference id \"#\" of a " + quote_name(tag) + " node must be a positive integer, at most the node count";
      } else if (id_nodes[static_cast<std::size_t>(id.integer)] == Tape::npos) {
        id_nodes[static_cast<std::size_t>(id.integer)] = i;
      } else if (problem.empty()) {
        problem = "reference id #" + std::to_string(id.integer) + " is defined twice";
      }
    }
    if (kind == Kind::Tensor) {
      const std::size_t name = tape.member(i, field::name);
      if (name != Tape::npos && tape[name].kind == NodeKind::String) tensor_nodes.emplace(tape[name].text, i);
    }
  }
}

TreeReader::TreeReader(Tape document) : tape_(std::move(document)), schema_(true) { root_ = schema_root(tape_); }

TreeReader TreeReader::of_plain_file(const Header& header, std::string_view framework) {
  std::vector<const TensorInfo*> tensors;
  tensors.reserve(header.tensors.size());
  for (const TensorInfo& info : header.tensors) tensors.push_back(&info);
  return of_plain_tensors(tensors, framework);
}

TreeReader TreeReader::of_plain_tensors(std::span<const TensorInfo* const> tensors, std::string_view framework) {
  Tape tape;
  const std::size_t root = tape.begin_tagged(traits(Kind::Dict).tag);
  tape.string("items");
  const std::size_t items = tape.begin_array();
  for (const TensorInfo* tensor_info : tensors) {
    const TensorInfo& info = *tensor_info;
    const std::size_t pair = tape.begin_array();
    tape.string(info.name);
    tape.count_child(pair);
    const std::size_t tensor = tape.begin_tagged(traits(Kind::Tensor).tag);
    tape.string(field::name);
    tape.string(info.name);
    tape.count_child(tensor);
    if (!framework.empty()) {
      tape.string(field::framework);
      tape.string(framework);
      tape.count_child(tensor);
    }
    tape.end_container(tensor);
    tape.count_child(pair);
    tape.end_container(pair);
    tape.count_child(items);
  }
  tape.end_container(items);
  tape.count_child(root);
  tape.end_container(root);
  return TreeReader(std::move(tape), 0);
}

const TreeIndex& TreeReader::index() const {
  if (!index_) index_.emplace(tape_);
  return *index_;
}

std::optional<Kind> TreeReader::kind(std::size_t i) const {
  switch (tape_[i].kind) {
    case NodeKind::Null: return Kind::Null;
    case NodeKind::False:
    case NodeKind::True: return Kind::Bool;
    case NodeKind::Int: return Kind::Int;
    case NodeKind::Float: return Kind::Float;
    case NodeKind::String: return Kind::String;
    case NodeKind::Array: return Kind::List;
    case NodeKind::Object: break;
  }
  const std::string_view tag = tape_.tag(i);
  return tag.empty() ? Kind::Dict : kind_of_tag(tag);
}

std::string TreeReader::malformed(std::size_t i) const {
  const Node& n = tape_[i];
  if (n.kind != NodeKind::Object) return {};
  const std::string_view tag = tape_.tag(i);
  if (tag.empty()) return n.count && tape_[i + 1].text == tag_member ? "\"$\" must be a string naming the node's tag" : "";
  return kind_of_tag(tag) ? "" : "unknown tag " + quote_name(tag);
}

std::size_t TreeReader::definition(std::size_t i, std::int64_t& id) const {
  id = this->id(i);
  const TreeIndex& idx = index();
  return id >= 1 && static_cast<std::uint64_t>(id) < idx.id_nodes.size() ? idx.id_nodes[static_cast<std::size_t>(id)] : Tape::npos;
}

std::size_t TreeReader::resolve(std::size_t i, Fail fail) const {
  std::int64_t id = 0;
  const std::size_t target = definition(i, id);
  if (target != Tape::npos && target < i) {
    const std::optional<Kind> target_kind = kind(target);
    if (tape_.next(target) <= i || (target_kind && defined_before_items(*target_kind))) return target;
  }
  const std::size_t at = tape_.member(i, id_member);
  if (at == Tape::npos || tape_[at].kind != NodeKind::Int) fail("a ref needs an integer \"#\"");
  fail("ref to #" + std::to_string(id) + ", which is not defined before this point");
}

std::size_t TreeReader::follow(std::size_t i, std::int64_t& ref_id, Fail fail) const {
  ref_id = 0;
  // This ends: a reference leads to a node that ends before it (or to a mutable container, where the loop stops), a
  // "nested" node into its own subtree, so no node is met twice.
  for (;;) {
    const std::optional<Kind> k = tape_[i].kind == NodeKind::Object ? kind(i) : std::nullopt;
    std::size_t target = Tape::npos;
    if (k == Kind::Ref) {
      // Only where a load would follow it (resolve): a part shown or loaded is never one the whole load refuses.
      target = resolve(i, fail);
      if (ref_id == 0) ref_id = id(i);
    } else if (k == Kind::Nested) {
      if ((target = tape_.member(i, "v")) == Tape::npos) fail("a \"nested\" node needs a value \"v\"");
    } else {
      return i;
    }
    i = target;
  }
}

std::size_t TreeReader::required(std::size_t object, std::string_view name, NodeKind want, Fail fail) const {
  const std::size_t at = tape_.member(object, name);
  if (at != Tape::npos && tape_[at].kind == want) return at;
  const char* article = want == NodeKind::String ? "a string" : "an array";
  fail("tagged " + quote_name(tape_.tag(object)) + " needs " + article + " field " + quote_name(name));
}

std::string TreeReader::repeated_item(const Node& item, std::uint32_t k, Kind kind) {
  const std::string holder = "a " + std::string(kind_name(kind));
  if (item.kind == NodeKind::String) return holder + " holds the item " + quote_name(item.text) + " twice";
  if (item.kind == NodeKind::Int) return holder + " holds the item " + std::to_string(item.integer) + " twice";
  return "item " + std::to_string(k) + " equals an earlier item of the " + std::string(kind_name(kind));
}

std::string TreeReader::repeated_key(const Node& key, std::uint32_t k) {
  if (key.kind == NodeKind::String) return "a mapping holds the key " + quote_name(key.text) + " twice";
  if (key.kind == NodeKind::Int) return "a mapping holds the key " + std::to_string(key.integer) + " twice";
  return "the key of pair " + std::to_string(k) + " equals an earlier key of the mapping";
}

std::string_view TreeReader::string_field(std::size_t object, std::string_view name, Fail fail) const {
  return tape_[required(object, name, NodeKind::String, fail)].text;
}

std::size_t TreeReader::items(std::size_t object, std::uint32_t& count, Fail fail) const {
  const std::size_t at = required(object, "items", NodeKind::Array, fail);
  count = tape_[at].count;
  return at + 1;
}

std::optional<std::int64_t> TreeReader::deque_maxlen(std::size_t object, Fail fail) const {
  const std::size_t at = tape_.member(object, "maxlen");
  if (at == Tape::npos || tape_[at].kind == NodeKind::Null) return std::nullopt;
  if (tape_[at].kind != NodeKind::Int || tape_[at].integer < 0) fail("a deque's \"maxlen\" must be a non-negative integer or null");
  return tape_[at].integer;
}

std::size_t TreeReader::checked_items(std::size_t object, Kind kind, std::uint32_t& count, Fail fail) const {
  const std::size_t first = items(object, count, fail);
  if (kind == Kind::Deque) {
    const std::optional<std::int64_t> maxlen = deque_maxlen(object, fail);
    if (maxlen && static_cast<std::uint64_t>(count) > static_cast<std::uint64_t>(*maxlen)) {
      fail("a deque of \"maxlen\" " + std::to_string(*maxlen) + " holds " + std::to_string(count) + (count == 1 ? " item" : " items") +
           ", more than it keeps");
    }
  }
  if (kind == Kind::Set || kind == Kind::FrozenSet) {
    DistinctScalars seen;
    for (std::size_t c = first, k = 0; k < count; ++k, c = tape_.next(c)) {
      if (!seen.add(tape_[c])) fail(repeated_item(tape_[c], static_cast<std::uint32_t>(k), kind));
    }
  }
  if (kind != Kind::NamedTuple) return first;
  const std::size_t fields = required(object, "fields", NodeKind::Array, fail);
  if (tape_[fields].count != count) {
    fail("a namedtuple needs as many \"items\" as \"fields\" (" + std::to_string(count) + " and " + std::to_string(tape_[fields].count) + ")");
  }
  DistinctScalars names;
  for (std::size_t name = fields + 1, k = 0; k < count; ++k, name = tape_.next(name)) {
    if (tape_[name].kind != NodeKind::String) fail("a namedtuple's \"fields\" must be strings");
    if (!names.add(tape_[name])) fail("a namedtuple's \"fields\" name " + quote_name(tape_[name].text) + " twice");
  }
  return first;
}

std::string_view TreeReader::big_int_hex(std::size_t i, Fail fail) const {
  const std::string_view hex = string_field(i, "hex", fail);
  const std::string_view digits = hex.substr(hex.starts_with('-') ? 1 : 0);
  const bool ok = digits.size() > 2 && digits.starts_with("0x");
  if (!ok || digits.find_first_not_of("0123456789abcdefABCDEF", 2) != std::string_view::npos) {
    fail("an int's \"hex\" must look like 0x1f or -0x1f");
  }
  return hex;
}

double TreeReader::special_float(std::size_t i, Fail fail) const {
  const std::string_view v = string_field(i, "v", fail);
  if (v == "inf") return HUGE_VAL;
  if (v == "-inf") return -HUGE_VAL;
  if (v != "nan") fail("a tagged float must be nan, inf or -inf");
  const std::size_t bits_at = tape_.member(i, "bits");
  if (bits_at == Tape::npos) return std::nan("");
  const std::string_view bits = tape_[bits_at].kind == NodeKind::String ? tape_[bits_at].text : std::string_view();
  std::uint64_t raw = 0;
  const bool ok = bits.size() == 16 && std::from_chars(bits.data(), bits.data() + 16, raw, 16).ptr == bits.data() + 16;
  const double value = std::bit_cast<double>(raw);
  if (!ok || !std::isnan(value)) fail("a NaN's \"bits\" must be 16 hex digits of a NaN");
  return value;
}

std::vector<std::uint32_t> TreeReader::code_points(std::size_t i, Fail fail) const {
  const std::size_t at = tape_.member(i, "cp");
  if (at == Tape::npos || tape_[at].kind != NodeKind::Array) fail("a tagged str needs an array \"cp\" of code points");
  std::vector<std::uint32_t> out;
  out.reserve(tape_[at].count);
  for (std::size_t c = at + 1; c < tape_[at].end; ++c) {
    const Node& p = tape_[c];
    if (p.kind != NodeKind::Int || p.integer < 0 || p.integer > 0x10FFFF) {
      fail("code points must be integers from 0 to 0x10FFFF");
    }
    out.push_back(static_cast<std::uint32_t>(p.integer));
  }
  return out;
}

std::string_view TreeReader::tensor_name(std::size_t i, bool& view, Fail fail) const {
  view = tape_.member(i, field::name) == Tape::npos;
  if (!view) return data_tensor(string_field(i, field::name, fail), fail);
  const std::size_t storage = tape_.member(i, field::storage);
  if (storage == Tape::npos || tape_[storage].kind != NodeKind::String) {
    fail("tagged \"tensor\" needs a string field \"name\" (or \"storage\", for a view of an earlier tensor)");
  }
  return data_tensor(tape_[storage].text, fail);
}

std::string_view TreeReader::data_tensor(std::string_view name, Fail fail) const {
  if (schema_ && (name == schema_spill_tensor || name == recording_padding_tensor)) {
    fail("tensor " + quote_name(name) + (name == schema_spill_tensor ? " holds the spilled schema" : " is a recording's padding") +
         ", which the format reserves: no value is stored in it");
  }
  return name;
}

std::optional<std::vector<std::byte>> TreeReader::inline_bytes(std::size_t i, std::string_view& name, Fail fail) const {
  const std::size_t b64 = tape_.member(i, field::base64);
  if (b64 == Tape::npos) {
    name = data_tensor(string_field(i, field::tensor, fail), fail);
    return std::nullopt;
  }
  std::optional<std::vector<std::byte>> decoded;
  if (tape_[b64].kind == NodeKind::String) decoded = codec::base64_decode(tape_[b64].text);
  if (!decoded) fail("\"b64\" is not valid base64");
  return decoded;
}

TreeReader::ViewGeometry TreeReader::view_geometry(std::size_t i, std::uint64_t size, Fail fail) const {
  ViewGeometry view;
  const std::size_t offset = tape_.member(i, field::offset), shape = tape_.member(i, field::shape), stride = tape_.member(i, field::stride);
  if (offset == Tape::npos || tape_[offset].kind != NodeKind::Int || tape_[offset].integer < 0) fail("a view's \"offset\" must be a non-negative int");
  view.offset = static_cast<std::uint64_t>(tape_[offset].integer);
  const auto ints = [&](std::size_t array, bool non_negative) {
    if (array == Tape::npos || tape_[array].kind != NodeKind::Array) return false;
    for (std::size_t c = array + 1; c < tape_[array].end; ++c) {
      if (tape_[c].kind != NodeKind::Int || (non_negative && tape_[c].integer < 0)) return false;
    }
    return true;
  };
  if (!ints(shape, true)) fail("a view's \"shape\" must be a list of non-negative ints");
  if (!ints(stride, false) || tape_[stride].count != tape_[shape].count) fail("a view's \"stride\" must be a list of ints, one per dimension");
  for (std::uint32_t k = 0; k < tape_[shape].count; ++k) {
    view.shape.push_back(static_cast<std::uint64_t>(tape_[shape + 1 + k].integer));
    view.stride.push_back(tape_[stride + 1 + k].integer);
  }
  if (const std::string problem = view_reach_problem(view.offset, view.shape, view.stride, size); !problem.empty()) fail(problem);
  return view;
}

std::string TreeReader::view_reach_problem(std::uint64_t offset, std::span<const std::uint64_t> shape, std::span<const std::int64_t> stride,
                                           std::uint64_t size) {
  // The lowest and highest element reached; a sum or product past 64 bits reaches outside any storage.
  std::int64_t low = static_cast<std::int64_t>(std::min<std::uint64_t>(offset, INT64_MAX)), high = low;
  bool empty = false, overflow = offset > INT64_MAX || shape.size() != stride.size();
  for (std::size_t k = 0; k < shape.size() && k < stride.size(); ++k) {
    const std::uint64_t n = shape[k];
    const std::int64_t s = stride[k];
    empty = empty || n == 0;
    std::int64_t step = 0;
    overflow = overflow || n > INT64_MAX ||
               (n > 0 && (__builtin_mul_overflow(static_cast<std::int64_t>(n - 1), s, &step) || __builtin_add_overflow(s < 0 ? low : high, step, s < 0 ? &low : &high)));
  }
  const std::string what = "a view of shape " + shape_text(shape) + " and stride " + shape_text(stride) + " at offset " + std::to_string(offset);
  if (!empty && !overflow && low < 0) return what + " reaches before its storage";
  if ((!empty && (overflow || static_cast<std::uint64_t>(high) >= size)) || offset > size) {
    return what + " reaches outside its storage of " + std::to_string(size) + " elements";
  }
  return {};
}

void TreeReader::check_bytes_tensor(const TensorInfo& info, Fail fail) {
  if (info.dtype != Dtype::U8 || info.shape.size() != 1) {
    fail("bytes tensor " + quote_name(info.name) + " must be a 1-D U8 tensor", ErrorCode::TensorMismatch);
  }
}

}  // namespace safestructures
