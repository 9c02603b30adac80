// The fast way through a header this library wrote: its exact layout read in one pass, with no JSON parser's set-up,
// where simdjson's parse of a tiny header cost more than the rest of a tiny load. Anything else is declined.
#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "safestructures/escaped_string.hpp"
#include "safestructures/format.hpp"
#include "safestructures/strict_json.hpp"

namespace safestructures {
namespace {

// The most digits a number may have here: any 19 digits fit 64 bits.
constexpr std::ptrdiff_t max_digits = 19;

// A position in the header text; every step returns false where the text is not what the layout has there.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : at_(text.data()), end_(text.data() + text.size()) {}

  bool byte(char c) {
    if (at_ == end_ || *at_ != c) return false;
    ++at_;
    return true;
  }
  bool literal(std::string_view s) {
    if (static_cast<std::size_t>(end_ - at_) < s.size() || std::memcmp(at_, s.data(), s.size()) != 0) return false;
    at_ += s.size();
    return true;
  }
  // A string without escapes or control characters, its opening quote already read; past its closing quote.
  bool plain_string(std::string_view& out) {
    for (const char* start = at_; at_ != end_; ++at_) {
      const auto c = static_cast<unsigned char>(*at_);
      if (c == '"') {
        out = std::string_view(start, static_cast<std::size_t>(at_ - start));
        ++at_;
        return true;
      }
      if (c == '\\' || c < 0x20) return false;
    }
    return false;
  }
  // A metadata value, its opening quote already read: plain, or with \" \\ \/ escapes unescaped the fast way. Kept
  // with simdjson's padding after it, as the simdjson way keeps it: the schema is parsed in place.
  bool metadata_string(std::string& out) {
    const char* start = at_;
    for (; at_ != end_; ++at_) {
      const auto c = static_cast<unsigned char>(*at_);
      if (c == '"') {
        const auto length = static_cast<std::size_t>(at_ - start);
        out.reserve(length + simdjson::SIMDJSON_PADDING);
        out.assign(start, length);
        ++at_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        const std::size_t length = unescape_simple_json_string(std::string_view(start, static_cast<std::size_t>(end_ - start)), out,
                                                               simdjson::SIMDJSON_PADDING);
        if (length == escaped_string_npos) return false;
        at_ = start + length + 1;
        return true;
      }
    }
    return false;
  }
  // A number without sign, fraction or exponent, of at most max_digits digits and no leading zero; the layout's next
  // byte (',' or ']') is checked by the caller, which so refuses "01", "1.5" and "1e3".
  bool number(std::uint64_t& value) {
    const char* start = at_;
    value = 0;
    if (at_ != end_ && *at_ == '0') {
      ++at_;
      return true;
    }
    while (at_ != end_ && *at_ >= '0' && *at_ <= '9' && at_ - start < max_digits) value = value * 10 + static_cast<std::uint64_t>(*at_++ - '0');
    return at_ != start && (at_ == end_ || *at_ < '0' || *at_ > '9');
  }
  // An array of numbers, its '[' already read; past its ']'.
  bool numbers(std::vector<std::uint64_t>& out) {
    if (byte(']')) return true;
    do {
      std::uint64_t value = 0;
      if (!number(value)) return false;
      out.push_back(value);
    } while (byte(','));
    return byte(']');
  }
  // Only spaces are left: the writer's padding to a multiple of 8 bytes.
  bool only_spaces() {
    for (; at_ != end_; ++at_) {
      if (*at_ != ' ') return false;
    }
    return true;
  }

 private:
  const char* at_;
  const char* end_;
};

bool read_metadata(Cursor& c, Header& header) {
  header.has_metadata = true;
  if (c.byte('}')) return true;
  // The schema, the checksums and a few keys of the user's without regrowing.
  header.metadata.reserve(4);
  do {
    std::string_view key;
    if (!c.byte('"') || !c.plain_string(key) || !c.literal(":\"")) return false;
    auto& [name, value] = header.metadata.emplace_back(std::string(key), std::string());
    (void)name;
    if (!c.metadata_string(value)) return false;
  } while (c.byte(','));
  return c.byte('}');
}

bool read_entry(Cursor& c, Header& header) {
  std::string_view name, dtype_text;
  if (!c.byte('"') || !c.plain_string(name) || name == metadata_key) return false;
  if (!c.literal(":{\"dtype\":\"") || !c.plain_string(dtype_text)) return false;
  const auto dtype = parse_dtype(dtype_text);
  if (!dtype) return false;
  TensorInfo& info = header.tensors.emplace_back();
  info.name = std::string(name);
  info.dtype = *dtype;
  std::uint64_t begin = 0, end = 0;
  if (!c.literal(",\"shape\":[") || !c.numbers(info.shape) || !c.literal(",\"data_offsets\":[") || !c.number(begin) || !c.byte(',') ||
      !c.number(end) || !c.literal("]}")) {
    return false;
  }
  info.begin = begin;
  info.end = end;
  return true;
}

}  // namespace

bool read_strict_header(std::string_view json, Header& header) {
  static const std::string metadata_start = std::string("\"").append(metadata_key).append("\":{");
  Cursor c(json);
  if (!c.byte('{')) return false;
  if (!c.byte('}')) {
    bool more = true;
    if (c.literal(metadata_start)) {
      if (!read_metadata(c, header)) return false;
      more = c.byte(',');
    }
    while (more) {
      if (!read_entry(c, header)) return false;
      more = c.byte(',');
    }
    if (!c.byte('}')) return false;
  }
  return c.only_spaces();
}

}  // namespace safestructures
