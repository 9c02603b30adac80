// The schema tree: a JSON document stored as a flat pre-order tape, its serializer, parser and structural checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/format.hpp"

namespace safestructures {

// JSON depth allowed per level of Python nesting: a dict with non-string keys is {"items":[[k, v]]}, three levels.
inline constexpr std::uint32_t json_levels_per_level = 3;

enum class NodeKind : std::uint8_t { Null, False, True, Int, Float, String, Array, Object };

// One tape entry. Containers are followed by their descendants in pre-order; an object's members are a String key
// node followed by the value's subtree.
struct Node {
  NodeKind kind = NodeKind::Null;
  // Containers: the reference id written as "#" (0 when nothing refers to the container).
  std::uint32_t id = 0;
  // Containers: element count (arrays) or member count (objects).
  std::uint32_t count = 0;
  // Containers: index one past the last node of the subtree.
  std::uint32_t end = 0;
  // An Int's value or a Float's, sharing their storage: a node is 40 bytes, and a load writes and reads one per value.
  union {
    std::int64_t integer = 0;
    double number;
  };
  std::string_view text;
};

struct SchemaLimits {
  // Levels of JSON nesting (simdjson's own default is 1024).
  std::uint32_t max_json_depth = 1024 * json_levels_per_level;
  std::uint64_t max_nodes = default_max_nodes;
  // What the parser's messages call the document (the checksums entry is parsed by the same parser).
  std::string_view document = "the schema";
};

// The tape of one schema. Strings are views: into the parsed JSON (kept alive by the tape), or, in a tape built by
// hand (the tests), into memory the builder's caller keeps alive.
class Tape {
 public:
  Tape();
  ~Tape();
  Tape(Tape&&) noexcept;
  Tape& operator=(Tape&&) noexcept;

  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& operator[](std::size_t i) const { return nodes_[i]; }
  std::size_t size() const { return nodes_.size(); }

  // Building, in pre-order.
  void null() { push(NodeKind::Null); }
  void boolean(bool value) { push(value ? NodeKind::True : NodeKind::False); }
  void integer(std::int64_t value) { push(NodeKind::Int).integer = value; }
  // Finite values only: non-finite floats are not JSON and are written tagged by the caller.
  void number(double value) { push(NodeKind::Float).number = value; }
  void string(std::string_view value) { push(NodeKind::String).text = value; }
  std::size_t begin_array() { return open(NodeKind::Array); }
  std::size_t begin_object() { return open(NodeKind::Object); }
  void end_container(std::size_t at);
  // Opens a tagged object, its "$" member written: {"$":tag, ...}; closed with end_container.
  std::size_t begin_tagged(std::string_view tag);
  // Counts one more element/member of the container opened at `at`.
  void count_child(std::size_t at) { ++nodes_[at].count; }
  void set_id(std::size_t at, std::uint32_t id) { nodes_[at].id = id; }

  // Index of the node after the subtree rooted at `i`. Inline, as tag(): the load walk calls both for every node.
  [[gnu::always_inline]] std::size_t next(std::size_t i) const { return next_in(nodes_, i); }
  // The same over nodes not yet a tape's (a parser's, whose containers are closed up to `i`'s).
  [[gnu::always_inline]] static std::size_t next_in(const std::vector<Node>& nodes, std::size_t i) {
    const Node& n = nodes[i];
    return (n.kind == NodeKind::Array || n.kind == NodeKind::Object) ? n.end : i + 1;
  }
  // An object's tag: the value of its "$" member, which must be the first member; empty when not tagged.
  std::string_view tag(std::size_t object) const {
    const Node& n = nodes_[object];
    if (n.kind != NodeKind::Object || n.count == 0) return {};
    const Node& key = nodes_[object + 1];
    const Node& value = nodes_[object + 2];
    if (key.text != tag_member || value.kind != NodeKind::String) return {};
    return value.text;
  }
  // The value node of member `key` of the object at `object`, or npos.
  std::size_t member(std::size_t object, std::string_view key) const;

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

 private:
  friend Tape parse_schema_json(std::string_view, const SchemaLimits&, bool);
  friend Tape parse_schema_json_by_simdjson(std::string_view, const SchemaLimits&, bool);
  Node& push(NodeKind kind) {
    nodes_.emplace_back();
    nodes_.back().kind = kind;
    return nodes_.back();
  }
  std::size_t open(NodeKind kind) {
    push(kind);
    return nodes_.size() - 1;
  }
  std::vector<Node> nodes_;
  // What the string views point into: the simdjson parser's string buffer, or the strict reader's copy of the text.
  std::shared_ptr<void> parsed_;
};

// Parses JSON text into a tape. Raises SchemaNotJson, NestingTooDeep or TooManyNodes, and DuplicateKey for an
// object holding a key twice (escaped or not): member() reads the first, Python's json the last, so every reader of
// a tape sees the one document any JSON reader sees.
// `padded`: SIMDJSON_PADDING readable bytes follow the text (else it is copied into a padded buffer first).
// A short text of the JSON this library writes is read by a strict reader of its own (strict_json.hpp), anything
// else by simdjson, to the same tape and errors.
Tape parse_schema_json(std::string_view json, const SchemaLimits& limits = {}, bool padded = false);
// The same, every text parsed by simdjson. For tests.
Tape parse_schema_json_by_simdjson(std::string_view json, const SchemaLimits& limits = {}, bool padded = false);
// The same for text in a string, parsed in place when its capacity holds the padding.
Tape parse_schema_string(const std::string& json, const SchemaLimits& limits = {});

// The document's envelope without its closing brace, {"format":"safestructures","version":2, followed by its "root"
// (or a spilled schema's "spill").
std::string schema_envelope_head();
// The schema document as it is written inside the header's JSON string (escaped, without the quotes).
struct EscapedSchema {
  std::string text;
};
// Checks that the document is an object with "format": "safestructures" and an integer "version" equal to
// schema_version; raises SchemaInvalid or SchemaVersion. Also used for a spilled schema's pointer, which has no "root".
void check_schema_envelope(const Tape& document);
// Checks the envelope and returns the index of the root node in the tape; raises SchemaInvalid or
// SchemaVersion (SchemaInvalid for a pointer to a spilled schema that holds a "root" too: spill_and_root).
std::size_t schema_root(const Tape& document);
inline constexpr std::string_view spill_and_root = "the schema document holds both \"spill\" and \"root\"";

}  // namespace safestructures
