// The schema tape: building, parsing with simdjson, and the schema document's checks (rendering: schema_render.cpp).
#include "safestructures/schema.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/path_text.hpp"
#include "safestructures/stack.hpp"
#include "safestructures/strict_json.hpp"

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

void Tape::end_container(std::size_t at) { nodes_[at].end = static_cast<std::uint32_t>(nodes_.size()); }

std::size_t Tape::begin_tagged(std::string_view tag) {
  const std::size_t at = begin_object();
  string(tag_member);
  string(tag);
  count_child(at);
  return at;
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

// Objects of at most this many members are checked for a repeated key pairwise, larger ones (a dict's keys) sorted.
constexpr std::uint32_t pairwise_members = 16;

// The key node of a member of the closed object at `object` whose key an earlier member has, or Tape::npos.
std::size_t repeated_key(const std::vector<Node>& nodes, std::size_t object) {
  const Node& n = nodes[object];
  if (n.count < 2) return Tape::npos;
  if (n.count <= pairwise_members) {
    std::size_t keys[pairwise_members];
    std::uint32_t seen = 0;
    for (std::size_t k = object + 1; k < n.end; k = Tape::next_in(nodes, k + 1)) {
      for (std::uint32_t j = 0; j < seen; ++j) {
        if (nodes[keys[j]].text == nodes[k].text) return k;
      }
      keys[seen++] = k;
    }
    return Tape::npos;
  }
  std::vector<std::size_t> keys;
  keys.reserve(n.count);
  for (std::size_t k = object + 1; k < n.end; k = Tape::next_in(nodes, k + 1)) keys.push_back(k);
  std::sort(keys.begin(), keys.end(), [&](std::size_t a, std::size_t b) { return nodes[a].text < nodes[b].text; });
  const auto same = std::adjacent_find(keys.begin(), keys.end(), [&](std::size_t a, std::size_t b) { return nodes[a].text == nodes[b].text; });
  return same == keys.end() ? Tape::npos : std::max(same[0], same[1]);
}

// Whether any object of the (closed) nodes holds a key twice.
bool holds_repeated_key(const std::vector<Node>& nodes) {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].kind == NodeKind::Object && repeated_key(nodes, i) != Tape::npos) return true;
  }
  return false;
}

// Where node `node` is in the schema document, as `$["a"][3]` (every container of the tape is closed by now).
std::string document_path(const std::vector<Node>& nodes, std::size_t node) {
  struct Step {
    bool member;         // an object's member (named by its key node) or an array's element (by its number)
    std::size_t key;
    std::int64_t index;
  };
  std::vector<Step> steps;
  for (std::size_t i = 0; i != node;) {
    const bool members = nodes[i].kind == NodeKind::Object;
    std::size_t child = i + 1;
    for (std::int64_t index = 0;; ++index) {
      const std::size_t value = members ? child + 1 : child;
      if (Tape::next_in(nodes, value) > node) {
        steps.push_back({members, child, index});
        i = value;
        break;
      }
      child = Tape::next_in(nodes, value);
    }
  }
  return render_path(steps.size(), [&](std::string& out, std::size_t k) {
    if (steps[k].member) {
      append_key_part(out, nodes[steps[k].key].text);
    } else {
      append_index_part(out, steps[k].index);
    }
  });
}

// Raises DuplicateKey for the object at `object` whose member `key` repeats an earlier one's key, naming where the
// object is in the schema document.
[[noreturn]] void raise_repeated_key(std::string_view document, const std::vector<Node>& nodes, std::size_t object, std::size_t key) {
  raise(ErrorCode::DuplicateKey, std::string(document) + "'s JSON object at " + document_path(nodes, object) + " holds the key " +
                                     quote_name(nodes[key].text) + " twice");
}

// Copies a parsed document into a tape in one pass over simdjson's own tape (docs/tape.md of simdjson: one word per
// value, a container's start and end words, a number's value in the word after its own), which is in the same
// pre-order as ours: no recursion, and no accessor call per value. The parser has checked the JSON and its depth.
class Converter {
 public:
  explicit Converter(const SchemaLimits& limits) : limits_(limits) {}

