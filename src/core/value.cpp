// Building a tree in C++ and saving it: values, and the save walk that writes them through the tree writer.
#include "safestructures/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "safestructures/codec.hpp"
#include "safestructures/error.hpp"
#include "safestructures/seeded_hash.hpp"
#include "safestructures/stack.hpp"
#include "safestructures/tree_writer.hpp"

namespace safestructures {

struct Value::Impl {
  Kind kind = Kind::Null;
  bool boolean = false;
  std::int64_t integer = 0;
  double number = 0;
  // String: the UTF-8 (or WTF-8) text. BigInt: normalized hex, "0x1f" or "-0x1f".
  std::string text{};
  std::vector<std::byte> bytes{};
  std::vector<Value> items{};
  std::vector<std::pair<Value, Value>> entries{};
  // Dict: entry index of each string key, and of each other key but tuples by its scalar_key_text, so that set()
  // stays constant-time for them; the entry indices of tuple keys, which set() compares with python_equal.
  std::unordered_map<std::string, std::size_t, SeededStringHash, std::equal_to<>> string_keys{};
  std::unordered_map<std::string, std::size_t, SeededStringHash, std::equal_to<>> scalar_keys{};
  std::vector<std::size_t> tuple_keys{};
  // Tensor.
  Dtype dtype = Dtype::U8;
  std::vector<std::uint64_t> shape{};
  std::vector<std::int64_t> strides{};
  const std::byte* data = nullptr;
  std::shared_ptr<const void> owner{};
};

const Value::Impl& impl_of(const Value& value) { return *value.impl_; }

namespace {

// A tuple can be made to hold itself (through tuples only, nothing Python could build): the recursive helpers below
// stop before the stack runs out rather than crash. A tuple may also hold another many times (a file's shared tuples,
// copied by a reader of the C++ API, can double at each level: 40 levels of 2.6 KB hold 2^40 items), so the walks
// over a key's tuples visit each tuple once.
bool is_hashable(const Value::Impl& v, std::unordered_map<const Value::Impl*, bool>& checked) {
  if (stack_nearly_exhausted()) return false;
  switch (v.kind) {
    case Kind::Null:
    case Kind::Bool:
    case Kind::Int:
    case Kind::BigInt:
    case Kind::Float:
    case Kind::String:
    case Kind::Bytes: return true;
    case Kind::Tuple: {
      // Met before: hashable once its walk has ended; inside itself, not (no Python tuple holds itself).
      const auto [it, first] = checked.try_emplace(&v, false);
      if (!first) return it->second;
      const bool hashable = std::all_of(v.items.begin(), v.items.end(), [&](const Value& item) { return is_hashable(impl_of(item), checked); });
      checked[&v] = hashable;
      return hashable;
    }
    default: return false;
  }
}

bool is_hashable(const Value::Impl& v) {
  std::unordered_map<const Value::Impl*, bool> checked;
  return is_hashable(v, checked);
}

bool is_number(Kind kind) { return kind == Kind::Bool || kind == Kind::Int || kind == Kind::Float; }

// A whole number's text as Value::big_int normalizes it: "0x1f", "-0x1f", `zeros` hex zeros after `magnitude`'s digits.
std::string hex_text(bool negative, std::uint64_t magnitude, std::size_t zeros = 0) {
  char digits[16];
  char* end = std::to_chars(digits, digits + sizeof digits, magnitude, 16).ptr;
  return (negative ? "-0x" : "0x") + std::string(digits, end) + std::string(zeros, '0');
}

// The exact text of a double that holds a whole number as Value::big_int normalizes it ("0x1f", "-0x1f"), or "" for
// one that does not (a fraction, an infinity, NaN): Python's 2**64 == 2.0**64, so the two are one dict key.
std::string whole_number_hex(double d) {
  if (!std::isfinite(d) || d != std::trunc(d)) return "";
  int exponent = 0;
  const double fraction = std::frexp(std::fabs(d), &exponent);  // |d| = fraction * 2**exponent, fraction in [0.5, 1)
  std::uint64_t mantissa = 0;
  std::size_t zeros = 0;  // hex digits of zeros after the mantissa's
  if (exponent <= 64) {
    mantissa = static_cast<std::uint64_t>(std::fabs(d));
  } else {
    // 53 bits of mantissa, then `exponent - 53` zero bits: what does not make whole hex digits shifts the mantissa.
    const int shift = exponent - 53;
    mantissa = static_cast<std::uint64_t>(std::ldexp(fraction, 53)) << (shift % 4);
    zeros = static_cast<std::size_t>(shift / 4);
  }
  return hex_text(d < 0, mantissa, zeros);
}

// Python's == for hashable values, so that dict keys Python would merge are one key here too. `equal` holds the pairs
// of tuples found equal so far: each pair is compared once, however many times the two keys hold it.
bool python_equal(const Value::Impl& a, const Value::Impl& b, std::set<std::pair<const Value::Impl*, const Value::Impl*>>& equal) {
  if (&a == &b) return true;
  if (stack_nearly_exhausted()) return false;
  if (is_number(a.kind) && is_number(b.kind)) {
    const auto as_int = [](const Value::Impl& v) { return v.kind == Kind::Bool ? std::int64_t{v.boolean} : v.integer; };
    if (a.kind != Kind::Float && b.kind != Kind::Float) return as_int(a) == as_int(b);
    if (a.kind == Kind::Float && b.kind == Kind::Float) return a.number == b.number;
    const double d = a.kind == Kind::Float ? a.number : b.number;
    const std::int64_t i = a.kind == Kind::Float ? as_int(b) : as_int(a);
    // Exact: the double must be a whole number in the int64 range equal to i.
    return d == std::trunc(d) && d >= -0x1p63 && d < 0x1p63 && static_cast<std::int64_t>(d) == i;
  }
  if (a.kind == Kind::BigInt && b.kind == Kind::Float) return a.text == whole_number_hex(b.number);
  if (a.kind == Kind::Float && b.kind == Kind::BigInt) return b.text == whole_number_hex(a.number);
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Null: return true;
    case Kind::BigInt:
    case Kind::String: return a.text == b.text;
    case Kind::Bytes: return a.bytes == b.bytes;
    case Kind::Tuple: {
      if (equal.contains({&a, &b})) return true;
      const bool same = a.items.size() == b.items.size() && std::equal(a.items.begin(), a.items.end(), b.items.begin(), [&](const Value& x, const Value& y) {
                          return python_equal(impl_of(x), impl_of(y), equal);
                        });
      if (same) equal.insert({&a, &b});
      return same;
    }
    default: return false;
  }
}

bool python_equal(const Value::Impl& a, const Value::Impl& b) {
  std::set<std::pair<const Value::Impl*, const Value::Impl*>> equal;
  return python_equal(a, b, equal);
}

// An int's text as whole_number_hex writes a whole double of its value.
std::string int_hex(std::int64_t i) {
  return hex_text(i < 0, i < 0 ? 0 - static_cast<std::uint64_t>(i) : static_cast<std::uint64_t>(i));
}

// A text equal for two hashable keys other than strings and tuples exactly when python_equal says they are equal
// (True, 1 and 1.0 one text; 2**64 and 2.0**64 one text), so that a dict of many such keys is not compared key by
// key: every whole number, whatever its kind, is its normalized hex; a NaN, equal only to itself, its address.
std::string scalar_key_text(const Value::Impl& k) {
  switch (k.kind) {
    case Kind::Null: return "n";
    case Kind::Bool: return int_hex(k.boolean);
    case Kind::Int: return int_hex(k.integer);
    case Kind::BigInt: return k.text;
    case Kind::Float: {
      std::string whole = whole_number_hex(k.number);
      if (!whole.empty()) return whole;
      if (std::isnan(k.number)) {
        const Value::Impl* address = &k;
        return "p" + std::string(reinterpret_cast<const char*>(&address), sizeof address);
      }
      return "f" + std::string(reinterpret_cast<const char*>(&k.number), sizeof k.number);
    }
    default: return "b" + std::string(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size());  // Bytes
  }
}

// ---- Python's str() and repr() of keys, for tensor names and error paths

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buffer[python_float_room];
  return std::string(python_float_text(v, buffer));
}

