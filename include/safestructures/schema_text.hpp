// The schema's JSON text as a save writes it: the cursor and pieces both renderers use (the tape's, schema_render.cpp,
// and the save walk's, which writes the document as it walks, escaped as the header's string holds it).
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/format.hpp"
#include "safestructures/schema.hpp"

namespace safestructures {

// The rendered text, written through a cursor: each node makes room for its longest form once and is then written
// without further checks (appending to a std::string checks its capacity at every piece, a cost per character of a
// schema made of short keys and numbers). The string is kept at its allocated size while rendering; finish() cuts
// it to what was written.
class TextOut {
 public:
  explicit TextOut(std::string& out) : s_(out) {
    const std::size_t used = s_.size();
    s_.resize(std::max(s_.capacity(), used + 64));
    p_ = s_.data() + used;
    end_ = s_.data() + s_.size();
  }
  void room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) grow(n);
  }
  void put(char c) { *p_++ = c; }
  void put(std::string_view text) {
    // Most pieces are a few bytes (keys, numbers, punctuation): copied inline rather than through a call to memcpy.
    if (text.size() <= 16) {
      for (const char c : text) *p_++ = c;
      return;
    }
    std::memcpy(p_, text.data(), text.size());
    p_ += text.size();
  }
  // room() and put() together, for text of any length.
  void append(std::string_view text) {
    room(text.size());
    put(text);
  }
  void finish() { s_.resize(static_cast<std::size_t>(p_ - s_.data())); }
  // What was written so far, and its last character (written again by a closing bracket after a separator).
  std::size_t size() const { return static_cast<std::size_t>(p_ - s_.data()); }
  const char* data() const { return s_.data(); }
  char& last() { return p_[-1]; }

 private:
  void grow(std::size_t n) {
    const std::size_t used = static_cast<std::size_t>(p_ - s_.data());
    s_.resize(std::max(2 * s_.size(), used + n));
    p_ = s_.data() + used;
    end_ = s_.data() + s_.size();
  }
  std::string& s_;
  char* p_;
  char* end_;
};

// The longest text a number takes (a double's shortest form, ".0" added; an int64).
constexpr std::size_t number_room = 32;

inline void put_number(TextOut& out, double value) {
  char buffer[number_room];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  const std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
  out.put(text);
  // Keeps floats distinguishable from integers in the JSON: 1.0 stays 1.0, not 1.
  if (text.find_first_of(".e") == std::string_view::npos) out.put(".0");
}

// A finite float as Python's repr writes it, in `buffer`: the shortest digits that read back as `value`, in positional
// notation (".0" added to a whole number) for exponents from -4 to 15, else as 1.5e+300.
constexpr std::size_t python_float_room = 40;
std::string_view python_float_text(double value, char (&buffer)[python_float_room]);

// {"$":TAG,"#":ID,"items": the head of a container that something refers to, in its kind's tagged form.
inline std::string referred_head(Kind kind, std::uint32_t id) {
  std::string out = "{\"";
  out.append(tag_member).append("\":\"").append(traits(kind).tag).append("\",\"").append(id_member).append("\":");
  return out.append(std::to_string(id)).append(",\"items\":");
}

// `text` as a JSON string: as JSON writes it, or (Escaped) as the header's schema string holds it, escaped once more.
// `out` is a TextOut, or anything with its room() and put().
template <bool Escaped, class Out>
inline void string_node(Out& out, std::string_view text) {
  // At most: each byte a control character, \u00XX (6), its backslash escaped once more (7); and the quotes.
  out.room((Escaped ? 7 : 6) * text.size() + 4);
  const std::string_view quote = Escaped ? "\\\"" : "\"";
  out.put(quote);
  std::size_t run = 0;
  for (std::size_t k = 0; k < text.size(); ++k) {
    if (json_plain(text[k])) continue;
    out.put(text.substr(run, k - run));
    run = k + 1;
    char buffer[6];
    const std::string_view escape = json_escape(text[k], buffer);
    if constexpr (Escaped) {
      // What append_json_string writes, escaped once more: an escape's backslash doubles, a quote in it is \".
      for (const char c : escape) {
        if (!json_plain(c)) out.put('\\');
        out.put(c);
      }
    } else {
      out.put(escape);
    }
  }
  out.put(text.substr(run));
  out.put(quote);
}

