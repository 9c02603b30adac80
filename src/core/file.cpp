// Reading structured files from C++: the open document (reader, schema tape, reference ids) and the node accessors.
#include "safestructures/file.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "safestructures/codec.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/structure.hpp"

namespace safestructures {

namespace tree_detail {

// Everything a node needs, shared by every node and tensor of one open file.
struct Document {
  explicit Document(Reader r) : reader(std::move(r)) {}
  Reader reader;
  Tape tape;
  std::uint32_t root = 0;
  Metadata metadata;
  bool structured = false;
  // Reference id -> the tape index of the node that defines it.
  std::unordered_map<std::int64_t, std::uint32_t> ids;
};

// One step of a node's path, already rendered (`["key"]`, `[3]`); the chain ends at the root (null parent).
struct PathPart {
  std::shared_ptr<const PathPart> parent;
  std::string text;
};

}  // namespace tree_detail

using tree_detail::Document;
using tree_detail::PathPart;

namespace {

// Mutable containers exist before their items are built, so a reference from inside them to themselves is valid;
// every other object is only defined once its node ends (section 5.3).
bool defined_before_items(Kind kind) {
  switch (kind) {
    case Kind::List:
    case Kind::Dict:
    case Kind::OrderedDict:
    case Kind::Counter:
    case Kind::DefaultDict:
    case Kind::Deque: return true;
    default: return false;
  }
}

std::shared_ptr<const PathPart> extend(const std::shared_ptr<const PathPart>& parent, std::string text) {
  return std::make_shared<const PathPart>(PathPart{parent, std::move(text)});
}

// Appended piece by piece: GCC 12 warns (-Wrestrict, wrongly) about "[" + std::string + "]".
std::string bracketed(std::string_view inner) {
  std::string out = "[";
  out += inner;
  out += ']';
  return out;
}
std::string index_part(std::size_t index) { return bracketed(std::to_string(index)); }
std::string key_part(std::string_view key) { return bracketed(quote_name(key)); }

// Reference ids are collected once, so that following a ref costs a lookup; a file that defines an id twice is
// refused here, before any node is read.
void collect_ids(Document& doc) {
  const Tape& tape = doc.tape;
  const std::uint32_t end = static_cast<std::uint32_t>(tape.next(doc.root));
  for (std::uint32_t i = doc.root; i < end; ++i) {
    if (tape[i].kind != NodeKind::Object) continue;
    const std::string_view tag = tape.tag(i);
    if (tag.empty() || tag == "ref") continue;
    const std::size_t at = tape.member(i, "#");
    if (at == Tape::npos) continue;
    if (tape[at].kind != NodeKind::Int || tape[at].integer < 1) {
      raise(ErrorCode::SchemaInvalid, "reference id \"#\" of a " + quote_name(tag) + " node must be a positive integer");
    }
    if (!doc.ids.emplace(tape[at].integer, i).second) {
      raise(ErrorCode::SchemaInvalid, "reference id #" + std::to_string(tape[at].integer) + " is defined twice");
    }
  }
}

// A plain safetensors file reads as {"$":"dict","items":[[NAME,{"$":"tensor","name":NAME}],...]}: the pair form,
// since a tensor may be named "$". The names are views of the header, which the document keeps.
void synthesize_flat_tape(Document& doc) {
  Tape& tape = doc.tape;
  const std::size_t root = tape.begin_object();
  tape.string("$");
  tape.string("dict");
  tape.count_child(root);
  tape.string("items");
  const std::size_t items = tape.begin_array();
  for (const TensorInfo& info : doc.reader.header().tensors) {
    const std::size_t pair = tape.begin_array();
    tape.string(info.name);
    tape.count_child(pair);
    const std::size_t tensor = tape.begin_object();
    tape.string("$");
    tape.string("tensor");
    tape.count_child(tensor);
    tape.string("name");
    tape.string(info.name);
    tape.count_child(tensor);
    tape.end_container(tensor);
    tape.count_child(pair);
    tape.end_container(pair);
    tape.count_child(items);
  }
  tape.end_container(items);
  tape.count_child(root);
  tape.end_container(root);
  doc.root = 0;
}

std::shared_ptr<const Document> make_document(Reader reader, const OpenOptions& options) {
  auto doc = std::make_shared<Document>(std::move(reader));
  SchemaLimits limits;
  // As the Python loader: in 64 bits, so a huge max_depth cannot wrap around, and capped.
  limits.max_json_depth = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::uint64_t{options.max_depth} * json_levels_per_level + 8, 4'000'000));
  limits.max_nodes = options.max_nodes;
  const Header& header = doc->reader.header();
  doc->metadata = user_metadata(header);
  if (std::optional<Tape> schema = read_schema(doc->reader, limits)) {
    doc->root = static_cast<std::uint32_t>(schema_root(*schema));
    doc->tape = std::move(*schema);
    doc->structured = true;
    collect_ids(*doc);
  } else if (header.find_metadata(v1_schema_key) != nullptr) {
    raise(ErrorCode::SchemaVersion,
          "this is a safestructures 1.0.0 file, which the C++ API does not read; `safestructures upgrade OLD NEW` rewrites it");
  } else {
    synthesize_flat_tape(*doc);
  }
  return doc;
}

}  // namespace