std::string hex_to_decimal(std::string_view hex) {
  const bool negative = hex.starts_with('-');
  // Base 10^9 limbs, least significant first.
  std::vector<std::uint32_t> limbs{0};
  for (char c : hex.substr(negative + 2)) {
    std::uint64_t carry = static_cast<std::uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    for (std::uint32_t& limb : limbs) {
      const std::uint64_t value = std::uint64_t{limb} * 16 + carry;
      limb = static_cast<std::uint32_t>(value % 1'000'000'000);
      carry = value / 1'000'000'000;
    }
    if (carry) limbs.push_back(static_cast<std::uint32_t>(carry));
  }
  std::string out = negative ? "-" : "";
  out += std::to_string(limbs.back());
  for (std::size_t k = limbs.size() - 1; k-- > 0;) {
    const std::string part = std::to_string(limbs[k]);
    out += std::string(9 - part.size(), '0') + part;
  }
  return out;
}

// Python's quoting: single quotes unless the text holds one and no double quote.
std::string quoted_repr(std::string_view text, bool bytes) {
  const bool double_quotes = text.find('\'') != std::string_view::npos && text.find('"') == std::string_view::npos;
  const char quote = double_quotes ? '"' : '\'';
  std::string out = bytes ? "b" : "";
  out += quote;
  // A str is read by code point, so that a lone surrogate (WTF-8 here) is escaped as \udXXX as Python's repr escapes
  // it; bytes, and text that is not even WTF-8, byte by byte.
  const std::optional<std::vector<std::uint32_t>> points = bytes ? std::nullopt : codec::decode_wtf8(text);
  constexpr char hex[] = "0123456789abcdef";
  const auto escape = [&](std::uint32_t unit, char form, int digits) {
    out += '\\';
    out += form;
    for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) out += hex[(unit >> shift) & 15];
  };
  const auto put = [&](std::uint32_t unit) {
    if (unit == static_cast<unsigned char>(quote) || unit == '\\') {
      out += '\\';
      out += static_cast<char>(unit);
    } else if (unit == '\n') {
      out += "\\n";
    } else if (unit == '\r') {
      out += "\\r";
    } else if (unit == '\t') {
      out += "\\t";
    } else if (unit < 0x20 || unit == 0x7f || (bytes && unit > 0x7f)) {
      escape(unit, 'x', 2);
    } else if (points && unit >= 0xD800 && unit <= 0xDFFF) {
      escape(unit, 'u', 4);
    } else if (points) {
      codec::append_code_point(out, unit);
    } else {
      out += static_cast<char>(unit);
    }
  };
  if (points) {
    for (const std::uint32_t point : *points) put(point);
  } else {
    for (const char ch : text) put(static_cast<unsigned char>(ch));
  }
  out += quote;
  return out;
}

