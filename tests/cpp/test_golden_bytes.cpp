// The bytes the C++ API writes do not change: a broad tree built with Value (every kind it builds, shared objects, a
// cycle, tensors of many dtypes, a strided tensor, big ints, NaNs) saves to exactly tests/golden/files/cpp_value.safetensors,
// and that file reads back through File. With SAFESTRUCTURES_WRITE_GOLDEN=1 in the environment the test writes the
// golden file instead (only to pin the bytes deliberately, as tests/golden/make_golden.py does for Python).
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "safestructures/file.hpp"
#include "safestructures/value.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

const std::filesystem::path golden_file =
    std::filesystem::path(__FILE__).parent_path().parent_path() / "golden" / "files" / "cpp_value.safetensors";

double from_bits(std::uint64_t bits) {
  double value = 0;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

std::uint64_t bits_of(double value) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// Element data for the tensors: static, so the tensors over caller memory stay valid for the whole test.
const std::vector<std::int32_t> matrix{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};  // 3 x 4, row-major

// The tree, and the list in it that holds itself (emptied at the end, so the cycle is freed).
struct GoldenTree {
  Value root;
  Value cycle = Value::list({0});
  GoldenTree();
  ~GoldenTree() { cycle.clear(); }
};

GoldenTree::GoldenTree() {
  Value shared_list = Value::list({1, "two"});
  Value shared_dict = Value::dict();
  shared_dict.set("k", Value::tuple({nullptr, true}));
  Value shared_tensor = Value::tensor(std::vector<float>{1.5f, -2.5f, 0.0f}, {3});
  Value shared_blob = Value::bytes(test::iota_bytes(100));
  cycle.append(cycle);

  Value scalars = Value::dict();
  scalars.set("none", nullptr)
      .set("true", true)
      .set("false", false)
      .set("ints", Value::list({0, -1, INT64_MIN, INT64_MAX, std::uint64_t{1} << 63, UINT64_MAX, std::int8_t{-8},
                                std::uint16_t{65535}}))
      .set("big", Value::list({Value::big_int("0x123456789abcdef0123456789abcdef"), Value::big_int("-0x10000000000000000"),
                               Value::big_int("0x7fffffffffffffff"), Value::big_int("-0x8000000000000001")}))
      .set("floats", Value::list({0.0, -0.0, 0.1, 1e300, 5e-324, HUGE_VAL, -HUGE_VAL, std::nan(""),
                                  from_bits(0xfff8000000000000ull), from_bits(0x7ff0000000000001ull),
                                  from_bits(0x7ff8deadbeef0001ull)}))
      .set("strs", Value::list({"", "plain", "h\xc3\xa9llo \xe4\xb8\x96 \xf0\x9f\x98\x80", std::string("ctl\0\x01\x1f\"\\\n\t\x7f", 11),
                                "lone \xed\xa0\x80 high", "\xed\xbf\xbf"}))
      .set("bytes", Value::list({Value::bytes({}), Value::bytes(test::to_bytes("\x00\xff" "b")), Value::bytes(test::iota_bytes(64)),
                                 Value::bytes(test::iota_bytes(65))}));

  Value keys = Value::dict();
  keys.set(1, "int")
      .set(2.5, "float")
      .set(nullptr, "none")
      .set(false, "bool")
      .set(Value::tuple({1, "t", Value::tuple()}), "tuple")
      .set(Value::bytes(test::to_bytes("k")), "bytes")
      .set(Value::big_int("0x100000000000000000"), "big")
      .set("s", "str");
  Value dollar = Value::dict();
  dollar.set("$", 1).set("x", 2);

  // Static: the tensors view these without owning them, and the tree outlives this constructor.
  static const std::vector<std::byte> f4{std::byte{0x21}, std::byte{0x43}};
  static const std::vector<std::uint8_t> flags{1, 0, 1};
  Value tensors = Value::dict();
  tensors.set("u8", Value::tensor(std::vector<std::uint8_t>{1, 2, 3}, {3}))
      .set("i8", Value::tensor(std::vector<std::int8_t>{-1, 2}, {2}))
      .set("i16", Value::tensor(std::vector<std::int16_t>{-300, 300}, {1, 2}))
      .set("u16", Value::tensor(std::vector<std::uint16_t>{65535}, {1}))
      .set("i32", Value::tensor(std::vector<std::int32_t>{1, -2, 3, -4}, {2, 2}))
      .set("u32", Value::tensor(std::vector<std::uint32_t>{7}, {}))
      .set("i64", Value::tensor(std::vector<std::int64_t>{INT64_MIN, INT64_MAX}, {2}))
      .set("u64", Value::tensor(std::vector<std::uint64_t>{UINT64_MAX}, {1}))
      .set("f32", Value::tensor(std::vector<float>{0.5f, NAN}, {2}))
      .set("f64", Value::tensor(std::vector<double>{-0.0, from_bits(0x7ff8deadbeef0001ull)}, {2, 1}))
      .set("c64", Value::tensor(std::vector<std::complex<float>>{{1.0f, -1.0f}}, {1}))
      .set("bool", Value::tensor(Dtype::BOOL, {3}, std::as_bytes(std::span(flags))))
      .set("bf16", Value::tensor(Dtype::BF16, {2}, std::as_bytes(std::span(matrix).first(1))))
      .set("f16", Value::tensor(Dtype::F16, {2}, std::as_bytes(std::span(matrix).subspan(1, 1))))
      .set("f8", Value::tensor(Dtype::F8_E4M3, {4}, std::as_bytes(std::span(matrix).subspan(2, 1))))
      .set("f4", Value::tensor(Dtype::F4, {4}, f4))
      .set("empty", Value::tensor(Dtype::F32, {0, 3}, {}))
      .set("transposed", Value::tensor(Dtype::I32, {4, 3}, std::as_bytes(std::span(matrix)), {4, 16}))
      .set("step", Value::tensor(Dtype::I32, {3, 2}, std::as_bytes(std::span(matrix)), {16, 8}));

  root = Value::dict();
  root.set("scalars", scalars)
      .set("keys", keys)
      .set("dollar", dollar)
      .set("tensors", tensors)
      .set("shared", Value::list({shared_list, shared_list, shared_dict, shared_dict, shared_tensor, shared_tensor,
                                  shared_blob, shared_blob}))
      .set("tuple", Value::tuple({shared_list, Value::tuple({1, 2}), Value::list()}))
      .set("cycle", cycle)
      .set(7, Value::list({shared_tensor}));
}

std::vector<std::byte> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return test::to_bytes(text);
}

