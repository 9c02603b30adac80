// Tests of parse_header: what a valid header reads as, and every rejection rule with its error code.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;
using test::entry;
using test::fails_with;
using test::make_file;
using test::parse;
using test::raw_file;

// Parsing `json` followed by `data_size` bytes raises `code`, with a message naming `mentions`.
::testing::AssertionResult rejects(std::string_view json, std::size_t data_size, ErrorCode code, std::initializer_list<std::string_view> mentions = {}) {
  const Bytes file = make_file(json, data_size);
  return fails_with([&] { parse_header(file); }, code, mentions);
}

std::string object(std::initializer_list<std::string> entries) {
  std::string out = "{";
  for (const auto& e : entries) {
    if (out.size() > 1) out += ',';
    out += e;
  }
  return out + "}";
}

// --- What valid headers read as ---

TEST(ParseHeader, ReadsEntriesInObjectOrder) {
  const std::string json = object({entry("w", "F32", "[2,3]", 8, 32), entry("b", "U8", "[8]", 0, 8), R"("__metadata__":{"z":"1","a":"2"})"});
  const Header h = parse(json, 32);
  EXPECT_EQ(h.header_size, json.size());
  EXPECT_EQ(h.data_offset(), 8 + json.size());
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.tensors[0].name, "w");
  EXPECT_EQ(h.tensors[0].dtype, Dtype::F32);
  EXPECT_EQ(h.tensors[0].shape, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(h.tensors[0].begin, 8u);
  EXPECT_EQ(h.tensors[0].end, 32u);
  EXPECT_EQ(h.tensors[0].nbytes(), 24u);
  EXPECT_EQ(h.tensors[0].elements(), 6u);
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[1].dtype, Dtype::U8);
  EXPECT_EQ(h.find("w"), &h.tensors[0]);
  EXPECT_EQ(h.find("b"), &h.tensors[1]);
  EXPECT_EQ(h.find("x"), nullptr);
  // Metadata stays in file order when read; only the writer sorts.
  EXPECT_TRUE(h.has_metadata);
  EXPECT_EQ(h.metadata, (Metadata{{"z", "1"}, {"a", "2"}}));
  ASSERT_NE(h.find_metadata("a"), nullptr);
  EXPECT_EQ(*h.find_metadata("a"), "2");
  EXPECT_EQ(h.find_metadata("q"), nullptr);
}

TEST(ParseHeader, EmptyObjectIsAnEmptyFile) {
  const Header h = parse("{}");
  EXPECT_TRUE(h.tensors.empty());
  EXPECT_FALSE(h.has_metadata);
  EXPECT_EQ(h.header_size, 2u);
}

TEST(ParseHeader, NullMetadataMeansNoMetadata) {
  const Header h = parse(R"({"__metadata__":null})");
  EXPECT_FALSE(h.has_metadata);
  EXPECT_TRUE(h.metadata.empty());
}

TEST(ParseHeader, EmptyMetadataObjectIsMetadata) {
  const Header h = parse(R"({"__metadata__":{}})");
  EXPECT_TRUE(h.has_metadata);
  EXPECT_TRUE(h.metadata.empty());
}

TEST(ParseHeader, MetadataStringsAreUnescaped) {
  const Header h = parse(R"({"__metadata__":{"k\"1":"a\\b\n\u00e9\u0001"}})");
  EXPECT_EQ(h.metadata, (Metadata{{"k\"1", "a\\b\n\xc3\xa9\x01"}}));
}

TEST(ParseHeader, WhitespaceAroundAndInsideTheJsonIsAccepted) {
  const std::string json = " \t\r\n{ \"a\" : { \"dtype\" : \"F32\" ,\n \"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 4 ] } }   \n\t ";
  const Header h = parse(json, 4);
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors[0].name, "a");
  EXPECT_EQ(h.tensors[0].end, 4u);
}

TEST(ParseHeader, SpacePaddingAfterTheObjectIsAccepted) {
  const Header h = parse("{}      ");
  EXPECT_EQ(h.header_size, 8u);
}

