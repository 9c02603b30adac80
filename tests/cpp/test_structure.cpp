// Tests of structured files: the schema document in the metadata, its spill into a tensor, reading it back, and the
// caller's metadata beside it.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/structure.hpp"
#include "safestructures/writer.hpp"
#include "tape_json.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;
using test::fails_with;
using test::iota_bytes;
using test::reader_of;
using test::tensor_of;
using test::to_bytes;
using test::to_text;

const std::string spill_name(schema_spill_tensor);
const std::string schema_key(schema_metadata_key);
// The metadata value of a spilled schema.
const std::string spill_pointer = R"({"format":"safestructures","version":2,"spill":"__safestructures_schema__"})";

// A schema document whose root holds a string of `filler` characters, so that its size can be chosen.
std::string sample_document(std::size_t filler = 10) {
  return make_schema_document(parse_schema_json(R"({"$":"tuple","items":[")" + std::string(filler, 'x') + R"(",1.5,{"k":[null,true]}]})"));
}

// The whole file of a planned structured layout, written into memory.
Bytes structured_bytes(const StructuredLayout& plan) {
  Bytes out(plan.layout.file_size());
  write_structured_into(out, plan);
  return out;
}

std::string schema_text(const Reader& reader, const SchemaLimits& limits = {}) {
  const std::optional<Tape> document = read_schema(reader, limits);
  if (!document) {
    ADD_FAILURE() << "no schema";
    return {};
  }
  return to_json(*document);
}

// A file holding `metadata` (reserved keys allowed: written with the flat writer) and one tensor.
Bytes flat_file(const Metadata& metadata, const WriteTensor& tensor) { return write_bytes(std::span(&tensor, 1), &metadata); }

// A sample tensor: F32 [2] with 8 iota bytes.
struct Sample {
  Bytes w = iota_bytes(8, 1);
  std::vector<WriteTensor> tensors() const { return {tensor_of("w", Dtype::F32, {2}, w)}; }
};

// --- Reserved keys ---

TEST(StructureMetadata, ReservedKeys) {
  EXPECT_TRUE(is_reserved_metadata_key("__safestructures__"));
  EXPECT_TRUE(is_reserved_metadata_key("_safestructures_schema_"));
  EXPECT_TRUE(is_reserved_metadata_key("_safestructures_schema_version_"));
  for (const std::string_view key : {"", "format", "__metadata__", "__safestructures_schema__", "__safestructures", "_safestructures__",
                                     "__safestructures__ ", " __safestructures__", "__SAFESTRUCTURES__", "_safestructures_schema",
                                     "_safestructures_schema_version", "safestructures"}) {
    EXPECT_FALSE(is_reserved_metadata_key(key)) << key;
  }
}

TEST(StructureMetadata, PlanRefusesAReservedUserKey) {
  for (const std::string_view key : {"__safestructures__", "_safestructures_schema_", "_safestructures_schema_version_"}) {
    const Metadata user{{"a", "1"}, {std::string(key), "x"}};
    EXPECT_TRUE(fails_with([&] { plan_structured({}, user, sample_document()); }, ErrorCode::InvalidMetadata, {quote_name(key), "reserved"}))
        << key;
  }
}

TEST(StructureMetadata, UserMetadataDropsReservedKeysKeepingOrder) {
  const Header header = test::parse(
      R"({"__metadata__":{"z":"1","__safestructures__":"x","a":"2","_safestructures_schema_":"y","_safestructures_schema_version_":"1","m":"3"}})");
  EXPECT_EQ(header.metadata.size(), 6u);
  EXPECT_EQ(user_metadata(header), (Metadata{{"z", "1"}, {"a", "2"}, {"m", "3"}}));
  EXPECT_TRUE(user_metadata(test::parse("{}")).empty());
  EXPECT_TRUE(user_metadata(test::parse(R"({"__metadata__":null})")).empty());
  EXPECT_TRUE(user_metadata(test::parse(R"({"__metadata__":{"__safestructures__":"x"}})")).empty());
}

// --- Planning and writing ---