// Python's limit on the digits of an int it converts to text (sys.int_info.default_max_str_digits): past it, str()
// and repr() raise, and the Python save walk names the key "?".
constexpr std::size_t python_max_str_digits = 4300;

// The decimal text of a big int, or nullopt past Python's limit of digits (found from the count of hex digits where it
// can be, without the conversion, which costs the square of the int's size).
std::optional<std::string> big_int_text(std::string_view hex) {
  const std::size_t hex_digits = hex.size() - (hex.starts_with('-') ? 3 : 2);
  // At least (hex_digits - 1) * log10(16) digits: 1.2041 > 1.204.
  if ((hex_digits - 1) * 1204 / 1000 >= python_max_str_digits) return std::nullopt;
  std::string text = hex_to_decimal(hex);
  if (text.size() - (text.starts_with('-') ? 1 : 0) > python_max_str_digits) return std::nullopt;
  return text;
}

// Python's str() of a key (`repr` false: the part of a tensor name), or its repr() (the part of a path in messages);
// nullopt where the Python save walk has none (an int past Python's limit of digits, or a tuple holding one; a str
// with a lone surrogate, as a name).
std::optional<std::string> python_text(const Value::Impl& v, bool repr) {
  switch (v.kind) {
    case Kind::Null: return "None";
    case Kind::Bool: return v.boolean ? "True" : "False";
    case Kind::Int: return std::to_string(v.integer);
    case Kind::BigInt: return big_int_text(v.text);
    case Kind::Float: return python_float_repr(v.number);
    // A str holding a lone surrogate (WTF-8 here) has no UTF-8 form, which Python's save walk asks of a name.
    case Kind::String: return repr ? quoted_repr(v.text, false) : is_valid_utf8(v.text) ? std::optional<std::string>(v.text) : std::nullopt;
    case Kind::Bytes: return quoted_repr({reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size()}, true);
    case Kind::Tuple: {
      if (stack_nearly_exhausted()) return "...";
      std::string out = "(";
      for (std::size_t k = 0; k < v.items.size(); ++k) {
        if (k) out += ", ";
        const std::optional<std::string> item = python_text(impl_of(v.items[k]), true);
        if (!item) return std::nullopt;
        out += *item;
      }
      return out + (v.items.size() == 1 ? ",)" : ")");
    }
    default: return std::string("<").append(kind_name(v.kind)).append(">");
  }
}