TEST(ParseHeader, UnknownEntryFieldsAreIgnored) {
  const Header h = parse(
      R"({"a":{"x":[1,"y",null],"dtype":"I16","extra":{"nested":{}},"shape":[2],"data_offsets":[0,4],"dtype_":"nonsense"}})", 4);
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors[0].dtype, Dtype::I16);
  EXPECT_EQ(h.tensors[0].shape, (std::vector<std::uint64_t>{2}));
}

TEST(ParseHeader, FieldsInAnyOrder) {
  const Header h = parse(R"({"a":{"data_offsets":[0,2],"shape":[1],"dtype":"BF16"}})", 2);
  EXPECT_EQ(h.tensors[0].dtype, Dtype::BF16);
}

TEST(ParseHeader, EscapedKeysAreUnescaped) {
  const Header h = parse(R"({"a\/b\u00e9\t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1);
  EXPECT_EQ(h.tensors[0].name, "a/b\xc3\xa9\t");
  EXPECT_NE(h.find("a/b\xc3\xa9\t"), nullptr);
}

TEST(ParseHeader, SurrogatePairEscapesBecomeUtf8) {
  const Header h = parse(R"({"\ud83d\ude00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1);
  EXPECT_EQ(h.tensors[0].name, "\xf0\x9f\x98\x80");
}

TEST(ParseHeader, LargestU64IsANumber) {
  // 2^64 - 1 fits; the shape then overflows the byte count, which is a different error than bad JSON.
  EXPECT_TRUE(rejects(object({entry("big", "U8", "[18446744073709551615]", 0, 1)}), 1, ErrorCode::ShapeOverflow, {"\"big\""}));
}

// --- Scalars and zero-size tensors ---

TEST(ParseHeader, ScalarHasOneElement) {
  const Header h = parse(object({entry("s", "F64", "[]", 0, 8)}), 8);
  EXPECT_TRUE(h.tensors[0].shape.empty());
  EXPECT_EQ(h.tensors[0].elements(), 1u);
  EXPECT_EQ(h.tensors[0].nbytes(), 8u);
  EXPECT_TRUE(rejects(object({entry("s", "F64", "[]", 0, 0)}), 0, ErrorCode::SizeMismatch, {"\"s\"", "[]"}));
}

TEST(ParseHeader, ZeroSizeTensorsAtTheSameOffsetAndAtTheEnd) {
  const std::string json = object({entry("z1", "F32", "[0]", 0, 0), entry("z2", "F32", "[3,0]", 0, 0), entry("full", "U8", "[4]", 0, 4),
                                   entry("mid", "F16", "[0,2]", 4, 4), entry("full2", "U8", "[2]", 4, 6), entry("end1", "I64", "[0]", 6, 6),
                                   entry("end2", "BOOL", "[0,0,0]", 6, 6)});
  const Header h = parse(json, 6);
  ASSERT_EQ(h.tensors.size(), 7u);
  EXPECT_EQ(h.find("z2")->elements(), 0u);
  EXPECT_EQ(h.find("end2")->begin, 6u);
  EXPECT_EQ(h.find("end2")->nbytes(), 0u);
}

TEST(ParseHeader, OnlyZeroSizeTensors) {
  const Header h = parse(object({entry("a", "F32", "[0]", 0, 0), entry("b", "F4", "[0]", 0, 0)}));
  EXPECT_EQ(h.tensors.size(), 2u);
}

TEST(ParseHeader, EveryDtypeParses) {
  for (std::size_t i = 0; i < dtype_count; ++i) {
    const Dtype d = static_cast<Dtype>(i);
    SCOPED_TRACE(dtype_name(d));
    // 8 elements fill whole bytes for every bit width.
    const std::uint64_t bytes = dtype_bits(d);
    const Header h = parse(object({entry("t", dtype_name(d), "[2,4]", 0, bytes)}), bytes);
    EXPECT_EQ(h.tensors[0].dtype, d);
  }
}

// --- Prefix and framing ---

