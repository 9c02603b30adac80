// The schema document written as a walk goes: the envelope, tagged floats and references, and the rewriting of the
// containers something refers to into their referred form once their ids are known.
#include "safestructures/schema_text.hpp"

#include <algorithm>
#include <charconv>
#include <initializer_list>

namespace safestructures {
namespace {

// The size of the last document written on this thread: the next one starts with that much room, so that saving similar
// data again does not grow (and copy) its text step by step.
thread_local std::size_t last_document_size = 0;
// The memory of the last document, given back once the header holds it: a document's memory freed and allocated again
// is returned to the system between saves and faulted in anew, page by page, at each save (the header and the file's
// bytes are as large). Kept up to this size.
constexpr std::size_t kept_capacity = std::size_t{32} << 20;
thread_local std::string spare;

// Pieces joined into one string, sized once (operator+ on temporaries makes GCC 12 warn falsely of overlapping copies).
std::string concatenated(std::initializer_list<std::string_view> pieces) {
  std::size_t size = 0;
  for (const std::string_view piece : pieces) size += piece.size();
  std::string out;
  out.reserve(size);
  for (const std::string_view piece : pieces) out.append(piece);
  return out;
}

std::string escaped(std::string_view json) {
  std::string out;
  append_json_escaped(out, json);
  return out;
}

// One change to the written text: `removed` characters at `at` replaced by `text`. At one position, changes apply in
// `order`: a referred array's closing brace (inner) before a referred dict's closing of its pair (outer), insertions
// before replacements.
struct Edit {
  std::size_t at;
  std::size_t removed;
  int order;
  std::string text;
};

// Reads escaped text one character of the JSON it stands for at a time: `\"` is '"' and `\\` is '\' (the JSON text
// has no control characters, which it writes as \u00XX).
class Unescaper {
 public:
  Unescaper(std::string_view text, std::size_t at) : text_(text), next_(at) {}
  // The position of the character next() returns next.
  std::size_t position() const { return next_; }
  char next() {
    char c = text_[next_++];
    if (c == '\\') c = text_[next_++];
    return c;
  }