// ---- The save walk: values written through the tree writer

class ValueWalk final : public NodeText {
 public:
  explicit ValueWalk(const SaveOptions& options) : writer_(options.max_depth, *this), checksums_(options.checksums) {}

  void walk(const Value::Impl& v);
  StructuredLayout plan(const Value& root, const Metadata& metadata) && {
    walk(impl_of(root));
    return std::move(writer_).finish().plan(metadata, default_max_header_size, checksums_);
  }

  // "?" where Python's str() or repr() of the key raises, as the Python save walk gives.
  std::string key_name(const void* key) const override { return python_text(*static_cast<const Value::Impl*>(key), false).value_or("?"); }
  std::string key_shown(const void* key) const override {
    const auto& k = *static_cast<const Value::Impl*>(key);
    return k.kind == Kind::String ? quote_name(k.text) : python_text(k, true).value_or("?");
  }
  std::string type_name(const void* obj) const override { return std::string(kind_name(static_cast<const Value::Impl*>(obj)->kind)); }

 private:
  void walk_string(const std::string& text);
  void walk_tensor(const Value::Impl& v);
  void walk_sequence(const Value::Impl& v);
  void walk_dict(const Value::Impl& v);
  [[noreturn]] void invalid(const std::string& what) const { raise(ErrorCode::InvalidArgument, "at " + writer_.path_text() + ": " + what); }

  TreeWriter writer_;
  bool checksums_;
};

void ValueWalk::walk(const Value::Impl& v) {
  switch (v.kind) {
    case Kind::Null: writer_.out.null(); return;
    case Kind::Bool: writer_.out.boolean(v.boolean); return;
    case Kind::Int: writer_.out.integer(v.integer); return;
    case Kind::BigInt: writer_.big_int(v.text); return;
    case Kind::Float: writer_.out.float_value(v.number); return;
    case Kind::String: walk_string(v.text); return;
    case Kind::Bytes: writer_.bytes(&v, Kind::Bytes, v.bytes, false); return;
    case Kind::List:
    case Kind::Tuple: walk_sequence(v); return;
    case Kind::Dict: walk_dict(v); return;
    case Kind::Tensor: walk_tensor(v); return;
    default: invalid("cannot save a " + std::string(kind_name(v.kind)));
  }
}

