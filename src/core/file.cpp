// Reading structured files from C++: the open document (reader, schema tape, reference ids) and the node accessors.
#include "safestructures/file.hpp"

#include <charconv>
#include <limits>

#include "safestructures/codec.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/structure.hpp"
#include "safestructures/tree_reader.hpp"

namespace safestructures {

namespace tree_detail {

// Everything a node needs, shared by every node and tensor of one open file: the mapping and the tree read from it.
struct OpenFile {
  explicit OpenFile(Reader r) : reader(std::move(r)) {}
  Reader reader;
  std::optional<TreeReader> tree;
  Metadata metadata;
  bool structured = false;
};

// One step of a node's path, already rendered (`["key"]`, `[3]`); the chain ends at the root (null parent).
struct PathPart {
  std::shared_ptr<const PathPart> parent;
  std::string text;
};

}  // namespace tree_detail

using tree_detail::OpenFile;
using tree_detail::PathPart;

namespace {

// What operator[] and items() want, as their errors say it.
constexpr std::string_view a_sequence = "a sequence (list, tuple, set, frozenset, deque or namedtuple)";

template <class Append, class Part>
std::shared_ptr<const PathPart> extend(const std::shared_ptr<const PathPart>& parent, Append append, Part part) {
  std::string text;
  append(text, part);
  return std::make_shared<const PathPart>(PathPart{parent, std::move(text)});
}

std::shared_ptr<const OpenFile> open_file(Reader reader, const OpenOptions& options) {
  auto doc = std::make_shared<OpenFile>(std::move(reader));
  const Header& header = doc->reader.header();
  doc->metadata = user_metadata(header);
  if (std::optional<Tape> schema = read_schema(doc->reader, schema_limits(options.max_depth, options.max_nodes))) {
    doc->tree.emplace(std::move(*schema));
    doc->structured = true;
    // Reference ids are indexed once, so that following a ref costs a lookup; a file that breaks their rules is
    // refused here, before any node is read.
    if (const std::string& problem = doc->tree->index().problem; !problem.empty()) raise(ErrorCode::SchemaInvalid, problem);
  } else if (header.find_metadata(v1_schema_key) != nullptr) {
    raise(ErrorCode::SchemaVersion,
          "this is a safestructures 1.0.0 file, which the C++ API does not read; `safestructures upgrade OLD NEW` rewrites it");
  } else {
    doc->tree.emplace(TreeReader::of_plain_file(header));
  }
  return doc;
}

}  // namespace

// ---- File

File File::open(const std::filesystem::path& path, const OpenOptions& options) {
  Reader reader = Reader::open(path, options.max_header_size);
  try {
    return File(open_file(std::move(reader), options));
  } catch (const Error& e) {
    raise(e.code(), path.string() + ": " + e.what());
  }
}

File File::from_bytes(std::vector<std::byte> bytes, const OpenOptions& options) {
  auto owner = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  return from_buffer(owner, *owner, options);
}

File File::from_buffer(std::shared_ptr<const void> owner, std::span<const std::byte> bytes, const OpenOptions& options) {
  return File(open_file(Reader::from_buffer(std::move(owner), bytes, /*writable=*/false, options.max_header_size), options));
}

const Metadata& File::metadata() const { return document_->metadata; }
bool File::structured() const { return document_->structured; }
const Header& File::header() const { return document_->reader.header(); }
VerifyReport File::verify() const { return verify_file(document_->reader); }
TreeNode File::root() const { return TreeNode(document_, static_cast<std::uint32_t>(document_->tree->root()), nullptr); }

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

TreeNode::TreeNode(std::shared_ptr<const OpenFile> document, std::uint32_t index, std::shared_ptr<const PathPart> path)
    : document_(std::move(document)), path_(std::move(path)), index_(index) {
  const TreeReader& tree = *document_->tree;
  std::optional<Kind> kind = tree.kind(index_);
  if (kind == Kind::Ref) {
    index_ = static_cast<std::uint32_t>(tree.resolve(index_, failing()));
    via_ref_ = true;
    kind = tree.kind(index_);
  }
  if (const std::string why = tree.malformed(index_); !why.empty()) fail(ErrorCode::SchemaInvalid, why);
  kind_ = *kind;
  if (!tag().empty()) shared_id_ = tree.id(index_);
}

std::string TreeNode::path() const {
  std::vector<const PathPart*> parts;
  for (const PathPart* p = path_.get(); p != nullptr; p = p->parent.get()) parts.push_back(p);
  return render_path(parts.size(), [&parts](std::string& out, std::size_t k) { out += parts.rbegin()[k]->text; });
}

void TreeNode::fail(ErrorCode code, const std::string& what) const { raise(code, "at " + path() + ": " + what); }

Fail TreeNode::failing() const {
  return {this, [](const void* self, const std::string& why, ErrorCode code) {
            static_cast<const TreeNode*>(self)->fail(code, why);
          }};
}

void TreeNode::wrong_kind(std::string_view wanted) const {
  fail(ErrorCode::WrongKind, "expected " + std::string(wanted) + ", found " + std::string(kind_name(kind_)));
}

TreeNode TreeNode::child(std::uint32_t index, std::shared_ptr<const PathPart> part) const { return TreeNode(document_, index, std::move(part)); }

bool TreeNode::is_sequence() const { return traits(kind_).shape == Shape::Sequence; }

bool TreeNode::is_mapping() const { return traits(kind_).shape == Shape::Mapping; }

std::string_view TreeNode::tag() const { return document_->tree->tape().tag(index_); }

std::optional<TreeNode> TreeNode::field(std::string_view name) const {
  if (tag().empty()) wrong_kind("a tagged node");
  if (name == tag_member || name == id_member) return std::nullopt;
  const std::size_t at = document_->tree->tape().member(index_, name);
  if (at == Tape::npos) return std::nullopt;
  // Wrapper fields are not part of paths, as when saving.
  return child(static_cast<std::uint32_t>(at), is_transparent_field(name) ? path_ : extend(path_, append_field_part, name));
}

std::vector<Entry> TreeNode::fields() const {
  if (tag().empty()) wrong_kind("a tagged node");
  std::vector<Entry> out;
  document_->tree->for_each_field(index_, [&](std::string_view name, std::size_t value) {
    auto part = is_transparent_field(name) ? path_ : extend(path_, append_field_part, name);
    out.push_back({child(static_cast<std::uint32_t>(value - 1), part), child(static_cast<std::uint32_t>(value), part)});
  });
  return out;
}

const TensorInfo& TreeNode::find_tensor(std::string_view name) const {
  const TensorInfo* info = document_->reader.header().find(name);
  if (info == nullptr) {
    fail(ErrorCode::TensorNotFound, "the schema refers to tensor " + quote_name(name) + ", which the file lacks");
  }
  return *info;
}

std::string TreeNode::type_name() const {
  if (!traits(kind_).names_class) return {};
  return std::string(document_->tree->string_field(index_, field::type, failing()));
}

bool TreeNode::as_bool() const {
  if (kind_ != Kind::Bool) wrong_kind("a bool");
  return document_->tree->tape()[index_].kind == NodeKind::True;
}

std::int64_t TreeNode::as_int() const {
  if (kind_ == Kind::BigInt) fail(ErrorCode::WrongKind, "the int " + big_int_hex() + " does not fit in 64 bits (read it with big_int_hex())");
  if (kind_ != Kind::Int) wrong_kind("an int");
  return document_->tree->tape()[index_].integer;
}

std::string TreeNode::big_int_hex() const {
  if (kind_ == Kind::Int) {
    const std::int64_t v = document_->tree->tape()[index_].integer;
    // Through unsigned, so that INT64_MIN has a magnitude.
    const std::uint64_t magnitude = v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    char digits[16];
    char* end = std::to_chars(digits, digits + sizeof digits, magnitude, 16).ptr;
    return (v < 0 ? "-0x" : "0x") + std::string(digits, end);
  }
  if (kind_ != Kind::BigInt) wrong_kind("an int");
  return std::string(document_->tree->big_int_hex(index_, failing()));
}

double TreeNode::as_double() const {
  if (kind_ != Kind::Float) wrong_kind("a float");
  const Tape& tape = document_->tree->tape();
  return tape[index_].kind == NodeKind::Float ? tape[index_].number : document_->tree->special_float(index_, failing());
}

std::string TreeNode::as_string() const {
  if (kind_ != Kind::String) wrong_kind("a str");
  const Tape& tape = document_->tree->tape();
  if (tape[index_].kind == NodeKind::String) return std::string(tape[index_].text);
  std::string out;
  for (const std::uint32_t p : document_->tree->code_points(index_, failing())) codec::append_code_point(out, p);
  return out;
}

std::vector<std::byte> TreeNode::as_bytes() const {
  if (kind_ != Kind::Bytes && kind_ != Kind::ByteArray) wrong_kind("bytes");
  std::string_view name;
  if (auto decoded = document_->tree->inline_bytes(index_, name, failing())) return std::move(*decoded);
  const TensorInfo& info = find_tensor(name);
  TreeReader::check_bytes_tensor(info, failing());
  const auto view = document_->reader.tensor(info).bytes;
  return {view.begin(), view.end()};
}

Tensor TreeNode::as_tensor() const {
  if (kind_ != Kind::Tensor) wrong_kind("a tensor");
  const Tape& tape = document_->tree->tape();
  Tensor t;
  t.info_ = &find_tensor(document_->tree->tensor_name(index_, t.view_, failing()));
  t.bytes_ = document_->reader.tensor(*t.info_).bytes;
  t.document_ = document_;
  t.path_ = path();
  const auto text = [&](std::string_view field) {
    const std::size_t at = tape.member(index_, field);
    if (at == Tape::npos) return std::string_view();
    if (tape[at].kind != NodeKind::String) fail(ErrorCode::SchemaInvalid, "a tensor's " + quote_name(field) + " must be a string");
    return tape[at].text;
  };
  t.framework_ = text(field::framework);
  t.numpy_dtype_ = text(field::dtype);
  if (t.view_) {
    TreeReader::ViewGeometry view = document_->tree->view_geometry(index_, t.info_->elements(), failing());
    t.view_offset_ = view.offset;
    t.logical_shape_ = std::move(view.shape);
    t.view_stride_ = std::move(view.stride);
  } else if (const std::size_t shape = tape.member(index_, field::shape); shape != Tape::npos && !t.numpy_dtype_.empty() && t.dtype() == Dtype::U8) {
    // An array of a dtype safetensors lacks, stored as its bytes: the node's shape is its own. (Elsewhere a node's
    // shape is ignored, as the Python loads ignore it: the stored tensor's is the shape.)
    if (tape[shape].kind != NodeKind::Array) fail(ErrorCode::SchemaInvalid, "a tensor's \"shape\" must be an array of integers");
    t.logical_shape_.emplace();
    for (std::size_t c = shape + 1; c < tape[shape].end; ++c) {
      if (tape[c].kind != NodeKind::Int || tape[c].integer < 0) fail(ErrorCode::SchemaInvalid, "a tensor's \"shape\" must be an array of integers");
      t.logical_shape_->push_back(static_cast<std::uint64_t>(tape[c].integer));
    }
  }
  if (!t.numpy_dtype_.empty() && t.numpy_dtype_ != dtype_traits[static_cast<std::size_t>(t.dtype())].numpy_name) check_named_dtype(t);
  return t;
}

void TreeNode::check_named_dtype(const Tensor& t) const {
  // A dtype other than the stored one, which a caller reads the bytes as: its elements must fill them exactly (a
  // view's, the storage's elements), or a caller trusting logical_shape() would read past bytes(). The Python loads
  // refuse the same nodes.
  const auto item = byte_dtype_item_size(t.numpy_dtype_);
  if (!item) fail(ErrorCode::SchemaInvalid, "dtype " + quote_name(t.numpy_dtype_) + " is not one that safestructures stores");
  if (t.is_view() || dtype_is_sub_byte(t.dtype())) {
    if (dtype_is_sub_byte(t.dtype()) || *item != dtype_bits(t.dtype()) / 8) {
      fail(ErrorCode::SchemaInvalid, "dtype " + quote_name(t.numpy_dtype_) + " does not match the stored dtype " + std::string(dtype_name(t.dtype())));
    }
    return;
  }
  std::uint64_t bytes = *item;
  for (const std::uint64_t n : t.logical_shape()) {
    if (__builtin_mul_overflow(bytes, n, &bytes)) bytes = std::numeric_limits<std::uint64_t>::max();
  }
  if (bytes != t.bytes().size()) {
    fail(ErrorCode::SchemaInvalid, "shape " + shape_text(t.logical_shape()) + " of " + quote_name(t.numpy_dtype_) + " needs " +
                                       (bytes == std::numeric_limits<std::uint64_t>::max() ? std::string("more than 2^64") : std::to_string(bytes)) +
                                       " bytes, the tensor holds " + std::to_string(t.bytes().size()));
  }
}

std::uint32_t TreeNode::first_item(std::uint32_t& count) const {
  // A plain list's items, or a plain object's members, are its children.
  if (tag().empty()) {
    count = document_->tree->tape()[index_].count;
    return index_ + 1;
  }
  return static_cast<std::uint32_t>(document_->tree->checked_items(index_, kind_, count, failing()));
}

std::size_t TreeNode::size() const {
  if (!is_sequence() && !is_mapping()) wrong_kind("a sequence or a mapping");
  std::uint32_t count = 0;
  first_item(count);
  return count;
}

TreeNode TreeNode::operator[](std::size_t index) const {
  if (!is_sequence()) wrong_kind(a_sequence);
  std::uint32_t count = 0;
  std::size_t c = first_item(count);
  if (index >= count) {
    fail(ErrorCode::IndexOutOfRange, "index " + std::to_string(index) + " is out of range for a " + std::string(kind_name(kind_)) + " of " +
                                         std::to_string(count) + " items");
  }
  for (std::size_t k = 0; k < index; ++k) c = document_->tree->tape().next(c);
  return child(static_cast<std::uint32_t>(c), extend(path_, append_index_part, static_cast<std::int64_t>(index)));
}

std::vector<TreeNode> TreeNode::items() const {
  if (!is_sequence()) wrong_kind(a_sequence);
  std::uint32_t count = 0;
  std::size_t c = first_item(count);
  std::vector<TreeNode> out;
  out.reserve(count);
  for (std::uint32_t k = 0; k < count; ++k) {
    out.push_back(child(static_cast<std::uint32_t>(c), extend(path_, append_index_part, static_cast<std::int64_t>(k))));
    c = document_->tree->tape().next(c);
  }
  return out;
}

TreeNode TreeNode::dataclass_fields() const {
  const std::optional<TreeNode> fields = field("fields");
  if (!fields || fields->kind_ != Kind::Dict || !fields->tag().empty()) fail(ErrorCode::SchemaInvalid, "a dataclass needs an object field \"fields\"");
  return *fields;
}

template <class Fn>
void TreeNode::for_each_entry(Fn fn) const {
  if (!tag().empty()) return document_->tree->for_each_pair(index_, failing(), fn);
  const Tape& tape = document_->tree->tape();
  std::size_t c = index_ + 1;
  for (std::uint32_t k = 0; k < tape[index_].count; ++k, c = tape.next(c + 1)) {
    if (tape[c].text == tag_member) fail(ErrorCode::SchemaInvalid, std::string(misplaced_tag_member));
    fn(k, c, c + 1);
  }
}

std::vector<Entry> TreeNode::entries() const {
  if (kind_ == Kind::Dataclass) return dataclass_fields().entries();
  if (!is_mapping()) wrong_kind("a mapping");
  const Tape& tape = document_->tree->tape();
  // A mapping in pair form holds a string or int key once (TreeReader::for_each_pair checks it); a plain object's keys
  // are distinct as parsed.
  std::vector<Entry> out;
  for_each_entry([&](std::uint32_t k, std::size_t key_at, std::size_t value_at) {
    const Node& key = tape[key_at];
    // String and int keys are written as Python writes them; other keys by the pair's position.
    auto part = key.kind == NodeKind::String ? extend(path_, append_key_part, key.text)
                : key.kind == NodeKind::Int  ? extend(path_, append_index_part, key.integer)
                                             : extend(path_, [](std::string& out, std::uint32_t n) { out += "[<key " + std::to_string(n) + ">]"; }, k);
    out.push_back({child(static_cast<std::uint32_t>(key_at), part), child(static_cast<std::uint32_t>(value_at), part)});
  });
  return out;
}

std::optional<TreeNode> TreeNode::find(std::string_view key) const {
  if (kind_ == Kind::Dataclass) return dataclass_fields().find(key);
  if (!is_mapping()) wrong_kind("a mapping or a dataclass");
  // A scan that builds a node for the match only; a key found twice makes the file invalid, as the loader says.
  const Tape& tape = document_->tree->tape();
  std::size_t value = Tape::npos;
  for_each_entry([&](std::uint32_t, std::size_t key_at, std::size_t value_at) {
    if (tape[key_at].kind != NodeKind::String || tape[key_at].text != key) return;
    if (value != Tape::npos) fail(ErrorCode::SchemaInvalid, "a mapping holds the key " + quote_name(key) + " twice");
    value = value_at;
  });
  if (value == Tape::npos) return std::nullopt;
  return child(static_cast<std::uint32_t>(value), extend(path_, append_key_part, key));
}

TreeNode TreeNode::operator[](std::string_view key) const {
  std::optional<TreeNode> found = find(key);
  if (!found) fail(ErrorCode::KeyNotFound, "no key " + quote_name(key));
  return std::move(*found);
}

}  // namespace safestructures