// ---- File

File File::open(const std::filesystem::path& path, const OpenOptions& options) {
  Reader reader = Reader::open(path, options.max_header_size);
  try {
    return File(make_document(std::move(reader), options));
  } catch (const Error& e) {
    raise(e.code(), path.string() + ": " + e.what());
  }
}

File File::from_bytes(std::vector<std::byte> bytes, const OpenOptions& options) {
  auto owner = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  return from_buffer(owner, *owner, options);
}

File File::from_buffer(std::shared_ptr<const void> owner, std::span<const std::byte> bytes, const OpenOptions& options) {
  return File(make_document(Reader::from_buffer(std::move(owner), bytes, /*writable=*/false, options.max_header_size), options));
}

const Metadata& File::metadata() const { return document_->metadata; }
bool File::structured() const { return document_->structured; }
const Header& File::header() const { return document_->reader.header(); }
TreeNode File::root() const { return TreeNode(document_, document_->root, nullptr); }

// ---- Tensor

void Tensor::check_values(std::size_t size, std::size_t alignment) const {
  if (size * 8 != dtype_bits(dtype())) {
    raise(ErrorCode::WrongKind, "at " + path_ + ": tensor " + quote_name(name()) + " holds " + std::string(dtype_name(dtype())) +
                                    " elements, not elements of " + std::to_string(size) + " bytes");
  }
  if (reinterpret_cast<std::uintptr_t>(bytes_.data()) % alignment != 0) {
    raise(ErrorCode::InvalidArgument, "at " + path_ + ": the bytes of tensor " + quote_name(name()) + " are not aligned for their element type");
  }
}

// ---- TreeNode

TreeNode::TreeNode(std::shared_ptr<const Document> document, std::uint32_t index, std::shared_ptr<const PathPart> path)
    : document_(std::move(document)), path_(std::move(path)), index_(index) {
  const Tape& tape = document_->tape;
  const safestructures::Node* n = &tape[index_];
  std::string_view tag = n->kind == NodeKind::Object ? tape.tag(index_) : std::string_view();
  if (tag == "ref") {
    const std::size_t at = tape.member(index_, "#");
    if (at == Tape::npos || tape[at].kind != NodeKind::Int) fail(ErrorCode::SchemaInvalid, "a ref needs an integer \"#\"");
    const std::int64_t id = tape[at].integer;
    const auto found = document_->ids.find(id);
    bool defined = found != document_->ids.end() && found->second < index_;
    if (defined) {
      const std::uint32_t target = found->second;
      const std::optional<Kind> target_kind = kind_of_tag(tape.tag(target));
      defined = tape.next(target) <= index_ || (target_kind && defined_before_items(*target_kind));
      index_ = target;
    }
    if (!defined) fail(ErrorCode::SchemaInvalid, "ref to #" + std::to_string(id) + ", which is not defined before this point");
    via_ref_ = true;
    n = &tape[index_];
    tag = tape.tag(index_);
  }
  switch (n->kind) {
    case NodeKind::Null: kind_ = Kind::Null; return;
    case NodeKind::False:
    case NodeKind::True: kind_ = Kind::Bool; return;
    case NodeKind::Int: kind_ = Kind::Int; return;
    case NodeKind::Float: kind_ = Kind::Float; return;
    case NodeKind::String: kind_ = Kind::String; return;
    case NodeKind::Array: kind_ = Kind::List; return;
    case NodeKind::Object: break;
  }
  if (tag.empty()) {
    if (n->count && tape[index_ + 1].text == "$") fail(ErrorCode::SchemaInvalid, "\"$\" must be a string naming the node's tag");
    kind_ = Kind::Dict;
    return;
  }
  const std::optional<Kind> kind = kind_of_tag(tag);
  if (!kind) fail(ErrorCode::SchemaInvalid, "unknown tag " + quote_name(tag));
  kind_ = *kind;
  if (const std::size_t at = tape.member(index_, "#"); at != Tape::npos) shared_id_ = tape[at].integer;
}

