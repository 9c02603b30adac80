// The schema tape: JSON rendering (with reference ids), parsing with simdjson, and the schema document envelope.
#include "safestructures/schema.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/stack.hpp"

namespace safestructures {

namespace {
// The size of the last tape built on this thread: a new tape reserves that much, so that saving similar data again
// does not regrow (and copy) its node vector step by step.
thread_local std::size_t last_tape_size = 0;
// The node storage of the last tape this thread let go, kept for the next tape (up to retained_nodes nodes, 12 MiB):
// a load of the same size again then writes its nodes into memory already mapped, not into pages the kernel must
// fault in and zero one by one.
constexpr std::size_t retained_nodes = std::size_t{1} << 18;
// Set once the thread's spare storage is destroyed (at the thread's end): a tape let go after that keeps its own.
thread_local bool spare_nodes_gone = false;
struct SpareNodes {
  std::vector<Node> nodes;
  ~SpareNodes() { spare_nodes_gone = true; }
};
thread_local SpareNodes spare_nodes;
}  // namespace

Tape::Tape() {
  if (!spare_nodes_gone) nodes_.swap(spare_nodes.nodes);
  nodes_.reserve(std::min<std::size_t>(last_tape_size, std::size_t{1} << 22));
}
Tape::~Tape() {
  if (!nodes_.empty()) last_tape_size = nodes_.size();
  if (!spare_nodes_gone && nodes_.capacity() <= retained_nodes && nodes_.capacity() > spare_nodes.nodes.capacity()) {
    nodes_.clear();
    spare_nodes.nodes.swap(nodes_);
  }
}
Tape::Tape(Tape&&) noexcept = default;
Tape& Tape::operator=(Tape&&) noexcept = default;

std::string_view Tape::own(std::string value) { return owned_.emplace_back(std::move(value)); }

void Tape::owned_string(std::string value) { string(own(std::move(value))); }

void Tape::end_container(std::size_t at) { nodes_[at].end = static_cast<std::uint32_t>(nodes_.size()); }

std::size_t Tape::begin_tagged(std::string_view tag) {
  const std::size_t at = begin_object();
  string(tag_member);
  string(tag);
  count_child(at);
  return at;
}

void Tape::reference(std::size_t target, std::uint32_t& next_id) {
  if (nodes_[target].id == 0) nodes_[target].id = next_id++;
  const std::uint32_t id = nodes_[target].id;
  const std::size_t at = begin_tagged(traits(Kind::Ref).tag);
  string(id_member);
  integer(id);
  count_child(at);
  end_container(at);
}

void Tape::float_value(double value) {
  if (std::isfinite(value)) {
    number(value);
    return;
  }
  const std::size_t at = begin_tagged(traits(Kind::Float).tag);
  string("v");
  string(std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf"));
  count_child(at);
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  if (std::isnan(value) && bits != 0x7ff8000000000000ull) {
    // A NaN's sign and payload are kept exactly.
    char digits[16];
    char* end = std::to_chars(digits, digits + 16, bits, 16).ptr;
    string("bits");
    owned_string(std::string(16 - static_cast<std::size_t>(end - digits), '0').append(digits, end));
    count_child(at);
  }
  end_container(at);
}

std::size_t Tape::member(std::size_t object, std::string_view key) const {
  const Node& n = nodes_[object];
  std::size_t i = object + 1;
  for (std::uint32_t m = 0; m < n.count; ++m) {
    // Compared byte by byte: member names are a few bytes, where a call to memcmp costs more than the comparison.
    const std::string_view name = nodes_[i].text;
    if (name.size() == key.size() && std::equal(name.begin(), name.end(), key.begin(), [](char a, char b) { return a == b; })) return i + 1;
    i = next(i + 1);
  }
  return npos;
}

namespace {

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

void put_number(TextOut& out, double value) {
  char buffer[number_room];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  const std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
  out.put(text);
  // Keeps floats distinguishable from integers in the JSON: 1.0 stays 1.0, not 1.
  if (text.find_first_of(".e") == std::string_view::npos) out.put(".0");
}

// {"$":TAG,"#":ID,"items": the head of a container that something refers to, in its kind's tagged form.
std::string referred_head(Kind kind, std::uint32_t id) {
  std::string out = "{\"";
  out.append(tag_member).append("\":\"").append(traits(kind).tag).append("\",\"").append(id_member).append("\":");
  return out.append(std::to_string(id)).append(",\"items\":");
}

[[noreturn]] void stack_too_deep() {
  raise(ErrorCode::NestingTooDeep, "the schema nests deeper than this thread's stack can walk");
}

// Text of the rendered JSON. Escaped, it is written as it appears inside a JSON string (the schema's place in the
// header): the document and its escaping come out of one pass rather than a rendering and then a second pass.
template <bool Escaped>
void literal(TextOut& out, std::string_view text) {
  if constexpr (Escaped) {
    std::string escaped;
    append_json_escaped(escaped, text);
    out.append(escaped);
  } else {
    out.append(text);
  }
}

template <bool Escaped>
void string_node(TextOut& out, std::string_view text) {
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

template <bool Escaped>
std::size_t append_node(TextOut& out, const Tape& tape, std::size_t i) {
  const Node& n = tape[i];
  if ((n.kind == NodeKind::Array || n.kind == NodeKind::Object) && stack_nearly_exhausted()) stack_too_deep();
  switch (n.kind) {
    case NodeKind::Null: out.append("null"); return i + 1;
    case NodeKind::False: out.append("false"); return i + 1;
    case NodeKind::True: out.append("true"); return i + 1;
    case NodeKind::Int: {
      char digits[number_room];
      out.append(std::string_view(digits, static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, n.integer).ptr - digits)));
      return i + 1;
    }
    case NodeKind::Float:
      out.room(number_room);
      put_number(out, n.number);
      return i + 1;
    case NodeKind::String: string_node<Escaped>(out, n.text); return i + 1;
    case NodeKind::Array: {
      if (n.id) literal<Escaped>(out, referred_head(Kind::List, n.id));
      out.append("[");
      std::size_t c = i + 1;
      for (std::uint32_t k = 0; k < n.count; ++k) {
        if (k) out.append(",");
        c = append_node<Escaped>(out, tape, c);
      }
      out.append(n.id ? "]}" : "]");
      return n.end;
    }
    case NodeKind::Object: {
      const bool tagged = !tape.tag(i).empty();
      // An untagged object that something refers to is written as a dict's items, [[key, value], ...].
      const bool pairs = n.id && !tagged;
      if (pairs) {
        literal<Escaped>(out, referred_head(Kind::Dict, n.id) + "[");
      } else {
        out.append("{");
      }
      std::size_t c = i + 1;
      for (std::uint32_t k = 0; k < n.count; ++k) {
        if (k) out.append(",");
        if (pairs) out.append("[");
        string_node<Escaped>(out, tape[c].text);
        out.append(pairs ? "," : ":");
        c = append_node<Escaped>(out, tape, c + 1);
        if (pairs) out.append("]");
        if (k == 0 && tagged && n.id) literal<Escaped>(out, ",\"#\":" + std::to_string(n.id));
      }
      out.append(pairs ? "]}" : "}");
      return n.end;
    }
  }
  return i + 1;
}

// Renders the subtree at `root` after what `out` holds.
template <bool Escaped>
void render(std::string& out, const Tape& tape, std::size_t root) {
  TextOut text(out);
  append_node<Escaped>(text, tape, root);
  text.finish();
}

// Copies a parsed document into a tape in one pass over simdjson's own tape (docs/tape.md of simdjson: one word per
// value, a container's start and end words, a number's value in the word after its own), which is in the same
// pre-order as ours: no recursion, and no accessor call per value. The parser has checked the JSON and its depth.
class Converter {
 public:
  Converter(std::vector<Node>& nodes, const SchemaLimits& limits) : nodes_(nodes), limits_(limits) {}

  void convert(const simdjson::dom::document& doc) {
    const std::uint64_t* tape = doc.tape.get();
    const std::uint8_t* strings = doc.string_buf.get();
    // Word 0 is a root word whose payload is the tape's length; the last word is the closing root word.
    const std::size_t end = static_cast<std::size_t>(tape[0] & payload_mask) - 1;
    std::vector<std::size_t> open;  // the tape index of each container not yet closed
    for (std::size_t i = 1; i < end;) {
      const std::uint64_t word = tape[i];
      const auto type = static_cast<char>(word >> 56);
      if (type == ']' || type == '}') {
        Node& container = nodes_[open.back()];
        // An object's members are a key and a value each.
        if (type == '}') container.count /= 2;
        container.end = static_cast<std::uint32_t>(nodes_.size());
        open.pop_back();
        ++i;
        continue;
      }
      // Called before each node is added: the tape may reach max_nodes nodes, not one more.
      if (nodes_.size() >= limits_.max_nodes) {
        raise(ErrorCode::TooManyNodes, "the schema holds more than " + std::to_string(limits_.max_nodes) + " nodes");
      }
      if (!open.empty()) ++nodes_[open.back()].count;
      Node& node = nodes_.emplace_back();
      ++i;
      switch (type) {
        case 'n': node.kind = NodeKind::Null; break;
        case 't': node.kind = NodeKind::True; break;
        case 'f': node.kind = NodeKind::False; break;
        case 'l':
          node.kind = NodeKind::Int;
          node.integer = static_cast<std::int64_t>(tape[i++]);
          break;
        case 'u':
          // Integers past int64 are written tagged; a bare one is out of the schema's range.
          raise(ErrorCode::SchemaInvalid, "integer " + std::to_string(tape[i]) + " is out of the int64 range");
        case 'd':
          node.kind = NodeKind::Float;
          std::memcpy(&node.number, &tape[i++], sizeof node.number);
          break;
        case '"': {
          // A string: its length (32 bits, little-endian) and its bytes, in the parser's string buffer.
          const std::uint8_t* at = strings + (word & payload_mask);
          std::uint32_t length = 0;
          std::memcpy(&length, at, sizeof length);
          node.kind = NodeKind::String;
          node.text = std::string_view(reinterpret_cast<const char*>(at + sizeof length), length);
          break;
        }
        case '[':
        case '{':
          node.kind = type == '[' ? NodeKind::Array : NodeKind::Object;
          open.push_back(nodes_.size() - 1);
          break;
        default: raise(ErrorCode::SchemaNotJson, "the schema parser produced an unknown value");
      }
    }
  }

 private:
  static constexpr std::uint64_t payload_mask = (std::uint64_t{1} << 56) - 1;
  std::vector<Node>& nodes_;
  const SchemaLimits& limits_;
};

}  // namespace

void append_json(std::string& out, const Tape& tape, std::size_t root) { render<false>(out, tape, root); }

std::string to_json(const Tape& tape) {
  std::string out;
  if (tape.size()) render<false>(out, tape, 0);
  return out;
}

// The parser of the last schema this thread parsed, reused once no tape holds it any more (tapes view its strings):
// allocating a parser's buffers for every load costs more than parsing a small schema.
std::shared_ptr<simdjson::dom::parser> reusable_parser(std::size_t size, std::uint32_t max_depth) {
  constexpr std::size_t retained_capacity = 16 << 20;
  thread_local std::shared_ptr<simdjson::dom::parser> cached;
  if (cached && cached.use_count() == 1 && cached->max_depth() == max_depth && size <= cached->capacity()) return cached;
  auto parser = std::make_shared<simdjson::dom::parser>();
  if (parser->allocate(size, max_depth)) return nullptr;
  if (size <= retained_capacity) cached = parser;
  return parser;
}

Tape parse_schema_string(const std::string& json, const SchemaLimits& limits) {
  return parse_schema_json(std::string_view(json), limits, json.capacity() >= json.size() + simdjson::SIMDJSON_PADDING);
}

Tape parse_schema_json(std::string_view json, const SchemaLimits& limits, bool padded) {
  auto parser = reusable_parser(json.size(), limits.max_json_depth);
  if (!parser) {
    raise(ErrorCode::SchemaNotJson, "cannot allocate a parser for a schema of " + std::to_string(json.size()) + " bytes");
  }
  simdjson::dom::element root;
  // Unpadded text is copied into a padded buffer first (simdjson reads up to SIMDJSON_PADDING bytes past the end).
  const auto parsed = padded ? parser->parse(json.data(), json.size(), false) : parser->parse(simdjson::padded_string(json));
  if (const auto err = parsed.get(root)) {
    if (err == simdjson::DEPTH_ERROR) {
      raise(ErrorCode::NestingTooDeep, "the schema nests deeper than " + std::to_string(limits.max_json_depth) + " JSON levels");
    }
    raise(ErrorCode::SchemaNotJson, std::string("the schema is not valid JSON: ") + simdjson::error_message(err));
  }
  Tape tape;
  tape.parsed_ = parser;
  Converter(tape.nodes_, limits).convert(parser->doc);
  return tape;
}

template <bool Escaped>
std::string schema_document(const Tape& root, std::size_t reserve) {
  std::string out;
  out.reserve(reserve);
  const std::string head = schema_envelope_head() + ",\"root\":";
  if constexpr (Escaped) {
    append_json_escaped(out, head);
  } else {
    out += head;
  }
  if (root.size()) {
    render<Escaped>(out, root, 0);
  } else {
    out += "null";
  }
  out += '}';
  return out;
}

std::string schema_envelope_head() {
  return "{\"format\":\"" + std::string(schema_format_name) + "\",\"version\":" + std::to_string(schema_version);
}

std::string make_schema_document(const Tape& root) { return schema_document<false>(root, 0); }

EscapedSchema make_escaped_schema_document(const Tape& root, std::size_t reserve) {
  return EscapedSchema{schema_document<true>(root, reserve)};
}

void check_schema_envelope(const Tape& document) {
  if (document.size() == 0 || document[0].kind != NodeKind::Object) raise(ErrorCode::SchemaInvalid, "the schema document is not a JSON object");
  const std::size_t format = document.member(0, "format");
  if (format == Tape::npos || document[format].kind != NodeKind::String || document[format].text != "safestructures") {
    raise(ErrorCode::SchemaInvalid, "the schema document lacks \"format\": \"safestructures\"");
  }
  const std::size_t version = document.member(0, "version");
  if (version == Tape::npos || document[version].kind != NodeKind::Int) raise(ErrorCode::SchemaInvalid, "the schema document lacks an integer \"version\"");
  if (document[version].integer != schema_version) {
    raise(ErrorCode::SchemaVersion, "the schema is format version " + std::to_string(document[version].integer) + "; this release reads version " +
                                        std::to_string(schema_version));
  }
}

std::size_t schema_root(const Tape& document) {
  check_schema_envelope(document);
  const std::size_t root = document.member(0, "root");
  if (root == Tape::npos) raise(ErrorCode::SchemaInvalid, "the schema document lacks \"root\"");
  return root;
}

}  // namespace safestructures
