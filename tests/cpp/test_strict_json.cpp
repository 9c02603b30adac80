// Tests of the strict readers (strict_json.hpp): they read the header and schema JSON the writer produces, decline any
// other text, and the parse that uses them gives what simdjson alone gives: the same header or tape, or the same error.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/strict_json.hpp"

namespace safestructures {
namespace {

// A tiny save's header as the writer lays it out: the schema string, the checksums entry, one tensor, the padding.
const std::string tiny_header =
    R"({"__metadata__":{"__safestructures__":"{\"format\":\"safestructures\",\"version\":2,\"root\":{\"step\":10,\"lr\":0.001,)"
    R"(\"name\":\"run\",\"t\":{\"$\":\"tensor\",\"name\":\"t\",\"fw\":\"numpy\"}}}","__safestructures_checksums__":"{\"algorithm\":)"
    R"(\"xxh3-64\",\"header\":\"0d710cc19b364683\",\"tensors\":{\"t\":\"c31259dc230cae89\"}}"},"t":{"dtype":"F32","shape":[16],)"
    R"("data_offsets":[0,64]}}      )";

bool strict_reads(const std::string& json) {
  Header header;
  return read_strict_header(json, header);
}

struct Outcome {
  std::optional<ErrorCode> code;
  std::string message;
};

template <class F>
Outcome outcome_of(F&& body) {
  try {
    body();
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  return {};
}

// The header read both ways: the same error, or the same header.
void expect_same_header(const std::string& json, std::uint64_t data_size) {
  std::optional<Header> a, b;
  const Outcome fast = outcome_of([&] { a = parse_header_text(json, data_size); });
  const Outcome slow = outcome_of([&] { b = parse_header_text_by_simdjson(json, data_size); });
  ASSERT_EQ(fast.code, slow.code) << json << "\n" << fast.message << "\n" << slow.message;
  EXPECT_EQ(fast.message, slow.message) << json;
  if (!a) return;
  EXPECT_EQ(a->has_metadata, b->has_metadata);
  EXPECT_EQ(a->metadata, b->metadata);
  EXPECT_EQ(a->header_size, b->header_size);
  ASSERT_EQ(a->tensors.size(), b->tensors.size());
  for (std::size_t k = 0; k < a->tensors.size(); ++k) {
    EXPECT_EQ(a->tensors[k].name, b->tensors[k].name);
    EXPECT_EQ(a->tensors[k].dtype, b->tensors[k].dtype);
    EXPECT_EQ(a->tensors[k].shape, b->tensors[k].shape);
    EXPECT_EQ(a->tensors[k].begin, b->tensors[k].begin);
    EXPECT_EQ(a->tensors[k].end, b->tensors[k].end);
  }
  EXPECT_EQ(a->index, b->index);
}

TEST(StrictHeader, ReadsTheWritersLayoutAsSimdjsonDoes) {
  ASSERT_TRUE(strict_reads(tiny_header));
  expect_same_header(tiny_header, 64);
  const Header header = parse_header_text(tiny_header, 64);
  ASSERT_EQ(header.metadata.size(), 2u);
  EXPECT_EQ(header.metadata[0].first, "__safestructures__");
  EXPECT_EQ(header.metadata[0].second,
            R"({"format":"safestructures","version":2,"root":{"step":10,"lr":0.001,"name":"run","t":{"$":"tensor","name":"t","fw":"numpy"}}})");
  ASSERT_EQ(header.tensors.size(), 1u);
  EXPECT_EQ(header.tensors[0].name, "t");
  EXPECT_EQ(header.tensors[0].dtype, Dtype::F32);
  EXPECT_EQ(header.tensors[0].shape, (std::vector<std::uint64_t>{16}));
  EXPECT_EQ(header.tensors[0].end, 64u);
  EXPECT_EQ(header.header_size, tiny_header.size());
  // No metadata, a scalar and empty shapes, no tensors at all, and 19-digit numbers.
  for (const std::string& json : std::vector<std::string>{
           R"({"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]},"b":{"dtype":"I16","shape":[0,3],"data_offsets":[1,1]}})", "{}",
           R"({"__metadata__":{}})", R"({"x":{"dtype":"U8","shape":[1000000000000000000,0],"data_offsets":[0,0]}})"}) {
    ASSERT_TRUE(strict_reads(json)) << json;
    expect_same_header(json, 1);
    expect_same_header(json, 0);
  }
}