void ValueWalk::walk_string(const std::string& text) {
  if (is_valid_utf8(text)) {
    writer_.out.string(text);
    return;
  }
  // Lone surrogates have no UTF-8 form: the string is kept as its code points, as Python strings holding them are.
  const auto points = codec::decode_wtf8(text);
  if (!points) invalid("a string must be UTF-8 (or WTF-8, for lone surrogates)");
  writer_.code_points(*points);
}

void ValueWalk::walk_tensor(const Value::Impl& v) {
  if (writer_.seen(&v)) return;
  std::string name = writer_.free_name();
  const std::size_t at = writer_.begin_tensor(&v, name);
  writer_.out.key(field::framework);
  writer_.out.string("numpy");
  writer_.out.end_container(at);
  writer_.tensors.push_back(WriteTensor{std::move(name), v.dtype, v.shape, v.data, v.strides});
}

void ValueWalk::walk_sequence(const Value::Impl& v) {
  const bool tuple = v.kind == Kind::Tuple;
  // An empty tuple is not an object anyone can tell apart from another, so it is never a reference.
  const Value::Impl* shared = tuple && v.items.empty() ? nullptr : &v;
  if (shared && writer_.seen(shared)) return;
  const std::size_t at = tuple ? writer_.begin_tagged(Kind::Tuple) : writer_.out.begin_array();
  writer_.enter(shared, at, tuple);
  const std::size_t list = tuple ? writer_.begin_items() : at;
  for (std::size_t k = 0; k < v.items.size(); ++k) {
    writer_.push_index(k);
    walk(impl_of(v.items[k]));
    writer_.pop();
  }
  if (tuple) writer_.out.end_container(list);
  writer_.leave(shared, at);
}

void ValueWalk::walk_dict(const Value::Impl& v) {
  if (writer_.seen(&v)) return;
  // "$" marks tagged objects, and a plain object's keys are UTF-8 strings: any other dict is written as pairs.
  const bool plain = std::all_of(v.entries.begin(), v.entries.end(), [](const auto& entry) {
    const Value::Impl& key = impl_of(entry.first);
    return key.kind == Kind::String && key.text != tag_member && is_valid_utf8(key.text);
  });
  const std::size_t at = plain ? writer_.out.begin_object() : writer_.begin_tagged(Kind::Dict);
  writer_.enter(&v, at, false);
  const std::size_t list = plain ? at : writer_.begin_items();
  for (const auto& [key_value, value] : v.entries) {
    const Value::Impl& key = impl_of(key_value);
    writer_.push_key(&key);
    if (!is_hashable(key)) invalid("a dict key must be hashable in Python, not a " + std::string(kind_name(key.kind)));
    if (plain) {
      writer_.out.key(key.text);
      walk(impl_of(value));
    } else {
      const std::size_t pair = writer_.out.begin_array();
      walk(key);
      walk(impl_of(value));
      writer_.out.end_container(pair);
    }
    writer_.pop();
  }
  if (!plain) writer_.out.end_container(list);
  writer_.leave(&v, at);
}

}  // namespace

// ---- Value

Value::Value() : impl_(std::make_shared<Impl>()) {}

Value Value::of(Impl impl) { return Value(std::make_shared<Impl>(std::move(impl))); }

Value::Value(bool value) : Value(of({.kind = Kind::Bool, .boolean = value})) {}

Value::Value(double value) : Value(of({.kind = Kind::Float, .number = value})) {}

Value::Value(std::string value) : Value(of({.kind = Kind::String, .text = std::move(value)})) {}

Value Value::from_signed(std::int64_t value) { return of({.kind = Kind::Int, .integer = value}); }

