// Tests of the schema text a save writes as it walks: values in their JSON forms, escaped as the header's string holds
// them, and containers rewritten into their referred forms once something refers to them.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "safestructures/container.hpp"
#include "safestructures/schema_text.hpp"

namespace safestructures {
namespace {

// The document `write` makes, as JSON (unescaped); checks on the way that the text is that JSON escaped.
template <class Write>
std::string document(Write&& write) {
  SchemaText text;
  write(text);
  const std::string escaped = std::move(text).finish();
  const std::string json = unescape_schema(escaped);
  std::string again;
  append_json_escaped(again, json);
  EXPECT_EQ(again, escaped);
  return json;
}

std::string with_root(const std::string& root) { return R"({"format":"safestructures","version":2,"root":)" + root + "}"; }

TEST(SchemaText, ScalarsInTheirJsonForms) {
  const std::string json = document([](SchemaText& t) {
    const std::size_t list = t.begin_array();
    t.null();
    t.boolean(true);
    t.boolean(false);
    t.integer(std::numeric_limits<std::int64_t>::min());
    t.float_value(1.0);
    t.float_value(-2.5e-300);
    t.float_value(std::numeric_limits<double>::infinity());
    t.float_value(std::bit_cast<double>(std::uint64_t{0xfff8000000000123}));
    t.string("q\"uote \\ \n \x02 \xc3\xa9");
    t.end_container(list);
  });
  EXPECT_EQ(json, with_root(R"([null,true,false,-9223372036854775808,1.0,-2.5e-300,{"$":"float","v":"inf"},)"
                            R"({"$":"float","v":"nan","bits":"fff8000000000123"},"q\"uote \\ \n \u0002 )"
                            "\xc3\xa9\"]"));
}

TEST(SchemaText, EmptyContainersAndObjects) {
  const std::string json = document([](SchemaText& t) {
    const std::size_t object = t.begin_object();
    t.key("a");
    t.end_container(t.begin_array());
    t.key("b");
    t.end_container(t.begin_object());
    t.key("c");
    t.end_container(t.begin_tagged("tuple"));
    t.end_container(object);
  });
  EXPECT_EQ(json, with_root(R"({"a":[],"b":{},"c":{"$":"tuple"}})"));
}

TEST(SchemaText, ReferredContainersTakeTheirReferredForms) {
  // [L, D, T, E, refs...]: a list, a dict (keys needing escapes, its last value a referred list), a tagged object and
  // an empty dict, each referred to afterwards.
  const std::string json = document([](SchemaText& t) {
    const std::size_t root = t.begin_array();
    const std::size_t list = t.begin_array();
    t.integer(1);
    t.end_container(list);
    const std::size_t list_end = t.closed_end();
    const std::size_t dict = t.begin_object();
    t.key("k\"1\\");
    t.string("v,:{}[]\"");
    t.key("k2");
    const std::size_t inner = t.begin_array();
    t.end_container(inner);
    const std::size_t inner_end = t.closed_end();
    t.end_container(dict);
    const std::size_t dict_end = t.closed_end();
    const std::size_t tagged = t.begin_tagged("my\"tag");
    t.key("items");
    t.end_container(t.begin_array());
    t.end_container(tagged);
    const std::size_t tagged_end = t.closed_end();
    const std::size_t empty = t.begin_object();
    t.end_container(empty);
    const std::size_t empty_end = t.closed_end();
    for (std::uint32_t id = 1; id <= 5; ++id) t.reference(id);
    t.end_container(root);
    t.refer(list, list_end, 1);
    t.refer(dict, dict_end, 2);
    t.refer(inner, inner_end, 3);
    t.refer(tagged, tagged_end, 4);
    t.refer(empty, empty_end, 5);
  });
  EXPECT_EQ(json, with_root(R"([{"$":"list","#":1,"items":[1]},)"
                            R"({"$":"dict","#":2,"items":[["k\"1\\","v,:{}[]\""],["k2",{"$":"list","#":3,"items":[]}]]},)"
                            R"({"$":"my\"tag","#":4,"items":[]},{"$":"dict","#":5,"items":[]},)"
                            R"({"$":"ref","#":1},{"$":"ref","#":2},{"$":"ref","#":3},{"$":"ref","#":4},{"$":"ref","#":5}])"));
}

TEST(SchemaText, ReferredDictsNest) {
  // {"a":{"b":[2]}} where the outer dict, the inner one and the list are each referred to.
  const std::string json = document([](SchemaText& t) {
    const std::size_t outer = t.begin_object();
    t.key("a");
    const std::size_t inner = t.begin_object();
    t.key("b");
    const std::size_t list = t.begin_array();
    t.integer(2);
    t.end_container(list);
    const std::size_t list_end = t.closed_end();
    t.end_container(inner);
    const std::size_t inner_end = t.closed_end();
    t.end_container(outer);
    t.refer(outer, t.closed_end(), 3);
    t.refer(inner, inner_end, 2);
    t.refer(list, list_end, 1);
  });
  EXPECT_EQ(json, with_root(R"({"$":"dict","#":3,"items":[["a",{"$":"dict","#":2,"items":[["b",{"$":"list","#":1,"items":[2]}]]}]]})"));
}

}  // namespace
}  // namespace safestructures
