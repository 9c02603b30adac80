// Tests of the schema tape: building, rendering (floats, strings, reference ids), parsing with its limits, and the
// schema document envelope.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "safestructures/error.hpp"
#include "safestructures/schema.hpp"
#include "tape_json.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::fails_with;

std::uint64_t bits(double d) { return std::bit_cast<std::uint64_t>(d); }

std::string render_number(double value) {
  Tape t;
  t.number(value);
  return to_json(t);
}

std::string render_string(std::string_view value) {
  Tape t;
  t.string(value);
  return to_json(t);
}

std::string round_trip(std::string_view json, const SchemaLimits& limits = {}) { return to_json(parse_schema_json(json, limits)); }

// A tape parsed from `json` with reference ids set on the nodes at the given indices.
Tape with_ids(std::string_view json, std::initializer_list<std::pair<std::size_t, std::uint32_t>> ids) {
  Tape t = parse_schema_json(json);
  for (auto [at, id] : ids) t.set_id(at, id);
  return t;
}

SchemaLimits depth_limit(std::uint32_t depth) {
  SchemaLimits limits;
  limits.max_json_depth = depth;
  return limits;
}

SchemaLimits node_limit(std::uint64_t nodes) {
  SchemaLimits limits;
  limits.max_nodes = nodes;
  return limits;
}

std::string nested_arrays(std::size_t depth, std::string_view leaf = "") {
  return std::string(depth, '[') + std::string(leaf) + std::string(depth, ']');
}

std::string nested_objects(std::size_t depth, std::string_view leaf) {
  std::string out;
  for (std::size_t i = 0; i < depth; ++i) out += "{\"a\":";
  out += leaf;
  out.append(depth, '}');
  return out;
}

// --- Building ---

TEST(TapeBuild, EveryNodeKind) {
  Tape t;
  const std::size_t root = t.begin_array();
  t.null();
  t.count_child(root);
  t.boolean(false);
  t.count_child(root);
  t.boolean(true);
  t.count_child(root);
  t.integer(-42);
  t.count_child(root);
  t.number(2.5);
  t.count_child(root);
  t.string("s");
  t.count_child(root);
  const std::size_t inner = t.begin_array();
  t.integer(1);
  t.count_child(inner);
  t.end_container(inner);
  t.count_child(root);
  const std::size_t object = t.begin_object();
  t.string("k");
  t.integer(7);
  t.count_child(object);
  t.end_container(object);
  t.count_child(root);
  t.end_container(root);

  EXPECT_EQ(to_json(t), R"([null,false,true,-42,2.5,"s",[1],{"k":7}])");
  ASSERT_EQ(t.size(), 12u);
  ASSERT_EQ(t.nodes().size(), 12u);
  const std::vector<NodeKind> kinds{NodeKind::Array, NodeKind::Null,   NodeKind::False, NodeKind::True,   NodeKind::Int,    NodeKind::Float,
                                    NodeKind::String, NodeKind::Array, NodeKind::Int,   NodeKind::Object, NodeKind::String, NodeKind::Int};
  for (std::size_t i = 0; i < kinds.size(); ++i) EXPECT_EQ(t[i].kind, kinds[i]) << "node " << i;
  EXPECT_EQ(t[0].count, 8u);
  EXPECT_EQ(t[0].end, 12u);
  EXPECT_EQ(t[4].integer, -42);
  EXPECT_EQ(t[5].number, 2.5);
  EXPECT_EQ(t[6].text, "s");
  EXPECT_EQ(t[7].count, 1u);
  EXPECT_EQ(t[7].end, 9u);
  EXPECT_EQ(t[9].count, 1u);
  EXPECT_EQ(t[9].end, 12u);
  EXPECT_EQ(t[10].text, "k");
  EXPECT_EQ(t[11].integer, 7);
  for (std::size_t i = 0; i < t.size(); ++i) EXPECT_EQ(t[i].id, 0u) << "node " << i;
  // next() skips whole subtrees and steps over scalars (object keys included).
  EXPECT_EQ(t.next(0), 12u);
  EXPECT_EQ(t.next(1), 2u);
  EXPECT_EQ(t.next(6), 7u);
  EXPECT_EQ(t.next(7), 9u);
  EXPECT_EQ(t.next(8), 9u);
  EXPECT_EQ(t.next(9), 12u);
  EXPECT_EQ(t.next(10), 11u);
  // append_json renders any subtree.
  std::string part;
  append_json(part, t, 9);
  EXPECT_EQ(part, R"({"k":7})");
  part.clear();
  append_json(part, t, 7);
  EXPECT_EQ(part, "[1]");
  part = "prefix:";
  append_json(part, t, 5);
  EXPECT_EQ(part, "prefix:2.5");
}