Value Value::from_unsigned(std::uint64_t value) {
  if (value <= static_cast<std::uint64_t>(INT64_MAX)) return from_signed(static_cast<std::int64_t>(value));
  return big_int(hex_text(false, value));
}

Value Value::big_int(std::string_view hex) {
  const bool negative = hex.starts_with('-');
  std::string_view digits = hex.substr(negative);
  const bool prefixed = digits.size() > 2 && (digits.starts_with("0x") || digits.starts_with("0X"));
  if (!prefixed || digits.find_first_not_of("0123456789abcdefABCDEF", 2) != std::string_view::npos) {
    raise(ErrorCode::InvalidArgument, "a big int must be hexadecimal text like 0x1f or -0x1f, not " + quote_name(hex));
  }
  digits.remove_prefix(2);
  digits.remove_prefix(std::min(digits.find_first_not_of('0'), digits.size() - 1));
  // A value that fits in int64 is a plain int, as Python writes it.
  if (digits.size() <= 16) {
    std::uint64_t magnitude = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, 16);
    if (magnitude <= static_cast<std::uint64_t>(INT64_MAX)) return from_signed(negative ? -static_cast<std::int64_t>(magnitude) : static_cast<std::int64_t>(magnitude));
    if (negative && magnitude == static_cast<std::uint64_t>(INT64_MAX) + 1) return from_signed(INT64_MIN);
  }
  std::string text = negative ? "-0x" : "0x";
  for (char c : digits) text += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return of({.kind = Kind::BigInt, .text = std::move(text)});
}

Value Value::bytes(std::span<const std::byte> data) {
  return of({.kind = Kind::Bytes, .bytes = {data.begin(), data.end()}});
}

Value Value::list(std::initializer_list<Value> items) { return of({.kind = Kind::List, .items = items}); }

Value Value::tuple(std::initializer_list<Value> items) { return of({.kind = Kind::Tuple, .items = items}); }

Value Value::dict() { return of({.kind = Kind::Dict}); }

Value Value::tensor(Dtype dtype, std::vector<std::uint64_t> shape, std::span<const std::byte> data, std::vector<std::int64_t> strides,
                    std::shared_ptr<const void> owner) {
  std::uint64_t elements = 1;
  for (std::uint64_t d : shape) {
    if (d && elements > UINT64_MAX / d) raise(ErrorCode::ShapeOverflow, "a tensor's shape overflows 64 bits");
    elements *= d;
  }
  const auto needed = dtype_storage_bytes(dtype, elements);
  if (!needed) raise(ErrorCode::InvalidArgument, "a tensor of " + std::to_string(elements) + " " + std::string(dtype_name(dtype)) + " elements is not a whole number of bytes");
  if (strides.empty()) {
    if (data.size() != *needed) {
      raise(ErrorCode::InvalidArgument, "a tensor of " + std::to_string(elements) + " " + std::string(dtype_name(dtype)) + " elements takes " +
                                            std::to_string(*needed) + " bytes, not " + std::to_string(data.size()));
    }
  } else {
    if (strides.size() != shape.size()) raise(ErrorCode::InvalidArgument, "a tensor needs one stride per dimension");
    if (dtype_is_sub_byte(dtype)) raise(ErrorCode::InvalidArgument, "sub-byte tensors must be contiguous");
    // Every element the strides reach must lie inside `data`, starting from element (0, ..., 0) at its start.
    if (elements) {
      std::int64_t low = 0, high = 0;
      for (std::size_t k = 0; k < shape.size(); ++k) {
        std::int64_t reach = 0;
        if (shape[k] - 1 > static_cast<std::uint64_t>(INT64_MAX) ||
            __builtin_mul_overflow(strides[k], static_cast<std::int64_t>(shape[k] - 1), &reach) ||
            __builtin_add_overflow(reach < 0 ? low : high, reach, reach < 0 ? &low : &high)) {
          raise(ErrorCode::InvalidArgument, "a tensor's strides overflow");
        }
      }
      const std::uint64_t element_bytes = dtype_bits(dtype) / 8;
      if (low < 0 || static_cast<std::uint64_t>(high) + element_bytes > data.size()) {
        raise(ErrorCode::InvalidArgument, "a tensor's strides reach outside its " + std::to_string(data.size()) + " bytes");
      }
    }
  }
  return of({.kind = Kind::Tensor, .dtype = dtype, .shape = std::move(shape), .strides = std::move(strides),
             .data = data.empty() ? nullptr : data.data(), .owner = std::move(owner)});
}

