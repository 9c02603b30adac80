// Tests of the C++ building API (value.hpp): the exact schema each value gives, tensor names, shared objects, tensors
// from caller memory, round trips through the reading API, and the errors of bad trees.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "safestructures/file.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/value.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;
using test::fails_with;

const std::string document_prefix = R"({"format":"safestructures","version":2,"root":)";

// The schema document a save of `root` writes, without its envelope.
std::string schema_of(const File& file) {
  const std::string* document = file.header().find_metadata(schema_metadata_key);
  if (document == nullptr || !document->starts_with(document_prefix)) {
    ADD_FAILURE() << "no schema document";
    return {};
  }
  return document->substr(document_prefix.size(), document->size() - document_prefix.size() - 1);
}

std::string schema_of(const Value& root) { return schema_of(File::from_bytes(save_bytes(root))); }

std::vector<std::string> tensor_names(const File& file) {
  std::vector<std::string> out;
  for (const TensorInfo& info : file.header().tensors) out.push_back(info.name);
  std::sort(out.begin(), out.end());
  return out;
}

Value small_tensor() { return Value::tensor(std::vector<std::uint8_t>{1}, {1}); }

TEST(ValueApi, ScalarsAreEncodedAsPythonEncodesThem) {
  double payload = 0;
  const std::uint64_t bits = 0xfff8000000000001ull;
  std::memcpy(&payload, &bits, sizeof payload);
  Value root = Value::dict();
  root.set("a", Value::list({1, 2.0, "x", nullptr, true, false, Value()}))
      .set("t", Value::tuple())
      .set("f", Value::list({1e300, -0.0, 0.1, HUGE_VAL, -HUGE_VAL, std::nan(""), payload}))
      .set("big", Value::big_int("-0X00FF00000000000000000"))
      .set("i64", Value::big_int("0x7fffffffffffffff"))
      .set("u", std::uint64_t{1} << 63)
      .set("min", Value::big_int("-0x8000000000000000"))
      .set("s", "h\xc3\xa9")
      .set("surrogate", "a\xed\xa0\x80");
  EXPECT_EQ(schema_of(root),
            R"({"a":[1,2.0,"x",null,true,false,null],"t":{"$":"tuple","items":[]},)"
            R"("f":[1e+300,-0.0,0.1,{"$":"float","v":"inf"},{"$":"float","v":"-inf"},{"$":"float","v":"nan"},{"$":"float","v":"nan","bits":"fff8000000000001"}],)"
            R"("big":{"$":"int","hex":"-0xff00000000000000000"},"i64":9223372036854775807,"u":{"$":"int","hex":"0x8000000000000000"},)"
            "\"min\":-9223372036854775808,\"s\":\"h\xc3\xa9\",\"surrogate\":{\"$\":\"str\",\"cp\":[97,55296]}}");
  // And they read back as they were built.
  const TreeNode back = File::from_bytes(save_bytes(root)).root();
  EXPECT_EQ(back["u"].big_int_hex(), "0x8000000000000000");
  EXPECT_EQ(back["min"].as_int(), INT64_MIN);
  EXPECT_EQ(back["surrogate"].as_string(), "a\xed\xa0\x80");
  const double nan_back = back["f"][6].as_double();
  EXPECT_EQ(std::memcmp(&nan_back, &payload, sizeof payload), 0);
  EXPECT_TRUE(std::signbit(back["f"][1].as_double()));
}