TEST(TapeBuild, ScalarRoots) {
  EXPECT_EQ(to_json(Tape{}), "");
  const auto one = [](auto build) {
    Tape t;
    build(t);
    return to_json(t);
  };
  EXPECT_EQ(one([](Tape& t) { t.null(); }), "null");
  EXPECT_EQ(one([](Tape& t) { t.boolean(true); }), "true");
  EXPECT_EQ(one([](Tape& t) { t.boolean(false); }), "false");
  EXPECT_EQ(one([](Tape& t) { t.integer(0); }), "0");
  EXPECT_EQ(one([](Tape& t) { t.integer(std::numeric_limits<std::int64_t>::max()); }), "9223372036854775807");
  EXPECT_EQ(one([](Tape& t) { t.integer(std::numeric_limits<std::int64_t>::min()); }), "-9223372036854775808");
  EXPECT_EQ(one([](Tape& t) { t.string(""); }), "\"\"");
}

TEST(TapeBuild, EmptyContainers) {
  Tape a;
  a.end_container(a.begin_array());
  EXPECT_EQ(to_json(a), "[]");
  EXPECT_EQ(a[0].count, 0u);
  EXPECT_EQ(a[0].end, 1u);
  EXPECT_EQ(a.next(0), 1u);
  Tape o;
  o.end_container(o.begin_object());
  EXPECT_EQ(to_json(o), "{}");
  EXPECT_EQ(o.tag(0), "");
  EXPECT_EQ(o.member(0, "a"), Tape::npos);
  Tape nested;
  const std::size_t root = nested.begin_array();
  for (int k = 0; k < 2; ++k) {
    const std::size_t c = k ? nested.begin_object() : nested.begin_array();
    nested.end_container(c);
    nested.count_child(root);
  }
  nested.end_container(root);
  EXPECT_EQ(to_json(nested), "[[],{}]");
}