std::string TreeNode::path() const {
  std::vector<const PathPart*> parts;
  for (const PathPart* p = path_.get(); p != nullptr; p = p->parent.get()) parts.push_back(p);
  std::reverse(parts.begin(), parts.end());
  // As the Python walkers write it: a deep path keeps its two ends and counts the middle.
  std::string out = "$";
  for (std::size_t k = 0; k < parts.size(); ++k) {
    if (parts.size() > 24 && k == 10) {
      out += "[... " + std::to_string(parts.size() - 20) + " more ...]";
      k = parts.size() - 10;
    }
    out += parts[k]->text;
  }
  return out;
}

void TreeNode::fail(ErrorCode code, const std::string& what) const { raise(code, "at " + path() + ": " + what); }

void TreeNode::wrong_kind(std::string_view wanted) const {
  fail(ErrorCode::WrongKind, "expected " + std::string(wanted) + ", found " + std::string(kind_name(kind_)));
}

TreeNode TreeNode::child(std::uint32_t index, std::shared_ptr<const PathPart> part) const { return TreeNode(document_, index, std::move(part)); }

bool TreeNode::is_sequence() const {
  switch (kind_) {
    case Kind::List:
    case Kind::Tuple:
    case Kind::Set:
    case Kind::FrozenSet:
    case Kind::Deque:
    case Kind::NamedTuple: return true;
    default: return false;
  }
}

bool TreeNode::is_mapping() const {
  switch (kind_) {
    case Kind::Dict:
    case Kind::OrderedDict:
    case Kind::Counter:
    case Kind::DefaultDict: return true;
    default: return false;
  }
}

std::string_view TreeNode::tag() const { return document_->tape.tag(index_); }

std::uint32_t TreeNode::required_field(std::string_view name, bool string) const {
  const Tape& tape = document_->tape;
  const std::size_t at = tape.member(index_, name);
  if (at == Tape::npos || (string && tape[at].kind != NodeKind::String)) {
    fail(ErrorCode::SchemaInvalid, "tagged " + quote_name(tag()) + " needs " + (string ? "a string" : "a") + " field " + quote_name(name));
  }
  return static_cast<std::uint32_t>(at);
}

std::string_view TreeNode::string_field(std::string_view name) const { return document_->tape[required_field(name, true)].text; }

std::optional<TreeNode> TreeNode::field(std::string_view name) const {
  if (tag().empty()) wrong_kind("a tagged node");
  if (name == "$" || name == "#") return std::nullopt;
  const std::size_t at = document_->tape.member(index_, name);
  if (at == Tape::npos) return std::nullopt;
  // Wrapper fields are not part of paths, as when saving.
  return child(static_cast<std::uint32_t>(at), is_transparent_field(name) ? path_ : extend(path_, std::string(".").append(name)));
}

std::vector<Entry> TreeNode::fields() const {
  if (tag().empty()) wrong_kind("a tagged node");
  const Tape& tape = document_->tape;
  std::vector<Entry> out;
  std::size_t c = index_ + 1;
  for (std::uint32_t k = 0; k < tape[index_].count; ++k) {
    const std::string_view name = tape[c].text;
    if (name != "$" && name != "#") {
      auto part = is_transparent_field(name) ? path_ : extend(path_, std::string(".").append(name));
      out.push_back({child(static_cast<std::uint32_t>(c), part), child(static_cast<std::uint32_t>(c + 1), part)});
    }
    c = tape.next(c + 1);
  }
  return out;
}

std::string TreeNode::type_name() const {
  switch (kind_) {
    case Kind::Dataclass:
    case Kind::NamedTuple:
    case Kind::Enum:
    case Kind::Object:
    case Kind::Ext:
    case Kind::Plugin: return std::string(string_field("type"));
    default: return {};
  }
}

bool TreeNode::as_bool() const {
  if (kind_ != Kind::Bool) wrong_kind("a bool");
  return document_->tape[index_].kind == NodeKind::True;
}