TEST(GoldenBytes, ValueTreeSavesToTheGoldenBytes) {
  const GoldenTree tree;
  const Value& root = tree.root;
  // The golden bytes were written before checksums existed: without them, a save still gives those bytes exactly.
  SaveOptions no_checksums;
  no_checksums.checksums = false;
  const std::vector<std::byte> saved = save_bytes(root, {{"run", "cpp"}, {"a", "first \xc3\xa9\n"}}, no_checksums);
  // Saving twice gives the same bytes (nothing in a save varies).
  ASSERT_EQ(saved, save_bytes(root, {{"run", "cpp"}, {"a", "first \xc3\xa9\n"}}, no_checksums));
  const char* write = std::getenv("SAFESTRUCTURES_WRITE_GOLDEN");
  if (write != nullptr && std::string(write) == "1") {
    std::ofstream out(golden_file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(saved.data()), static_cast<std::streamsize>(saved.size()));
    ASSERT_TRUE(out.good()) << "cannot write " << golden_file;
  }
  const std::vector<std::byte> golden = read_file(golden_file);
  ASSERT_FALSE(golden.empty()) << "missing golden file " << golden_file;
  ASSERT_EQ(saved.size(), golden.size());
  for (std::size_t i = 0; i < saved.size(); ++i) {
    ASSERT_EQ(saved[i], golden[i]) << "first difference at byte " << i << ": saved ["
                                   << test::to_text(std::span(saved).subspan(i >= 40 ? i - 40 : 0, std::min<std::size_t>(120, saved.size() - (i >= 40 ? i - 40 : 0))))
                                   << "]";
  }
}

TEST(GoldenBytes, GoldenFileReadsBack) {
  const File file = File::open(golden_file);
  EXPECT_EQ(file.metadata(), (Metadata{{"a", "first \xc3\xa9\n"}, {"run", "cpp"}}));
  const TreeNode root = file.root();
  EXPECT_EQ(root["scalars"]["ints"][4].big_int_hex(), "0x8000000000000000");
  EXPECT_EQ(root["scalars"]["ints"][2].as_int(), INT64_MIN);
  EXPECT_EQ(root["scalars"]["big"][0].big_int_hex(), "0x123456789abcdef0123456789abcdef");
  EXPECT_EQ(bits_of(root["scalars"]["floats"][10].as_double()), 0x7ff8deadbeef0001ull);
  EXPECT_TRUE(std::signbit(root["scalars"]["floats"][1].as_double()));
  EXPECT_EQ(root["scalars"]["strs"][4].as_string(), "lone \xed\xa0\x80 high");
  EXPECT_EQ(root["scalars"]["bytes"][3].as_bytes(), test::iota_bytes(65));
  EXPECT_EQ(root["dollar"].kind(), Kind::Dict);
  EXPECT_EQ(root["keys"].entries()[4].key.kind(), Kind::Tuple);
  const auto transposed = root["tensors"]["transposed"].as_tensor().values<std::int32_t>();
  EXPECT_EQ(std::vector<std::int32_t>(transposed.begin(), transposed.end()),
            (std::vector<std::int32_t>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  const auto step = root["tensors"]["step"].as_tensor().values<std::int32_t>();
  EXPECT_EQ(std::vector<std::int32_t>(step.begin(), step.end()), (std::vector<std::int32_t>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(root["tensors"]["bf16"].as_tensor().dtype(), Dtype::BF16);
  EXPECT_EQ(root["tensors"]["f4"].as_tensor().dtype(), Dtype::F4);
  const TreeNode shared = root["shared"];
  EXPECT_NE(shared[0].shared_id(), 0);
  EXPECT_TRUE(shared[1].via_ref());
  EXPECT_TRUE(shared[5].via_ref());
  EXPECT_EQ(shared[5].as_tensor().values<float>()[1], -2.5f);
  EXPECT_TRUE(root["cycle"][1].via_ref());
  EXPECT_EQ(root["cycle"][1][0].as_int(), 0);
  EXPECT_EQ(root["tuple"].kind(), Kind::Tuple);
  EXPECT_EQ(file.header().tensors.size(), 22u);
}

}  // namespace
}  // namespace safestructures
