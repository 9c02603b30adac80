// Tests of the dtype table, storage sizes, and the packing of the sub-byte dtypes.
#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "safestructures/dtype.hpp"
#include "safestructures/error.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::fails_with;

struct Expected {
  Dtype dtype;
  const char* name;
  unsigned bits;
};

// Spelled out rather than derived from dtype_traits, so that a typo in the table cannot hide behind itself.
constexpr std::array<Expected, dtype_count> expected_dtypes{{
    {Dtype::BOOL, "BOOL", 8},
    {Dtype::F4, "F4", 4},
    {Dtype::F6_E2M3, "F6_E2M3", 6},
    {Dtype::F6_E3M2, "F6_E3M2", 6},
    {Dtype::U8, "U8", 8},
    {Dtype::I8, "I8", 8},
    {Dtype::F8_E5M2, "F8_E5M2", 8},
    {Dtype::F8_E4M3, "F8_E4M3", 8},
    {Dtype::F8_E8M0, "F8_E8M0", 8},
    {Dtype::F8_E4M3FNUZ, "F8_E4M3FNUZ", 8},
    {Dtype::F8_E5M2FNUZ, "F8_E5M2FNUZ", 8},
    {Dtype::I16, "I16", 16},
    {Dtype::U16, "U16", 16},
    {Dtype::F16, "F16", 16},
    {Dtype::BF16, "BF16", 16},
    {Dtype::I32, "I32", 32},
    {Dtype::U32, "U32", 32},
    {Dtype::F32, "F32", 32},
    {Dtype::C64, "C64", 64},
    {Dtype::F64, "F64", 64},
    {Dtype::I64, "I64", 64},
    {Dtype::U64, "U64", 64},
}};

TEST(Dtype, NamesBitsAndEnumOrder) {
  for (std::size_t i = 0; i < dtype_count; ++i) {
    const Expected& e = expected_dtypes[i];
    SCOPED_TRACE(e.name);
    // The writer's order is the enum order, so the position of each dtype is part of the file format.
    EXPECT_EQ(static_cast<std::size_t>(e.dtype), i);
    EXPECT_EQ(dtype_name(e.dtype), e.name);
    EXPECT_EQ(dtype_bits(e.dtype), e.bits);
    EXPECT_EQ(dtype_is_sub_byte(e.dtype), e.bits < 8);
    const auto parsed = parse_dtype(e.name);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, e.dtype);
  }
}

TEST(Dtype, ParseRequiresExactSpelling) {
  for (const char* name : {"f32", "F32 ", " F32", "float32", "Bool", "bool", "F8", "F6", "F4_E2M1", "", "U128"}) {
    EXPECT_FALSE(parse_dtype(name).has_value()) << name;
  }
  // An embedded NUL after a valid name must not match the valid name.
  EXPECT_FALSE(parse_dtype(std::string_view("F32\0", 4)).has_value());
}

TEST(Dtype, StorageBytesOfWholeByteTypes) {
  EXPECT_EQ(dtype_storage_bytes(Dtype::U8, 0), 0u);
  EXPECT_EQ(dtype_storage_bytes(Dtype::BOOL, 3), 3u);
  EXPECT_EQ(dtype_storage_bytes(Dtype::F16, 5), 10u);
  EXPECT_EQ(dtype_storage_bytes(Dtype::F32, 7), 28u);
  EXPECT_EQ(dtype_storage_bytes(Dtype::C64, 2), 16u);
  EXPECT_EQ(dtype_storage_bytes(Dtype::U64, 1), 8u);
  // 2^61 U64 elements are 2^64 bytes: one past what fits.
  EXPECT_EQ(dtype_storage_bytes(Dtype::U64, std::uint64_t{1} << 61), std::nullopt);
  EXPECT_EQ(dtype_storage_bytes(Dtype::U64, (std::uint64_t{1} << 57) - 1), ((std::uint64_t{1} << 57) - 1) * 8);
  EXPECT_EQ(dtype_storage_bytes(Dtype::U8, std::numeric_limits<std::uint64_t>::max()), std::nullopt);
}