std::int64_t TreeNode::as_int() const {
  if (kind_ == Kind::BigInt) fail(ErrorCode::WrongKind, "the int " + big_int_hex() + " does not fit in 64 bits (read it with big_int_hex())");
  if (kind_ != Kind::Int) wrong_kind("an int");
  return document_->tape[index_].integer;
}

std::string TreeNode::big_int_hex() const {
  if (kind_ == Kind::Int) {
    const std::int64_t v = document_->tape[index_].integer;
    // Through unsigned, so that INT64_MIN has a magnitude.
    std::uint64_t magnitude = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    std::string digits;
    do {
      digits += "0123456789abcdef"[magnitude & 15];
      magnitude >>= 4;
    } while (magnitude);
    std::reverse(digits.begin(), digits.end());
    return (v < 0 ? "-0x" : "0x") + digits;
  }
  if (kind_ != Kind::BigInt) wrong_kind("an int");
  const std::string_view hex = string_field("hex");
  const std::size_t sign = hex.starts_with('-') ? 1 : 0;
  bool ok = hex.substr(sign, 2) == "0x" && hex.size() > sign + 2;
  for (std::size_t j = sign + 2; ok && j < hex.size(); ++j) ok = std::isxdigit(static_cast<unsigned char>(hex[j])) != 0;
  if (!ok) fail(ErrorCode::SchemaInvalid, "an int's \"hex\" must look like 0x1f or -0x1f");
  return std::string(hex);
}

double TreeNode::as_double() const {
  if (kind_ != Kind::Float) wrong_kind("a float");
  const Tape& tape = document_->tape;
  if (tape[index_].kind == NodeKind::Float) return tape[index_].number;
  const std::string_view v = string_field("v");
  if (v == "inf") return HUGE_VAL;
  if (v == "-inf") return -HUGE_VAL;
  if (v != "nan") fail(ErrorCode::SchemaInvalid, "a tagged float must be nan, inf or -inf");
  const std::size_t at = tape.member(index_, "bits");
  if (at == Tape::npos) return std::nan("");
  const std::string_view bits = tape[at].kind == NodeKind::String ? tape[at].text : std::string_view();
  std::uint64_t raw = 0;
  bool ok = bits.size() == 16;
  for (std::size_t k = 0; ok && k < bits.size(); ++k) {
    const char c = bits[k];
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    ok = digit >= 0;
    raw = (raw << 4) | static_cast<std::uint64_t>(digit & 15);
  }
  double value = 0;
  std::memcpy(&value, &raw, sizeof value);
  if (!ok || !std::isnan(value)) fail(ErrorCode::SchemaInvalid, "a NaN's \"bits\" must be 16 hex digits of a NaN");
  return value;
}

std::string TreeNode::as_string() const {
  if (kind_ != Kind::String) wrong_kind("a str");
  const Tape& tape = document_->tape;
  if (tape[index_].kind == NodeKind::String) return std::string(tape[index_].text);
  const std::size_t at = tape.member(index_, "cp");
  if (at == Tape::npos || tape[at].kind != NodeKind::Array) fail(ErrorCode::SchemaInvalid, "a tagged str needs an array \"cp\" of code points");
  std::string out;
  for (std::size_t c = at + 1; c < tape[at].end; ++c) {
    const safestructures::Node& p = tape[c];
    if (p.kind != NodeKind::Int || p.integer < 0 || p.integer > 0x10FFFF) fail(ErrorCode::SchemaInvalid, "code points must be integers from 0 to 0x10FFFF");
    codec::append_code_point(out, static_cast<std::uint32_t>(p.integer));
  }
  return out;
}

std::vector<std::byte> TreeNode::as_bytes() const {
  if (kind_ != Kind::Bytes && kind_ != Kind::ByteArray) wrong_kind("bytes");
  const Tape& tape = document_->tape;
  if (const std::size_t b64 = tape.member(index_, "b64"); b64 != Tape::npos) {
    std::optional<std::vector<std::byte>> decoded;
    if (tape[b64].kind == NodeKind::String) decoded = codec::base64_decode(tape[b64].text);
    if (!decoded) fail(ErrorCode::SchemaInvalid, "\"b64\" is not valid base64");
    return std::move(*decoded);
  }
  const std::string_view name = string_field("tensor");
  const TensorInfo* info = document_->reader.header().find(name);
  if (info == nullptr) fail(ErrorCode::TensorNotFound, "the schema refers to tensor " + quote_name(name) + ", which the file lacks");
  if (info->dtype != Dtype::U8 || info->shape.size() != 1) fail(ErrorCode::TensorMismatch, "bytes tensor " + quote_name(name) + " must be a 1-D U8 tensor");
  const auto view = document_->reader.tensor(*info).bytes;
  return {view.begin(), view.end()};
}

