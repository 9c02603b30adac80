// The safetensors header: its parsed form, and validation of a file's header against the container rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "safestructures/dtype.hpp"
#include "safestructures/seeded_hash.hpp"
#include "safestructures/shown_text.hpp"

namespace safestructures {

inline constexpr std::uint64_t default_max_header_size = 100'000'000;
inline constexpr std::string_view metadata_key = "__metadata__";

// Metadata is kept as an ordered list: in file order when read, sorted by key when written.
using Metadata = std::vector<std::pair<std::string, std::string>>;

struct TensorInfo {
  std::string name;
  Dtype dtype;
  std::vector<std::uint64_t> shape;
  // Relative to the start of the data buffer, end exclusive.
  std::uint64_t begin = 0;
  std::uint64_t end = 0;

  std::uint64_t nbytes() const { return end - begin; }
  // Product of the shape; validated headers guarantee it does not overflow.
  std::uint64_t elements() const;
};

struct Header {
  // A null `__metadata__` and a missing one both read as has_metadata == false.
  bool has_metadata = false;
  Metadata metadata;
  // In the order of the header's JSON object.
  std::vector<TensorInfo> tensors;
  // Length of the JSON header (the N of the 8-byte prefix); the data buffer starts at 8 + header_size.
  std::uint64_t header_size = 0;
  // Position in `tensors` by name, built only for a header of more than small_header_tensors tensors: a few names
  // are found faster by comparing them than by hashing, and a small load saves the map's allocations and teardown.
  static constexpr std::size_t small_header_tensors = 8;
  std::unordered_map<std::string, std::size_t, SeededStringHash, std::equal_to<>> index;

  // The position in `tensors` of tensor `name`, or tensors.size() when there is none.
  std::size_t position(std::string_view name) const;
  const TensorInfo* find(std::string_view name) const;
  const std::string* find_metadata(std::string_view key) const;
  std::uint64_t data_offset() const { return 8 + header_size; }
};

// The header length prefix: 8 bytes, little-endian.
std::uint64_t load_le64(const void* bytes);

// Validates a whole safetensors file given as bytes (the 8-byte prefix, the header and the data buffer) and returns
// its header. Every rule of the reference reader is enforced, duplicate keys and NUL bytes in tensor names are
// rejected too. Errors name the offending tensor or key.
Header parse_header(std::span<const std::byte> file, std::uint64_t max_header_size = default_max_header_size);
// Validates the N-byte header text `json` of a file whose data buffer holds `data_size` bytes: parse_header's rules
// past the length prefix. A header whose metadata marks a recording (format.hpp) may leave bytes after its last
// tensor, the data appended since its last commit (docs/format.md section 9).
Header parse_header_text(std::string_view json, std::uint64_t data_size);
// The same, every header parsed by simdjson: the way parse_header_text takes for any header but the exact layout its
// writer produces, which it reads with a strict reader of its own (strict_json.hpp) to the same result. For tests.
Header parse_header_text_by_simdjson(std::string_view json, std::uint64_t data_size);
// What the N-byte header text `json` says of its data buffer: (where its last tensor ends, whether bytes may follow it
// as a recording's may). The header is checked by parse_header_text's rules but those that need the buffer's size
// (DataPastEnd, TrailingBytes): a stream that cannot seek is read that far and no further.
struct DeclaredData {
  std::uint64_t size = 0;
  bool trailing_allowed = false;
};
DeclaredData declared_data(std::string_view json);

// The bytes that `shape` elements of `dtype` take. Raises ShapeOverflow when the count overflows 64 bits, or
// SubByteNotWhole when sub-byte elements do not fill whole bytes; errors name tensor `name`.
std::uint64_t tensor_byte_size(std::string_view name, Dtype dtype, const std::vector<std::uint64_t>& shape);

// JSON strings are escaped the way serde_json escapes them: `"`, `\` and control characters only.
// Whether `c` stands for itself in a JSON string.
constexpr bool json_plain(char c) { return static_cast<unsigned char>(c) >= 0x20 && c != '"' && c != '\\'; }

// The escape sequence of `c` (written into `buffer` when it is \u00XX), or empty when `c` stands for itself.
inline std::string_view json_escape(char c, char (&buffer)[6]) {
  switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
  }
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20) return {};
  static constexpr char hex[] = "0123456789abcdef";
  std::memcpy(buffer, "\\u00", 4);
  buffer[4] = hex[u >> 4];
  buffer[5] = hex[u & 0xf];
  return {buffer, 6};
}

// The content of a JSON string holding `utf8`, without the quotes.
void append_json_escaped(std::string& out, std::string_view utf8);
// The JSON string literal, with its quotes.
void append_json_string(std::string& out, std::string_view utf8);

// A shape (or a view's stride) as messages write it: "[2, 3]".
std::string shape_text(std::span<const std::uint64_t> shape);
std::string shape_text(std::span<const std::int64_t> stride);

// True when `bytes` is valid UTF-8 (no surrogates, no overlong forms).
bool is_valid_utf8(std::string_view bytes);

}  // namespace safestructures