  // Appends the document's nodes to `nodes`. They are built in a local vector (the caller's storage moved in, and
  // back at the end), whose ends the compiler keeps in registers rather than storing them through a reference after
  // every node; reserved once for at most one node per word, so that adding a node never regrows it; its size counted
  // here, not divided out of its ends for every node.
  void convert(const simdjson::dom::document& doc, std::vector<Node>& into) {
    const std::uint64_t* tape = doc.tape.get();
    const std::uint8_t* strings = doc.string_buf.get();
    // Word 0 is a root word whose payload is the tape's length; the last word is the closing root word.
    const std::size_t end = static_cast<std::size_t>(tape[0] & payload_mask) - 1;
    std::vector<Node> nodes = std::move(into);
    nodes.reserve(nodes.size() + std::min<std::size_t>(end, limits_.max_nodes));
    const std::uint64_t max_nodes = limits_.max_nodes;
    std::size_t made = nodes.size();
    std::vector<std::size_t> open;  // the tape index of each container not yet closed
    for (std::size_t i = 1; i < end;) {
      const std::uint64_t word = tape[i];
      const auto type = static_cast<char>(word >> 56);
      if (type == ']' || type == '}') {
        Node& container = nodes[open.back()];
        container.end = static_cast<std::uint32_t>(made);
        // simdjson's start word counted the elements (or members) up to its saturation: past it, counted here.
        if (container.count == count_mask) container.count = count_children(nodes, open.back());
        if (type == '}' && repeated_ == Tape::npos) {
          repeated_ = repeated_key(nodes, open.back());
          if (repeated_ != Tape::npos) repeated_object_ = open.back();
        }
        open.pop_back();
        ++i;
        continue;
      }
      // Called before each node is added: the tape may reach max_nodes nodes, not one more.
      if (made >= max_nodes) {
        raise(ErrorCode::TooManyNodes, std::string(limits_.document) + " holds more than " + std::to_string(limits_.max_nodes) + " nodes");
      }
      Node& node = nodes.emplace_back();
      ++made;
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
          // Integers past int64 are written tagged; a bare one is out of the schema's range (raised once the tape is
          // whole, where its path can be named).
          node.kind = NodeKind::Int;
          if (out_of_range_ == Tape::npos) {
            out_of_range_ = made - 1;
            out_of_range_value_ = tape[i];
          }
          ++i;
          break;
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
          // The start word holds the element count (an object's: its members) in bits 32 to 55: no count is
          // added up per child, which cost a store into the parent node for every node.
          node.kind = type == '[' ? NodeKind::Array : NodeKind::Object;
          node.count = static_cast<std::uint32_t>((word >> 32) & count_mask);
          open.push_back(made - 1);
          break;
        default: raise(ErrorCode::SchemaNotJson, std::string(limits_.document) + ": the parser produced an unknown value");
      }
    }
    into = std::move(nodes);
    if (out_of_range_ != Tape::npos) {
      raise(ErrorCode::SchemaInvalid, std::string(limits_.document) + "'s integer " + std::to_string(out_of_range_value_) + " at " +
                                          document_path(into, out_of_range_) + " is out of the int64 range (a save writes such ints tagged)");
    }
    if (repeated_ != Tape::npos) raise_repeated_key(limits_.document, into, repeated_object_, repeated_);
  }

 private:
  static constexpr std::uint64_t payload_mask = (std::uint64_t{1} << 56) - 1;
  // simdjson's saturated count: the container holds this many children or more.
  static constexpr std::uint32_t count_mask = 0xFFFFFF;
  // The children of the closed container at `at` (an object's members: a key and a value each).
  static std::uint32_t count_children(const std::vector<Node>& nodes, std::size_t at) {
    const Node& container = nodes[at];
    std::uint32_t children = 0;
    for (std::size_t c = at + 1; c < container.end; ++children) c = Tape::next_in(nodes, c);
    return container.kind == NodeKind::Object ? children / 2 : children;
  }
  const SchemaLimits& limits_;
  // The first object found holding a key twice, and that key's second node: raised once the tape is whole, where
  // its path can be named.
  std::size_t repeated_object_ = 0;
  std::size_t repeated_ = Tape::npos;
  // The first integer past int64's range, and its value.
  std::size_t out_of_range_ = Tape::npos;
  std::uint64_t out_of_range_value_ = 0;
};

}  // namespace

// The longest schema text the strict reader takes: below a few hundred bytes, simdjson's set-up costs more than the
// whole parse, while past them its SIMD scan and its number parsing win (measured on W4's schemas, whose floats have
// 17 digits: the strict reader 22% faster at 520 bytes, 13% slower at 970).
constexpr std::size_t strict_schema_bytes = 640;

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
  if (json.size() <= strict_schema_bytes) {
    // The strict reader's copy of the text, which the tape's strings view (unescaped in place).
    auto text = std::make_shared_for_overwrite<char[]>(json.size());
    std::memcpy(text.get(), json.data(), json.size());
    Tape tape;
    // An object holding a key twice is declined as anything unusual is: the simdjson way raises, naming it.
    if (read_strict_schema(std::span<char>(text.get(), json.size()), limits, tape.nodes_) && !holds_repeated_key(tape.nodes_)) {
      tape.parsed_ = std::move(text);
      return tape;
    }
  }
  return parse_schema_json_by_simdjson(json, limits, padded);
}

Tape parse_schema_json_by_simdjson(std::string_view json, const SchemaLimits& limits, bool padded) {
  auto parser = reusable_parser(json.size(), limits.max_json_depth);
  if (!parser) {
    raise(ErrorCode::SchemaNotJson, "cannot allocate a parser for " + std::string(limits.document) + " (" + std::to_string(json.size()) + " bytes)");
  }
  simdjson::dom::element root;
  // Unpadded text is copied into a padded buffer first (simdjson reads up to SIMDJSON_PADDING bytes past the end).
  const auto parsed = padded ? parser->parse(json.data(), json.size(), false) : parser->parse(simdjson::padded_string(json));
  if (const auto err = parsed.get(root)) {
    if (err == simdjson::DEPTH_ERROR) {
      raise(ErrorCode::NestingTooDeep, std::string(limits.document) + " nests deeper than " + std::to_string(limits.max_json_depth) + " JSON levels");
    }
    const std::string number = err == simdjson::NUMBER_ERROR ? unreadable_number(json) : std::string();
    raise(ErrorCode::SchemaNotJson, std::string(limits.document) + " is not valid JSON: " + simdjson::error_message(err) +
                                        (number.empty() ? "" : " (" + number + ", which no 64-bit int or finite double holds)"));
  }
  Tape tape;
  tape.parsed_ = parser;
  Converter(limits).convert(parser->doc, tape.nodes_);
  return tape;
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
  // A pointer to a spilled schema is no document of its own: loads read the tensor it names, not this "root".
  if (document.member(0, "spill") != Tape::npos) raise(ErrorCode::SchemaInvalid, std::string(spill_and_root));
  return root;
}

}  // namespace safestructures