Tensor TreeNode::as_tensor() const {
  if (kind_ != Kind::Tensor) wrong_kind("a tensor");
  const Tape& tape = document_->tape;
  Tensor t;
  std::string_view name;
  if (tape.member(index_, "name") != Tape::npos) {
    name = string_field("name");
  } else if (const std::size_t storage = tape.member(index_, "storage"); storage != Tape::npos && tape[storage].kind == NodeKind::String) {
    name = tape[storage].text;
    t.view_ = true;
  } else {
    fail(ErrorCode::SchemaInvalid, "tagged \"tensor\" needs a string field \"name\" (or \"storage\", for a view of an earlier tensor)");
  }
  t.info_ = document_->reader.header().find(name);
  if (t.info_ == nullptr) fail(ErrorCode::TensorNotFound, "the schema refers to tensor " + quote_name(name) + ", which the file lacks");
  t.bytes_ = document_->reader.tensor(*t.info_).bytes;
  t.document_ = document_;
  t.path_ = path();
  const auto text = [&](std::string_view field) {
    const std::size_t at = tape.member(index_, field);
    if (at == Tape::npos) return std::string_view();
    if (tape[at].kind != NodeKind::String) fail(ErrorCode::SchemaInvalid, "a tensor's " + quote_name(field) + " must be a string");
    return tape[at].text;
  };
  t.framework_ = text("fw");
  t.numpy_dtype_ = text("dtype");
  if (const std::size_t shape = tape.member(index_, "shape"); shape != Tape::npos) {
    if (tape[shape].kind != NodeKind::Array) fail(ErrorCode::SchemaInvalid, "a tensor's \"shape\" must be an array of integers");
    for (std::size_t c = shape + 1; c < tape[shape].end; ++c) {
      if (tape[c].kind != NodeKind::Int || tape[c].integer < 0) fail(ErrorCode::SchemaInvalid, "a tensor's \"shape\" must be an array of integers");
      t.logical_shape_.push_back(static_cast<std::uint64_t>(tape[c].integer));
    }
    t.has_logical_shape_ = true;
  }
  return t;
}

std::uint32_t TreeNode::first_item(std::uint32_t& count) const {
  const Tape& tape = document_->tape;
  if (tape[index_].kind == NodeKind::Array) {
    count = tape[index_].count;
    return index_ + 1;
  }
  const std::size_t at = tape.member(index_, "items");
  if (at == Tape::npos || tape[at].kind != NodeKind::Array) fail(ErrorCode::SchemaInvalid, "tagged " + quote_name(tag()) + " needs an array field \"items\"");
  count = tape[at].count;
  return static_cast<std::uint32_t>(at + 1);
}

std::size_t TreeNode::size() const {
  std::uint32_t count = 0;
  if (is_sequence() || (is_mapping() && !tag().empty())) {
    first_item(count);
  } else if (kind_ == Kind::Dict) {
    count = document_->tape[index_].count;
  } else {
    wrong_kind("a sequence or a mapping");
  }
  return count;
}

TreeNode TreeNode::operator[](std::size_t index) const {
  if (!is_sequence()) wrong_kind("a sequence (list, tuple, set, frozenset, deque or namedtuple)");
  std::uint32_t count = 0;
  std::size_t c = first_item(count);
  if (index >= count) {
    fail(ErrorCode::IndexOutOfRange, "index " + std::to_string(index) + " is out of range for a " + std::string(kind_name(kind_)) + " of " +
                                         std::to_string(count) + " items");
  }
  for (std::size_t k = 0; k < index; ++k) c = document_->tape.next(c);
  return child(static_cast<std::uint32_t>(c), extend(path_, index_part(index)));
}

std::vector<TreeNode> TreeNode::items() const {
  if (!is_sequence()) wrong_kind("a sequence (list, tuple, set, frozenset, deque or namedtuple)");
  std::uint32_t count = 0;
  std::size_t c = first_item(count);
  std::vector<TreeNode> out;
  out.reserve(count);
  for (std::uint32_t k = 0; k < count; ++k) {
    out.push_back(child(static_cast<std::uint32_t>(c), extend(path_, index_part(k))));
    c = document_->tape.next(c);
  }
  return out;
}

