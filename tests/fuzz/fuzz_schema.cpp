// libFuzzer target: the schema tape. The input is parsed as schema JSON (parse_schema_json, schema_root), and the tape
// must round-trip: rendering it and parsing the text again gives the same tape and the same text. The input is also
// read as a safetensors file whose schema (in __metadata__ or spilled into a tensor) goes through read_schema and the
// same checks. safestructures::Error is the expected outcome for bad input; anything else is a bug.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "tape_json.hpp"
#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/structure.hpp"

using namespace safestructures;

namespace {

bool is_container(const Node& n) { return n.kind == NodeKind::Array || n.kind == NodeKind::Object; }

// The tape is well formed: each container's children, walked with next(), end exactly at its `end`; object members
// are a String key followed by a value; a parsed tape has no reference ids.
void check_tape(const Tape& t) {
  FUZZ_CHECK(t.size() > 0, "a parsed tape is empty");
  FUZZ_CHECK(t.next(0) == t.size(), "the root does not span the tape");
  for (std::size_t i = 0; i < t.size(); ++i) {
    const Node& n = t[i];
    FUZZ_CHECK(n.id == 0, "a parsed node has a reference id");
    if (!is_container(n)) continue;
    FUZZ_CHECK(n.end > i && n.end <= t.size(), "container end out of range");
    std::size_t c = i + 1;
    for (std::uint32_t k = 0; k < n.count; ++k) {
      FUZZ_CHECK(c < n.end, "children run past the container's end");
      if (n.kind == NodeKind::Object) {
        FUZZ_CHECK(t[c].kind == NodeKind::String, "object member without a string key");
        ++c;
        FUZZ_CHECK(c < n.end, "object key without a value");
      }
      c = t.next(c);
    }
    FUZZ_CHECK(c == n.end, "children do not end at the container's end");
  }
}

bool same_node(const Node& a, const Node& b) {
  if (a.kind != b.kind || a.count != b.count || a.end != b.end || a.text != b.text) return false;
  if (a.kind == NodeKind::Int) return a.integer == b.integer;
  if (a.kind == NodeKind::Float) return std::memcmp(&a.number, &b.number, sizeof(double)) == 0;
  return true;
}

std::string render(const Tape& t, const char* what) {
  try {
    return to_json(t);
  } catch (const Error& e) {
    fuzz::fail(std::string(what) + ": to_json of a parsed tape raised: " + e.what());
  }
}

Tape reparse(std::string_view json, const char* what) {
  try {
    return parse_schema_json(json);
  } catch (const Error& e) {
    fuzz::fail(std::string(what) + ": the rendered JSON does not parse again: " + e.what() + "\nrendered: " + std::string(json.substr(0, 2000)));
  }
}

// Every check a parsed tape must pass, whatever its source.
void check_parsed(const Tape& t, const char* what) {
  for (const Node& n : t.nodes()) {
    if (n.kind == NodeKind::Float) FUZZ_CHECK(std::isfinite(n.number), std::string(what) + ": a parsed float is not finite");
  }
  check_tape(t);
  const std::string json = render(t, what);
  const Tape again = reparse(json, what);
  FUZZ_CHECK(again.size() == t.size(), std::string(what) + ": node count changed on round trip");
  for (std::size_t i = 0; i < t.size(); ++i) {
    FUZZ_CHECK(same_node(t[i], again[i]), std::string(what) + ": node " + std::to_string(i) + " changed on round trip; rendered: " + json.substr(0, 2000));
  }
  const std::string json2 = render(again, what);
  FUZZ_CHECK(json2 == json, std::string(what) + ": rendering is not stable:\n" + json.substr(0, 2000) + "\n" + json2.substr(0, 2000));

  // The document envelope: a root found in the tape, and make_schema_document() of that root's subtree wraps it.
  std::size_t root = Tape::npos;
  if (fuzz::expect_ok_or_error("schema_root", [&] { root = schema_root(t); })) {
    FUZZ_CHECK(root < t.size(), "schema_root out of range");
    std::string root_json;
    append_json(root_json, t, root);
    const Tape root_tape = reparse(root_json, "root subtree");
    const Tape doc = reparse(make_schema_document(root_tape), "make_schema_document");
    std::size_t doc_root = Tape::npos;
    FUZZ_CHECK(fuzz::expect_ok_or_error("schema_root(make_schema_document)", [&] { doc_root = schema_root(doc); }),
               "make_schema_document() output fails schema_root");
    std::string doc_root_json;
    append_json(doc_root_json, doc, doc_root);
    FUZZ_CHECK(doc_root_json == root_json, "make_schema_document() changed the root");
  }
}

void fuzz_json(std::string_view json) {
  Tape tape;
  const bool ok = fuzz::expect_ok_or_error("parse_schema_json", [&] { tape = parse_schema_json(json); });
  if (ok) check_parsed(tape, "input JSON");

  // Tight limits only add NestingTooDeep and TooManyNodes; a tape within them is the same tape.
  SchemaLimits tight;
  tight.max_json_depth = 6;
  tight.max_nodes = 24;
  Tape small;
  const bool small_ok = fuzz::expect_ok_or_error("parse_schema_json (tight limits)", [&] { small = parse_schema_json(json, tight); });
  if (small_ok) {
    FUZZ_CHECK(ok, "accepted under tight limits but refused under the defaults");
    FUZZ_CHECK(small.size() <= tight.max_nodes, "max_nodes not enforced");
    FUZZ_CHECK(small.size() == tape.size(), "limits changed the tape");
    FUZZ_CHECK(to_json(small) == to_json(tape), "limits changed the rendering");
  }
}

void fuzz_file(const std::uint8_t* data, std::size_t size) {
  std::shared_ptr<std::byte[]> owner(new std::byte[size]);
  if (size) std::memcpy(owner.get(), data, size);
  std::optional<Reader> reader;
  if (!fuzz::expect_ok_or_error("Reader::from_buffer", [&] { reader.emplace(Reader::from_buffer(owner, {owner.get(), size}, false)); })) return;
  std::optional<Tape> schema;
  if (!fuzz::expect_ok_or_error("read_schema", [&] { schema = read_schema(*reader); })) return;
  if (!schema) {
    FUZZ_CHECK(reader->header().find_metadata(schema_metadata_key) == nullptr, "read_schema ignored a schema");
    return;
  }
  check_parsed(*schema, "read_schema");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz_json(std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz_file(data, size);
  return 0;
}