TEST(ParseHeaderRejects, FileTooSmall) {
  for (std::size_t n = 0; n < 8; ++n) {
    const Bytes file(n, std::byte{0});
    EXPECT_TRUE(fails_with([&] { parse_header(file); }, ErrorCode::FileTooSmall, {std::to_string(n) + " bytes"})) << n;
  }
}

TEST(ParseHeaderRejects, HeaderTooLarge) {
  EXPECT_TRUE(fails_with([] { parse_header(raw_file(100'000'001, "{}")); }, ErrorCode::HeaderTooLarge, {"100000001", "100000000"}));
  EXPECT_TRUE(fails_with([] { parse_header(raw_file(~std::uint64_t{0}, "{}")); }, ErrorCode::HeaderTooLarge, {"18446744073709551615"}));
  // Exactly at the limit is allowed by the size rule, so the next rule (past the end) is what fails.
  EXPECT_TRUE(fails_with([] { parse_header(raw_file(100'000'000, "{}")); }, ErrorCode::HeaderPastEnd));
}

TEST(ParseHeaderRejects, HeaderTooLargeForACustomLimit) {
  const Bytes file = make_file("{}      ");
  EXPECT_TRUE(fails_with([&] { parse_header(file, 7); }, ErrorCode::HeaderTooLarge, {"header length 8", "limit of 7"}));
  EXPECT_EQ(parse_header(file, 8).header_size, 8u);
  EXPECT_TRUE(fails_with([&] { parse_header(file, 0); }, ErrorCode::HeaderTooLarge));
}

TEST(ParseHeaderRejects, HeaderPastEnd) {
  EXPECT_TRUE(fails_with([] { parse_header(raw_file(3, "{}")); }, ErrorCode::HeaderPastEnd, {"header length 3", "2 bytes"}));
  EXPECT_TRUE(fails_with([] { parse_header(raw_file(1, "")); }, ErrorCode::HeaderPastEnd, {"0 bytes"}));
}

TEST(ParseHeaderRejects, HeaderNotUtf8) {
  // A stray continuation byte, a truncated sequence, an overlong '/', a UTF-16 surrogate, and a code point past U+10FFFF.
  for (std::string_view bad : {"\x80", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"}) {
    const std::string json = "{\"" + std::string(bad) + "\":{}}";
    EXPECT_TRUE(rejects(json, 0, ErrorCode::HeaderNotUtf8)) << json;
  }
  EXPECT_TRUE(rejects("{}\xff     ", 0, ErrorCode::HeaderNotUtf8));
}

TEST(ParseHeaderRejects, HeaderNulByte) {
  EXPECT_TRUE(rejects(std::string_view("{}\0     ", 8), 0, ErrorCode::HeaderNulByte, {"offset 2"}));
  EXPECT_TRUE(rejects(std::string_view("{\"a\0\":1}", 8), 0, ErrorCode::HeaderNulByte, {"offset 3"}));
}

TEST(ParseHeaderRejects, HeaderBom) {
  EXPECT_TRUE(rejects("\xEF\xBB\xBF{}   ", 0, ErrorCode::HeaderBom));
}

TEST(ParseHeaderRejects, HeaderNotJson) {
  for (std::string_view bad : {"", "        ", "{", "}", "{\"a\":}", "{a:1}", "{'a':1}", "{\"a\":1,}", "{} x", "{}{}", "{},", "{}\"",
                               "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\x01\"}",
                               // Lone UTF-16 surrogates cannot become UTF-8, as serde_json also holds.
                               R"({"a\ud800":{}})", R"({"a\udc00":{}})", R"({"__metadata__":{"k":"\ud800x"}})"}) {
    EXPECT_TRUE(rejects(bad, 0, ErrorCode::HeaderNotJson)) << bad;
  }
}

TEST(ParseHeaderRejects, NumberOutOfRangeIsNotJson) {
  // 2^64 has 20 digits and fits no 64-bit integer.
  EXPECT_TRUE(rejects(object({entry("a", "U8", "[18446744073709551616]", 0, 0)}), 0, ErrorCode::HeaderNotJson));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,99999999999999999999]}})", 1, ErrorCode::HeaderNotJson));
  EXPECT_TRUE(rejects(R"({"a":{"dtype":"U8","shape":[1e400],"data_offsets":[0,1]}})", 1, ErrorCode::HeaderNotJson,
                      {"(the number 1e400 at byte 28, which no 64-bit int or finite double holds)"}));
  // The message names the number and where it is (crafted case 81), a tiny one read as 0 passed over.
  EXPECT_TRUE(rejects(R"({"__metadata__":{"k":"-1e999"},"a":{"dtype":"U8","shape":[1e-400],"data_offsets":[0,-18446744073709551616]}})", 1,
                      ErrorCode::HeaderNotJson, {"the number -18446744073709551616 at byte 84"}));
}