 private:
  std::string_view text_;
  std::size_t next_;
};

// Tracks whether a character of JSON text is inside a string.
struct StringState {
  bool inside = false;
  bool escape = false;
  // Whether `c` is part of a string (its opening and closing quotes included).
  bool feed(char c) {
    if (escape) {
      escape = false;
      return true;
    }
    if (inside) {
      if (c == '\\') escape = true;
      if (c == '"') inside = false;
      return true;
    }
    if (c == '"') inside = true;
    return inside;
  }
};

// A dict something refers to is written as its items: {"a":1,...} becomes {"$":"dict","#":id,"items":[["a",1],...]}.
void dict_as_pairs(std::string_view text, std::size_t start, std::uint32_t id, std::vector<Edit>& edits) {
  edits.push_back({start, 1, 2, escaped(referred_head(Kind::Dict, id)) + "["});
  Unescaper in(text, start + 1);
  StringState string;
  int depth = 1;
  bool key_next = true, any = false;
  while (true) {
    const std::size_t at = in.position();
    const char c = in.next();
    const bool in_string = string.inside || string.escape;
    if (string.feed(c)) {
      if (!in_string && depth == 1 && key_next) {
        edits.push_back({at, 0, 1, "["});
        key_next = false;
        any = true;
      }
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == ']' || (c == '}' && depth > 1)) {
      --depth;
    } else if (c == '}') {
      edits.push_back({at, 1, 2, any ? "]]}" : "]}"});
      return;
    } else if (depth == 1 && c == ':') {
      edits.push_back({at, 1, 2, ","});
    } else if (depth == 1 && c == ',') {
      edits.push_back({at, 0, 1, "]"});
      key_next = true;
    }
  }
}

// Where a tagged object's id goes: after its first member, the tag ({"$":"tuple" here,...}).
std::size_t after_tag(std::string_view text, std::size_t start) {
  Unescaper in(text, start + 1);
  StringState string;
  for (int quotes = 0; quotes < 4;) {
    const char c = in.next();
    const bool escaped_char = string.escape;
    string.feed(c);
    if (c == '"' && !escaped_char) ++quotes;
  }
  return in.position();
}

}  // namespace

std::string SchemaText::reserved() {
  const std::size_t wanted = std::min<std::size_t>(last_document_size + last_document_size / 8, std::size_t{64} << 20);
  std::string text = std::move(spare);
  text.clear();
  // Writing starts by sizing the string to its capacity: memory far beyond what this document is expected to take (a
  // small save after a large one) is let go rather than cleared again at each save.
  if (text.capacity() > 2 * wanted + (std::size_t{64} << 10)) std::string().swap(text);  // (assigning keeps the memory)
  // Only ever grown: reserve() below the capacity may shrink the string, into a new allocation.
  if (text.capacity() < wanted) text.reserve(wanted);
  return text;
}

void SchemaText::recycle(std::string&& text) {
  if (text.capacity() <= kept_capacity && text.capacity() > spare.capacity()) spare = std::move(text);
}

std::string unescape_schema(std::string_view escaped) {
  std::string out;
  out.reserve(escaped.size());
  for (Unescaper in(escaped, 0); in.position() < escaped.size();) out += in.next();
  return out;
}

SchemaText::SchemaText() : text_(reserved()), out_(text_) {
  const std::string head = escaped(schema_envelope_head() + ",\"root\":");
  out_.append(head);
}

void SchemaText::reference(std::uint32_t id) {
  const std::size_t at = begin_tagged(traits(Kind::Ref).tag);
  key(id_member);
  integer(id);
  end_container(at);
}

void SchemaText::tagged_float(double v) {
  const std::size_t at = begin_tagged(traits(Kind::Float).tag);
  key("v");
  // The word as a JSON string, escaped and followed by its separator (written as a string value, GCC 12 warns falsely of
  // an overflow in the copy it inlines).
  out_.append(std::isnan(v) ? "\\\"nan\\\"," : (v > 0 ? "\\\"inf\\\"," : "\\\"-inf\\\","));
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  if (std::isnan(v) && bits != 0x7ff8000000000000ull) {
    // A NaN's sign and payload are kept exactly.
    char digits[16];
    char* end = std::to_chars(digits, digits + 16, bits, 16).ptr;
    key("bits");
    string(std::string(16 - static_cast<std::size_t>(end - digits), '0').append(digits, end));
  }
  end_container(at);
}

std::string_view python_float_text(double value, char (&buffer)[python_float_room]) {
  // The shortest digits, positionally for decimal exponents from -4 to 15 (float_repr_style 'short'), else in
  // scientific notation with at least two exponent digits, as to_chars writes it.
  const bool positional = value == 0 || (std::abs(value) >= 1e-4 && std::abs(value) < 1e16);
  const auto format = positional ? std::chars_format::fixed : std::chars_format::scientific;
  char* end = std::to_chars(buffer, buffer + python_float_room - 2, value, format).ptr;
  if (positional && std::find(buffer, end, '.') == end) {
    *end++ = '.';
    *end++ = '0';
  }
  return {buffer, static_cast<std::size_t>(end - buffer)};
}

std::string SchemaText::finish(std::span<std::size_t> positions) && {
  // The root's separator closes the envelope.
  out_.last() = '}';
  out_.finish();
  last_document_size = text_.size();
  if (referred_.empty()) return std::move(text_);
  const std::string_view text = text_;
  std::vector<Edit> edits;
  for (const Referred& r : referred_) {
    if (text[r.start] == '[') {
      edits.push_back({r.start, 0, 1, escaped(referred_head(Kind::List, r.id))});
      edits.push_back({r.end, 0, 0, "}"});
    } else if (text.substr(r.start + 1, 2 + tag_member.size() + 2) == escaped(concatenated({"\"", tag_member, "\""}))) {
      edits.push_back({after_tag(text, r.start), 0, 1, escaped(concatenated({",\"", id_member, "\":", std::to_string(r.id)}))});
    } else {
      dict_as_pairs(text, r.start, r.id, edits);
    }
  }
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.at != b.at ? a.at < b.at : a.order < b.order; });
  std::size_t size = text.size();
  for (const Edit& e : edits) size += e.text.size() - e.removed;
  // No edit starts where a string value does (they open containers, precede keys, follow tags and replace brackets
  // and colons): a position moves by what the edits before it add.
  std::size_t shift = 0;
  auto edit = edits.begin();
  for (std::size_t& position : positions) {
    for (; edit != edits.end() && edit->at < position; ++edit) shift += edit->text.size() - edit->removed;
    position += shift;
  }
  std::string out;
  out.reserve(size);
  std::size_t from = 0;
  for (const Edit& e : edits) {
    out.append(text.substr(from, e.at - from));
    out += e.text;
    from = e.at + e.removed;
  }
  out.append(text.substr(from));
  return out;
}

std::string schema_envelope_head() {
  return "{\"format\":\"" + std::string(schema_format_name) + "\",\"version\":" + std::to_string(schema_version);
}

}  // namespace safestructures
