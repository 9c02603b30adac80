// Parsing and validating a safetensors header with simdjson, and the JSON/UTF-8 helpers shared with the writer.
#include "safestructures/container.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <span>

#include "safestructures/error.hpp"
#include "safestructures/escaped_string.hpp"
#include "safestructures/format.hpp"
#include "safestructures/strict_json.hpp"

namespace safestructures {
namespace {

// Metadata of at most this many keys is checked for a duplicate key pairwise, without sorting.
constexpr std::size_t small_metadata = 8;

// Parsers whose buffers grew past this are not kept for the next call.
constexpr std::size_t retained_parser_capacity = 16 << 20;

std::string where(std::string_view tensor) { return "tensor " + quote_name(tensor); }

// A JSON value of the header as a message shows it (shown_text.hpp).
std::string shown(simdjson::dom::element value) { return shown_json(simdjson::to_string(value)); }

// Reads a JSON number that must be a non-negative integer, naming the field in errors.
std::uint64_t read_u64(simdjson::dom::element value, std::string_view tensor, std::string_view field) {
  using simdjson::dom::element_type;
  switch (value.type()) {
    case element_type::UINT64: return value.get_uint64().value_unsafe();
    case element_type::INT64: {
      const std::int64_t v = value.get_int64().value_unsafe();
      if (v < 0) raise(ErrorCode::NegativeNumber, where(tensor) + ": " + std::string(field) + " holds negative number " + std::to_string(v));
      return static_cast<std::uint64_t>(v);
    }
    case element_type::DOUBLE: {
      const double v = value.get_double().value_unsafe();
      if (std::signbit(v)) raise(ErrorCode::NegativeNumber, where(tensor) + ": " + std::string(field) + " holds negative number " + shown(value));
      raise(ErrorCode::FractionalNumber, where(tensor) + ": " + std::string(field) + " holds " + shown(value) + ", which is not written as an integer");
    }
    default:
      raise(ErrorCode::WrongFieldType, where(tensor) + ": " + std::string(field) + " must hold numbers, found " + shown(value));
  }
}

std::vector<std::uint64_t> read_u64_array(simdjson::dom::element value, std::string_view tensor, std::string_view field) {
  simdjson::dom::array array;
  if (value.get_array().get(array)) {
    raise(ErrorCode::WrongFieldType, where(tensor) + ": " + std::string(field) + " must be an array, found " + shown(value));
  }
  std::vector<std::uint64_t> out;
  out.reserve(array.size());
  for (simdjson::dom::element item : array) out.push_back(read_u64(item, tensor, field));
  return out;
}

void check_offsets_order(const TensorInfo& info) {
  if (info.begin > info.end) {
    raise(ErrorCode::InvalidOffsets, where(info.name) + ": data_offsets begin " + std::to_string(info.begin) + " is past end " + std::to_string(info.end));
  }
}

// The checks of an entry's values once its fields are read, by either way.
void check_entry_values(const TensorInfo& info) {
  const std::string_view name = info.name;
  if (name.find('\0') != std::string_view::npos) raise(ErrorCode::InvalidName, where(name) + ": tensor names must not contain NUL");
  const std::uint64_t needed = tensor_byte_size(name, info.dtype, info.shape);
  if (needed != info.nbytes()) {
    raise(ErrorCode::SizeMismatch, where(name) + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "] span " +
                                       std::to_string(info.nbytes()) + " bytes, but shape " + shape_text(info.shape) + " of " +
                                       std::string(dtype_name(info.dtype)) + " needs " + std::to_string(needed));
  }
}

TensorInfo read_entry(std::string_view name, simdjson::dom::element value) {
  simdjson::dom::object entry;
  if (value.get_object().get(entry)) {
    raise(ErrorCode::EntryNotObject, where(name) + ": entry must be an object, found " + shown(value));
  }
  TensorInfo info;
  info.name = std::string(name);
  bool seen_dtype = false, seen_shape = false, seen_offsets = false;
  auto once = [&](bool& seen, std::string_view field) {
    if (seen) raise(ErrorCode::DuplicateKey, where(name) + ": field " + quote_name(field) + " appears twice");
    seen = true;
  };
  for (auto field : entry) {
    if (field.key == "dtype") {
      once(seen_dtype, field.key);
      std::string_view text;
      if (field.value.get_string().get(text)) {
        raise(ErrorCode::WrongFieldType, where(name) + ": dtype must be a string, found " + shown(field.value));
      }
      const auto dtype = parse_dtype(text);
      if (!dtype) raise(ErrorCode::UnknownDtype, where(name) + ": unknown dtype " + quote_name(text));
      info.dtype = *dtype;
    } else if (field.key == "shape") {
      once(seen_shape, field.key);
      info.shape = read_u64_array(field.value, name, "shape");
    } else if (field.key == "data_offsets") {
      once(seen_offsets, field.key);
      const auto offsets = read_u64_array(field.value, name, "data_offsets");
      if (offsets.size() != 2) {
        raise(ErrorCode::InvalidOffsets, where(name) + ": data_offsets must hold exactly 2 numbers, found " + std::to_string(offsets.size()));
      }
      info.begin = offsets[0];
      info.end = offsets[1];
      check_offsets_order(info);
    }
    // Unknown fields are ignored, as the reference reader does.
  }
  if (!seen_dtype) raise(ErrorCode::MissingField, where(name) + ": missing field \"dtype\"");
  if (!seen_shape) raise(ErrorCode::MissingField, where(name) + ": missing field \"shape\"");
  if (!seen_offsets) raise(ErrorCode::MissingField, where(name) + ": missing field \"data_offsets\"");
  check_entry_values(info);
  return info;
}

// A metadata string unescaped before the parse (see parse_header_text): it stands for its key's first value in the
// text parsed, an empty string there.
struct Unescaped {
  std::string_view key;
  std::string text;
  bool used = false;  // a second value of the key is its own, read from the text (the key may be any, "" included)
};

void check_metadata_keys(const Metadata& metadata);

void read_metadata(simdjson::dom::element value, Header& header, std::span<Unescaped> unescaped) {
  if (value.is_null()) return;
  simdjson::dom::object object;
  if (value.get_object().get(object)) {
    raise(ErrorCode::MetadataNotObject, "__metadata__ must be an object of strings, found " + shown(value));
  }
  header.has_metadata = true;
  header.metadata.reserve(object.size());
  for (auto field : object) {
    std::string_view text;
    if (field.value.get_string().get(text)) {
      raise(ErrorCode::MetadataNotString, "__metadata__ key " + quote_name(field.key) + " must have a string value, found " + shown(field.value));
    }
    const auto given = std::find_if(unescaped.begin(), unescaped.end(), [&](const Unescaped& u) { return !u.used && u.key == field.key; });
    if (given != unescaped.end()) {
      header.metadata.emplace_back(std::string(field.key), std::move(given->text));
      given->used = true;
      continue;
    }
    // Room for simdjson's padding after the text: the schema held here is parsed in place, not copied once more.
    std::string value;
    value.reserve(text.size() + simdjson::SIMDJSON_PADDING);
    value.append(text);
    header.metadata.emplace_back(std::string(field.key), std::move(value));
  }
  check_metadata_keys(header.metadata);
}

void check_metadata_keys(const Metadata& metadata) {
  if (metadata.size() <= small_metadata) {
    // A few keys, compared pairwise: cheaper than sorting views of them.
    for (std::size_t a = 0; a < metadata.size(); ++a) {
      for (std::size_t b = a + 1; b < metadata.size(); ++b) {
        if (metadata[a].first == metadata[b].first) raise(ErrorCode::DuplicateKey, "__metadata__ key " + quote_name(metadata[a].first) + " appears twice");
      }
    }
    return;
  }
  std::vector<std::string_view> keys;
  keys.reserve(metadata.size());
  for (const auto& [key, _] : metadata) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  const auto dup = std::adjacent_find(keys.begin(), keys.end());
  if (dup != keys.end()) raise(ErrorCode::DuplicateKey, "__metadata__ key " + quote_name(*dup) + " appears twice");
}

// simdjson reads "-0" as the integer 0; the reference reader refuses it as a negative number, so a '-' anywhere outside
// a string is refused here (valid headers have no negative numbers at all).
// Whether some '-' in the text could start a number: outside strings a '-' is either a number's sign, which follows
// '[', ',' or ':' (and whitespace), or an exponent's sign, which follows 'e' or 'E'. Every other '-' is inside a
// string, so a header whose minus signs all sit in names or in the schema's text ("item-3", "1e-05") skips the
// byte-by-byte scan of its strings.
bool may_hold_negative_number(std::string_view json) {
  for (std::size_t at = json.find('-'); at != std::string_view::npos; at = json.find('-', at + 1)) {
    const std::size_t before = at == 0 ? std::string_view::npos : json.find_last_not_of(" \t\n\r", at - 1);
    if (before == std::string_view::npos || json[before] == '[' || json[before] == ',' || json[before] == ':') {
      return true;
    }
  }
  return false;
}

void check_no_minus_sign(std::string_view json) {
  if (!may_hold_negative_number(json)) return;
  for (std::size_t i = 0; i < json.size(); ++i) {
    if (json[i] == '"') {
      // Past the string's closing quote, stepping over each escaped character.
      for (++i; i < json.size() && json[i] != '"'; ++i) i += json[i] == '\\';
    } else if (json[i] == '-') {
      raise(ErrorCode::NegativeNumber, "header holds a negative number at byte " + std::to_string(i));
    }
  }
}

// Checks that tensor `last` of the header is named once among those before it, and indexes it by name (`members`: how
// many the header has).
void index_tensor(Header& header, std::size_t last, std::size_t members) {
  const std::string& name = header.tensors[last].name;
  if (last <= Header::small_header_tensors) {
    for (std::size_t k = 0; k < last; ++k) {
      if (header.tensors[k].name == name) raise(ErrorCode::DuplicateKey, where(name) + " appears twice");
    }
    if (last < Header::small_header_tensors) return;
    // Past the few names compared one by one: the names so far go into the index, and those after as they come.
    header.index.reserve(members);
    for (std::size_t k = 0; k <= last; ++k) header.index.emplace(header.tensors[k].name, k);
    return;
  }
  if (!header.index.emplace(name, last).second) raise(ErrorCode::DuplicateKey, where(name) + " appears twice");
}

// The data size declared_data parses a header against: no entry ends past it, and no trailing bytes are counted.
constexpr std::uint64_t unknown_data_size = std::numeric_limits<std::uint64_t>::max();

// `trailing_allowed`: a recording's data buffer may run past its last tensor (data appended since its last commit).
void check_tiling(const Header& header, std::uint64_t data_size, bool trailing_allowed) {
  const auto& tensors = header.tensors;
  for (const auto& t : tensors) {
    if (t.end > data_size) {
      raise(ErrorCode::DataPastEnd, where(t.name) + ": data_offsets end " + std::to_string(t.end) + " is past the end of the data buffer (" +
                                        std::to_string(data_size) + " bytes)");
    }
  }
  const auto span_before = [&](std::size_t a, std::size_t b) {
    return std::pair(tensors[a].begin, tensors[a].end) < std::pair(tensors[b].begin, tensors[b].end);
  };
  // The tensors by where their data starts: the header's own order when it is that already (as every writer's is),
  // which then costs no sorted copy.
  bool in_order = true;
  for (std::size_t k = 1; k < tensors.size() && in_order; ++k) in_order = !span_before(k, k - 1);
  std::vector<std::size_t> order;
  if (!in_order) {
    order.resize(tensors.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), span_before);
  }
  std::uint64_t expected = 0;
  const TensorInfo* previous = nullptr;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const TensorInfo& t = tensors[in_order ? k : order[k]];
    if (t.begin > expected) {
      raise(ErrorCode::Hole, where(t.name) + " starts at " + std::to_string(t.begin) + ", leaving a hole after " +
                                 (previous ? where(previous->name) + ", which ends at " : std::string("the start of the data at ")) + std::to_string(expected));
    }
    if (t.begin < expected) {
      raise(ErrorCode::Overlap, where(t.name) + " starts at " + std::to_string(t.begin) + ", inside " + where(previous->name) + ", which ends at " +
                                    std::to_string(expected));
    }
    expected = t.end;
    previous = &t;
  }
  if (expected != data_size && !trailing_allowed && data_size != unknown_data_size) {
    raise(ErrorCode::TrailingBytes, std::to_string(data_size - expected) + " bytes follow the last tensor's data" +
                                        (previous ? " (" + where(previous->name) + ")" : std::string(" (the file holds no tensor data)")));
  }
}

}  // namespace