TEST(ValueApi, DictsAndKeys) {
  Value d = Value::dict();
  d.set("k", 1).set("$", 2).set("k", 3);
  // "k" keeps its place and takes the last value; a "$" key forces the pair form.
  EXPECT_EQ(schema_of(d), R"({"$":"dict","items":[["k",3],["$",2]]})");
  Value merged = Value::dict();
  merged.set(1, "a").set(1.0, "b").set(true, "c").set(Value::tuple({1, "x"}), "t").set(Value::tuple({1.0, "x"}), "u");
  // Python holds 1, 1.0 and True equal: one key, the first, with the last value.
  EXPECT_EQ(merged.size(), 2u);
  EXPECT_EQ(schema_of(merged), R"({"$":"dict","items":[[1,"c"],[{"$":"tuple","items":[1,"x"]},"u"]]})");
  // Python's 2**64 == 2.0**64 too (a whole double equals the int of its exact value), and 2**64 + 1 differs.
  const std::string e300 = "0x17e43c8800759c" + std::string(236, '0');  // int(1e300)
  Value big = Value::dict();
  big.set(Value::big_int("0x10000000000000000"), "a").set(18446744073709551616.0, "b").set(Value::big_int("0x10000000000000001"), "c");
  big.set(-0x1p120, "d").set(Value::big_int("-0x1" + std::string(30, '0')), "e").set(Value::big_int(e300), "f").set(1e300, "g");
  big.set(Value::tuple({Value::big_int("0x10000000000000000")}), "h").set(Value::tuple({0x1p64}), "i").set(1e300 + 1e285, "j");
  EXPECT_EQ(schema_of(big), R"({"$":"dict","items":[[{"$":"int","hex":"0x10000000000000000"},"b"],[{"$":"int","hex":"0x10000000000000001"},"c"],)"
                            R"([-1.329227995784916e+36,"e"],[{"$":"int","hex":")" + e300 + R"("},"g"],)"
                            R"([{"$":"tuple","items":[{"$":"int","hex":"0x10000000000000000"}]},"i"],[1.0000000000000011e+300,"j"]]})");
  Value others = Value::dict();
  others.set(nullptr, 1).set(2.5, 2).set(Value::bytes(test::to_bytes("b")), 3).set(Value::big_int("0x10000000000000000"), 4).set(false, 5);
  EXPECT_EQ(others.size(), 5u);
  const TreeNode back = File::from_bytes(save_bytes(others)).root();
  const std::vector<Entry> entries = back.entries();
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_TRUE(entries[0].key.is_null());
  EXPECT_EQ(entries[1].key.as_double(), 2.5);
  EXPECT_EQ(test::to_text(entries[2].key.as_bytes()), "b");
  EXPECT_EQ(entries[3].key.kind(), Kind::BigInt);
  EXPECT_FALSE(entries[4].key.as_bool());
  EXPECT_EQ(entries[4].value.as_int(), 5);
}

TEST(ValueApi, TensorsAreNamedByTheirPath) {
  Value root = Value::dict();
  Value layer = Value::dict();
  layer.set("weight", small_tensor());
  root.set("model", Value::dict().set("layers", Value::list({layer})))
      .set("a.b", small_tensor())
      .set("a", Value::dict().set("b", small_tensor()))
      .set("ctl\n", small_tensor())
      .set("__metadata__", small_tensor())
      .set(3, small_tensor())
      .set(1.5, small_tensor())
      .set(1e16, small_tensor())
      .set(0.0001, small_tensor())
      .set(nullptr, small_tensor())
      .set(false, small_tensor())
      .set(Value::tuple({1, "a'b"}), small_tensor())
      .set(Value::bytes(test::to_bytes(std::string("x\0", 2))), small_tensor())
      .set(Value::big_int("0x10000000000000000"), small_tensor());
  const File file = File::from_bytes(save_bytes(root));
  EXPECT_EQ(tensor_names(file), (std::vector<std::string>{"(1, \"a'b\")", "0.0001", "1.5", "18446744073709551616", "1e+16", "3", "False",
                                                          "None", "__metadata__~1", "a.b", "a.b~1", "b'x\\x00'", "ctl_",
                                                          "model.layers.0.weight"}));
  EXPECT_EQ(file.root()["a"]["b"].as_tensor().name(), "a.b~1");
  EXPECT_EQ(file.root()["model"]["layers"][0]["weight"].as_tensor().framework(), "numpy");
  // A root that is itself a tensor is "root".
  EXPECT_EQ(tensor_names(File::from_bytes(save_bytes(small_tensor()))), (std::vector<std::string>{"root"}));
  EXPECT_EQ(schema_of(small_tensor()), R"({"$":"tensor","name":"root","fw":"numpy"})");
}