TEST(ParseHeaderRejects, HeaderNotObject) {
  for (std::string_view bad : {"[]", "[{}]", "1", "\"x\"", "null", "true"}) {
    EXPECT_TRUE(rejects(bad, 0, ErrorCode::HeaderNotObject)) << bad;
  }
}

// --- Entries ---

TEST(ParseHeaderRejects, UnknownDtype) {
  for (std::string_view bad : {"f32", "float32", "F8", "", "F32 "}) {
    EXPECT_TRUE(rejects(object({entry("weight", bad, "[1]", 0, 4)}), 4, ErrorCode::UnknownDtype, {"\"weight\"", std::string("\"").append(bad).append("\"")}))
        << bad;
  }
}

TEST(ParseHeaderRejects, NegativeNumber) {
  EXPECT_TRUE(rejects(object({entry("neg", "U8", "[-1]", 0, 0)}), 0, ErrorCode::NegativeNumber, {"\"neg\"", "shape", "-1"}));
  EXPECT_TRUE(rejects(R"({"neg":{"dtype":"U8","shape":[0],"data_offsets":[-4,0]}})", 0, ErrorCode::NegativeNumber, {"\"neg\"", "data_offsets", "-4"}));
  EXPECT_TRUE(rejects(object({entry("neg", "U8", "[-1.5]", 0, 0)}), 0, ErrorCode::NegativeNumber, {"\"neg\"", "-1.5"}));
  EXPECT_TRUE(rejects(object({entry("neg", "U8", "[-9223372036854775808]", 0, 0)}), 0, ErrorCode::NegativeNumber, {"\"neg\""}));
}

TEST(ParseHeaderRejects, MinusZero) {
  // simdjson reads -0 as the integer 0: only the text tells it apart, wherever the token sits and however spaced.
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}})", 0, ErrorCode::NegativeNumber, {"negative number"}));
  EXPECT_TRUE(rejects("{\"t\":{\"dtype\":\"U8\",\"shape\":[ \n\t-0],\"data_offsets\":[0,0]}}", 0, ErrorCode::NegativeNumber));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[0, -0]}})", 0, ErrorCode::NegativeNumber));
  // Minus signs in names, metadata and exponents are no numbers' signs; strings that look like "[-0" are not either.
  for (std::string_view metadata : {R"("k":"item-0","e":"1e-05")", R"("k":"[-0] ,-0 :-0 \" -0")"}) {
    std::string json = R"({"__metadata__":{)";
    json += metadata;
    json += "},";
    json += entry("x-0", "U8", "[1]", 0, 1);
    json += "}";
    const Header h = parse(json, 1);
    EXPECT_EQ(h.tensors.at(0).name, "x-0") << json;
  }
}

