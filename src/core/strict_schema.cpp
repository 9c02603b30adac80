// The fast way through schema JSON: the tape's nodes read straight from the text in one pass, where simdjson's set-up,
// its own tape and the copy from it cost a small load more than the schema's values. Anything unusual is declined.
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <system_error>

#include "safestructures/strict_json.hpp"

namespace safestructures {
namespace {

// Integers of at most this many digits fit int64 whatever their digits.
constexpr std::ptrdiff_t max_integer_digits = 18;
// Clinger's fast path: a mantissa up to 2^53 and a power of ten up to 10^22 are exact doubles, and their product or
// quotient is then correctly rounded.
constexpr std::uint64_t max_exact_mantissa = std::uint64_t{1} << 53;
constexpr std::int64_t max_exact_power = 22;
constexpr double exact_powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The bytes of 8 (little-endian) that end a string's plain run: a quote, a backslash, a control character or a byte
// past ASCII, each marked by its top bit (the classic SWAR tests; a byte's mark may also be set, wrongly, only above a
// byte truly marked, which the first mark's position is all that is used of).
std::uint64_t special_bytes(std::uint64_t bytes) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  const auto zero_byte = [&](std::uint64_t x) { return (x - ones) & ~x & high; };
  const std::uint64_t below_space = (bytes - ones * 0x20) & ~bytes & high;
  return zero_byte(bytes ^ (ones * '"')) | zero_byte(bytes ^ (ones * '\\')) | below_space | (bytes & high);
}

class StrictSchemaReader {
 public:
  StrictSchemaReader(std::span<char> text, const SchemaLimits& limits, std::vector<Node>& nodes)
      : at_(text.data()), end_(text.data() + text.size()), limits_(limits), nodes_(nodes), made_(nodes.size()) {}

  bool read() {
    skip_spaces();
    if (at_ == end_ || *at_ != '{') return false;
    if (!value()) return false;
    while (depth_ != 0) {
      if (first_child_) {
        // A container was just opened: its first child (an object's first key too), read here rather than by
        // value() itself, so that the depth of nesting costs no stack.
        first_child_ = false;
        if ((nodes_[innermost_].kind == NodeKind::Object && !key()) || !value()) return false;
        continue;
      }
      // A value of the innermost open container was just read.
      Node& container = nodes_[innermost_];
      ++container.count;
      skip_spaces();
      if (at_ == end_) return false;
      const bool object = container.kind == NodeKind::Object;
      if (*at_ == ',') {
        ++at_;
        skip_spaces();
        if ((object && !key()) || !value()) return false;
      } else if (*at_ == (object ? '}' : ']')) {
        ++at_;
        close();
      } else {
        return false;
      }
    }
    skip_spaces();
    return at_ == end_ && (!non_ascii_ || simdjson::validate_utf8(begin_, static_cast<std::size_t>(end_ - begin_)));
  }

 private:
  void skip_spaces() {
    // The writer writes none: one compare for the usual byte.
    while (at_ != end_ && static_cast<unsigned char>(*at_) <= ' ' && is_space(*at_)) ++at_;
  }

  Node* add(NodeKind kind) {
    // The tape may hold max_nodes nodes; a document of more is declined, and the simdjson way raises TooManyNodes.
    if (made_ >= limits_.max_nodes) return nullptr;
    ++made_;
    Node& node = nodes_.emplace_back();
    node.kind = kind;
    return &node;
  }

  // An open container's `end` holds the index of the container around it until it is closed: the open containers
  // need no stack of their own.
  void open(NodeKind kind) {
    Node& node = nodes_.back();
    node.kind = kind;
    node.end = static_cast<std::uint32_t>(innermost_);
    innermost_ = made_ - 1;
    ++depth_;
  }
  void close() {
    Node& node = nodes_[innermost_];
    innermost_ = node.end;
    node.end = static_cast<std::uint32_t>(made_);
    --depth_;
  }

  // An object member's key and its colon, then spaces.
  [[gnu::always_inline]] bool key() {
    if (at_ == end_ || *at_ != '"' || !string()) return false;
    skip_spaces();
    if (at_ == end_ || *at_ != ':') return false;
    ++at_;
    skip_spaces();
    return true;
  }

  // One value at at_; a container is opened (and closed at once when empty), its children read by read()'s loop.
  [[gnu::always_inline]] bool value() {
    if (at_ == end_) return false;
    switch (*at_) {
      case '{':
      case '[': {
        const bool object = *at_ == '{';
        // Declined a level early: the simdjson way decides at the limit itself.
        if (depth_ + 2 >= limits_.max_json_depth) return false;
        if (add(NodeKind::Null) == nullptr) return false;
        open(object ? NodeKind::Object : NodeKind::Array);
        ++at_;
        skip_spaces();
        if (at_ != end_ && *at_ == (object ? '}' : ']')) {
          ++at_;
          close();
          return true;
        }
        first_child_ = true;
        return true;
      }
      case '"': return string();
      case 't': return literal("true", NodeKind::True);
      case 'f': return literal("false", NodeKind::False);
      case 'n': return literal("null", NodeKind::Null);
      default: return number();
    }
  }

  bool literal(std::string_view word, NodeKind kind) {
    if (static_cast<std::size_t>(end_ - at_) < word.size() || std::string_view(at_, word.size()) != word) return false;
    at_ += word.size();
    return add(kind) != nullptr;
  }