std::uint64_t load_le64(const void* bytes) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::uint64_t tensor_byte_size(std::string_view name, Dtype dtype, const std::vector<std::uint64_t>& shape) {
  std::uint64_t elements = 1;
  for (std::uint64_t dim : shape) {
    if (__builtin_mul_overflow(elements, dim, &elements)) {
      raise(ErrorCode::ShapeOverflow,
            where(name) + ": element count of shape " + shape_text(shape) + " overflows 64 bits");
    }
  }
  std::uint64_t bits = 0;
  if (__builtin_mul_overflow(elements, std::uint64_t{dtype_bits(dtype)}, &bits)) {
    raise(ErrorCode::ShapeOverflow, where(name) + ": byte size of shape " + shape_text(shape) + " of " +
                                        std::string(dtype_name(dtype)) + " overflows 64 bits");
  }
  if (bits % 8 != 0) {
    raise(ErrorCode::SubByteNotWhole, where(name) + ": " + std::to_string(elements) + " elements of " +
                                          std::string(dtype_name(dtype)) + " do not fill a whole number of bytes");
  }
  return bits / 8;
}

std::uint64_t TensorInfo::elements() const {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) n *= d;
  return n;
}

std::size_t Header::position(std::string_view name) const {
  if (tensors.size() <= small_header_tensors) {
    for (std::size_t k = 0; k < tensors.size(); ++k) {
      if (tensors[k].name == name) return k;
    }
    return tensors.size();
  }
  const auto it = index.find(name);
  return it == index.end() ? tensors.size() : it->second;
}