TEST(ParseHeaderRejects, FractionalNumber) {
  EXPECT_TRUE(rejects(object({entry("frac", "U8", "[1.0]", 0, 1)}), 1, ErrorCode::FractionalNumber, {"\"frac\"", "shape"}));
  EXPECT_TRUE(rejects(object({entry("frac", "U8", "[1e3]", 0, 1000)}), 1000, ErrorCode::FractionalNumber, {"\"frac\"", "shape"}));
  EXPECT_TRUE(rejects(object({entry("frac", "U8", "[2.5]", 0, 2)}), 2, ErrorCode::FractionalNumber, {"\"frac\"", "2.5"}));
  EXPECT_TRUE(rejects(R"({"frac":{"dtype":"U8","shape":[4],"data_offsets":[0,4.0]}})", 4, ErrorCode::FractionalNumber, {"\"frac\"", "data_offsets"}));
  EXPECT_TRUE(rejects(R"({"frac":{"dtype":"U8","shape":[4],"data_offsets":[0E0,4]}})", 4, ErrorCode::FractionalNumber, {"\"frac\"", "data_offsets"}));
}

TEST(ParseHeaderRejects, WrongFieldType) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {R"({"t":{"dtype":32,"shape":[1],"data_offsets":[0,1]}})", "dtype"},
      {R"({"t":{"dtype":null,"shape":[1],"data_offsets":[0,1]}})", "dtype"},
      {R"({"t":{"dtype":["U8"],"shape":[1],"data_offsets":[0,1]}})", "dtype"},
      {R"({"t":{"dtype":"U8","shape":1,"data_offsets":[0,1]}})", "shape"},
      {R"({"t":{"dtype":"U8","shape":"1","data_offsets":[0,1]}})", "shape"},
      {R"({"t":{"dtype":"U8","shape":null,"data_offsets":[0,1]}})", "shape"},
      {R"({"t":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}})", "shape"},
      {R"({"t":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}})", "shape"},
      {R"({"t":{"dtype":"U8","shape":[1],"data_offsets":{"0":0,"1":1}}})", "data_offsets"},
      {R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,true]}})", "data_offsets"},
      {R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[null,1]}})", "data_offsets"},
  };
  for (const auto& [json, field] : cases) {
    EXPECT_TRUE(rejects(json, 1, ErrorCode::WrongFieldType, {"\"t\"", field})) << json;
  }
}

TEST(ParseHeaderRejects, MissingField) {
  EXPECT_TRUE(rejects(R"({"t":{"shape":[1],"data_offsets":[0,1]}})", 1, ErrorCode::MissingField, {"\"t\"", "\"dtype\""}));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","data_offsets":[0,1]}})", 1, ErrorCode::MissingField, {"\"t\"", "\"shape\""}));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[1]}})", 1, ErrorCode::MissingField, {"\"t\"", "\"data_offsets\""}));
  EXPECT_TRUE(rejects(R"({"t":{}})", 0, ErrorCode::MissingField, {"\"t\""}));
  // Keys differing in case are unknown fields, not the required ones.
  EXPECT_TRUE(rejects(R"({"t":{"DTYPE":"U8","shape":[1],"data_offsets":[0,1]}})", 1, ErrorCode::MissingField, {"\"t\"", "\"dtype\""}));
}

TEST(ParseHeaderRejects, EntryNotObject) {
  for (std::string_view value : {"[]", "\"U8\"", "null", "1", "true"}) {
    EXPECT_TRUE(rejects("{\"t\":" + std::string(value) + "}", 0, ErrorCode::EntryNotObject, {"\"t\""})) << value;
  }
}

TEST(ParseHeaderRejects, InvalidOffsets) {
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,2,4]}})", 4, ErrorCode::InvalidOffsets, {"\"t\"", "found 3"}));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[0]}})", 0, ErrorCode::InvalidOffsets, {"\"t\"", "found 1"}));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[]}})", 0, ErrorCode::InvalidOffsets, {"\"t\"", "found 0"}));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[8,4]}})", 8, ErrorCode::InvalidOffsets, {"\"t\"", "begin 8", "end 4"}));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[5,4]}})", 5, ErrorCode::InvalidOffsets, {"\"t\"", "begin 5", "end 4"}));
}

