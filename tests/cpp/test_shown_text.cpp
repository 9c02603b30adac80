// Tests of shown_text.hpp: names and values from a file as messages show them, escaped where a terminal or viewer
// would act on them, and cut.
#include <gtest/gtest.h>

#include <string>

#include "safestructures/shown_text.hpp"

namespace safestructures {
namespace {

TEST(ShownText, QuotesPlainNamesAsJson) {
  EXPECT_EQ(quote_name("layers.0.weight"), "\"layers.0.weight\"");
  EXPECT_EQ(quote_name("a\"b\\c\n\t\x01"), "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  EXPECT_EQ(quote_name("caf\xc3\xa9 \xe4\xb8\xad"), "\"caf\xc3\xa9 \xe4\xb8\xad\"");  // printable non-ASCII stays
}

TEST(ShownText, EscapesWhatTerminalsAndViewersActOn) {
  EXPECT_EQ(quote_name("\x7f"), "\"\\u007f\"");
  EXPECT_EQ(quote_name("\xc2\x9b" "2J"), "\"\\u009b2J\"");                             // C1 CSI
  EXPECT_EQ(quote_name("a\xe2\x80\xa8" "b\xe2\x80\xa9"), "\"a\\u2028b\\u2029\"");      // line, paragraph separators
  EXPECT_EQ(quote_name("\xe2\x80\xae" "cba"), "\"\\u202ecba\"");                      // right-to-left override
  EXPECT_EQ(quote_name("\xe2\x81\xa6x\xe2\x81\xa9"), "\"\\u2066x\\u2069\"");          // isolates
  EXPECT_EQ(quote_name("\xe2\x80\x8b\xef\xbb\xbf\xc2\xad"), "\"\\u200b\\ufeff\\u00ad\"");  // zero width, BOM, soft hyphen
  EXPECT_EQ(quote_name("\xf3\xa0\x81\x81"), "\"\\udb40\\udc41\"");                    // a tag character: a pair
  EXPECT_EQ(quote_name("\xed\xa0\x80"), "\"\\ud800\"");                               // a surrogate's bytes
  EXPECT_EQ(quote_name("\xff" "a\xc3"), "\"\\xffa\\xc3\"");                           // not UTF-8
  EXPECT_EQ(quote_name("\xc0\x80\xf4\x90\x80\x80"), "\"\\xc0\\x80\\xf4\\x90\\x80\\x80\"");  // overlong; past U+10FFFF
}

TEST(ShownText, CutsLongTextAtAWholeCharacter) {
  EXPECT_EQ(quote_name(std::string(300, 'k')), "\"" + std::string(200, 'k') + "\"... (300 bytes)");
  EXPECT_EQ(quote_name(std::string(200, 'k')), "\"" + std::string(200, 'k') + "\"");
  // A two-byte character straddling the limit is shown whole.
  EXPECT_EQ(quote_name(std::string(199, 'k') + "\xc3\xa9xyz"), "\"" + std::string(199, 'k') + "\xc3\xa9\"... (204 bytes)");
  EXPECT_EQ(quote_name("abcdef", 3), "\"abc\"... (6 bytes)");
  // Escapes do not count against the limit: it is the file's bytes that are cut.
  EXPECT_EQ(quote_name(std::string(4, '\x01'), 2), "\"\\u0001\\u0001\"... (4 bytes)");
}

TEST(ShownText, FieldsAndJsonValues) {
  std::string out = ".";
  append_shown_field(out, "x\xc2\x85y");
  EXPECT_EQ(out, ".x\\u0085y");
  // A value's JSON text keeps its own escapes and quotes, and gets those JSON leaves out.
  EXPECT_EQ(shown_json("[\"a\\\"\xe2\x80\xae\",1]"), "[\"a\\\"\\u202e\",1]");
  EXPECT_EQ(shown_json(std::string(1, '[') + std::string(250, '1')), "[" + std::string(199, '1') + "... (251 bytes)");
}

TEST(ShownText, TheNumberNoSixtyFourBitsHold) {
  EXPECT_EQ(unreadable_number(R"({"a":[1,-0,1e-400,18446744073709551615,-9223372036854775808,1e400]})"), "the number 1e400 at byte 60");
  EXPECT_EQ(unreadable_number(R"(["1e400",18446744073709551616])"), "the number 18446744073709551616 at byte 9");
  EXPECT_EQ(unreadable_number(R"(["\"1e400",-9223372036854775809])"), "the number -9223372036854775809 at byte 11");
  EXPECT_EQ(unreadable_number("[" + std::string(300, '9') + "]"), "the number " + std::string(40, '9') + "... (300 bytes) at byte 1");
  EXPECT_EQ(unreadable_number(R"({"a":[1,2.5,-3e10]})"), "");
  // A malformed number is no number out of range: simdjson's message stands alone.
  EXPECT_EQ(unreadable_number(R"([-, 1e, 01, 1.e5, --1])"), "");
}

}  // namespace
}  // namespace safestructures
