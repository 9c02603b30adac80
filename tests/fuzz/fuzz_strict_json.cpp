// libFuzzer target: the strict readers (strict_json.hpp) against simdjson. The input's first byte picks what the rest
// is and sets the limits: a header text (its data buffer's size the second byte) parsed by parse_header_text and
// by parse_header_text_by_simdjson, or schema JSON parsed by parse_schema_json and parse_schema_json_by_simdjson under
// depth and node limits that the input sets, tight enough to be reached. The two must raise the same code and message,
// or give the same header (metadata, tensors, index) or the same tape node for node; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/schema.hpp"

using namespace safestructures;

namespace {

struct Outcome {
  std::optional<ErrorCode> code;
  std::string message;
};

template <class F>
Outcome run(const char* step, F&& body) {
  Outcome outcome;
  try {
    body();
  } catch (const Error& e) {
    outcome.code = e.code();
    outcome.message = e.what();
  } catch (const std::exception& e) {
    fuzz::fail(std::string(step) + ": unexpected exception: " + e.what());
  }
  return outcome;
}

void same_outcome(const Outcome& fast, const Outcome& simdjson) {
  FUZZ_CHECK(fast.code == simdjson.code, "the ways disagree on failing: \"" + fast.message + "\" against \"" + simdjson.message + "\"");
  FUZZ_CHECK(fast.message == simdjson.message, "the ways' messages differ: \"" + fast.message + "\" against \"" + simdjson.message + "\"");
}

void same_header(const Header& a, const Header& b) {
  FUZZ_CHECK(a.has_metadata == b.has_metadata, "has_metadata differs");
  FUZZ_CHECK(a.metadata == b.metadata, "metadata differs");
  FUZZ_CHECK(a.header_size == b.header_size, "header_size differs");
  FUZZ_CHECK(a.tensors.size() == b.tensors.size(), "tensor count differs");
  for (std::size_t k = 0; k < a.tensors.size(); ++k) {
    const TensorInfo &x = a.tensors[k], &y = b.tensors[k];
    FUZZ_CHECK(x.name == y.name && x.dtype == y.dtype && x.shape == y.shape && x.begin == y.begin && x.end == y.end,
               "tensor " + std::to_string(k) + " differs");
  }
  FUZZ_CHECK(a.index == b.index, "the name index differs");
}

void same_tape(const Tape& a, const Tape& b) {
  FUZZ_CHECK(a.size() == b.size(), "tape sizes differ: " + std::to_string(a.size()) + " against " + std::to_string(b.size()));
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Node &x = a[i], &y = b[i];
    bool same = x.kind == y.kind && x.id == y.id && x.count == y.count && x.end == y.end && x.text == y.text;
    if (x.kind == NodeKind::Int) same = same && x.integer == y.integer;
    if (x.kind == NodeKind::Float) same = same && std::memcmp(&x.number, &y.number, sizeof(double)) == 0;
    FUZZ_CHECK(same, "node " + std::to_string(i) + " differs");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  if (data[0] & 1) {
    const std::uint64_t data_size = data[1];
    std::optional<Header> fast, simdjson;
    const Outcome a = run("parse_header_text", [&] { fast = parse_header_text(text, data_size); });
    const Outcome b = run("parse_header_text_by_simdjson", [&] { simdjson = parse_header_text_by_simdjson(text, data_size); });
    same_outcome(a, b);
    if (fast) same_header(*fast, *simdjson);
  } else {
    // Depth 2 to 9 and 1 to 128 nodes, or the defaults when the first byte's top bit is set.
    SchemaLimits limits;
    if (!(data[0] & 0x80)) limits = SchemaLimits{2u + (data[0] >> 1 & 7u), 1u + (data[1] & 127u)};
    std::optional<Tape> fast, simdjson;
    const Outcome a = run("parse_schema_json", [&] { fast = parse_schema_json(text, limits); });
    const Outcome b = run("parse_schema_json_by_simdjson", [&] { simdjson = parse_schema_json_by_simdjson(text, limits); });
    same_outcome(a, b);
    if (fast) same_tape(*fast, *simdjson);
  }
  return 0;
}
