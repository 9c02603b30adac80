// The fast way through schema JSON: the tape's nodes read straight from the text in one pass, where simdjson's set-up,
// its own tape and the copy from it cost a small load more than the schema's values. Anything unusual is declined.
#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

#include "safestructures/strict_json.hpp"

namespace safestructures {
namespace {

// Integers of at most this many digits fit int64 whatever their digits.
constexpr std::ptrdiff_t max_integer_digits = 18;

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class StrictSchemaReader {
 public:
  StrictSchemaReader(std::span<char> text, const SchemaLimits& limits, std::vector<Node>& nodes)
      : at_(text.data()), end_(text.data() + text.size()), limits_(limits), nodes_(nodes) {}

  bool read() {
    skip_spaces();
    if (at_ == end_ || *at_ != '{') return false;
    if (!value()) return false;
    while (!open_.empty()) {
      if (first_child_) {
        // A container was just opened: its first child (an object's first key too), read here rather than by
        // value() itself, so that the depth of nesting costs no stack.
        first_child_ = false;
        if ((nodes_[open_.back()].kind == NodeKind::Object && !key()) || !value()) return false;
        continue;
      }
      // A value of the innermost open container was just read.
      Node& container = nodes_[open_.back()];
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
    while (at_ != end_ && is_space(*at_)) ++at_;
  }

  Node* add(NodeKind kind) {
    // The tape may hold max_nodes nodes; a document of more is declined, and the simdjson way raises TooManyNodes.
    if (nodes_.size() >= limits_.max_nodes) return nullptr;
    Node& node = nodes_.emplace_back();
    node.kind = kind;
    return &node;
  }

  void close() {
    nodes_[open_.back()].end = static_cast<std::uint32_t>(nodes_.size());
    open_.pop_back();
  }

  // An object member's key and its colon, then spaces.
  bool key() {
    if (at_ == end_ || *at_ != '"' || !string()) return false;
    skip_spaces();
    if (at_ == end_ || *at_ != ':') return false;
    ++at_;
    skip_spaces();
    return true;
  }

  // One value at at_; a container is opened (and closed at once when empty), its children read by read()'s loop.
  bool value() {
    if (at_ == end_) return false;
    switch (*at_) {
      case '{':
      case '[': {
        const bool object = *at_ == '{';
        // Declined a level early: the simdjson way decides at the limit itself.
        if (open_.size() + 2 >= limits_.max_json_depth) return false;
        Node* node = add(object ? NodeKind::Object : NodeKind::Array);
        if (node == nullptr) return false;
        open_.push_back(nodes_.size() - 1);
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
  bool string() {
    Node* node = add(NodeKind::String);
    if (node == nullptr) return false;
    char* const start = ++at_;
    char* out = start;
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
  // or exponent a Float when std::from_chars reads it to a finite double (correctly rounded, as simdjson reads it).
  bool number() {
    const char* start = at_;
    const bool negative = *at_ == '-';
    at_ += negative;
    const char* digits = at_;
    if (at_ != end_ && *at_ == '0') {
      ++at_;
    } else {
      while (at_ != end_ && is_digit(*at_)) ++at_;
    }
    if (at_ == digits) return false;
    const std::ptrdiff_t integer_digits = at_ - digits;
    bool decimal = false;
    if (at_ != end_ && *at_ == '.') {
      decimal = true;
      const char* fraction = ++at_;
      while (at_ != end_ && is_digit(*at_)) ++at_;
      if (at_ == fraction) return false;
    }
    if (at_ != end_ && (*at_ == 'e' || *at_ == 'E')) {
      decimal = true;
      ++at_;
      if (at_ != end_ && (*at_ == '+' || *at_ == '-')) ++at_;
      const char* exponent = at_;
      while (at_ != end_ && is_digit(*at_)) ++at_;
      if (at_ == exponent) return false;
    }
    if (!decimal) {
      // simdjson reads "-0" as a Float; past 18 digits the int64 range decides: both left to it.
      if (integer_digits > max_integer_digits || (negative && *digits == '0')) return false;
      std::int64_t value = 0;
      for (const char* d = digits; d != at_; ++d) value = value * 10 + (*d - '0');
      Node* node = add(NodeKind::Int);
      if (node == nullptr) return false;
      node->integer = negative ? -value : value;
      return true;
    }
    double value = 0;
    const auto [end, error] = std::from_chars(start, at_, value);
    if (error != std::errc{} || end != at_ || !std::isfinite(value)) return false;
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
  std::vector<std::size_t> open_;  // the node index of each container not yet closed
  bool first_child_ = false;  // a container was opened and its first child is next
  bool non_ascii_ = false;         // whether a string holds a byte past ASCII (then the text's UTF-8 is checked)
};

}  // namespace

bool read_strict_schema(std::span<char> text, const SchemaLimits& limits, std::vector<Node>& nodes) {
  return StrictSchemaReader(text, limits, nodes).read();
}

}  // namespace safestructures