  // A string at at_ (its opening quote), unescaped in place: its content never grows.
  [[gnu::always_inline]] bool string() {
    Node* node = add(NodeKind::String);
    if (node == nullptr) return false;
    char* const start = ++at_;
    char* out = start;
    // The plain run before the first escape, 8 bytes at a time, left where it is.
    while (end_ - at_ >= 8) {
      std::uint64_t bytes = 0;
      std::memcpy(&bytes, at_, 8);
      const std::uint64_t special = special_bytes(bytes);
      if (special == 0) {
        at_ += 8;
        continue;
      }
      at_ += __builtin_ctzll(special) / 8;
      if (*at_ == '"') {
        node->text = std::string_view(start, static_cast<std::size_t>(at_ - start));
        ++at_;
        return true;
      }
      break;
    }
    out = at_;
    for (; at_ != end_; ++at_) {
      char c = *at_;
      if (c == '"') {
        node->text = std::string_view(start, static_cast<std::size_t>(out - start));
        ++at_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      non_ascii_ |= static_cast<unsigned char>(c) >= 0x80;
      if (c == '\\') {
        if (++at_ == end_) return false;
        switch (*at_) {
          case '"': c = '"'; break;
          case '\\': c = '\\'; break;
          case '/': c = '/'; break;
          case 'b': c = '\b'; break;
          case 'f': c = '\f'; break;
          case 'n': c = '\n'; break;
          case 'r': c = '\r'; break;
          case 't': c = '\t'; break;
          default: return false;  // \u escapes among them
        }
      }
      *out++ = c;
    }
    return false;
  }

  // JSON's number grammar; an integer of at most max_integer_digits digits becomes an Int, a number with a fraction
  // or exponent a Float: by Clinger's fast path when its digits and power of ten are exact doubles (one correctly
  // rounded operation), else when std::from_chars reads it to a finite double (correctly rounded, as simdjson reads it).
  [[gnu::noinline]] bool number() {
    const char* start = at_;
    const bool negative = *at_ == '-';
    at_ += negative;
    const char* digits = at_;
    std::uint64_t mantissa = 0;  // the digits' value, meaningful while there are at most 19 of them
    if (at_ != end_ && *at_ == '0') {
      ++at_;
    } else {
      while (at_ != end_ && is_digit(*at_)) mantissa = mantissa * 10 + static_cast<std::uint64_t>(*at_++ - '0');
    }
    if (at_ == digits) return false;
    const std::ptrdiff_t integer_digits = at_ - digits;
    std::ptrdiff_t mantissa_digits = integer_digits;
    std::int64_t power = 0;  // of ten, by which the mantissa is scaled
    bool decimal = false;
    if (at_ != end_ && *at_ == '.') {
      decimal = true;
      const char* fraction = ++at_;
      while (at_ != end_ && is_digit(*at_)) mantissa = mantissa * 10 + static_cast<std::uint64_t>(*at_++ - '0');
      if (at_ == fraction) return false;
      mantissa_digits += at_ - fraction;
      power = -(at_ - fraction);
    }
    if (at_ != end_ && (*at_ == 'e' || *at_ == 'E')) {
      decimal = true;
      ++at_;
      const bool below = at_ != end_ && *at_ == '-';
      if (at_ != end_ && (*at_ == '+' || *at_ == '-')) ++at_;
      const char* exponent_digits = at_;
      std::int64_t exponent = 0;
      for (; at_ != end_ && is_digit(*at_); ++at_) exponent = std::min<std::int64_t>(exponent * 10 + (*at_ - '0'), 1'000'000);
      if (at_ == exponent_digits) return false;
      power += below ? -exponent : exponent;
    }
    if (!decimal) {
      // simdjson reads "-0" as a Float; past 18 digits the int64 range decides: both left to it.
      if (integer_digits > max_integer_digits || (negative && *digits == '0')) return false;
      Node* node = add(NodeKind::Int);
      if (node == nullptr) return false;
      const auto value = static_cast<std::int64_t>(mantissa);
      node->integer = negative ? -value : value;
      return true;
    }
    double value = 0;
    if (mantissa_digits <= 19 && mantissa <= max_exact_mantissa && power >= -max_exact_power && power <= max_exact_power) {
      value = static_cast<double>(mantissa);
      value = power < 0 ? value / exact_powers[-power] : value * exact_powers[power];
      if (negative) value = -value;
    } else {
      const auto [end, error] = std::from_chars(start, at_, value);
      if (error != std::errc{} || end != at_ || !std::isfinite(value)) return false;
    }
    Node* node = add(NodeKind::Float);
    if (node == nullptr) return false;
    node->number = value;
    return true;
  }

  char* at_;
  char* const end_;
  const char* const begin_ = at_;
  const SchemaLimits& limits_;
  std::vector<Node>& nodes_;
  std::size_t made_;           // nodes_.size(), counted here rather than divided out of its ends
  std::size_t innermost_ = 0;  // the node index of the innermost container not yet closed
  std::size_t depth_ = 0;      // how many containers are not yet closed
  bool first_child_ = false;  // a container was opened and its first child is next
  bool non_ascii_ = false;         // whether a string holds a byte past ASCII (then the text's UTF-8 is checked)
};

}  // namespace

bool read_strict_schema(std::span<char> text, const SchemaLimits& limits, std::vector<Node>& nodes) {
  return StrictSchemaReader(text, limits, nodes).read();
}

}  // namespace safestructures