TEST(ParseHeaderRejects, SizeMismatch) {
  EXPECT_TRUE(rejects(object({entry("w", "F32", "[2]", 0, 4)}), 4, ErrorCode::SizeMismatch, {"\"w\"", "[0, 4]", "4 bytes", "[2]", "F32", "needs 8"}));
  EXPECT_TRUE(rejects(object({entry("w", "F32", "[2]", 0, 12)}), 12, ErrorCode::SizeMismatch, {"\"w\"", "needs 8"}));
  EXPECT_TRUE(rejects(object({entry("w", "F6_E2M3", "[4]", 0, 4)}), 4, ErrorCode::SizeMismatch, {"\"w\"", "needs 3"}));
  EXPECT_TRUE(rejects(object({entry("w", "F32", "[0]", 0, 4)}), 4, ErrorCode::SizeMismatch, {"\"w\"", "needs 0"}));
}

TEST(ParseHeaderRejects, ShapeOverflow) {
  // 2^32 * 2^32 = 2^64 elements.
  EXPECT_TRUE(rejects(object({entry("huge", "U8", "[4294967296,4294967296]", 0, 0)}), 0, ErrorCode::ShapeOverflow,
                      {"\"huge\"", "element count", "[4294967296, 4294967296]"}));
  // Overflows part way even though a later zero would bring the product back to 0, as in the reference.
  EXPECT_TRUE(rejects(object({entry("huge", "U8", "[4294967296,4294967296,0]", 0, 0)}), 0, ErrorCode::ShapeOverflow, {"\"huge\""}));
  // 2^61 F64 elements fit as a count, but their size in bits (and bytes) does not.
  EXPECT_TRUE(rejects(object({entry("huge", "F64", "[2305843009213693952]", 0, 0)}), 0, ErrorCode::ShapeOverflow, {"\"huge\"", "byte size", "F64"}));
  EXPECT_TRUE(rejects(object({entry("huge", "U8", "[4611686018427387904,4]", 0, 0)}), 0, ErrorCode::ShapeOverflow, {"\"huge\""}));
}

TEST(ParseHeaderRejects, SubByteNotWhole) {
  EXPECT_TRUE(rejects(object({entry("q", "F4", "[3]", 0, 2)}), 2, ErrorCode::SubByteNotWhole, {"\"q\"", "3 elements", "F4"}));
  EXPECT_TRUE(rejects(object({entry("q", "F4", "[1,1]", 0, 1)}), 1, ErrorCode::SubByteNotWhole, {"\"q\"", "1 elements"}));
  EXPECT_TRUE(rejects(object({entry("q", "F6_E2M3", "[2]", 0, 2)}), 2, ErrorCode::SubByteNotWhole, {"\"q\"", "2 elements", "F6_E2M3"}));
  EXPECT_TRUE(rejects(object({entry("q", "F6_E3M2", "[2,3]", 0, 5)}), 5, ErrorCode::SubByteNotWhole, {"\"q\"", "6 elements", "F6_E3M2"}));
  EXPECT_TRUE(rejects(object({entry("q", "F4", "[]", 0, 1)}), 1, ErrorCode::SubByteNotWhole, {"\"q\""}));
  // The sizes that do fill bytes are fine.
  EXPECT_EQ(parse(object({entry("q", "F4", "[3,2]", 0, 3)}), 3).tensors[0].nbytes(), 3u);
  EXPECT_EQ(parse(object({entry("q", "F6_E3M2", "[2,2]", 0, 3)}), 3).tensors[0].nbytes(), 3u);
}

// --- Tiling of the data buffer ---

TEST(ParseHeaderRejects, HoleAtTheStart) {
  EXPECT_TRUE(rejects(object({entry("late", "U8", "[4]", 4, 8)}), 8, ErrorCode::Hole, {"\"late\"", "starts at 4", "start of the data"}));
}

TEST(ParseHeaderRejects, HoleBetweenTwoTensors) {
  EXPECT_TRUE(rejects(object({entry("second", "U8", "[4]", 8, 12), entry("first", "U8", "[4]", 0, 4)}), 12, ErrorCode::Hole,
                      {"\"second\"", "starts at 8", "\"first\"", "ends at 4"}));
}