const TensorInfo* Header::find(std::string_view name) const {
  const std::size_t at = position(name);
  return at == tensors.size() ? nullptr : &tensors[at];
}

const std::string* Header::find_metadata(std::string_view key) const {
  const auto it = std::find_if(metadata.begin(), metadata.end(), [&](const auto& kv) { return kv.first == key; });
  return it == metadata.end() ? nullptr : &it->second;
}

Header parse_header(std::span<const std::byte> file, std::uint64_t max_header_size) {
  if (file.size() < 8) {
    raise(ErrorCode::FileTooSmall, "file is " + std::to_string(file.size()) + " bytes, shorter than the 8-byte header length prefix");
  }
  const std::uint64_t n = load_le64(file.data());
  if (n > max_header_size) {
    raise(ErrorCode::HeaderTooLarge, "header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(max_header_size) + " bytes");
  }
  if (n > file.size() - 8) {
    raise(ErrorCode::HeaderPastEnd, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(file.size() - 8) +
                                        " bytes follow the prefix)");
  }
  return parse_header_text(std::string_view(reinterpret_cast<const char*>(file.data() + 8), n), file.size() - 8 - n);
}

namespace {

void check_header_bytes(std::string_view json) {
  if (json.starts_with("\xEF\xBB\xBF")) raise(ErrorCode::HeaderBom, "header starts with a UTF-8 byte order mark");
  if (const auto nul = json.find('\0'); nul != std::string_view::npos) {
    raise(ErrorCode::HeaderNulByte, "header holds a NUL byte at offset " + std::to_string(nul));
  }
  if (!simdjson::validate_utf8(json.data(), json.size())) raise(ErrorCode::HeaderNotUtf8, "header is not valid UTF-8");
}

Header parse_checked_header_text(std::string_view json, std::uint64_t data_size);

// The header read by the strict reader, then checked as the simdjson way checks what it reads, in the same order (the
// metadata, which that layout has first, then each entry): its errors are those of the simdjson way. False when the
// reader declines the text.
bool parse_strict_header(std::string_view json, std::uint64_t data_size, Header& header) {
  if (!read_strict_header(json, header)) return false;
  header.header_size = json.size();
  check_metadata_keys(header.metadata);
  const std::size_t members = header.tensors.size() + (header.has_metadata ? 1 : 0);
  for (std::size_t k = 0; k < header.tensors.size(); ++k) {
    check_offsets_order(header.tensors[k]);
    check_entry_values(header.tensors[k]);
    index_tensor(header, k, members);
  }
  // No '-' outside strings: the layout has none (check_no_minus_sign).
  check_tiling(header, data_size, header.find_metadata(recording_metadata_key) != nullptr);
  return true;
}

}  // namespace

Header parse_header_text(std::string_view json, std::uint64_t data_size) {
  check_header_bytes(json);
  {
    Header header;
    if (parse_strict_header(json, data_size, header)) return header;
  }
  return parse_checked_header_text(json, data_size);
}

Header parse_header_text_by_simdjson(std::string_view json, std::uint64_t data_size) {
  check_header_bytes(json);
  return parse_checked_header_text(json, data_size);
}

DeclaredData declared_data(std::string_view json) {
  const Header header = parse_header_text(json, unknown_data_size);
  DeclaredData out;
  for (const auto& t : header.tensors) out.size = std::max(out.size, t.end);
  out.trailing_allowed = header.find_metadata(recording_metadata_key) != nullptr;
  return out;
}

namespace {

// parse_header_text's simdjson way, once the header's bytes are checked.
Header parse_checked_header_text(std::string_view json, std::uint64_t data_size) {
  const std::uint64_t n = json.size();

  // A header this library writes starts with its schema string, and its checksums entry right after: unescaped here
  // the fast way where they can be, and left out of the text the JSON parser reads (which leaves the rest of the
  // header, and any other header, to it).
  static const std::string schema_start = "{\"" + std::string(metadata_key) + "\":{\"" + std::string(schema_metadata_key) + "\":\"";
  static const std::string checksums_start = "\",\"" + std::string(checksums_metadata_key) + "\":\"";
  std::array<Unescaped, 2> unescaped{Unescaped{schema_metadata_key, {}}, Unescaped{checksums_metadata_key, {}}};
  std::size_t taken = 0;       // how many of `unescaped` were
  std::string_view rest;       // the text after the last string unescaped, from its closing quote on
  if (json.starts_with(schema_start)) {
    const std::size_t length = unescape_simple_json_string(json.substr(schema_start.size()), unescaped[0].text, simdjson::SIMDJSON_PADDING);
    if (length != escaped_string_npos) {
      taken = 1;
      rest = json.substr(schema_start.size() + length);
      if (rest.starts_with(checksums_start)) {
        const std::size_t checksums_length = unescape_simple_json_string(rest.substr(checksums_start.size()), unescaped[1].text,
                                                                          simdjson::SIMDJSON_PADDING);
        if (checksums_length != escaped_string_npos) {
          taken = 2;
          rest = rest.substr(checksums_start.size() + checksums_length);
        }
      }
    }
  }
  const std::size_t prefix = taken == 0 ? 0 : schema_start.size() + (taken == 2 ? checksums_start.size() : 0);
  simdjson::padded_string padded(taken == 0 ? json.size() : prefix + rest.size());
  if (padded.data() == nullptr) {
    // Out of memory: the parse below says so.
  } else if (taken == 0) {
    std::memcpy(padded.data(), json.data(), json.size());
  } else {
    std::memcpy(padded.data(), schema_start.data(), schema_start.size());
    if (taken == 2) std::memcpy(padded.data() + schema_start.size(), checksums_start.data(), checksums_start.size());
    std::memcpy(padded.data() + prefix, rest.data(), rest.size());
  }
  // One parser per thread, kept between calls: allocating its buffers anew for every file costs more than parsing
  // a small header. A parser grown by a huge header is let go rather than kept.
  thread_local simdjson::dom::parser parser;
  struct Trim {
    ~Trim() {
      if (parser.capacity() > retained_parser_capacity) parser = simdjson::dom::parser{};
    }
  } trim;
  simdjson::dom::element root;
  if (const auto err = parser.parse(padded).get(root)) {
    const std::string number = err == simdjson::NUMBER_ERROR ? unreadable_number(json) : std::string();
    raise(ErrorCode::HeaderNotJson, std::string("header is not valid JSON: ") + simdjson::error_message(err) +
                                        (number.empty() ? "" : " (" + number + ", which no 64-bit int or finite double holds)"));
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) raise(ErrorCode::HeaderNotObject, "header must be a JSON object, found " + shown(root));

  Header header;
  header.header_size = n;
  header.tensors.reserve(object.size());
  bool seen_metadata = false;
  for (auto field : object) {
    if (field.key == metadata_key) {
      if (seen_metadata) raise(ErrorCode::DuplicateKey, "key \"__metadata__\" appears twice");
      seen_metadata = true;
      read_metadata(field.value, header, std::span<Unescaped>(unescaped.data(), taken));
      continue;
    }
    header.tensors.push_back(read_entry(field.key, field.value));
    index_tensor(header, header.tensors.size() - 1, object.size());
  }
  check_no_minus_sign(json);
  check_tiling(header, data_size, header.find_metadata(recording_metadata_key) != nullptr);
  return header;
}

}  // namespace

namespace {

template <class Int>
std::string list_text(std::span<const Int> values) {
  std::string s = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(values[i]);
  }
  return s + "]";
}

}  // namespace