TEST(TapeBuild, FloatsAreShortestRoundTripAndAlwaysLookLikeFloats) {
  EXPECT_EQ(render_number(1.0), "1.0");
  EXPECT_EQ(render_number(1e300), "1e+300");
  EXPECT_EQ(render_number(-0.0), "-0.0");
  EXPECT_EQ(render_number(0.0), "0.0");
  EXPECT_EQ(render_number(0.1), "0.1");
  EXPECT_EQ(render_number(5e-324), "5e-324");
  EXPECT_EQ(render_number(-5e-324), "-5e-324");
  EXPECT_EQ(render_number(-1.0), "-1.0");
  EXPECT_EQ(render_number(100.0), "100.0");
  EXPECT_EQ(render_number(1.5), "1.5");
  EXPECT_EQ(render_number(1e15), "1e+15");
  EXPECT_EQ(render_number(1e16), "1e+16");
  EXPECT_EQ(render_number(1e-7), "1e-07");
  EXPECT_EQ(render_number(0.001), "0.001");
  EXPECT_EQ(render_number(123456.789), "123456.789");
  EXPECT_EQ(render_number(-2.5e-10), "-2.5e-10");
  EXPECT_EQ(render_number(9007199254740992.0), "9007199254740992.0");
  EXPECT_EQ(render_number(0.30000000000000004), "0.30000000000000004");
  EXPECT_EQ(render_number(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(render_number(3.141592653589793), "3.141592653589793");
  EXPECT_EQ(render_number(std::numeric_limits<double>::max()), "1.7976931348623157e+308");
  EXPECT_EQ(render_number(std::numeric_limits<double>::min()), "2.2250738585072014e-308");
}

TEST(TapeBuild, StringsAreEscapedLikeSerdeJson) {
  EXPECT_EQ(render_string("plain"), R"("plain")");
  EXPECT_EQ(render_string("a\"b\\c/d"), R"("a\"b\\c/d")");
  EXPECT_EQ(render_string("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(render_string(std::string_view("\x00\x01\x0b\x1f", 4)), R"("\u0000\u0001\u000b\u001f")");
  // DEL and non-ASCII pass through unescaped.
  EXPECT_EQ(render_string("\x7f"), "\"\x7f\"");
  EXPECT_EQ(render_string("é€😀"), "\"é€😀\"");
  // Keys are escaped the same way.
  Tape t = parse_schema_json(R"({"k\"\\\n\u0001é":1})");
  EXPECT_EQ(t[1].text, "k\"\\\n\x01é");
  EXPECT_EQ(to_json(t), R"({"k\"\\\n\u0001é":1})");
}

// --- Reference ids ---

TEST(TapeIds, ArrayWithIdIsAListObject) {
  Tape t;
  const std::size_t root = t.begin_array();
  t.set_id(root, 3);
  t.integer(1);
  t.count_child(root);
  t.string("x");
  t.count_child(root);
  t.end_container(root);
  EXPECT_EQ(t[0].id, 3u);
  EXPECT_EQ(to_json(t), R"({"$":"list","#":3,"items":[1,"x"]})");
}

TEST(TapeIds, UntaggedObjectWithIdIsADictOfPairs) {
  EXPECT_EQ(to_json(with_ids(R"({"a":1,"b":[],"c\"":{"d":null}})", {{0, 4}})),
            R"({"$":"dict","#":4,"items":[["a",1],["b",[]],["c\"",{"d":null}]]})");
  // A "$" that is not a string, or not the first member, is no tag.
  EXPECT_EQ(to_json(with_ids(R"({"$":1})", {{0, 9}})), R"({"$":"dict","#":9,"items":[["$",1]]})");
  EXPECT_EQ(to_json(with_ids(R"({"a":1,"$":"x"})", {{0, 10}})), R"({"$":"dict","#":10,"items":[["a",1],["$","x"]]})");
}

TEST(TapeIds, TaggedObjectGetsIdRightAfterTheTag) {
  EXPECT_EQ(to_json(with_ids(R"({"$":"tuple","items":[1,2]})", {{0, 5}})), R"({"$":"tuple","#":5,"items":[1,2]})");
  EXPECT_EQ(to_json(with_ids(R"({"$":"set"})", {{0, 6}})), R"({"$":"set","#":6})");
  EXPECT_EQ(to_json(with_ids(R"({"$":"x","a":1,"b":2})", {{0, 4294967295u}})), R"({"$":"x","#":4294967295,"a":1,"b":2})");
}

TEST(TapeIds, EmptyContainersWithIds) {
  EXPECT_EQ(to_json(with_ids("[]", {{0, 7}})), R"({"$":"list","#":7,"items":[]})");
  EXPECT_EQ(to_json(with_ids("{}", {{0, 8}})), R"({"$":"dict","#":8,"items":[]})");
}

TEST(TapeIds, NestedContainersWithIds) {
  // Indices: 0 [ , 1 { , 2 "x", 3 [ , 4 1, 5 { , 6 "$", 7 "ref", 8 "to", 9 2, 10 [ , 11 {
  const std::string json = R"([{"x":[1,{"$":"ref","to":2}]},[{}]])";
  Tape t = parse_schema_json(json);
  ASSERT_EQ(t.size(), 12u);
  EXPECT_EQ(to_json(t), json);
  t.set_id(0, 1);
  t.set_id(1, 2);
  t.set_id(3, 3);
  t.set_id(5, 4);
  t.set_id(10, 5);
  t.set_id(11, 6);
  EXPECT_EQ(to_json(t), R"({"$":"list","#":1,"items":[{"$":"dict","#":2,"items":[["x",{"$":"list","#":3,"items":[1,)"
                        R"({"$":"ref","#":4,"to":2}]}]]},{"$":"list","#":5,"items":[{"$":"dict","#":6,"items":[]}]}]})");
  // Only the subtree asked for is rendered, with its ids.
  std::string part;
  append_json(part, t, 3);
  EXPECT_EQ(part, R"({"$":"list","#":3,"items":[1,{"$":"ref","#":4,"to":2}]})");
}

// --- Navigation ---

TEST(TapeNavigation, Tag) {
  const Tape t = parse_schema_json(R"([{"$":"tuple","items":[]},{"a":1,"$":"x"},{"$":1},{},{"$":""},"$",{"$":"a","b":"c"}])");
  // Indices: 0 [, 1 {"$":"tuple"..}, 6 {"a":1,"$":"x"}, 11 {"$":1}, 14 {}, 15 {"$":""}, 18 "$", 19 {"$":"a","b":"c"}
  ASSERT_EQ(t.size(), 24u);
  EXPECT_EQ(t.tag(1), "tuple");
  EXPECT_EQ(t.tag(6), "");   // "$" is not the first member
  EXPECT_EQ(t.tag(11), "");  // "$" is not a string
  EXPECT_EQ(t.tag(14), "");  // empty
  EXPECT_EQ(t.tag(15), "");  // an empty tag reads as none
  EXPECT_EQ(t.tag(18), "");  // a string, not an object
  EXPECT_EQ(t.tag(0), "");   // an array
  EXPECT_EQ(t.tag(5), "");   // an empty array
  EXPECT_EQ(t.tag(19), "a");
}

TEST(TapeNavigation, MemberSkipsNestedValues) {
  // Indices: 0 {, 1 "a", 2 {, 3 "b", 4 1, 5 "c", 6 [, 7 "b", 8 "d", 9 "d", 10 2, 11 "b", 12 3
  const Tape t = parse_schema_json(R"({"a":{"b":1},"c":["b","d"],"d":2,"b":3})");
  ASSERT_EQ(t.size(), 13u);
  EXPECT_EQ(t.member(0, "a"), 2u);
  EXPECT_EQ(t.member(0, "c"), 6u);
  EXPECT_EQ(t.member(0, "d"), 10u);
  EXPECT_EQ(t.member(0, "b"), 12u);
  EXPECT_EQ(t[t.member(0, "b")].integer, 3);
  EXPECT_EQ(t.member(0, "x"), Tape::npos);
  EXPECT_EQ(t.member(0, ""), Tape::npos);
  EXPECT_EQ(t.member(2, "b"), 4u);
  EXPECT_EQ(t.member(2, "a"), Tape::npos);
}

// --- Parsing ---

TEST(SchemaParse, CanonicalDocumentsRoundTrip) {
  for (const std::string_view json : {
           "null", "true", "false", "0", "-1", "9223372036854775807", "-9223372036854775808", "1.0", "-0.0", "0.1", "1e+300",
           "5e-324", "1e-07", "1.7976931348623157e+308", R"("")", R"("a\"b\\c\n\t\u0001\u001f/é😀")", "[]", "{}", "[[]]", "[{}]",
           R"({"":""})", R"([null,true,false,-5,2.5,"s",[1,[2,[3,{}]]],{"a":null,"b":{"c":[]}}])",
           R"({"$":"list","#":3,"items":[1,{"$":"dict","#":4,"items":[["k",1.5]]}]})", R"({"k\"\\\n":1,"é":"ü"})",
           R"({"format":"safestructures","version":2,"root":{"$":"tuple","items":[1,2.0,"x"]}})"}) {
    EXPECT_EQ(round_trip(json), json);
  }
}

TEST(SchemaParse, NonCanonicalInputIsNormalized) {
  EXPECT_EQ(round_trip(" [ 1 ,\n\t2 , { \"a\" : [ ] } ] "), R"([1,2,{"a":[]}])");
  EXPECT_EQ(round_trip(R"("\u00e9\/\ud83d\ude00")"), "\"é/😀\"");
  EXPECT_EQ(round_trip("1E2"), "100.0");
  EXPECT_EQ(round_trip("1e2"), "100.0");
  EXPECT_EQ(round_trip("100.00"), "100.0");
  EXPECT_EQ(round_trip("1e300"), "1e+300");
  EXPECT_EQ(round_trip("-0"), "0");
  EXPECT_EQ(round_trip("0.10"), "0.1");
}

TEST(SchemaParse, EveryNodeKindAndValue) {
  const Tape t = parse_schema_json(
      R"({"n":null,"f":false,"t":true,"max":9223372036854775807,"min":-9223372036854775808,"x":-0.0,"s":"a\u0000b\u00e9","a":[1,{}],"o":{"k":"v"}})");
  ASSERT_EQ(t[0].kind, NodeKind::Object);
  EXPECT_EQ(t[0].count, 9u);
  EXPECT_EQ(t[0].end, t.size());
  EXPECT_EQ(t[t.member(0, "n")].kind, NodeKind::Null);
  EXPECT_EQ(t[t.member(0, "f")].kind, NodeKind::False);
  EXPECT_EQ(t[t.member(0, "t")].kind, NodeKind::True);
  EXPECT_EQ(t[t.member(0, "max")].kind, NodeKind::Int);
  EXPECT_EQ(t[t.member(0, "max")].integer, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(t[t.member(0, "min")].kind, NodeKind::Int);
  EXPECT_EQ(t[t.member(0, "min")].integer, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(t[t.member(0, "x")].kind, NodeKind::Float);
  EXPECT_EQ(bits(t[t.member(0, "x")].number), bits(-0.0));
  const Node& s = t[t.member(0, "s")];
  EXPECT_EQ(s.kind, NodeKind::String);
  EXPECT_EQ(s.text, std::string_view("a\0bé", 5));
  const std::size_t a = t.member(0, "a");
  EXPECT_EQ(t[a].kind, NodeKind::Array);
  EXPECT_EQ(t[a].count, 2u);
  EXPECT_EQ(t[a + 1].integer, 1);
  EXPECT_EQ(t[a + 2].kind, NodeKind::Object);
  EXPECT_EQ(t[a + 2].count, 0u);
  EXPECT_EQ(t[a].end, a + 3);
  const std::size_t o = t.member(0, "o");
  EXPECT_EQ(t[o].kind, NodeKind::Object);
  EXPECT_EQ(t[o].count, 1u);
  EXPECT_EQ(t[o + 1].kind, NodeKind::String);
  EXPECT_EQ(t[o + 1].text, "k");
  EXPECT_EQ(t[o + 2].text, "v");
  EXPECT_EQ(t[o].end, t.size());
  for (std::size_t i = 0; i < t.size(); ++i) EXPECT_EQ(t[i].id, 0u);
}

TEST(SchemaParse, DoublesAreExactToTheBit) {
  const std::vector<std::pair<std::string_view, double>> cases{
      {"0.1", 0.1},
      {"0.30000000000000004", 0.30000000000000004},
      {"1.7976931348623157e+308", std::numeric_limits<double>::max()},
      {"2.2250738585072014e-308", std::numeric_limits<double>::min()},
      {"5e-324", std::numeric_limits<double>::denorm_min()},
      {"-5e-324", -std::numeric_limits<double>::denorm_min()},
      {"-0.0", -0.0},
      {"0.0", 0.0},
      {"9007199254740993.0", 9007199254740992.0},  // rounds to even
      {"3.141592653589793", 3.141592653589793},
      {"1e23", 1e23},
      {"0.3333333333333333", 1.0 / 3},
  };
  for (const auto& [text, value] : cases) {
    const Tape t = parse_schema_json(text);
    ASSERT_EQ(t[0].kind, NodeKind::Float) << text;
    EXPECT_EQ(bits(t[0].number), bits(value)) << text;
  }
}

TEST(SchemaParse, RandomDoublesRoundTripToTheBit) {
  std::mt19937_64 rng(20240607);
  Tape t;
  const std::size_t root = t.begin_array();
  std::vector<double> values;
  while (values.size() < 20000) {
    const double d = std::bit_cast<double>(rng());
    if (!std::isfinite(d)) continue;
    values.push_back(d);
    t.number(d);
    t.count_child(root);
  }
  t.end_container(root);
  const std::string json = to_json(t);
  const Tape back = parse_schema_json(json);
  ASSERT_EQ(back.size(), values.size() + 1);
  for (std::size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(back[i + 1].kind, NodeKind::Float) << values[i];
    ASSERT_EQ(bits(back[i + 1].number), bits(values[i])) << render_number(values[i]);
  }
  EXPECT_EQ(to_json(back), json);
}

TEST(SchemaParse, IntegerPastInt64IsSchemaInvalid) {
  EXPECT_TRUE(fails_with([] { parse_schema_json("9223372036854775808"); }, ErrorCode::SchemaInvalid, {"9223372036854775808"}));
  EXPECT_TRUE(fails_with([] { parse_schema_json("[1,18446744073709551615]"); }, ErrorCode::SchemaInvalid, {"18446744073709551615"}));
  EXPECT_TRUE(fails_with([] { parse_schema_json(R"({"a":{"b":9223372036854775808}})"); }, ErrorCode::SchemaInvalid, {"int64"}));
}

TEST(SchemaParse, ANumberNoSixtyFourBitsHoldIsNamedWithWhereItIs) {
  // Crafted case 81: before, "integer 18446744073709551615 is out of the int64 range" and "Problem while parsing a
  // number", naming neither the node nor the number.
  EXPECT_TRUE(fails_with([] { parse_schema_json(R"({"root":{"a":[1,{"b":18446744073709551615}]}})"); }, ErrorCode::SchemaInvalid,
                         {"the schema's integer 18446744073709551615 at $[\"root\"][\"a\"][1][\"b\"] is out of the int64 range"}));
  EXPECT_TRUE(fails_with([] { parse_schema_json(R"({"root":[1e400]})"); }, ErrorCode::SchemaNotJson,
                         {"Problem while parsing a number (the number 1e400 at byte 9, which no 64-bit int or finite double holds)"}));
}

TEST(SchemaParse, MalformedJsonIsSchemaNotJson) {
  for (const std::string_view json : {"", "   ", "[", "]", "[1,]", "[1]]", "{\"a\"}", "{a:1}", "{\"a\":1,}", "nul", "1 2", "'x'", "01",
                                      "NaN", "Infinity", "-", "1.", ".5", "1e", "\"unterminated", "\"\\x\"", "\"\\ud83d\"", "\"a\nb\"",
                                      "\"\xff\"", "\"\xc3\"", "1e400", "[1 2]", "{\"a\" 1}", "{1:2}"}) {
    EXPECT_TRUE(fails_with([&] { parse_schema_json(json); }, ErrorCode::SchemaNotJson, {"not valid JSON"})) << "[" << json << "]";
  }
}

TEST(SchemaParse, NestingDeeperThanTheLimit) {
  const SchemaLimits limits = depth_limit(10);
  // Ten empty containers nested fit; the eleventh is too deep.
  EXPECT_EQ(round_trip(nested_arrays(10), limits), nested_arrays(10));
  EXPECT_EQ(round_trip(nested_objects(9, "{}"), limits), nested_objects(9, "{}"));
  EXPECT_EQ(round_trip(nested_arrays(9, "0"), limits), nested_arrays(9, "0"));
  EXPECT_TRUE(fails_with([&] { parse_schema_json(nested_arrays(11), limits); }, ErrorCode::NestingTooDeep, {"10 JSON levels"}));
  EXPECT_TRUE(fails_with([&] { parse_schema_json(nested_objects(10, "{}"), limits); }, ErrorCode::NestingTooDeep));
  EXPECT_TRUE(fails_with([&] { parse_schema_json(nested_arrays(50, "1"), limits); }, ErrorCode::NestingTooDeep));
  EXPECT_TRUE(fails_with([&] { parse_schema_json(nested_objects(50, "1"), limits); }, ErrorCode::NestingTooDeep));
}

TEST(SchemaParse, DeepDocumentsUnderTheDefaultLimit) {
  const SchemaLimits defaults;
  ASSERT_EQ(defaults.max_json_depth, 3072u);
  // At the limit the tape is built (recursively) without exhausting the stack.
  const Tape deep = parse_schema_json(nested_arrays(3072));
  EXPECT_EQ(deep.size(), 3072u);
  EXPECT_EQ(deep[0].end, 3072u);
  EXPECT_EQ(deep[3071].count, 0u);
  EXPECT_EQ(to_json(deep), nested_arrays(3072));
  EXPECT_TRUE(fails_with([] { parse_schema_json(nested_arrays(3073)); }, ErrorCode::NestingTooDeep, {"3072"}));
  // Far past it, the parser refuses without crashing.
  EXPECT_TRUE(fails_with([] { parse_schema_json(nested_arrays(100'000)); }, ErrorCode::NestingTooDeep));
  EXPECT_TRUE(fails_with([] { parse_schema_json(nested_objects(100'000, "null")); }, ErrorCode::NestingTooDeep));
  // Unclosed, it is refused as malformed before its depth is looked at.
  EXPECT_TRUE(fails_with([] { parse_schema_json(std::string(100'000, '[')); }, ErrorCode::SchemaNotJson));
}

TEST(SchemaParse, MoreNodesThanTheLimit) {
  // Object keys are nodes too.
  EXPECT_EQ(parse_schema_json("[1,2]", node_limit(3)).size(), 3u);
  EXPECT_EQ(parse_schema_json(R"({"a":1})", node_limit(3)).size(), 3u);
  EXPECT_TRUE(fails_with([] { parse_schema_json("[1,2,3]", node_limit(3)); }, ErrorCode::TooManyNodes, {"more than 3 nodes"}));
  EXPECT_TRUE(fails_with([] { parse_schema_json(R"({"a":[1]})", node_limit(3)); }, ErrorCode::TooManyNodes));
  EXPECT_TRUE(fails_with([] { parse_schema_json(R"({"a":1,"b":2})", node_limit(3)); }, ErrorCode::TooManyNodes));
  EXPECT_TRUE(fails_with([] { parse_schema_json(R"({"a":{},"b":{}})", node_limit(4)); }, ErrorCode::TooManyNodes));
  EXPECT_EQ(parse_schema_json("1", node_limit(1)).size(), 1u);
  EXPECT_EQ(parse_schema_json("[]", node_limit(1)).size(), 1u);
  EXPECT_TRUE(fails_with([] { parse_schema_json("[1]", node_limit(1)); }, ErrorCode::TooManyNodes));
  EXPECT_TRUE(fails_with([] { parse_schema_json("null", node_limit(0)); }, ErrorCode::TooManyNodes));
  // A large flat document against a limit just below its size.
  std::string big = "[0";
  for (int i = 1; i < 10000; ++i) big.append(",").append(std::to_string(i));
  big += ']';
  EXPECT_EQ(parse_schema_json(big, node_limit(10001)).size(), 10001u);
  EXPECT_TRUE(fails_with([&] { parse_schema_json(big, node_limit(10000)); }, ErrorCode::TooManyNodes, {"10000"}));
}

TEST(SchemaParse, DuplicateKeysAreRefused) {
  EXPECT_TRUE(fails_with([] { parse_schema_json(R"({"a":1,"b":2,"a":[3]})"); }, ErrorCode::DuplicateKey,
                         {"the schema's JSON object at $ holds the key \"a\" twice"}));
  const Tape t = parse_schema_json(R"({"a":1,"b":{"a":2},"c":"a"})");
  EXPECT_EQ(t[t.member(0, "a")].integer, 1);
}

TEST(SchemaParse, TapeOutlivesTheInput) {
  auto input = std::make_unique<std::string>(R"({"key with some length":["a string long enough to be on the heap","é\n"],"k2":"v"})");
  Tape t = parse_schema_json(*input);
  const std::string expected = *input;
  // Overwrite, then free, the input: the tape's strings live in the parser it keeps.
  std::fill(input->begin(), input->end(), 'X');
  input.reset();
  EXPECT_EQ(t[1].text, "key with some length");
  EXPECT_EQ(t[3].text, "a string long enough to be on the heap");
  EXPECT_EQ(to_json(t), expected);
  // Moving the tape keeps the parser with it; a later parse does not disturb it.
  Tape moved = std::move(t);
  const Tape other = parse_schema_json(R"(["other strings here, which must not replace the first ones"])");
  EXPECT_EQ(to_json(moved), expected);
  EXPECT_EQ(to_json(other), R"(["other strings here, which must not replace the first ones"])");
  Tape assigned;
  assigned = std::move(moved);
  EXPECT_EQ(to_json(assigned), expected);
}

// --- The schema document ---

TEST(SchemaDocument, EscapedRenderingIsTheDocumentEscapedOnce) {
  // Strings with every character the two escapings treat specially, in keys and values, ids, numbers and nesting.
  Tape tape = parse_schema_json(
      R"({"q\"k":["a\"b","c\\d","e\nf\tg\rh\bi\fj","\u0001\u001f","é𝄞",-1.5e-7,12,null,true,false,{"$":"tuple","items":[]}]})");
  tape.set_id(1, 3);
  const std::string document = make_schema_document(tape);
  std::string quoted;
  append_json_string(quoted, document);
  EXPECT_EQ(std::string("\"").append(make_escaped_schema_document(tape).text).append("\""), quoted);
  EXPECT_EQ(make_escaped_schema_document(Tape{}).text, R"({\"format\":\"safestructures\",\"version\":2,\"root\":null})");
  // What a header's reader gets back from the escaped form is the document itself.
  EXPECT_EQ(to_json(parse_schema_json(document)), to_json(parse_schema_json(R"({"format":"safestructures","version":2,"root":)" +
                                                                            to_json(tape) + "}")));
}

TEST(SchemaDocument, Envelope) {
  Tape root = parse_schema_json(R"([1,{"a":"b"}])");
  root.set_id(0, 2);
  const std::string document = make_schema_document(root);
  EXPECT_EQ(document, R"({"format":"safestructures","version":2,"root":{"$":"list","#":2,"items":[1,{"a":"b"}]}})");
  EXPECT_EQ(make_schema_document(Tape{}), R"({"format":"safestructures","version":2,"root":null})");
  Tape scalar;
  scalar.number(1.0);
  EXPECT_EQ(make_schema_document(scalar), R"({"format":"safestructures","version":2,"root":1.0})");

  const Tape parsed = parse_schema_json(document);
  const std::size_t at = schema_root(parsed);
  EXPECT_EQ(at, 6u);
  std::string part;
  append_json(part, parsed, at);
  EXPECT_EQ(part, R"({"$":"list","#":2,"items":[1,{"a":"b"}]})");
  EXPECT_EQ(to_json(parsed), document);
}

TEST(SchemaDocument, MembersInAnyOrder) {
  const Tape t = parse_schema_json(R"({"root":[7],"extra":{},"version":2,"format":"safestructures"})");
  EXPECT_EQ(schema_root(t), 2u);
  const Tape null_root = parse_schema_json(R"({"format":"safestructures","version":2,"root":null})");
  EXPECT_EQ(null_root[schema_root(null_root)].kind, NodeKind::Null);
}

TEST(SchemaDocument, InvalidEnvelopes) {
  const auto root_of = [](std::string_view json) { return [json] { schema_root(parse_schema_json(json)); }; };
  EXPECT_TRUE(fails_with(root_of(R"({"version":2,"root":1})"), ErrorCode::SchemaInvalid, {"format"}));
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safetensors","version":2,"root":1})"), ErrorCode::SchemaInvalid, {"format"}));
  EXPECT_TRUE(fails_with(root_of(R"({"format":1,"version":2,"root":1})"), ErrorCode::SchemaInvalid, {"format"}));
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safestructures","root":1})"), ErrorCode::SchemaInvalid, {"version"}));
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safestructures","version":"2","root":1})"), ErrorCode::SchemaInvalid, {"version"}));
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safestructures","version":2.0,"root":1})"), ErrorCode::SchemaInvalid, {"version"}));
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safestructures","version":2})"), ErrorCode::SchemaInvalid, {"root"}));
  for (const std::string_view json : {"[]", "1", "null", R"("safestructures")", R"([{"format":"safestructures","version":2,"root":1}])"}) {
    EXPECT_TRUE(fails_with(root_of(json), ErrorCode::SchemaInvalid, {"not a JSON object"})) << json;
  }
  EXPECT_TRUE(fails_with([] { schema_root(Tape{}); }, ErrorCode::SchemaInvalid));
}

TEST(SchemaDocument, EachEnvelopeMemberOnce) {
  // Two of a member, however spelled: the first (member()) and the last (Python's json), or the one spelled plainly (a
  // recording writer's scan of the text), are different documents (crafted case 28).
  const auto root_of = [](std::string_view json) { return [json] { schema_root(parse_schema_json(json)); }; };
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safestructures","version":2,"root":[1],"root":{}})"), ErrorCode::DuplicateKey,
                         {"the schema's JSON object at $ holds the key \"root\" twice"}));
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safestructures","version":2,"\u0072oot":[1],"root":{}})"), ErrorCode::DuplicateKey,
                         {"\"root\" twice"}));
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safestructures","version":2,"version":3,"root":1})"), ErrorCode::DuplicateKey,
                         {"\"version\" twice"}));
  // A member's name may appear as a value or deeper.
  const Tape t = parse_schema_json(R"({"format":"safestructures","version":2,"x":1,"root":{"root":"root"}})");
  EXPECT_EQ(t[schema_root(t)].kind, NodeKind::Object);
  // A pointer to a spilled schema with a "root" too: loads read the spilled tensor, a recorder read this root.
  EXPECT_TRUE(fails_with(root_of(R"({"format":"safestructures","version":2,"spill":"t","root":[1]})"), ErrorCode::SchemaInvalid,
                         {"holds both \"spill\" and \"root\""}));
}

// Every object of a tape holds each key once, whichever way parsed it: member() reads the first of two, Python's json
// the last, so a tool reading the schema with json would see another structure than a load (crafted case 47).
TEST(SchemaDocument, EachObjectKeyOnce) {
  const auto parse_both = [](const std::string& json, const std::string& message) {
    const auto strict = [&] { parse_schema_json(json); };
    const auto simd = [&] { parse_schema_json_by_simdjson(json); };
    return fails_with(strict, ErrorCode::DuplicateKey, {message}) && fails_with(simd, ErrorCode::DuplicateKey, {message});
  };
  const std::string head = R"({"format":"safestructures","version":2,"root":)";
  EXPECT_TRUE(parse_both(head + R"({"$":"list","items":[1],"items":[2]}})",
                         "the schema's JSON object at $[\"root\"] holds the key \"items\" twice"));
  EXPECT_TRUE(parse_both(head + R"([0,{"a":[{"$":"str","cp":[65],"\u0063p":[66]}]}]})",
                         "the schema's JSON object at $[\"root\"][1][\"a\"][0] holds the key \"cp\" twice"));
  EXPECT_TRUE(parse_both(head + R"({"$":"list","\u0024":"tuple","items":[]}})", "holds the key \"$\" twice"));
  // Of two objects holding a key twice, the first closed is named (the inner one, where both close together).
  EXPECT_TRUE(parse_both(head + R"({"a":1,"a":{"b":1,"b":2}}})", "at $[\"root\"][\"a\"] holds the key \"b\" twice"));
  EXPECT_TRUE(parse_both(head + R"([{"x":1,"x":2},{"y":1,"y":2}]})", "at $[\"root\"][0] holds the key \"x\" twice"));
  // A key with characters a message escapes is escaped in the path and the key alike.
  EXPECT_TRUE(parse_both(head + R"({"a\"\n":{"k":1,"k":2}}})", "at $[\"root\"][\"a\\\"\\n\"] holds the key \"k\" twice"));
  // An object of more members than are compared pairwise: sorted.
  std::string wide = head + "{";
  for (int k = 0; k < 40; ++k) wide.append("\"k").append(std::to_string(k)).append("\":0,");
  const std::string unique = wide + "\"last\":0}}";
  EXPECT_EQ(parse_schema_json(unique)[6].count, 41u);
  EXPECT_EQ(parse_schema_json_by_simdjson(unique)[6].count, 41u);
  EXPECT_TRUE(parse_both(wide + "\"k17\":1}}", "at $[\"root\"] holds the key \"k17\" twice"));
  // A path of many levels keeps its ends (render_path).
  std::string deep = head;
  for (int k = 0; k < 30; ++k) deep += "[";
  deep += R"({"z":0,"z":0})";
  for (int k = 0; k < 30; ++k) deep += "]";
  EXPECT_TRUE(parse_both(deep + "}", "[\"root\"][0][0][0][0][0][0][0][0][0][... 11 more ...][0][0]"));
}

TEST(SchemaDocument, EnvelopeCheckWithoutRoot) {
  // A spilled schema's pointer has format and version but no root.
  const Tape pointer = parse_schema_json(R"({"format":"safestructures","version":2,"spill":"t"})");
  EXPECT_NO_THROW(check_schema_envelope(pointer));
  EXPECT_TRUE(fails_with([&] { schema_root(pointer); }, ErrorCode::SchemaInvalid, {"root"}));
  EXPECT_TRUE(fails_with([] { check_schema_envelope(parse_schema_json(R"({"format":"safestructures","version":3})")); }, ErrorCode::SchemaVersion));
  EXPECT_TRUE(fails_with([] { check_schema_envelope(parse_schema_json(R"({"version":2})")); }, ErrorCode::SchemaInvalid, {"format"}));
  EXPECT_TRUE(fails_with([] { check_schema_envelope(parse_schema_json(R"({"format":"safestructures"})")); }, ErrorCode::SchemaInvalid, {"version"}));
  EXPECT_TRUE(fails_with([] { check_schema_envelope(parse_schema_json("[]")); }, ErrorCode::SchemaInvalid, {"not a JSON object"}));
  EXPECT_TRUE(fails_with([] { check_schema_envelope(Tape{}); }, ErrorCode::SchemaInvalid));
}

TEST(SchemaDocument, OtherVersions) {
  EXPECT_TRUE(fails_with([] { schema_root(parse_schema_json(R"({"format":"safestructures","version":3,"root":1})")); }, ErrorCode::SchemaVersion,
                         {"version 3", "version 2"}));
  EXPECT_TRUE(fails_with([] { schema_root(parse_schema_json(R"({"format":"safestructures","version":1,"root":1})")); }, ErrorCode::SchemaVersion,
                         {"version 1"}));
  // The version is checked before the root is looked for.
  EXPECT_TRUE(fails_with([] { schema_root(parse_schema_json(R"({"format":"safestructures","version":3})")); }, ErrorCode::SchemaVersion));
}

}  // namespace
}  // namespace safestructures