std::vector<Entry> TreeNode::entries() const {
  const Tape& tape = document_->tape;
  std::vector<Entry> out;
  if (kind_ == Kind::Dataclass) {
    const std::optional<TreeNode> fields = field("fields");
    if (!fields || fields->kind_ != Kind::Dict || !fields->tag().empty()) fail(ErrorCode::SchemaInvalid, "a dataclass needs an object field \"fields\"");
    return fields->entries();
  }
  if (!is_mapping()) wrong_kind("a mapping");
  if (tag().empty()) {
    // A plain object: keys are its member names.
    std::unordered_set<std::string_view> seen;
    std::size_t c = index_ + 1;
    for (std::uint32_t k = 0; k < tape[index_].count; ++k) {
      const std::string_view key = tape[c].text;
      if (key == "$") fail(ErrorCode::SchemaInvalid, "\"$\" must be the first key of a tagged object and name its tag");
      if (!seen.insert(key).second) fail(ErrorCode::SchemaInvalid, "an object holds the key " + quote_name(key) + " twice");
      auto part = extend(path_, key_part(key));
      out.push_back({child(static_cast<std::uint32_t>(c), part), child(static_cast<std::uint32_t>(c + 1), part)});
      c = tape.next(c + 1);
    }
    return out;
  }
  std::uint32_t count = 0;
  std::size_t c = first_item(count);
  for (std::uint32_t k = 0; k < count; ++k) {
    const safestructures::Node& pair = tape[c];
    if (pair.kind != NodeKind::Array || pair.count != 2) {
      fail(ErrorCode::SchemaInvalid, "item " + std::to_string(k) + " of a mapping must be a [key, value] pair");
    }
    // String and int keys are written as Python writes them; other keys by the pair's position.
    const safestructures::Node& key = tape[c + 1];
    auto part = extend(path_, key.kind == NodeKind::String ? key_part(key.text)
                              : key.kind == NodeKind::Int  ? bracketed(std::to_string(key.integer))
                                                           : bracketed("<key " + std::to_string(k) + ">"));
    out.push_back({child(static_cast<std::uint32_t>(c + 1), part), child(static_cast<std::uint32_t>(tape.next(c + 1)), part)});
    c = pair.end;
  }
  return out;
}

std::optional<TreeNode> TreeNode::find(std::string_view key) const {
  if (kind_ == Kind::Dataclass) {
    const std::optional<TreeNode> fields = field("fields");
    if (!fields || fields->kind_ != Kind::Dict || !fields->tag().empty()) fail(ErrorCode::SchemaInvalid, "a dataclass needs an object field \"fields\"");
    return fields->find(key);
  }
  if (!is_mapping()) wrong_kind("a mapping or a dataclass");
  // A scan that builds a node for the match only; a key found twice makes the file invalid, as the loader says.
  const Tape& tape = document_->tape;
  const bool plain = tag().empty();
  std::uint32_t count = tape[index_].count;
  std::size_t c = plain ? index_ + 1 : first_item(count);
  std::size_t value = Tape::npos;
  for (std::uint32_t k = 0; k < count; ++k) {
    const std::size_t key_at = plain ? c : c + 1;
    if (!plain && (tape[c].kind != NodeKind::Array || tape[c].count != 2)) {
      fail(ErrorCode::SchemaInvalid, "item " + std::to_string(k) + " of a mapping must be a [key, value] pair");
    }
    if (plain && tape[c].text == "$") fail(ErrorCode::SchemaInvalid, "\"$\" must be the first key of a tagged object and name its tag");
    if (tape[key_at].kind == NodeKind::String && tape[key_at].text == key) {
      if (value != Tape::npos) fail(ErrorCode::SchemaInvalid, "a mapping holds the key " + quote_name(key) + " twice");
      value = tape.next(key_at);
    }
    c = plain ? tape.next(c + 1) : tape.next(c);
  }
  if (value == Tape::npos) return std::nullopt;
  return child(static_cast<std::uint32_t>(value), extend(path_, key_part(key)));
}

TreeNode TreeNode::operator[](std::string_view key) const {
  std::optional<TreeNode> found = find(key);
  if (!found) fail(ErrorCode::KeyNotFound, "no key " + quote_name(key));
  return std::move(*found);
}

}  // namespace safestructures