// string_node<true> appended to `out` (a std::string or std::pmr::string) piece by piece: for a few strings between
// other text (a recording's stream names and renamed tensors), where a TextOut over `out` would resize it to its whole
// capacity at each call.
template <class String>
void append_schema_string(String& out, std::string_view utf8) {
  struct Appended {
    String& s;
    void room(std::size_t n) {
      if (s.capacity() - s.size() < n) s.reserve(s.size() + n);
    }
    void put(char c) { s += c; }
    void put(std::string_view text) { s.append(text); }
  } appended{out};
  string_node<true>(appended, utf8);
}

// The JSON text an escaped schema stands for (the content of the header's string, read back as JSON reads it). Escaped
// schema text holds no escapes but \" and \\: the JSON it escapes writes control characters as \u00XX.
std::string unescape_schema(std::string_view escaped);

// The schema document as the header's JSON string holds it (escaped, without its quotes), written in pre-order as a
// walk goes, with no tree in between. Each value is followed by a ',' that the next value keeps and a closing bracket
// writes over. A container something refers to is first written in its plain form: its id is known only once a
// second reference is met, so refer() marks it and finish() rewrites it in its referred form (format.md 5.3).
class SchemaText {
 public:
  SchemaText();
  SchemaText(const SchemaText&) = delete;
  SchemaText& operator=(const SchemaText&) = delete;

  void null() { value("null"); }
  void boolean(bool v) { value(v ? "true" : "false"); }
  void integer(std::int64_t v) {
    out_.room(number_room + 1);
    char digits[number_room];
    out_.put(std::string_view(digits, static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, v).ptr - digits)));
    out_.put(',');
  }
  // A float as format.md 5.2 stores it: a JSON number when finite, else {"$":"float","v":"nan"|"inf"|"-inf"} with the
  // "bits" of a NaN whose sign or payload is not the default one. Both savers (Python's and C++'s) write floats so.
  void float_value(double v) {
    if (!std::isfinite(v)) return tagged_float(v);
    out_.room(python_float_room + 1);
    if (python_floats_) {
      char buffer[python_float_room];
      out_.put(python_float_text(v, buffer));
    } else {
      put_number(out_, v);
    }
    out_.put(',');
  }
  // Finite floats written as Python's repr writes them (0.0001, 1e+16), as a recording's records have always held
  // them (docs/format.md section 9); a save writes the shortest form (1e-04).
  void write_python_floats() { python_floats_ = true; }
  void string(std::string_view utf8) {
    string_node<true>(out_, utf8);
    out_.append(",");
  }
  // An object member's key, its value written next.
  void key(std::string_view utf8) {
    string_node<true>(out_, utf8);
    out_.append(":");
  }
  // Containers return where they start, which end_container (and refer) take.
  std::size_t begin_array() { return open('['); }
  std::size_t begin_object() { return open('{'); }
  // Opens a tagged object, its "$" member written: {"$":tag, ...}; closed with end_container.
  std::size_t begin_tagged(std::string_view tag) {
    const std::size_t at = open('{');
    key(tag_member);
    string(tag);
    return at;
  }
  void end_container(std::size_t at) {
    const char close = out_.data()[at] == '[' ? ']' : '}';
    out_.room(2);
    if (out_.last() == ',') {
      out_.last() = close;
    } else {
      out_.put(close);
    }
    out_.put(',');
  }
  // {"$":"ref","#":id}.
  void reference(std::uint32_t id);
  // One past the closing bracket of the container end_container closed last.
  std::size_t closed_end() const { return out_.size() - 1; }
  // The container written from `start` to `end` (one past its closing bracket) is referred to as `id`.
  void refer(std::size_t start, std::size_t end, std::uint32_t id) { referred_.push_back({start, end, id}); }
  // The document: its envelope closed, the containers referred to in their referred form. `positions` (ascending,
  // where strings start in the text written) are moved to where those strings are in the document.
  std::string finish(std::span<std::size_t> positions = {}) &&;
  // The size of the text written so far.
  std::size_t size() const { return out_.size(); }
  // Gives a finished document's memory back for the next document this thread writes.
  static void recycle(std::string&& text);

 private:
  struct Referred {
    std::size_t start, end;
    std::uint32_t id;
  };
  std::size_t open(char bracket) {
    out_.room(1);
    const std::size_t at = out_.size();
    out_.put(bracket);
    return at;
  }
  void value(std::string_view literal) {
    out_.room(literal.size() + 1);
    out_.put(literal);
    out_.put(',');
  }
  void tagged_float(double v);
  // An empty string with the room the last document on this thread took (the memory recycled, where there is some).
  static std::string reserved();

  std::string text_;
  TextOut out_;
  std::vector<Referred> referred_;
  bool python_floats_ = false;
};

}  // namespace safestructures