TEST(ParseHeaderRejects, OneByteHoles) {
  EXPECT_TRUE(rejects(object({entry("late", "U8", "[1]", 1, 2)}), 2, ErrorCode::Hole, {"\"late\"", "starts at 1"}));
  EXPECT_TRUE(rejects(object({entry("a", "U8", "[1]", 0, 1), entry("b", "U8", "[1]", 2, 3)}), 3, ErrorCode::Hole, {"\"b\"", "\"a\"", "ends at 1"}));
}

TEST(ParseHeaderRejects, Overlap) {
  EXPECT_TRUE(rejects(object({entry("a", "U8", "[8]", 0, 8), entry("b", "U8", "[4]", 4, 8)}), 8, ErrorCode::Overlap,
                      {"\"b\"", "starts at 4", "inside", "\"a\"", "ends at 8"}));
  // One byte of overlap.
  EXPECT_TRUE(rejects(object({entry("a", "U8", "[2]", 0, 2), entry("b", "U8", "[2]", 1, 3)}), 3, ErrorCode::Overlap, {"\"b\"", "\"a\""}));
  // Two tensors over the very same bytes.
  EXPECT_TRUE(rejects(object({entry("a", "U8", "[4]", 0, 4), entry("b", "U8", "[4]", 0, 4)}), 4, ErrorCode::Overlap, {"\"a\"", "\"b\""}));
  // A zero-size tensor strictly inside another one's bytes is not at a boundary, as the reference also holds.
  EXPECT_TRUE(rejects(object({entry("a", "U8", "[8]", 0, 8), entry("z", "U8", "[0]", 4, 4)}), 8, ErrorCode::Overlap, {"\"z\"", "\"a\""}));
}

TEST(ParseHeaderRejects, TrailingBytes) {
  EXPECT_TRUE(rejects(object({entry("last", "U8", "[4]", 0, 4)}), 6, ErrorCode::TrailingBytes, {"2 bytes", "\"last\""}));
  EXPECT_TRUE(rejects("{}", 3, ErrorCode::TrailingBytes, {"3 bytes", "no tensor data"}));
  EXPECT_TRUE(rejects(R"({"__metadata__":{"a":"b"}})", 1, ErrorCode::TrailingBytes, {"1 bytes"}));
  EXPECT_TRUE(rejects(object({entry("z", "U8", "[0]", 0, 0)}), 1, ErrorCode::TrailingBytes, {"1 bytes", "\"z\""}));
}

TEST(ParseHeaderRejects, DataPastEnd) {
  EXPECT_TRUE(rejects(object({entry("long", "U8", "[8]", 0, 8)}), 4, ErrorCode::DataPastEnd, {"\"long\"", "end 8", "4 bytes"}));
  EXPECT_TRUE(rejects(object({entry("z", "U8", "[0]", 9, 9)}), 4, ErrorCode::DataPastEnd, {"\"z\""}));
  EXPECT_TRUE(rejects(object({entry("long", "U8", "[1]", 0, 1)}), 0, ErrorCode::DataPastEnd, {"\"long\"", "0 bytes"}));
}

// --- What a header declares of its data, without the data (a stream read that far) ---

TEST(DeclaredData, IsWhereTheLastTensorEnds) {
  const DeclaredData d = declared_data(object({entry("b", "U8", "[8]", 4, 12), entry("a", "U8", "[4]", 0, 4)}));
  EXPECT_EQ(d.size, 12u);
  EXPECT_FALSE(d.trailing_allowed);
  EXPECT_EQ(declared_data("{}").size, 0u);
  EXPECT_EQ(declared_data(object({entry("huge", "U8", "[1099511627776]", 0, 1099511627776)})).size, 1099511627776u);
  const DeclaredData recording = declared_data(
      object({R"("__metadata__":{"__safestructures_recording__":"1"})", entry("a", "U8", "[4]", 0, 4)}));
  EXPECT_EQ(recording.size, 4u);
  EXPECT_TRUE(recording.trailing_allowed);
}

