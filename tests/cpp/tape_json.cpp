// The tests' printer of a schema tape as JSON (with reference ids), plain or escaped as the header's string holds it:
// what the tests and the schema fuzzer compare a parsed tape with. Saves write through SchemaText, not this.
#include "tape_json.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/stack.hpp"
#include "safestructures/schema_text.hpp"

namespace safestructures {

namespace {

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
}  // namespace

void append_json(std::string& out, const Tape& tape, std::size_t root) { render<false>(out, tape, root); }

std::string to_json(const Tape& tape) {
  std::string out;
  if (tape.size()) render<false>(out, tape, 0);
  return out;
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

std::string make_schema_document(const Tape& root) { return schema_document<false>(root, 0); }

EscapedSchema make_escaped_schema_document(const Tape& root, std::size_t reserve) {
  return EscapedSchema{schema_document<true>(root, reserve)};
}

}  // namespace safestructures