std::string shape_text(std::span<const std::uint64_t> shape) { return list_text(shape); }
std::string shape_text(std::span<const std::int64_t> stride) { return list_text(stride); }

void append_json_escaped(std::string& out, std::string_view utf8) {
  char buffer[6];
  // Two passes, counting then writing in place: a schema is escaped as one long metadata string whose quotes come
  // every few characters, where appending run by run costs more than the escaping itself.
  std::size_t extra = 0;
  for (const char c : utf8) {
    if (!json_plain(c)) extra += static_cast<unsigned char>(c) < 0x20 ? json_escape(c, buffer).size() - 1 : 1;
  }
  const std::size_t start = out.size();
  out.resize(start + utf8.size() + extra);
  char* p = out.data() + start;
  if (extra == 0) {
    std::memcpy(p, utf8.data(), utf8.size());
    return;
  }
  for (const char c : utf8) {
    if (json_plain(c)) {
      *p++ = c;
      continue;
    }
    const std::string_view escape = json_escape(c, buffer);
    std::memcpy(p, escape.data(), escape.size());
    p += escape.size();
  }
}

void append_json_string(std::string& out, std::string_view utf8) {
  out += '"';
  append_json_escaped(out, utf8);
  out += '"';
}

bool is_valid_utf8(std::string_view bytes) { return simdjson::validate_utf8(bytes.data(), bytes.size()); }

}  // namespace safestructures