TEST(Dtype, StorageBytesOfF4) {
  EXPECT_EQ(dtype_storage_bytes(Dtype::F4, 0), 0u);
  EXPECT_EQ(dtype_storage_bytes(Dtype::F4, 1), std::nullopt);
  EXPECT_EQ(dtype_storage_bytes(Dtype::F4, 2), 1u);
  EXPECT_EQ(dtype_storage_bytes(Dtype::F4, 3), std::nullopt);
  EXPECT_EQ(dtype_storage_bytes(Dtype::F4, 8), 4u);
  EXPECT_EQ(dtype_storage_bytes(Dtype::F4, 1001), std::nullopt);
}

TEST(Dtype, StorageBytesOfF6) {
  for (Dtype d : {Dtype::F6_E2M3, Dtype::F6_E3M2}) {
    SCOPED_TRACE(dtype_name(d));
    EXPECT_EQ(dtype_storage_bytes(d, 0), 0u);
    for (std::uint64_t n : {1, 2, 3, 5, 6, 7, 10}) EXPECT_EQ(dtype_storage_bytes(d, n), std::nullopt) << n;
    EXPECT_EQ(dtype_storage_bytes(d, 4), 3u);
    EXPECT_EQ(dtype_storage_bytes(d, 8), 6u);
    EXPECT_EQ(dtype_storage_bytes(d, 400), 300u);
  }
}