Kind Value::kind() const { return impl_->kind; }

std::size_t Value::size() const {
  switch (impl_->kind) {
    case Kind::List:
    case Kind::Tuple: return impl_->items.size();
    case Kind::Dict: return impl_->entries.size();
    default: raise(ErrorCode::WrongKind, "size() of a " + std::string(kind_name(impl_->kind)) + ": only lists, tuples and dicts have one");
  }
}

Value& Value::append(Value item) {
  if (impl_->kind != Kind::List && impl_->kind != Kind::Tuple) {
    raise(ErrorCode::WrongKind, "append() to a " + std::string(kind_name(impl_->kind)) + ": only lists and tuples take items");
  }
  impl_->items.push_back(std::move(item));
  return *this;
}

Value& Value::set(Value key, Value value) {
  if (impl_->kind != Kind::Dict) raise(ErrorCode::WrongKind, "set() on a " + std::string(kind_name(impl_->kind)) + ": only dicts take entries");
  const Impl& k = *key.impl_;
  if (!is_hashable(k)) raise(ErrorCode::InvalidArgument, "a dict key must be hashable in Python, not a " + std::string(kind_name(k.kind)));
  auto& entries = impl_->entries;
  if (k.kind == Kind::String) {
    const auto [it, inserted] = impl_->string_keys.try_emplace(k.text, entries.size());
    if (!inserted) {
      entries[it->second].second = std::move(value);
      return *this;
    }
  } else if (k.kind != Kind::Tuple) {
    const auto [it, inserted] = impl_->scalar_keys.try_emplace(scalar_key_text(k), entries.size());
    if (!inserted) {
      entries[it->second].second = std::move(value);  // Python keeps the first key and the last value.
      return *this;
    }
  } else {
    // Tuples are compared as they are now: one may have been appended to since it was set.
    for (const std::size_t at : impl_->tuple_keys) {
      if (python_equal(impl_of(entries[at].first), k)) {
        entries[at].second = std::move(value);
        return *this;
      }
    }
    impl_->tuple_keys.push_back(entries.size());
  }
  entries.emplace_back(std::move(key), std::move(value));
  return *this;
}

void Value::clear() {
  if (impl_->kind != Kind::List && impl_->kind != Kind::Tuple && impl_->kind != Kind::Dict) {
    raise(ErrorCode::WrongKind, "clear() on a " + std::string(kind_name(impl_->kind)) + ": only lists, tuples and dicts hold items");
  }
  impl_->items.clear();
  impl_->entries.clear();
  impl_->string_keys.clear();
  impl_->scalar_keys.clear();
  impl_->tuple_keys.clear();
}

// ---- Saving

void save_file(const std::filesystem::path& path, const Value& root, const Metadata& metadata, const SaveOptions& options) {
  const StructuredLayout layout = ValueWalk(options).plan(root, metadata);
  WriteOptions write;
  write.fsync = options.fsync;
  write_structured(path, layout, write);
}

std::vector<std::byte> save_bytes(const Value& root, const Metadata& metadata, const SaveOptions& options) {
  const StructuredLayout layout = ValueWalk(options).plan(root, metadata);
  std::vector<std::byte> out(layout.layout.file_size());
  write_structured_into(out, layout);
  return out;
}

}  // namespace safestructures
