// Tests of unescape_simple_json_string (each way this CPU has: AVX-512 VBMI2, SSSE3) against simdjson's own reading
// of the same JSON strings: the same bytes where it applies (every escape \" \\ or \/), npos
// wherever else, and the header parse the same either way.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/escaped_string.hpp"

namespace safestructures {
namespace {

// What simdjson makes of the JSON string "content": the value of a metadata key, parsed by the header's simdjson way,
// which never takes the fast unescape. (simdjson.h is not included here: this file is compiled without
// the library's definitions, and its inline functions would then differ from the core's.)
std::string simdjson_reading(const std::string& content) {
  const Header header = parse_header_text_by_simdjson("{\"__metadata__\":{\"k\":\"" + content + "\"}}", 0);
  return header.metadata.at(0).second;
}

// The ways this CPU has: each must read every string as the others do.
std::vector<UnescapeWay> available_ways() {
  std::vector<UnescapeWay> ways;
  for (const UnescapeWay way : {UnescapeWay::Vbmi2, UnescapeWay::Ssse3}) {
    if (unescape_way_available(way)) ways.push_back(way);
  }
  return ways;
}

TEST(EscapedString, SimpleEscapesReadAsSimdjsonReadsThem) {
  if (available_ways().empty()) GTEST_SKIP() << "this CPU is not x86-64 with SSSE3: the header parse never takes the fast way";
  for (const UnescapeWay way : available_ways()) {
    std::mt19937 rng(7);
    const std::vector<std::string> pieces = {"\\\"", "\\\\", "\\/", "a", "é", "😀", " ", "{", "x\\\\\\\"y"};
    for (int trial = 0; trial < 4000; ++trial) {
      std::string content;
      const int count = static_cast<int>(rng() % 120);
      for (int k = 0; k < count; ++k) content += pieces[rng() % pieces.size()];
      // The buffer ends right after the closing quote and what follows it: nothing past it is read.
      const std::string text = content + "\",\"more\":1}";
      std::string out;
      const std::size_t length = unescape_simple_json_string_by(way, text, out, 64);
      ASSERT_EQ(length, content.size()) << content;
      EXPECT_EQ(out, simdjson_reading(content)) << content;
      EXPECT_GE(out.capacity(), out.size() + 64);
    }
  }
}

TEST(EscapedString, AnythingElseIsLeftToTheParser) {
  for (const std::string text : {"a\\nb\"", "a\\u0041\"", "a\x01\"", "no closing quote", "a\\q\"", "\\\"", "abc\\"}) {
    std::string out;
    EXPECT_EQ(unescape_simple_json_string(text, out, 0), escaped_string_npos) << text;
    for (const UnescapeWay way : available_ways()) {
      EXPECT_EQ(unescape_simple_json_string_by(way, text, out, 0), escaped_string_npos) << text;
    }
  }
  // A closing quote past the first block, after an escaping backslash at a block's end.
  const std::string text = std::string(63, 'a') + "\\\"b\"";
  for (const UnescapeWay way : available_ways()) {
    std::string out;
    EXPECT_EQ(unescape_simple_json_string_by(way, text, out, 0), text.size() - 1);
    EXPECT_EQ(out, std::string(63, 'a') + "\"b");
  }
}

TEST(EscapedString, HeaderReadsTheSameEitherWay) {
  // A schema string the fast way reads, and the same header with a \n escape that sends it the ordinary way.
  const std::string fast = R"({"__metadata__":{"__safestructures__":"{\"k\":\"a\\\\b\\/c\"}","x":"y"}})";
  const std::string slow = R"({"__metadata__":{"__safestructures__":"{\"k\":\"a\\\\b\\/c\"}\n","x":"y"}})";
  const Header a = parse_header_text(fast, 0);
  const Header b = parse_header_text(slow, 0);
  ASSERT_EQ(a.metadata.size(), 2u);
  EXPECT_EQ(a.metadata[0].first, "__safestructures__");
  EXPECT_EQ(a.metadata[0].second, R"({"k":"a\\b\/c"})");
  EXPECT_EQ(b.metadata[0].second, R"({"k":"a\\b\/c"})" "\n");
  EXPECT_EQ(a.metadata[1], b.metadata[1]);
}

TEST(EscapedString, AKeyAfterTheSchemaKeepsItsValueWhateverItsName) {
  // The schema string unescaped before the parse stands for its key's first value; a key "" after it keeps its own
  // value (the used slot had been marked by emptying its key, which "" then matched). Found by fuzz_strict_json.
  const std::string text = R"({"__metadata__":{"__safestructures__":"{\"k\":1}","":"v"}})";
  for (const Header& header : {parse_header_text_by_simdjson(text, 0), parse_header_text(text, 0)}) {
    ASSERT_EQ(header.metadata.size(), 2u);
    EXPECT_EQ(header.metadata[0].second, R"({"k":1})");
    EXPECT_EQ(header.metadata[1], (std::pair<std::string, std::string>{"", "v"}));
  }
}

}  // namespace
}  // namespace safestructures