TEST(StrictHeader, NineTensorsOrMoreAreIndexedAndDuplicatesFound) {
  std::string json = "{";
  for (int k = 0; k < 12; ++k) {
    json += (k ? ",\"" : "\"") + std::to_string(k) + R"(":{"dtype":"U8","shape":[1],"data_offsets":[)" + std::to_string(k) + "," +
            std::to_string(k + 1) + "]}";
  }
  ASSERT_TRUE(strict_reads(json + "}"));
  expect_same_header(json + "}", 12);
  EXPECT_EQ(parse_header_text(json + "}", 12).index.size(), 12u);
  // A name again, among the first few and past them.
  for (const std::string again : {"3", "10"}) {
    const std::string twice = json + ",\"" + again + R"(":{"dtype":"U8","shape":[0],"data_offsets":[12,12]}})";
    ASSERT_TRUE(strict_reads(twice));
    expect_same_header(twice, 12);
    EXPECT_EQ(outcome_of([&] { parse_header_text(twice, 12); }).code, ErrorCode::DuplicateKey);
  }
}

TEST(StrictHeader, ValueErrorsAreTheSimdjsonWaysErrors) {
  const std::vector<std::string> headers = {
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})",                         // size mismatch
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})",                         // begin past end
      R"({"a":{"dtype":"F32","shape":[9999999999999999999,4],"data_offsets":[0,4]}})",     // overflow
      R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})",                          // sub-byte not whole
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",                          // hole
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",  // overlap
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",  // twice
      R"({"__metadata__":{"k":"1","k":"2"}})",                                               // metadata key twice
      R"({"__metadata__":{"k":"1"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",  // trailing bytes (size 3)
  };
  for (const std::string& json : headers) {
    ASSERT_TRUE(strict_reads(json)) << json;
    expect_same_header(json, 3);
    EXPECT_TRUE(outcome_of([&] { parse_header_text(json, 3); }).code.has_value()) << json;
  }
}

TEST(StrictHeader, DeclinesEveryOtherLayout) {
  const std::vector<std::string> headers = {
      R"({ "a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",            // whitespace
      R"({"a":{"shape":[1],"dtype":"U8","data_offsets":[0,1]}})",             // another field order
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})",       // another field
      R"({"\u0061":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",        // an escaped name
      R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})",            // a sign
      R"({"a":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}})",
      R"({"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})",           // a fraction
      R"({"a":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}})",           // an exponent
      R"({"a":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}})",            // a leading zero
      R"({"a":{"dtype":"U8","shape":[10000000000000000000],"data_offsets":[0,1]}})",  // 20 digits
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})",           // three offsets
      R"({"a":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}})",             // an unknown dtype
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{}})",  // metadata not first
      R"({"__metadata__":null})",
      R"({"__metadata__":{"k":1}})",
      R"({"__metadata__":{"k":"a\nb"}})",                                      // an escape but \" \\ \/
      R"({"__metadata__":{"k\"":"v"}})",                                       // an escaped key
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}x)",            // past the closing brace
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}	)",            // a tab after it
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]})",              // no closing brace
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},})",            // a trailing comma
      R"([])",
      "",
  };
  for (const std::string& json : headers) {
    EXPECT_FALSE(strict_reads(json)) << json;
    expect_same_header(json, 1);
  }
}

// The schema parsed both ways: the same error, or the same tape node for node.
void expect_same_tape(const std::string& json, const SchemaLimits& limits = {}) {
  std::optional<Tape> a, b;
  const Outcome fast = outcome_of([&] { a = parse_schema_json(json, limits); });
  const Outcome slow = outcome_of([&] { b = parse_schema_json_by_simdjson(json, limits); });
  ASSERT_EQ(fast.code, slow.code) << json << "\n" << fast.message << "\n" << slow.message;
  EXPECT_EQ(fast.message, slow.message) << json;
  if (!a) return;
  ASSERT_EQ(a->size(), b->size()) << json;
  for (std::size_t i = 0; i < a->size(); ++i) {
    const Node &x = (*a)[i], &y = (*b)[i];
    EXPECT_EQ(x.kind, y.kind) << json << " node " << i;
    EXPECT_EQ(x.count, y.count) << json << " node " << i;
    EXPECT_EQ(x.end, y.end) << json << " node " << i;
    EXPECT_EQ(x.text, y.text) << json << " node " << i;
    if (x.kind == NodeKind::Int) {
      EXPECT_EQ(x.integer, y.integer) << json << " node " << i;
    }
    if (x.kind == NodeKind::Float) {
      EXPECT_EQ(std::memcmp(&x.number, &y.number, sizeof(double)), 0) << json << " node " << i;
    }
  }
}