TEST(StructurePlan, SchemaGoesIntoTheMetadata) {
  const Sample sample;
  const std::string document = sample_document();
  const Metadata user{{"b", "2"}, {"a", "1"}};
  const StructuredLayout plan = plan_structured(sample.tensors(), user, document);

  EXPECT_TRUE(plan.spilled_schema.empty());
  EXPECT_EQ(plan.metadata, (Metadata{{"b", "2"}, {"a", "1"}, {schema_key, document}}));
  ASSERT_EQ(plan.tensors.size(), 1u);
  EXPECT_EQ(plan.tensors[0].name, "w");
  // Keys sorted in the header: "__safestructures__" sorts before the caller's lower-case keys.
  std::string json = R"({"__metadata__":{"__safestructures__":)";
  append_json_string(json, document);
  json += R"(,"a":"1","b":"2"},)" + test::entry("w", "F32", "[2]", 0, 8) + "}";
  EXPECT_EQ(plan.layout.header, test::header_bytes(json));
  EXPECT_EQ(plan.layout.data_size, 8u);

  const Bytes file = structured_bytes(plan);
  EXPECT_EQ(to_text(file), test::header_bytes(json) + to_text(sample.w));
  const Header header = parse_header(file);
  EXPECT_EQ(header.metadata, (Metadata{{schema_key, document}, {"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(user_metadata(header), (Metadata{{"a", "1"}, {"b", "2"}}));
  const Reader reader = reader_of(file);
  EXPECT_EQ(schema_text(reader), document);
  EXPECT_EQ(test::to_text(reader.tensor("w").bytes), to_text(sample.w));
}

TEST(StructurePlan, NoUserMetadataAndNoTensors) {
  const std::string document = make_schema_document(Tape{});
  const StructuredLayout plan = plan_structured({}, {}, document);
  EXPECT_EQ(plan.metadata, (Metadata{{schema_key, document}}));
  std::string json = R"({"__metadata__":{"__safestructures__":)";
  append_json_string(json, document);
  json += "}}";
  const Bytes file = structured_bytes(plan);
  EXPECT_EQ(to_text(file), test::header_bytes(json));
  const Reader reader = reader_of(file);
  EXPECT_EQ(schema_text(reader), R"({"format":"safestructures","version":2,"root":null})");
  EXPECT_TRUE(user_metadata(reader.header()).empty());
}

TEST(StructurePlan, LargeSchemaSpillsIntoATensor) {
  const Sample sample;
  const std::string document = sample_document(1000);
  const Metadata user{{"b", "2"}, {"a", "1"}};
  const std::uint64_t limit = 400;
  // Kept in the metadata, the schema would not fit.
  const Metadata inline_metadata{{"b", "2"}, {"a", "1"}, {schema_key, document}};
  ASSERT_TRUE(fails_with([&] { plan_layout(sample.tensors(), &inline_metadata, limit); }, ErrorCode::HeaderTooLarge));

  const StructuredLayout plan = plan_structured(sample.tensors(), user, document, limit);
  EXPECT_EQ(plan.spilled_schema, document);
  EXPECT_EQ(plan.metadata, (Metadata{{"b", "2"}, {"a", "1"}, {schema_key, spill_pointer}}));
  ASSERT_EQ(plan.tensors.size(), 2u);
  const WriteTensor& spill = plan.tensors[1];
  EXPECT_EQ(spill.name, spill_name);
  EXPECT_EQ(spill.dtype, Dtype::U8);
  EXPECT_EQ(spill.shape, (std::vector<std::uint64_t>{document.size()}));
  EXPECT_EQ(reinterpret_cast<const char*>(spill.data), plan.spilled_schema.data());
  EXPECT_TRUE(spill.strides.empty());

  // F32 sorts before U8 in the data order.
  std::string json = R"({"__metadata__":{"__safestructures__":)";
  append_json_string(json, spill_pointer);
  json += R"(,"a":"1","b":"2"},)" + test::entry("w", "F32", "[2]", 0, 8) + "," +
          test::entry(spill_name, "U8", "[" + std::to_string(document.size()) + "]", 8, 8 + document.size()) + "}";
  EXPECT_EQ(plan.layout.header, test::header_bytes(json));
  EXPECT_LE(plan.layout.header.size() - 8, limit);

  const Bytes file = structured_bytes(plan);
  EXPECT_EQ(to_text(file), test::header_bytes(json) + to_text(sample.w) + document);
  const Header header = parse_header(file, limit);
  EXPECT_EQ(header.metadata, (Metadata{{schema_key, spill_pointer}, {"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(to_text(test::tensor_bytes(file, header, spill_name)), document);
  EXPECT_EQ(user_metadata(header), (Metadata{{"a", "1"}, {"b", "2"}}));
  // Reading follows the pointer to the very same document.
  EXPECT_EQ(schema_text(reader_of(file, limit)), document);
}

TEST(StructurePlan, SpillsExactlyWhenTheHeaderWouldExceedTheLimit) {
  const Sample sample;
  const std::string document = sample_document(300);
  const StructuredLayout unlimited = plan_structured(sample.tensors(), {}, document);
  const std::uint64_t inline_size = unlimited.layout.header.size() - 8;
  ASSERT_EQ(inline_size % 8, 0u);

  const StructuredLayout at_limit = plan_structured(sample.tensors(), {}, document, inline_size);
  EXPECT_TRUE(at_limit.spilled_schema.empty());
  EXPECT_EQ(at_limit.tensors.size(), 1u);
  EXPECT_EQ(at_limit.layout.header, unlimited.layout.header);

  const StructuredLayout below = plan_structured(sample.tensors(), {}, document, inline_size - 1);
  EXPECT_EQ(below.spilled_schema, document);
  EXPECT_EQ(below.tensors.size(), 2u);
  EXPECT_EQ(below.metadata, (Metadata{{schema_key, spill_pointer}}));
  EXPECT_EQ(schema_text(reader_of(structured_bytes(below))), document);
}

TEST(StructurePlan, AnEscapedSchemaPlansAsItsDocument) {
  // The one-pass escaped form gives the same header as the document, and unescapes to it when it has to spill.
  const Sample sample;
  const Tape tape = parse_schema_json(R"({"$":"tuple","items":["q\"uote \\ \n \u0002 é",")" + std::string(300, 'x') + R"("]})");
  const std::string document = make_schema_document(tape);
  const Metadata user{{"b", "2"}};
  const StructuredLayout plain = plan_structured(sample.tensors(), user, document);
  const StructuredLayout escaped = plan_structured(sample.tensors(), user, make_escaped_schema_document(tape));
  EXPECT_EQ(escaped.layout.header, plain.layout.header);
  EXPECT_EQ(structured_bytes(escaped), structured_bytes(plain));

  const std::uint64_t limit = plain.layout.header.size() - 8 - 1;
  const StructuredLayout spilled = plan_structured(sample.tensors(), user, make_escaped_schema_document(tape), limit);
  EXPECT_EQ(spilled.spilled_schema, document);
  EXPECT_EQ(spilled.metadata, (Metadata{{"b", "2"}, {schema_key, spill_pointer}}));
  EXPECT_EQ(structured_bytes(spilled), structured_bytes(plan_structured(sample.tensors(), user, document, limit)));
  EXPECT_EQ(schema_text(reader_of(structured_bytes(spilled), limit)), document);
}

TEST(StructurePlan, SpilledPlanSurvivesAMove) {
  const Sample sample;
  const std::string document = sample_document(1000);
  StructuredLayout plan = plan_structured(sample.tensors(), {}, document, 300);
  ASSERT_FALSE(plan.spilled_schema.empty());
  const StructuredLayout moved = std::move(plan);
  EXPECT_EQ(reinterpret_cast<const char*>(moved.tensors.back().data), moved.spilled_schema.data());
  EXPECT_EQ(schema_text(reader_of(structured_bytes(moved))), document);
}

TEST(StructurePlan, TooLargeEvenWhenSpilled) {
  const Sample sample;
  EXPECT_TRUE(fails_with([&] { plan_structured(sample.tensors(), {}, sample_document(1000), 64); }, ErrorCode::HeaderTooLarge));
  // Many user keys alone overflow the header: spilling the schema cannot help.
  Metadata user;
  for (int i = 0; i < 20; ++i) user.emplace_back("key" + std::to_string(i), std::string(20, 'v'));
  EXPECT_TRUE(fails_with([&] { plan_structured(sample.tensors(), user, sample_document(), 300); }, ErrorCode::HeaderTooLarge));
}

TEST(StructurePlan, OtherWriterErrorsPass) {
  const Bytes a = iota_bytes(4);
  EXPECT_TRUE(fails_with([&] { plan_structured({tensor_of("t", Dtype::U8, {4}, a), tensor_of("t", Dtype::U8, {4}, a)}, {}, sample_document()); },
                         ErrorCode::DuplicateName, {"\"t\""}));
  EXPECT_TRUE(fails_with([&] { plan_structured({}, {{"k", "\xff"}}, sample_document()); }, ErrorCode::InvalidMetadata, {"\"k\""}));
  EXPECT_TRUE(fails_with([&] { plan_structured({}, {}, "\xff"); }, ErrorCode::InvalidMetadata, {quote_name(schema_metadata_key)}));
  // A caller's tensor with the spill tensor's name clashes only when the schema spills.
  const Bytes doc_bytes = to_bytes("x");
  const std::vector<WriteTensor> clash{tensor_of(spill_name, Dtype::U8, {1}, doc_bytes)};
  EXPECT_EQ(plan_structured(clash, {}, sample_document()).tensors.size(), 1u);
  EXPECT_TRUE(fails_with([&] { plan_structured(clash, {}, sample_document(1000), 400); }, ErrorCode::DuplicateName, {quote_name(spill_name)}));
}

TEST(StructureWrite, FilesMatchTheInMemoryBytes) {
  const auto dir = test::test_dir();
  const Sample sample;
  const Metadata user{{"format", "pt"}};
  for (const std::uint64_t limit : {default_max_header_size, std::uint64_t{400}}) {
    const std::string document = sample_document(1000);
    const StructuredLayout plan = plan_structured(sample.tensors(), user, document, limit);
    const auto path = dir / ("file" + std::to_string(limit) + ".safetensors");
    write_structured(path, plan);
    const auto fsynced = dir / ("fsynced" + std::to_string(limit) + ".safetensors");
    write_structured(fsynced, plan, WriteOptions{.fsync = true});
    const Bytes expected = structured_bytes(plan);
    EXPECT_EQ(test::read_file_bytes(path), expected);
    EXPECT_EQ(test::read_file_bytes(fsynced), expected);
    EXPECT_NO_THROW(parse_header(expected, limit));
    const Reader reader = Reader::open(path, limit);
    EXPECT_EQ(schema_text(reader), document);
    EXPECT_EQ(user_metadata(reader.header()), user);
    EXPECT_EQ(to_text(reader.tensor("w").bytes), to_text(sample.w));
  }
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
}

TEST(StructureWrite, IntoABufferOfTheWrongSize) {
  const Sample sample;
  const StructuredLayout plan = plan_structured(sample.tensors(), {}, sample_document());
  Bytes small(plan.layout.file_size() - 1);
  EXPECT_TRUE(fails_with([&] { write_structured_into(small, plan); }, ErrorCode::InvalidArgument));
  Bytes large(plan.layout.file_size() + 1);
  EXPECT_TRUE(fails_with([&] { write_structured_into(large, plan); }, ErrorCode::InvalidArgument));
}

// --- Reading the schema ---

TEST(StructureRead, PlainFilesHaveNoSchema) {
  const Sample sample;
  const auto tensors = sample.tensors();
  EXPECT_FALSE(read_schema(reader_of(write_bytes(tensors, nullptr))).has_value());
  const Metadata empty;
  EXPECT_FALSE(read_schema(reader_of(write_bytes(tensors, &empty))).has_value());
  const Metadata other{{"format", "pt"}, {"_safestructures_schema_", "{}"}};
  EXPECT_FALSE(read_schema(reader_of(write_bytes(tensors, &other))).has_value());
  EXPECT_FALSE(read_schema(reader_of(test::make_file(R"({"__metadata__":null})"))).has_value());
}

TEST(StructureRead, TheMetadataValueIsParsedAsIs) {
  const Sample sample;
  const WriteTensor w = sample.tensors()[0];
  EXPECT_EQ(schema_text(reader_of(flat_file({{schema_key, R"( { "a" : [ 1 ] } )"}}, w))), R"({"a":[1]})");
  // Only the pointer's envelope is checked here; a document's own envelope is schema_root's business.
  const std::optional<Tape> other = read_schema(reader_of(flat_file({{schema_key, "[1,2]"}}, w)));
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(to_json(*other), "[1,2]");
  EXPECT_TRUE(fails_with([&] { schema_root(*other); }, ErrorCode::SchemaInvalid));
  EXPECT_TRUE(fails_with([&] { read_schema(reader_of(flat_file({{schema_key, "not json"}}, w))); }, ErrorCode::SchemaNotJson));
  EXPECT_TRUE(fails_with([&] { read_schema(reader_of(flat_file({{schema_key, ""}}, w))); }, ErrorCode::SchemaNotJson));
}

TEST(StructureRead, LimitsApplyToTheMetadataAndToTheSpill) {
  const Sample sample;
  const std::string document = sample_document(1000);
  // The pointer itself (7 nodes, one level of nesting) passes both limits below: for a spilled schema, the limits
  // refuse the document in the tensor.
  ASSERT_EQ(parse_schema_json(spill_pointer).size(), 7u);
  SchemaLimits few_nodes;
  few_nodes.max_nodes = 7;
  SchemaLimits shallow;
  shallow.max_json_depth = 2;
  for (const std::uint64_t limit : {default_max_header_size, std::uint64_t{400}}) {
    const StructuredLayout plan = plan_structured(sample.tensors(), {}, document, limit);
    EXPECT_EQ(plan.spilled_schema.empty(), limit == default_max_header_size);
    const Reader reader = reader_of(structured_bytes(plan));
    EXPECT_EQ(schema_text(reader), document);
    EXPECT_TRUE(fails_with([&] { read_schema(reader, few_nodes); }, ErrorCode::TooManyNodes)) << limit;
    EXPECT_TRUE(fails_with([&] { read_schema(reader, shallow); }, ErrorCode::NestingTooDeep)) << limit;
  }
}

// A file whose schema metadata is `pointer`, with the tensor `spill` beside a regular one.
Bytes spilled_file(std::string_view pointer, const WriteTensor& spill) {
  const Bytes w = iota_bytes(4);
  const std::vector<WriteTensor> tensors{tensor_of("w", Dtype::U8, {4}, w), spill};
  const Metadata metadata{{schema_key, std::string(pointer)}, {"user", "kept"}};
  return write_bytes(tensors, &metadata);
}

TEST(StructureRead, FollowsASpillToAnyNamedTensor) {
  const std::string document = sample_document();
  const Bytes bytes = to_bytes(document);
  EXPECT_EQ(schema_text(reader_of(spilled_file(spill_pointer, tensor_of(spill_name, Dtype::U8, {bytes.size()}, bytes)))), document);
  const std::string elsewhere = R"({"format":"safestructures","version":2,"spill":"elsewhere"})";
  EXPECT_EQ(schema_text(reader_of(spilled_file(elsewhere, tensor_of("elsewhere", Dtype::U8, {bytes.size()}, bytes)))), document);
}

TEST(StructureRead, SpillTensorMissing) {
  const Bytes bytes = to_bytes(sample_document());
  EXPECT_TRUE(fails_with([&] { read_schema(reader_of(spilled_file(spill_pointer, tensor_of("other", Dtype::U8, {bytes.size()}, bytes)))); },
                         ErrorCode::TensorNotFound, {quote_name(spill_name)}));
  // Only a metadata pointer, no tensor at all.
  const Metadata metadata{{schema_key, spill_pointer}};
  EXPECT_TRUE(fails_with([&] { read_schema(reader_of(write_bytes({}, &metadata))); }, ErrorCode::TensorNotFound, {quote_name(spill_name)}));
}

TEST(StructureRead, SpillTensorNotOneDimensionalU8) {
  const Bytes bytes = to_bytes(sample_document(11));
  ASSERT_EQ(bytes.size() % 2, 0u);
  const std::uint64_t n = bytes.size();
  const std::vector<WriteTensor> wrong{
      tensor_of(spill_name, Dtype::I8, {n}, bytes),        tensor_of(spill_name, Dtype::BOOL, {n}, bytes),
      tensor_of(spill_name, Dtype::U16, {n / 2}, bytes),   tensor_of(spill_name, Dtype::U8, {1, n}, bytes),
      tensor_of(spill_name, Dtype::U8, {2, n / 2}, bytes), tensor_of(spill_name, Dtype::U8, {}, std::span(bytes).first(1)),
  };
  for (const WriteTensor& t : wrong) {
    EXPECT_TRUE(fails_with([&] { read_schema(reader_of(spilled_file(spill_pointer, t))); }, ErrorCode::TensorMismatch,
                           {quote_name(spill_name), "1-D U8"}))
        << dtype_name(t.dtype) << " rank " << t.shape.size();
  }
}

TEST(StructureRead, SpillBytesNotUtf8OrNotJson) {
  const auto read_spill = [](std::string_view text) {
    return [text] {
      const Bytes bytes = to_bytes(text);
      read_schema(reader_of(spilled_file(spill_pointer, tensor_of(spill_name, Dtype::U8, {bytes.size()}, bytes))));
    };
  };
  EXPECT_TRUE(fails_with(read_spill("\"\xff\""), ErrorCode::SchemaNotJson, {"UTF-8"}));
  EXPECT_TRUE(fails_with(read_spill("{\"a\":\"\xed\xa0\x80\"}"), ErrorCode::SchemaNotJson, {"UTF-8"}));  // a surrogate
  EXPECT_TRUE(fails_with(read_spill("{\"a\":\"\xc0\xaf\"}"), ErrorCode::SchemaNotJson, {"UTF-8"}));      // overlong
  EXPECT_TRUE(fails_with(read_spill("not json"), ErrorCode::SchemaNotJson, {"not valid JSON"}));
  EXPECT_TRUE(fails_with(read_spill("{\"format\":"), ErrorCode::SchemaNotJson));
  EXPECT_TRUE(fails_with(read_spill(""), ErrorCode::SchemaNotJson));
}

TEST(StructureRead, SpillPointerEnvelope) {
  const Bytes bytes = to_bytes(sample_document());
  const WriteTensor spill = tensor_of(spill_name, Dtype::U8, {bytes.size()}, bytes);
  const auto read_with = [&](std::string_view pointer) { return [&, pointer] { read_schema(reader_of(spilled_file(pointer, spill))); }; };
  EXPECT_TRUE(fails_with(read_with(R"({"format":"safestructures","version":3,"spill":"__safestructures_schema__"})"), ErrorCode::SchemaVersion,
                         {"version 3"}));
  EXPECT_TRUE(fails_with(read_with(R"({"version":2,"spill":"__safestructures_schema__"})"), ErrorCode::SchemaInvalid, {"format"}));
  EXPECT_TRUE(fails_with(read_with(R"({"format":"other","version":2,"spill":"__safestructures_schema__"})"), ErrorCode::SchemaInvalid));
  EXPECT_TRUE(fails_with(read_with(R"({"format":"safestructures","spill":"__safestructures_schema__"})"), ErrorCode::SchemaInvalid, {"version"}));
  EXPECT_TRUE(fails_with(read_with(R"({"format":"safestructures","version":2,"spill":1})"), ErrorCode::SchemaInvalid, {"spill"}));
  EXPECT_TRUE(fails_with(read_with(R"({"format":"safestructures","version":2,"spill":null})"), ErrorCode::SchemaInvalid, {"spill"}));
}

}  // namespace
}  // namespace safestructures