TEST(ValueApi, KeysWhoseTextPythonRefusesAreNamedAsPythonNamesThem) {
  // Python's str() of an int past 4,300 digits raises, and its save walk names the key "?": 16**3571 has 4,300
  // digits, 16**3572 has 4,302. A tuple holding such an int is "?" too, and messages show the key as "?".
  const Value at_limit = Value::big_int("0x1" + std::string(3571, '0'));
  const Value past_limit = Value::big_int("0x1" + std::string(3572, '0'));
  Value root = Value::dict();
  root.set(at_limit, small_tensor()).set(past_limit, small_tensor()).set(Value::tuple({past_limit, 1}), small_tensor());
  const std::vector<std::string> names = tensor_names(File::from_bytes(save_bytes(root)));
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[0].size(), 4300u);
  EXPECT_TRUE(names[0].starts_with("81744410132094422503") && names[0].ends_with("47391660265823010816")) << names[0];
  EXPECT_EQ(names[1], "?");
  EXPECT_EQ(names[2], "?~1");
  // A str key holding a lone surrogate has no UTF-8 form to name a tensor by: "?" too. In a tuple, repr() escapes it.
  Value surrogates = Value::dict();
  surrogates.set(std::string("a\xED\xA0\x80"), small_tensor()).set(Value::tuple({std::string("a\xED\xA0\x80"), 1}), small_tensor());
  EXPECT_EQ(tensor_names(File::from_bytes(save_bytes(surrogates))), (std::vector<std::string>{"('a\\ud800', 1)", "?"}));
  EXPECT_TRUE(fails_with([&] { save_bytes(Value::dict().set(past_limit, Value::list({1, std::string("\xff")}))); }, ErrorCode::InvalidArgument,
                         {"at $[?][1]", "UTF-8"}));
}