bool strict_reads_schema(const std::string& json, const SchemaLimits& limits = {}) {
  std::vector<char> text(json.begin(), json.end());
  std::vector<Node> nodes;
  return read_strict_schema(text, limits, nodes);
}

TEST(StrictSchema, ReadsWhatTheWriterWritesAsSimdjsonDoes) {
  const std::vector<std::string> documents = {
      R"({"format":"safestructures","version":2,"root":{"step":10,"lr":0.001,"name":"run","t":{"$":"tensor","name":"t","fw":"numpy"}}})",
      R"({"a":[1,-2,3.5,-0.25,1e300,2E-5,-1.5e+3,123456789012345678,-123456789012345678,0],"b":[],"c":{},"d":[[[]],{"e":{}}]})",
      R"({"s":"q\"b\\s\/f\b\f\n\r\t","é":"😀","":"","t":true,"f":false,"n":null})",
      " {\n\t\"a\" : [ 1 , {\"b\" : null } ] } \r\n",
  };
  for (const std::string& json : documents) {
    EXPECT_TRUE(strict_reads_schema(json)) << json;
    expect_same_tape(json);
  }
  const Tape tape = parse_schema_json(documents[2]);
  EXPECT_EQ(tape[2].text, "q\"b\\s/f\b\f\n\r\t");
  EXPECT_EQ(tape[3].text, "é");
  EXPECT_EQ(tape[0].count, 6u);
}

TEST(StrictSchema, DeclinesTheRestToSimdjson) {
  const std::vector<std::string> documents = {
      R"({"a":"\u0041"})",  R"({"a":-0})",       R"({"a":1234567890123456789})", R"({"a":9223372036854775807})",
      R"({"a":18446744073709551615})", R"({"a":1e400})", R"({"a":1e-400})",  R"([1,2])",
      R"("text")",          R"({"a":01})",       R"({"a":1.})",              R"({"a":.5})",
      R"({"a":+1})",        R"({"a":tru})",      R"({"a":truex})",           R"({"a":1}x)",
      R"({"a":1,})",        R"({"a" 1})",        "{\"a\":\"\x01\"}",         "{\"a\":\"\xff\"}",
      R"({"a":[1 2]})",     R"({"a":{"b"}})",    "",                         "{",
  };
  for (const std::string& json : documents) {
    EXPECT_FALSE(strict_reads_schema(json)) << json;
    expect_same_tape(json);
  }
}

TEST(StrictSchema, LimitsAreSimdjsonsLimits) {
  // Nodes: the tape may hold max_nodes nodes, not one more; the strict reader declines a document past its limits and
  // simdjson raises.
  const std::string json = R"({"a":[1,2,3],"b":null})";  // 8 nodes
  for (std::uint64_t nodes = 6; nodes <= 9; ++nodes) expect_same_tape(json, SchemaLimits{1024, nodes});
  EXPECT_TRUE(strict_reads_schema(json, SchemaLimits{1024, 8}));
  EXPECT_FALSE(strict_reads_schema(json, SchemaLimits{1024, 7}));
  EXPECT_EQ(outcome_of([&] { parse_schema_json(json, SchemaLimits{1024, 7}); }).code, ErrorCode::TooManyNodes);
  // Depth: every limit around the document's.
  const std::string deep = R"({"a":[[[{"b":[1]}]]]})";  // 6 levels
  for (std::uint32_t depth = 2; depth <= 10; ++depth) expect_same_tape(deep, SchemaLimits{depth, 100});
  EXPECT_EQ(outcome_of([&] { parse_schema_json(deep, SchemaLimits{4, 100}); }).code, ErrorCode::NestingTooDeep);
  // 5,000 levels: read without recursion when the limit allows them, declined at the default limit.
  const std::string deeper = "{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}";
  expect_same_tape(deeper);
  EXPECT_FALSE(strict_reads_schema(deeper));
  std::vector<char> text(deeper.begin(), deeper.end());
  std::vector<Node> nodes;
  ASSERT_TRUE(read_strict_schema(text, SchemaLimits{6000, 10000}, nodes));
  ASSERT_EQ(nodes.size(), 5002u);  // the object, its key and 5,000 arrays
  EXPECT_EQ(nodes[0].end, 5002u);
  EXPECT_EQ(nodes[2].end, 5002u);
  EXPECT_EQ(nodes[5000].count, 1u);
  EXPECT_EQ(nodes[5001].count, 0u);
  EXPECT_EQ(nodes[5001].end, 5002u);
}

}  // namespace
}  // namespace safestructures