TEST(DeclaredData, ChecksTheHeaderButItsSize) {
  EXPECT_TRUE(fails_with([] { declared_data(object({entry("a", "U8", "[2]", 0, 2), entry("b", "U8", "[2]", 1, 3)})); },
                         ErrorCode::Overlap, {"\"b\"", "\"a\""}));
  EXPECT_TRUE(fails_with([] { declared_data(object({entry("a", "U8", "[2]", 2, 4)})); }, ErrorCode::Hole, {"\"a\""}));
  EXPECT_TRUE(fails_with([] { declared_data("[]"); }, ErrorCode::HeaderNotObject));
  EXPECT_TRUE(fails_with([] { declared_data("\xff"); }, ErrorCode::HeaderNotUtf8));
}

// --- Duplicates ---

TEST(ParseHeaderRejects, DuplicateTensorName) {
  EXPECT_TRUE(rejects(object({entry("dup", "U8", "[2]", 0, 2), entry("dup", "U8", "[2]", 2, 4)}), 4, ErrorCode::DuplicateKey, {"\"dup\"", "twice"}));
  // Equal once unescaped.
  EXPECT_TRUE(rejects(R"({"d\u0075p":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"dup":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})", 0,
                      ErrorCode::DuplicateKey, {"\"dup\""}));
}

TEST(ParseHeaderRejects, DuplicateMetadata) {
  EXPECT_TRUE(rejects(R"({"__metadata__":{"a":"1"},"__metadata__":{"b":"2"}})", 0, ErrorCode::DuplicateKey, {"\"__metadata__\""}));
  EXPECT_TRUE(rejects(R"({"__metadata__":null,"__metadata__":null})", 0, ErrorCode::DuplicateKey, {"\"__metadata__\""}));
}

TEST(ParseHeaderRejects, DuplicateMetadataKey) {
  EXPECT_TRUE(rejects(R"({"__metadata__":{"k":"1","other":"x","k":"2"}})", 0, ErrorCode::DuplicateKey, {"\"k\"", "twice"}));
}

TEST(ParseHeaderRejects, DuplicateEntryField) {
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1, ErrorCode::DuplicateKey, {"\"t\"", "\"dtype\""}));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[1],"shape":[1],"data_offsets":[0,1]}})", 1, ErrorCode::DuplicateKey, {"\"t\"", "\"shape\""}));
  EXPECT_TRUE(rejects(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"data_offsets":[0,1]}})", 1, ErrorCode::DuplicateKey,
                      {"\"t\"", "\"data_offsets\""}));
}

// --- Metadata ---

TEST(ParseHeaderRejects, MetadataNotString) {
  for (std::string_view value : {"1", "null", "true", "[]", "{}", "[\"x\"]"}) {
    EXPECT_TRUE(rejects(R"({"__metadata__":{"ok":"s","bad":)" + std::string(value) + "}}", 0, ErrorCode::MetadataNotString, {"\"bad\""})) << value;
  }
}

TEST(ParseHeaderRejects, MetadataNotObject) {
  for (std::string_view value : {"[]", "\"x\"", "3", "false", "[[\"a\",\"b\"]]"}) {
    EXPECT_TRUE(rejects(R"({"__metadata__":)" + std::string(value) + "}", 0, ErrorCode::MetadataNotObject, {"__metadata__"})) << value;
  }
}

// --- Names ---

TEST(ParseHeaderRejects, NameWithEscapedNul) {
  EXPECT_TRUE(rejects(object({R"("a\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]})"}), 1, ErrorCode::InvalidName, {"\"a\\u0000b\"", "NUL"}));
}

TEST(ParseHeader, ControlCharactersInNamesAreEscapedInMessages) {
  const Error e = test::error_of([] { parse(object({entry("a\nb\x01", "U8", "[2]", 0, 1)}), 1); });
  EXPECT_EQ(e.code(), ErrorCode::SizeMismatch);
  EXPECT_NE(std::string_view(e.what()).find("\"a\\nb\\u0001\""), std::string_view::npos) << e.what();
}

}  // namespace
}  // namespace safestructures