TEST(ValueApi, SharedObjectsAreStoredOnce) {
  Value w = Value::tensor(std::vector<float>{1.0f, 2.0f}, {2});
  Value blob = Value::bytes(test::iota_bytes(65));
  Value inner = Value::list({1});
  Value t = Value::tuple({2});
  Value d = Value::dict();
  d.set("k", 1);
  Value small = Value::bytes(test::iota_bytes(3));
  Value root = Value::list({w, w, blob, blob, inner, inner, t, t, d, d, small, small});
  const File file = File::from_bytes(save_bytes(root));
  EXPECT_EQ(schema_of(file),
            R"([{"$":"tensor","#":1,"name":"0","fw":"numpy"},{"$":"ref","#":1},{"$":"bytes","#":2,"tensor":"2"},{"$":"ref","#":2},)"
            R"({"$":"list","#":3,"items":[1]},{"$":"ref","#":3},{"$":"tuple","#":4,"items":[2]},{"$":"ref","#":4},)"
            R"({"$":"dict","#":5,"items":[["k",1]]},{"$":"ref","#":5},{"$":"bytes","b64":"AAEC"},{"$":"bytes","b64":"AAEC"}])");
  EXPECT_EQ(tensor_names(file), (std::vector<std::string>{"0", "2"}));
  const TreeNode back = file.root();
  EXPECT_EQ(back[3].as_bytes(), test::iota_bytes(65));
  EXPECT_TRUE(back[3].via_ref());
  EXPECT_EQ(back[1].as_tensor().values<float>()[1], 2.0f);
}

TEST(ValueApi, CyclesThroughListsAreSavedThroughTuplesRefused) {
  Value list = Value::list({1});
  list.append(list);
  const TreeNode back = File::from_bytes(save_bytes(list)).root();
  EXPECT_EQ(schema_of(list), R"({"$":"list","#":1,"items":[1,{"$":"ref","#":1}]})");
  EXPECT_TRUE(back[1].via_ref());
  EXPECT_EQ(back[1][1][0].as_int(), 1);
  list.clear();  // frees the cycle

  Value tuple = Value::tuple();
  Value holder = Value::list({tuple});
  tuple.append(holder);
  EXPECT_TRUE(fails_with([&] { save_bytes(Value::dict().set("x", tuple)); }, ErrorCode::InvalidArgument, {R"(at $["x"][0][0]: )", "cycle"}));
  tuple.clear();
}

TEST(ValueApi, TensorsFromCallerMemory) {
  const std::vector<std::int32_t> matrix{0, 1, 2, 3, 4, 5};  // 2 x 3, row-major
  // Its transpose, 3 x 2, through strides: written in C order.
  Value transposed = Value::tensor(Dtype::I32, {3, 2}, std::as_bytes(std::span(matrix)), {4, 12});
  const std::vector<std::byte> f4{std::byte{0x21}};  // two F4 elements, packed
  Value root = Value::dict();
  root.set("t", transposed)
      .set("d", Value::tensor(std::vector<double>{0.5, 1.5}, {1, 2}))
      .set("f4", Value::tensor(Dtype::F4, {2}, f4))
      .set("empty", Value::tensor(Dtype::F32, {0, 3}, {}))
      .set("c", Value::tensor(std::vector<std::complex<float>>{{1.0f, -1.0f}}, {}));
  const TreeNode back = File::from_bytes(save_bytes(root)).root();
  const auto t = back["t"].as_tensor().values<std::int32_t>();
  EXPECT_EQ(std::vector<std::int32_t>(t.begin(), t.end()), (std::vector<std::int32_t>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(back["t"].as_tensor().shape(), (std::vector<std::uint64_t>{3, 2}));
  EXPECT_EQ(back["d"].as_tensor().dtype(), Dtype::F64);
  EXPECT_EQ(back["d"].as_tensor().values<double>()[1], 1.5);
  EXPECT_EQ(back["f4"].as_tensor().dtype(), Dtype::F4);
  EXPECT_EQ(back["f4"].as_tensor().bytes()[0], std::byte{0x21});
  EXPECT_EQ(back["empty"].as_tensor().elements(), 0u);
  EXPECT_EQ(back["c"].as_tensor().dtype(), Dtype::C64);
  EXPECT_EQ(back["c"].as_tensor().values<std::complex<float>>()[0], std::complex<float>(1.0f, -1.0f));
}

TEST(ValueApi, BadTensors) {
  const std::vector<float> four(4);
  const auto bytes = std::as_bytes(std::span(four));
  EXPECT_TRUE(fails_with([&] { (void)Value::tensor(Dtype::F32, {3}, bytes); }, ErrorCode::InvalidArgument, {"12 bytes, not 16"}));
  EXPECT_TRUE(fails_with([&] { (void)Value::tensor(Dtype::F32, {2, 2}, bytes, {4}); }, ErrorCode::InvalidArgument, {"one stride per dimension"}));
  EXPECT_TRUE(fails_with([&] { (void)Value::tensor(Dtype::F32, {2, 2}, bytes, {8, 8}); }, ErrorCode::InvalidArgument, {"outside"}));
  EXPECT_TRUE(fails_with([&] { (void)Value::tensor(Dtype::F32, {2}, bytes, {-4}); }, ErrorCode::InvalidArgument, {"outside"}));
  EXPECT_TRUE(fails_with([&] { (void)Value::tensor(Dtype::F32, {3}, bytes, {INT64_MAX}); }, ErrorCode::InvalidArgument, {"overflow"}));
  EXPECT_TRUE(fails_with([&] { (void)Value::tensor(Dtype::F4, {2}, bytes.first(1), {1}); }, ErrorCode::InvalidArgument, {"contiguous"}));
  EXPECT_TRUE(fails_with([&] { (void)Value::tensor(Dtype::F4, {3}, bytes.first(2)); }, ErrorCode::InvalidArgument, {"whole number of bytes"}));
  EXPECT_TRUE(fails_with([&] { (void)Value::tensor(Dtype::U8, {UINT64_MAX, 2}, bytes); }, ErrorCode::ShapeOverflow));
}

TEST(ValueApi, BadTreesNameThePath) {
  EXPECT_TRUE(fails_with([] { Value::dict().set(Value::list(), 1); }, ErrorCode::InvalidArgument, {"hashable"}));
  EXPECT_TRUE(fails_with([] { Value::dict().set(small_tensor(), 1); }, ErrorCode::InvalidArgument, {"hashable"}));
  // A tuple key made unhashable after it was set is caught on save.
  Value key = Value::tuple({1});
  Value d = Value::dict();
  d.set(key, 1);
  key.append(Value::list());
  EXPECT_TRUE(fails_with([&] { save_bytes(Value::list({d})); }, ErrorCode::InvalidArgument, {"at $[0][(1, <list>)]", "hashable"}));
  // A tuple that holds itself is no key (nor anything Python could build), and checking it does not crash.
  Value loop = Value::tuple();
  loop.append(loop);
  EXPECT_TRUE(fails_with([&] { Value::dict().set(loop, 1); }, ErrorCode::InvalidArgument, {"hashable"}));
  loop.clear();
  EXPECT_TRUE(fails_with([] { save_bytes(Value::dict().set("s", std::string("\xff"))); }, ErrorCode::InvalidArgument, {R"(at $["s"])", "UTF-8"}));
  EXPECT_TRUE(fails_with([] { save_bytes(Value::list(), {{"__safestructures__", "x"}}); }, ErrorCode::InvalidMetadata, {"reserved"}));
  Value deep = Value::list();
  for (int k = 0; k < 4; ++k) deep = Value::list({deep});
  SaveOptions shallow;
  shallow.max_depth = 3;
  EXPECT_TRUE(fails_with([&] { save_bytes(deep, {}, shallow); }, ErrorCode::NestingTooDeep, {"at $[0][0][0]", "limit of 3"}));
  EXPECT_NO_THROW(save_bytes(deep));
  EXPECT_TRUE(fails_with([] { (void)Value::big_int("12"); }, ErrorCode::InvalidArgument, {"hexadecimal"}));
  EXPECT_TRUE(fails_with([] { (void)Value::big_int("0x"); }, ErrorCode::InvalidArgument));
  EXPECT_TRUE(fails_with([] { Value::dict().append(1); }, ErrorCode::WrongKind, {"append()"}));
  EXPECT_TRUE(fails_with([] { Value::list().set("k", 1); }, ErrorCode::WrongKind, {"set()"}));
  EXPECT_TRUE(fails_with([] { (void)Value(1).size(); }, ErrorCode::WrongKind));
  EXPECT_TRUE(fails_with([] { Value("s").clear(); }, ErrorCode::WrongKind));
}

// Case 123 (docs/security.md): a tuple holding the tuple below it twice, 40 levels (what a reader of the C++ API copies
// from 2.6 KB of a file's shared tuples), stands for 2^40 items: checking it as a key, or comparing it with an equal
// key, walked every one of them (hours). Each tuple, or pair of tuples, is now visited once.
static Value doubling_tuple(int levels, Value leaf) {
  Value node = Value::tuple({leaf, 2});
  for (int k = 1; k < levels; ++k) node = Value::tuple({node, node});
  return node;
}

TEST(ValueApi, SharedTuplesInAKeyAreVisitedOnce) {
  Value d = Value::dict();
  d.set(doubling_tuple(40, 1), 1);
  d.set(doubling_tuple(40, 1), 2);  // equal to the first, though no tuple of it is the first's: one key
  d.set(doubling_tuple(40, 3), 3);  // differs at its deepest item
  EXPECT_EQ(d.size(), 2u);
  EXPECT_NO_THROW(save_bytes(Value::list({d})));
  EXPECT_TRUE(fails_with([] { Value::dict().set(doubling_tuple(40, Value::list()), 1); }, ErrorCode::InvalidArgument, {"hashable"}));
  // The legitimate twin: a tuple key that holds one tuple twice is a key, and Python's 1 == 1.0 still merges keys.
  Value pair = Value::tuple({1, 2});
  Value e = Value::dict();
  e.set(Value::tuple({pair, pair}), 1);
  e.set(Value::tuple({Value::tuple({1.0, 2}), Value::tuple({1, 2.0})}), 2);
  EXPECT_EQ(e.size(), 1u);
}

TEST(ValueApi, ManyKeysOtherThanStringsAreLookedUpNotCompared) {
  // A dict of 200,000 int keys (a copy of a file's, or built here) sets each key in constant time, where comparing it
  // with every earlier key took minutes; keys Python holds equal still merge, and only they.
  Value d = Value::dict();
  for (std::int64_t i = 0; i < 200'000; ++i) d.set(i * 351061, i);
  EXPECT_EQ(d.size(), 200'000u);
  d.set(0.0, "zero").set(-0.0, "minus zero").set(true, "one").set(static_cast<double>(351061 * 2), "two");
  d.set(INT64_MIN, "min").set(-0x1p63, "min as a float").set(0.5, "half").set(0.5, "half again");
  const double nan = std::nan("");
  Value a_nan = Value(nan);
  d.set(a_nan, "nan").set(a_nan, "the same nan").set(nan, "another nan");
  d.set(Value::bytes(test::to_bytes("k")), "bytes").set("k", "str").set(nullptr, "none").set(nullptr, "none again");
  EXPECT_EQ(d.size(), 200'000u + 8u);  // True, INT64_MIN, 0.5, two NaNs, bytes, str, None
  const TreeNode back = File::from_bytes(save_bytes(d)).root();
  const std::vector<Entry> entries = back.entries();
  ASSERT_EQ(entries.size(), 200'008u);
  EXPECT_EQ(entries[0].key.as_int(), 0);
  EXPECT_EQ(entries[0].value.as_string(), "minus zero");
  EXPECT_EQ(entries[1].value.as_int(), 1);
  EXPECT_EQ(entries[2].value.as_string(), "two");
  EXPECT_TRUE(entries[200'000].key.as_bool());
  EXPECT_EQ(entries[200'000].value.as_string(), "one");
  EXPECT_EQ(entries[200'001].key.as_int(), INT64_MIN);
  EXPECT_EQ(entries[200'001].value.as_string(), "min as a float");
  EXPECT_EQ(entries[200'002].value.as_string(), "half again");
  EXPECT_EQ(entries[200'003].value.as_string(), "the same nan");
  EXPECT_EQ(entries[200'004].value.as_string(), "another nan");
  EXPECT_EQ(entries[200'005].value.as_string(), "bytes");
  EXPECT_EQ(entries[200'006].value.as_string(), "str");
  EXPECT_EQ(entries[200'007].value.as_string(), "none again");
  d.clear();
  d.set(1, "a").set(1.0, "b");
  EXPECT_EQ(d.size(), 1u);
  // A tuple key appended to after it was set is compared as it is now.
  Value t = Value::tuple({1});
  Value e = Value::dict();
  e.set(t, "t");
  t.append(2);
  e.set(Value::tuple({1, 2}), "equal now").set(Value::tuple({1}), "equal before");
  EXPECT_EQ(e.size(), 2u);
}

TEST(ValueApi, SaveFileWritesTheSameBytesAtomically) {
  const auto dir = test::test_dir();
  Value root = Value::dict();
  root.set("w", Value::tensor(std::vector<float>{1.0f}, {1})).set("n", 2);
  const Metadata metadata{{"z", "last"}, {"a", "first"}};
  save_file(dir / "out.safetensors", root, metadata);
  EXPECT_EQ(test::read_file_bytes(dir / "out.safetensors"), save_bytes(root, metadata));
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
  const File file = File::open(dir / "out.safetensors");
  // Metadata keys are sorted by the writer.
  EXPECT_EQ(file.metadata(), (Metadata{{"a", "first"}, {"z", "last"}}));
  EXPECT_EQ(file.root()["n"].as_int(), 2);
  EXPECT_TRUE(fails_with([&] { save_file(dir / "no-such-dir" / "f", root); }, ErrorCode::Io));
}

}  // namespace
}  // namespace safestructures