std::vector<std::uint8_t> packed_values(const std::vector<std::byte>& bytes) {
  std::vector<std::uint8_t> out;
  for (std::byte b : bytes) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

TEST(Dtype, ItemSizesOfTheDtypesStoredAsBytes) {
  EXPECT_EQ(byte_dtype_item_size("<c16"), 16u);
  EXPECT_EQ(byte_dtype_item_size(">i4"), 4u);
  EXPECT_EQ(byte_dtype_item_size("|b1"), 1u);
  EXPECT_EQ(byte_dtype_item_size("f8"), 8u);
  EXPECT_EQ(byte_dtype_item_size("<U5"), 20u);  // UCS-4
  EXPECT_EQ(byte_dtype_item_size("|S3"), 3u);
  EXPECT_EQ(byte_dtype_item_size("<M8[ns]"), 8u);
  EXPECT_EQ(byte_dtype_item_size("<m8[25s]"), 8u);
  EXPECT_EQ(byte_dtype_item_size("int4"), 1u);
  EXPECT_EQ(byte_dtype_item_size("float8_e4m3b11fnuz"), 1u);
  EXPECT_EQ(byte_dtype_item_size("torch.complex32"), 4u);
  EXPECT_EQ(byte_dtype_item_size("bfloat16"), 2u);
  EXPECT_EQ(byte_dtype_item_size("float4_e2m1fn"), 1u);  // ml_dtypes keeps a byte per element
  // Objects, structures, sizes past three digits, other units, anything else.
  for (const char* name : {"|O8", "O", "V16", "|V4", "<i1234", "<i", "i4x", "<M8[fortnight]", "<M8[ns", "float128", "torch.float32", "", "<"}) {
    EXPECT_EQ(byte_dtype_item_size(name), std::nullopt) << name;
  }
}

TEST(SubByte, F4ElementZeroInLowNibble) {
  const std::vector<std::uint8_t> codes{0x1, 0x2};
  EXPECT_EQ(packed_values(pack_sub_byte(Dtype::F4, codes)), (std::vector<std::uint8_t>{0x21}));
  const std::vector<std::uint8_t> more{0xf, 0x0, 0x3, 0xa, 0x0, 0x0};
  EXPECT_EQ(packed_values(pack_sub_byte(Dtype::F4, more)), (std::vector<std::uint8_t>{0x0f, 0xa3, 0x00}));
}

TEST(SubByte, F6IsALittleEndianBitStream) {
  for (Dtype d : {Dtype::F6_E2M3, Dtype::F6_E3M2}) {
    SCOPED_TRACE(dtype_name(d));
    // Each element alone shows where its 6 bits land in the 3-byte group.
    EXPECT_EQ(packed_values(pack_sub_byte(d, std::vector<std::uint8_t>{0x3f, 0, 0, 0})), (std::vector<std::uint8_t>{0x3f, 0x00, 0x00}));
    EXPECT_EQ(packed_values(pack_sub_byte(d, std::vector<std::uint8_t>{0, 0x3f, 0, 0})), (std::vector<std::uint8_t>{0xc0, 0x0f, 0x00}));
    EXPECT_EQ(packed_values(pack_sub_byte(d, std::vector<std::uint8_t>{0, 0, 0x3f, 0})), (std::vector<std::uint8_t>{0x00, 0xf0, 0x03}));
    EXPECT_EQ(packed_values(pack_sub_byte(d, std::vector<std::uint8_t>{0, 0, 0, 0x3f})), (std::vector<std::uint8_t>{0x00, 0x00, 0xfc}));
    // 1 | 2<<6 | 3<<12 | 4<<18 = 0x103081.
    EXPECT_EQ(packed_values(pack_sub_byte(d, std::vector<std::uint8_t>{1, 2, 3, 4})), (std::vector<std::uint8_t>{0x81, 0x30, 0x10}));
    // The second group starts on a fresh byte.
    EXPECT_EQ(packed_values(pack_sub_byte(d, std::vector<std::uint8_t>{0, 0, 0, 0, 0x25, 0, 0, 0})),
              (std::vector<std::uint8_t>{0, 0, 0, 0x25, 0, 0}));
  }
}

TEST(SubByte, EmptyPacksToNothing) {
  EXPECT_TRUE(pack_sub_byte(Dtype::F4, {}).empty());
  EXPECT_TRUE(unpack_sub_byte(Dtype::F6_E3M2, {}, 0).empty());
}

TEST(SubByte, RoundTripsEveryCode) {
  for (Dtype d : {Dtype::F4, Dtype::F6_E2M3, Dtype::F6_E3M2}) {
    SCOPED_TRACE(dtype_name(d));
    const unsigned values = 1u << dtype_bits(d);
    // Every code at every position within a byte group, plus a pseudo-random tail.
    std::vector<std::uint8_t> codes;
    for (unsigned shift = 0; shift < 4; ++shift) {
      for (unsigned v = 0; v < values; ++v) codes.push_back(static_cast<std::uint8_t>((v + shift) % values));
    }
    std::uint32_t state = 12345;
    while (codes.size() % 8 != 0 || codes.size() < 1000) {
      state = state * 1103515245u + 12345u;
      codes.push_back(static_cast<std::uint8_t>((state >> 16) % values));
    }
    const auto packed = pack_sub_byte(d, codes);
    EXPECT_EQ(packed.size(), *dtype_storage_bytes(d, codes.size()));
    EXPECT_EQ(unpack_sub_byte(d, packed, codes.size()), codes);
  }
}

TEST(SubByte, UnpackExactBytes) {
  const std::vector<std::byte> f4{std::byte{0x21}, std::byte{0xf0}};
  EXPECT_EQ(unpack_sub_byte(Dtype::F4, f4, 4), (std::vector<std::uint8_t>{0x1, 0x2, 0x0, 0xf}));
  const std::vector<std::byte> f6{std::byte{0x81}, std::byte{0x30}, std::byte{0x10}};
  EXPECT_EQ(unpack_sub_byte(Dtype::F6_E2M3, f6, 4), (std::vector<std::uint8_t>{1, 2, 3, 4}));
}

TEST(SubByte, CodeThatDoesNotFitIsRejected) {
  EXPECT_TRUE(fails_with([] { pack_sub_byte(Dtype::F4, std::vector<std::uint8_t>{0x1, 0x10}); }, ErrorCode::InvalidArgument,
                         {"element 1", "F4", "4 bits"}));
  EXPECT_TRUE(fails_with([] { pack_sub_byte(Dtype::F6_E2M3, std::vector<std::uint8_t>{0, 0, 0x40, 0}); }, ErrorCode::InvalidArgument,
                         {"element 2", "F6_E2M3", "6 bits"}));
  EXPECT_TRUE(fails_with([] { pack_sub_byte(Dtype::F6_E3M2, std::vector<std::uint8_t>{0xff, 0, 0, 0}); }, ErrorCode::InvalidArgument,
                         {"element 0", "F6_E3M2"}));
}

TEST(SubByte, CountThatDoesNotFillBytesIsRejected) {
  EXPECT_TRUE(fails_with([] { pack_sub_byte(Dtype::F4, std::vector<std::uint8_t>{1, 2, 3}); }, ErrorCode::SubByteNotWhole, {"3 elements", "F4"}));
  EXPECT_TRUE(fails_with([] { pack_sub_byte(Dtype::F6_E2M3, std::vector<std::uint8_t>{1, 2}); }, ErrorCode::SubByteNotWhole,
                         {"2 elements", "F6_E2M3"}));
  EXPECT_TRUE(fails_with([] { pack_sub_byte(Dtype::F6_E3M2, std::vector<std::uint8_t>(6)); }, ErrorCode::SubByteNotWhole,
                         {"6 elements", "F6_E3M2"}));
}

TEST(SubByte, UnpackSizeMismatchIsRejected) {
  const std::vector<std::byte> two(2);
  EXPECT_TRUE(fails_with([&] { unpack_sub_byte(Dtype::F4, two, 2); }, ErrorCode::SizeMismatch, {"2 elements", "F4", "2 bytes"}));
  EXPECT_TRUE(fails_with([&] { unpack_sub_byte(Dtype::F4, two, 3); }, ErrorCode::SizeMismatch));
  EXPECT_TRUE(fails_with([&] { unpack_sub_byte(Dtype::F6_E2M3, two, 4); }, ErrorCode::SizeMismatch, {"F6_E2M3"}));
}

TEST(SubByte, WholeByteDtypesAreRejected) {
  EXPECT_TRUE(fails_with([] { pack_sub_byte(Dtype::U8, std::vector<std::uint8_t>{1}); }, ErrorCode::InvalidArgument, {"U8"}));
  EXPECT_TRUE(fails_with([] { unpack_sub_byte(Dtype::F32, std::vector<std::byte>(4), 1); }, ErrorCode::InvalidArgument, {"F32"}));
}

TEST(ErrorCodes, NamesAreTheIdentifiers) {
  EXPECT_EQ(error_code_name(ErrorCode::Io), "Io");
  EXPECT_EQ(error_code_name(ErrorCode::SizeMismatch), "SizeMismatch");
  EXPECT_EQ(error_code_name(ErrorCode::SubByteNotWhole), "SubByteNotWhole");
  EXPECT_EQ(error_code_name(ErrorCode::TensorNotFound), "TensorNotFound");
}

TEST(ErrorCodes, RaiseIoFormatsOperationPathAndErrno) {
  const Error e = test::error_of([] { raise_io("cannot open", "/no/such", ENOENT); });
  EXPECT_EQ(e.code(), ErrorCode::Io);
  EXPECT_EQ(e.sys_errno(), ENOENT);
  EXPECT_STREQ(e.what(), (std::string("cannot open '/no/such': ") + std::strerror(ENOENT)).c_str());
  EXPECT_EQ(test::error_of([] { raise(ErrorCode::Hole, "x"); }).sys_errno(), 0);
}

}  // namespace
}  // namespace safestructures
