// Tests of the writer: exact header bytes against the reference writer, data order, strided sources, errors, files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <complex>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/writer.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::bytes_of;
using test::Bytes;
using test::fails_with;
using test::iota_bytes;
using test::le64;
using test::tensor_of;
using test::to_bytes;
using test::to_text;

template <class T>
Bytes byte_vector(const std::vector<T>& v) {
  const auto b = bytes_of(v);
  return Bytes(b.begin(), b.end());
}

Bytes concat(std::initializer_list<std::span<const std::byte>> parts) {
  Bytes out;
  for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Writes `tensors` to bytes and returns the bytes of tensor `name`, read back through the parsed header.
Bytes written_tensor(std::span<const WriteTensor> tensors, std::string_view name) {
  const Bytes file = write_bytes(tensors, nullptr);
  return test::tensor_bytes(file, parse_header(file), name);
}

Bytes written_tensor(const WriteTensor& t) { return written_tensor(std::span(&t, 1), t.name); }

// --- Exact bytes ---

TEST(WriterBytes, EmptyFile) {
  const Bytes file = write_bytes({}, nullptr);
  EXPECT_EQ(to_text(file), le64(8) + "{}      ");
}

TEST(WriterBytes, MetadataOnlyWithSortedKeys) {
  const Metadata metadata{{"b", "1"}, {"a", "x"}};
  const Bytes file = write_bytes({}, &metadata);
  const std::string json = R"({"__metadata__":{"a":"x","b":"1"}})";
  ASSERT_EQ(json.size(), 34u);
  EXPECT_EQ(to_text(file), le64(40) + json + "      ");
  const Header h = parse_header(file);
  EXPECT_TRUE(h.has_metadata);
  EXPECT_EQ(h.metadata, (Metadata{{"a", "x"}, {"b", "1"}}));
}

TEST(WriterBytes, EmptyMetadataList) {
  const Metadata metadata;
  const Bytes file = write_bytes({}, &metadata);
  EXPECT_EQ(to_text(file), le64(24) + R"({"__metadata__":{}})" + "     ");
  const Header h = parse_header(file);
  EXPECT_TRUE(h.has_metadata);
  EXPECT_TRUE(h.metadata.empty());
}

TEST(WriterBytes, MultiTensorFileMatchesTheReferenceWriter) {
  // Bytes 0x10*(k+1)+j for the k-th tensor in input order, as fed to the reference writer.
  const Bytes z = iota_bytes(8, 0x10), a = iota_bytes(1, 0x20), y = iota_bytes(8, 0x30), s = iota_bytes(4, 0x50), b = iota_bytes(2, 0x60),
              i = iota_bytes(8, 0x70), f = iota_bytes(8, 0x80), c = iota_bytes(8, 0x90);
  const std::vector<WriteTensor> tensors{
      tensor_of("z", Dtype::F32, {2}, z),    tensor_of("a", Dtype::U8, {1}, a),  tensor_of("y", Dtype::U64, {1}, y),
      tensor_of("e", Dtype::F32, {0, 3}, {}), tensor_of("s", Dtype::F32, {}, s),  tensor_of("b", Dtype::BOOL, {2}, b),
      tensor_of("i", Dtype::I64, {1}, i),    tensor_of("f", Dtype::F64, {1}, f), tensor_of("c", Dtype::C64, {1}, c),
  };
  const std::string json =
      R"({"y":{"dtype":"U64","shape":[1],"data_offsets":[0,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},)"
      R"("f":{"dtype":"F64","shape":[1],"data_offsets":[16,24]},"c":{"dtype":"C64","shape":[1],"data_offsets":[24,32]},)"
      R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[32,32]},"s":{"dtype":"F32","shape":[],"data_offsets":[32,36]},)"
      R"("z":{"dtype":"F32","shape":[2],"data_offsets":[36,44]},"a":{"dtype":"U8","shape":[1],"data_offsets":[44,45]},)"
      R"("b":{"dtype":"BOOL","shape":[2],"data_offsets":[45,47]}})";
  ASSERT_EQ(json.size() + 2, 0x1f0u);
  const Bytes expected = concat({to_bytes(le64(0x1f0) + json + "  "), y, i, f, c, s, z, a, b});
  const Bytes file = write_bytes(tensors, nullptr);
  EXPECT_EQ(to_text(file), to_text(expected));

  const Layout layout = plan_layout(tensors, nullptr);
  EXPECT_EQ(layout.header, le64(0x1f0) + json + "  ");
  EXPECT_EQ(layout.order, (std::vector<std::size_t>{2, 6, 7, 8, 3, 4, 0, 1, 5}));
  EXPECT_EQ(layout.offsets, (std::vector<std::uint64_t>{36, 44, 0, 32, 32, 45, 8, 16, 24}));
  EXPECT_EQ(layout.sizes, (std::vector<std::uint64_t>{8, 1, 8, 0, 4, 2, 8, 8, 8}));
  EXPECT_EQ(layout.data_size, 47u);
  EXPECT_EQ(layout.file_size(), 0x1f0u + 8 + 47);
}

TEST(WriterBytes, NoPaddingWhenAlreadyAligned) {
  const Metadata metadata{{"a", "1234567"}};
  const std::string json = R"({"__metadata__":{"a":"1234567"}})";
  ASSERT_EQ(json.size(), 32u);
  EXPECT_EQ(to_text(write_bytes({}, &metadata)), le64(32) + json);
}

TEST(WriterBytes, MetadataComesFirstThenTensors) {
  const Bytes w = iota_bytes(2);
  const Metadata metadata{{"format", "pt"}};
  const std::vector<WriteTensor> tensors{tensor_of("w", Dtype::U8, {2}, w)};
  const std::string json = R"({"__metadata__":{"format":"pt"},"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})";
  const std::string padding((8 - json.size() % 8) % 8, ' ');
  EXPECT_EQ(to_text(write_bytes(tensors, &metadata)), le64(json.size() + padding.size()) + json + padding + to_text(w));
}

TEST(WriterBytes, JsonEscapingMatchesSerdeJson) {
  // Bytes produced by the reference writer for this name (as a tensor and as a metadata key) and value.
  const std::string name = "q\"b\\s\x01\x1f\b\f\n\r\t/\xc3\xa9\x7f\xe2\x80\xa8";
  const std::string value("v\0\"/", 4);
  const Bytes one(1, std::byte{0});
  const std::vector<WriteTensor> tensors{tensor_of(name, Dtype::U8, {1}, one)};
  const Metadata metadata{{name, value}};
  const std::string escaped = "\"q\\\"b\\\\s\\u0001\\u001f\\b\\f\\n\\r\\t/\xc3\xa9\x7f\xe2\x80\xa8\"";
  const std::string json = "{\"__metadata__\":{" + escaped + ":\"v\\u0000\\\"/\"}," + escaped + ":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
  ASSERT_EQ(json.size() + 3, 0xa0u);
  EXPECT_EQ(to_text(write_bytes(tensors, &metadata)), le64(0xa0) + json + "   " + std::string(1, '\0'));

  const Header h = parse_header(write_bytes(tensors, &metadata));
  EXPECT_EQ(h.tensors[0].name, name);
  EXPECT_EQ(h.metadata, metadata);
}

TEST(WriterBytes, AppendJsonStringEscapesEveryControlCharacter) {
  for (int c = 0; c < 0x20; ++c) {
    std::string out;
    append_json_string(out, std::string(1, static_cast<char>(c)));
    std::string expected;
    switch (c) {
      case '\b': expected = "\"\\b\""; break;
      case '\t': expected = "\"\\t\""; break;
      case '\n': expected = "\"\\n\""; break;
      case '\f': expected = "\"\\f\""; break;
      case '\r': expected = "\"\\r\""; break;
      default: {
        static constexpr char hex[] = "0123456789abcdef";
        expected = std::string("\"\\u00") + hex[c >> 4] + hex[c & 0xf] + "\"";
      }
    }
    EXPECT_EQ(out, expected) << c;
  }
  std::string out;
  append_json_string(out, " ~\x7f/'");
  EXPECT_EQ(out, "\" ~\x7f/'\"");
}

// --- Order of the data ---

TEST(WriterOrder, DtypeDescendingThenNameBytewise) {
  const Bytes d8 = iota_bytes(8), d4 = iota_bytes(4), d3 = iota_bytes(3), d2 = iota_bytes(2), d1 = iota_bytes(1);
  // Within F32 the names compare bytewise: uppercase first, a prefix before its extensions, UTF-8 (0xC3) last.
  const std::vector<WriteTensor> tensors{
      tensor_of("b", Dtype::F32, {1}, d4),          tensor_of("\xc3\xa9", Dtype::F32, {1}, d4), tensor_of("a", Dtype::F32, {1}, d4),
      tensor_of("B", Dtype::F32, {1}, d4),          tensor_of("aa", Dtype::F32, {1}, d4),       tensor_of("m", Dtype::U8, {1}, d1),
      tensor_of("l", Dtype::BOOL, {1}, d1),         tensor_of("x", Dtype::F4, {2}, d1),         tensor_of("w", Dtype::F16, {1}, d2),
      tensor_of("n", Dtype::BF16, {1}, d2),         tensor_of("a64", Dtype::U64, {1}, d8),      tensor_of("z", Dtype::C64, {1}, d8),
      tensor_of("c", Dtype::F8_E5M2FNUZ, {1}, d1),  tensor_of("d", Dtype::F8_E5M2, {1}, d1),    tensor_of("e", Dtype::F6_E3M2, {4}, d3),
  };
  const Layout layout = plan_layout(tensors, nullptr);
  std::vector<std::string> names;
  for (std::size_t k : layout.order) names.push_back(tensors[k].name);
  EXPECT_EQ(names, (std::vector<std::string>{"a64", "z", "B", "a", "aa", "b", "\xc3\xa9", "n", "w", "c", "d", "m", "e", "x", "l"}));
  // Offsets follow the order, each tensor right after the previous one.
  std::uint64_t offset = 0;
  for (std::size_t k : layout.order) {
    EXPECT_EQ(layout.offsets[k], offset) << tensors[k].name;
    offset += layout.sizes[k];
  }
  EXPECT_EQ(layout.data_size, offset);
}

TEST(WriterOrder, InputOrderDoesNotMatter) {
  const Bytes d4 = iota_bytes(4), d8 = iota_bytes(8, 100);
  const std::vector<WriteTensor> one{tensor_of("p", Dtype::F32, {1}, d4), tensor_of("q", Dtype::F64, {1}, d8), tensor_of("o", Dtype::I32, {1}, d4)};
  const std::vector<WriteTensor> two{one[2], one[0], one[1]};
  const Metadata m1{{"x", "1"}, {"a", "2"}, {"m", "3"}};
  const Metadata m2{{"m", "3"}, {"x", "1"}, {"a", "2"}};
  EXPECT_EQ(write_bytes(one, &m1), write_bytes(two, &m2));
  EXPECT_EQ(write_bytes(one, &m1), write_bytes(one, &m1));
}

// --- Every dtype, scalars and zero-size tensors round-trip ---

TEST(WriterRoundTrip, EveryDtype) {
  std::vector<Bytes> buffers;
  std::vector<WriteTensor> tensors;
  buffers.reserve(3 * dtype_count);
  for (std::size_t k = 0; k < dtype_count; ++k) {
    const Dtype d = static_cast<Dtype>(k);
    const std::string name(dtype_name(d));
    // 8 elements fill whole bytes at every width.
    buffers.push_back(iota_bytes(dtype_bits(d), static_cast<unsigned>(k * 7)));
    tensors.push_back(tensor_of("full_" + name, d, {2, 4}, buffers.back()));
    tensors.push_back(tensor_of("empty_" + name, d, {4, 0}, {}));
    if (!dtype_is_sub_byte(d)) {
      buffers.push_back(iota_bytes(dtype_bits(d) / 8, static_cast<unsigned>(k * 11)));
      tensors.push_back(tensor_of("scalar_" + name, d, {}, buffers.back()));
    }
  }
  const Layout layout = plan_layout(tensors, nullptr);
  const Bytes file = write_bytes(tensors, nullptr);
  ASSERT_EQ(file.size(), layout.file_size());
  const Header h = parse_header(file);
  ASSERT_EQ(h.tensors.size(), tensors.size());
  EXPECT_EQ(h.header_size + 8, layout.header.size());
  EXPECT_EQ(h.data_offset() % 8, 0u);
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const WriteTensor& t = tensors[k];
    SCOPED_TRACE(t.name);
    const TensorInfo* info = h.find(t.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, t.dtype);
    EXPECT_EQ(info->shape, t.shape);
    EXPECT_EQ(info->begin, layout.offsets[k]);
    EXPECT_EQ(info->nbytes(), layout.sizes[k]);
    const Bytes expected = t.data ? Bytes(t.data, t.data + layout.sizes[k]) : Bytes();
    EXPECT_EQ(test::tensor_bytes(file, h, t.name), expected);
    // Each tensor starts aligned to its element size, since the data buffer starts 8-aligned.
    EXPECT_EQ(info->begin % std::max(1u, dtype_bits(t.dtype) / 8), 0u);
  }
}

TEST(WriterRoundTrip, ZeroSizeTensorsShareOffsets) {
  const Bytes d4 = iota_bytes(4);
  const std::vector<WriteTensor> tensors{tensor_of("a", Dtype::F32, {0}, {}), tensor_of("b", Dtype::F32, {1}, d4), tensor_of("c", Dtype::F32, {2, 0}, {}),
                                         tensor_of("d", Dtype::U8, {0}, {})};
  const Header h = parse_header(write_bytes(tensors, nullptr));
  EXPECT_EQ(h.find("a")->begin, 0u);
  EXPECT_EQ(h.find("a")->end, 0u);
  EXPECT_EQ(h.find("b")->begin, 0u);
  EXPECT_EQ(h.find("c")->begin, 4u);
  EXPECT_EQ(h.find("c")->end, 4u);
  EXPECT_EQ(h.find("d")->begin, 4u);
}

TEST(WriterRoundTrip, SubByteBytesAreWrittenAsGiven) {
  const std::vector<std::uint8_t> codes{1, 2, 3, 4, 5, 6, 7, 8};
  const auto f4 = pack_sub_byte(Dtype::F4, codes);
  const auto f6 = pack_sub_byte(Dtype::F6_E2M3, codes);
  const std::vector<WriteTensor> tensors{tensor_of("f4", Dtype::F4, {8}, f4), tensor_of("f6", Dtype::F6_E2M3, {2, 4}, f6)};
  const Bytes file = write_bytes(tensors, nullptr);
  const Header h = parse_header(file);
  EXPECT_EQ(test::tensor_bytes(file, h, "f4"), (Bytes{std::byte{0x21}, std::byte{0x43}, std::byte{0x65}, std::byte{0x87}}));
  EXPECT_EQ(unpack_sub_byte(Dtype::F6_E2M3, test::tensor_bytes(file, h, "f6"), 8), codes);
}

// --- Strided sources ---

template <class T>
std::vector<T> iota_values(std::size_t n, T start = T{}) {
  std::vector<T> out(n);
  for (std::size_t k = 0; k < n; ++k) out[k] = static_cast<T>(start + static_cast<T>(k));
  return out;
}

template <class T>
WriteTensor strided(std::string name, Dtype dtype, std::vector<std::uint64_t> shape, const T* first, std::vector<std::int64_t> strides_in_elements) {
  for (auto& s : strides_in_elements) s *= static_cast<std::int64_t>(sizeof(T));
  return WriteTensor{std::move(name), dtype, std::move(shape), reinterpret_cast<const std::byte*>(first), std::move(strides_in_elements)};
}

TEST(WriterStrided, TransposedMatrix) {
  // m is 3 x 4 in C order; its transpose is 4 x 3 with strides (1, 4) elements.
  const auto m = iota_values<float>(12);
  std::vector<float> expected;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 3; ++j) expected.push_back(m[j * 4 + i]);
  }
  EXPECT_EQ(written_tensor(strided("t", Dtype::F32, {4, 3}, m.data(), {1, 4})), byte_vector(expected));
}

TEST(WriterStrided, NegativeStride1D) {
  const auto v = iota_values<std::int32_t>(10, 100);
  const std::vector<std::int32_t> reversed{109, 108, 107, 106, 105, 104, 103, 102, 101, 100};
  EXPECT_EQ(written_tensor(strided("r", Dtype::I32, {10}, &v[9], {-1})), byte_vector(reversed));
  const std::vector<std::int32_t> every_other_reversed{109, 107, 105, 103, 101};
  EXPECT_EQ(written_tensor(strided("r", Dtype::I32, {5}, &v[9], {-2})),
            byte_vector(every_other_reversed));
}

TEST(WriterStrided, NegativeStridesIn2D) {
  // m is 3 x 4; flip the rows (m[::-1, :]) and the columns (m[:, ::-1]).
  const auto m = iota_values<std::uint16_t>(12);
  const std::vector<std::uint16_t> rows_flipped{8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3};
  EXPECT_EQ(written_tensor(strided("f", Dtype::U16, {3, 4}, &m[8], {-4, 1})), byte_vector(rows_flipped));
  const std::vector<std::uint16_t> cols_flipped{3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8};
  EXPECT_EQ(written_tensor(strided("f", Dtype::U16, {3, 4}, &m[3], {4, -1})), byte_vector(cols_flipped));
  const std::vector<std::uint16_t> both_flipped{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
  EXPECT_EQ(written_tensor(strided("f", Dtype::U16, {3, 4}, &m[11], {-4, -1})), byte_vector(both_flipped));
}

TEST(WriterStrided, SlicedMiddleDimension) {
  // a is 2 x 5 x 3 (int16).
  const auto a = iota_values<std::int16_t>(30);
  auto at = [&](int i, int j, int k) { return a[i * 15 + j * 3 + k]; };
  // a[:, 1:4, :]: the kept rows of each plane are adjacent, so each plane is one block.
  std::vector<std::int16_t> expected;
  for (int i = 0; i < 2; ++i) {
    for (int j = 1; j < 4; ++j) {
      for (int k = 0; k < 3; ++k) expected.push_back(at(i, j, k));
    }
  }
  EXPECT_EQ(written_tensor(strided("s", Dtype::I16, {2, 3, 3}, &a[3], {15, 3, 1})), byte_vector(expected));
  // a[:, ::2, :]: rows 0, 2, 4 of each plane.
  expected.clear();
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 5; j += 2) {
      for (int k = 0; k < 3; ++k) expected.push_back(at(i, j, k));
    }
  }
  EXPECT_EQ(written_tensor(strided("s", Dtype::I16, {2, 3, 3}, &a[0], {15, 6, 1})), byte_vector(expected));
  // a[:, 1:4, ::2]: nothing contiguous at all.
  expected.clear();
  for (int i = 0; i < 2; ++i) {
    for (int j = 1; j < 4; ++j) {
      for (int k = 0; k < 3; k += 2) expected.push_back(at(i, j, k));
    }
  }
  EXPECT_EQ(written_tensor(strided("s", Dtype::I16, {2, 3, 2}, &a[3], {15, 3, 2})), byte_vector(expected));
}

TEST(WriterStrided, Permuted3D) {
  // v[i][j][k] = a[j][k][i] for a of 3 x 4 x 5: strides (1, 20, 5) elements; every outer dimension moves.
  const auto a = iota_values<std::int64_t>(60, 1000);
  std::vector<std::int64_t> expected;
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 3; ++j) {
      for (int k = 0; k < 4; ++k) expected.push_back(a[j * 20 + k * 5 + i]);
    }
  }
  EXPECT_EQ(written_tensor(strided("p", Dtype::I64, {5, 3, 4}, a.data(), {1, 20, 5})), byte_vector(expected));
}

TEST(WriterStrided, ZeroStridesBroadcast) {
  const std::vector<float> scalar{7.5f};
  const std::vector<float> all(12, 7.5f);
  EXPECT_EQ(written_tensor(strided("b", Dtype::F32, {3, 4}, scalar.data(), {0, 0})), byte_vector(all));

  const std::vector<float> row{1, 2, 3, 4};
  const std::vector<float> rows{1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4};
  EXPECT_EQ(written_tensor(strided("b", Dtype::F32, {3, 4}, row.data(), {0, 1})), byte_vector(rows));

  const std::vector<float> column{1, 2, 3};
  const std::vector<float> columns{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
  EXPECT_EQ(written_tensor(strided("b", Dtype::F32, {3, 4}, column.data(), {1, 0})), byte_vector(columns));
}

TEST(WriterStrided, ContiguousStridesAndUnitDimensions) {
  const auto v = iota_values<std::uint32_t>(12);
  const Bytes plain = byte_vector(v);
  EXPECT_EQ(written_tensor(strided("c", Dtype::U32, {3, 4}, v.data(), {4, 1})), plain);
  // A dimension of size 1 is never stepped over, so its stride does not matter.
  EXPECT_EQ(written_tensor(strided("c", Dtype::U32, {1, 12, 1}, v.data(), {999, 1, -7})), plain);
  EXPECT_EQ(written_tensor(strided("c", Dtype::U32, {1, 1}, &v[5], {3, -3})), Bytes(plain.begin() + 20, plain.begin() + 24));
  // A complex element is one 8-byte item: strides count whole elements.
  const std::vector<std::complex<float>> z{{1, 2}, {3, 4}, {5, 6}};
  const std::vector<std::complex<float>> z_reversed{{5, 6}, {3, 4}, {1, 2}};
  EXPECT_EQ(written_tensor(strided("z", Dtype::C64, {3}, &z[2], {-1})), byte_vector(z_reversed));
}

TEST(WriterStrided, OverlappingWindows) {
  // Sliding windows of 2 over 4 values (strides (1, 1) elements): rows overlap, so nothing may be merged into a block.
  const std::vector<float> v{0, 1, 2, 3};
  const std::vector<float> windows{0, 1, 1, 2, 2, 3};
  EXPECT_EQ(written_tensor(strided("w", Dtype::F32, {3, 2}, v.data(), {1, 1})), byte_vector(windows));
}

TEST(WriterStrided, ZeroSizeWithStridesWritesNothing) {
  const WriteTensor t{"e", Dtype::F32, {3, 0}, nullptr, {4, 4}};
  const Bytes file = write_bytes(std::span(&t, 1), nullptr);
  const Header h = parse_header(file);
  EXPECT_EQ(h.find("e")->nbytes(), 0u);
  EXPECT_EQ(file.size(), h.data_offset());

  // With real data behind it, a zero-size non-contiguous view must still write nothing, or the next tensor shifts.
  const std::vector<float> v{1, 2, 3, 4, 5, 6};
  const Bytes after = iota_bytes(4, 30);
  const std::vector<WriteTensor> tensors{strided("e", Dtype::F32, {0, 3}, v.data(), {1, 2}), strided("f", Dtype::F32, {3, 0}, v.data(), {2, 1}),
                                         tensor_of("g", Dtype::F32, {1}, after)};
  const Bytes both = write_bytes(tensors, nullptr);
  const Header hb = parse_header(both);
  EXPECT_EQ(hb.find("e")->nbytes(), 0u);
  EXPECT_EQ(test::tensor_bytes(both, hb, "g"), after);
}

TEST(WriterStrided, MixedWithContiguousTensors) {
  const auto m = iota_values<float>(6);
  const Bytes before = iota_bytes(4, 200), after = iota_bytes(4, 50);
  const std::vector<WriteTensor> tensors{tensor_of("a", Dtype::F32, {1}, before), strided("m", Dtype::F32, {3, 2}, m.data(), {1, 3}),
                                         tensor_of("z", Dtype::F32, {1}, after)};
  const Bytes file = write_bytes(tensors, nullptr);
  const Header h = parse_header(file);
  const std::vector<float> mt{0, 3, 1, 4, 2, 5};
  EXPECT_EQ(test::tensor_bytes(file, h, "a"), before);
  EXPECT_EQ(test::tensor_bytes(file, h, "m"), byte_vector(mt));
  EXPECT_EQ(test::tensor_bytes(file, h, "z"), after);
}

// Gathers the transpose of an n x n row-major matrix in C order, by hand.
template <class T>
std::vector<T> transposed(const std::vector<T>& m, std::size_t n) {
  std::vector<T> out(n * n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) out[i * n + j] = m[j * n + i];
  }
  return out;
}

TEST(WriterStrided, LargerThanTheStagingBuffer) {
  // 300 x 300 u64 = 720,000 bytes gathered 8 bytes at a time through a 256 KiB buffer.
  const std::size_t n = 300;
  const auto m = iota_values<std::uint64_t>(n * n, 1);
  const auto expected = transposed(m, n);
  const Bytes expected_bytes = byte_vector(expected);
  const WriteTensor t = strided("big", Dtype::U64, {n, n}, m.data(), {1, static_cast<std::int64_t>(n)});
  EXPECT_EQ(written_tensor(t), expected_bytes);

  const auto dir = test::test_dir();
  write_file(dir / "big.safetensors", std::span(&t, 1), nullptr);
  const Reader r = Reader::open(dir / "big.safetensors");
  const auto view = r.tensor("big").bytes;
  EXPECT_TRUE(std::equal(view.begin(), view.end(), expected_bytes.begin(), expected_bytes.end()));
}

TEST(WriterStrided, BlocksLargerThanTheStagingBuffer) {
  // a is 2 x 4 x 70000 f32; a[:, ::2, :] has 280,000-byte contiguous rows, each bigger than the staging buffer.
  const std::size_t inner = 70000;
  const auto a = iota_values<float>(2 * 4 * inner);
  std::vector<float> expected;
  for (std::size_t i = 0; i < 2; ++i) {
    for (std::size_t j = 0; j < 4; j += 2) expected.insert(expected.end(), a.begin() + (i * 4 + j) * inner, a.begin() + (i * 4 + j + 1) * inner);
  }
  const Bytes expected_bytes = byte_vector(expected);
  const WriteTensor t = strided("rows", Dtype::F32, {2, 2, inner}, a.data(), {4 * static_cast<std::int64_t>(inner), 2 * static_cast<std::int64_t>(inner), 1});
  EXPECT_EQ(written_tensor(t), expected_bytes);

  // Rows just under the staging size: the buffer fills and flushes between rows.
  const std::size_t rows = 7, cols = 50000;
  const auto b = iota_values<float>(rows * 2 * cols);
  std::vector<float> every_other;
  for (std::size_t r = 0; r < rows; ++r) every_other.insert(every_other.end(), b.begin() + 2 * r * cols, b.begin() + (2 * r + 1) * cols);
  const WriteTensor u = strided("half", Dtype::F32, {rows, cols}, b.data(), {2 * static_cast<std::int64_t>(cols), 1});
  EXPECT_EQ(written_tensor(u), byte_vector(every_other));

  const auto dir = test::test_dir();
  const std::vector<WriteTensor> both{t, u};
  write_file(dir / "rows.safetensors", both, nullptr);
  EXPECT_EQ(test::read_file_bytes(dir / "rows.safetensors"), write_bytes(both, nullptr));
}

// --- Errors ---

TEST(WriterErrors, ReservedName) {
  const Bytes d = iota_bytes(1);
  const std::vector<WriteTensor> tensors{tensor_of("__metadata__", Dtype::U8, {1}, d)};
  EXPECT_TRUE(fails_with([&] { plan_layout(tensors, nullptr); }, ErrorCode::InvalidName, {"\"__metadata__\"", "reserved"}));
}

TEST(WriterErrors, NameNotUtf8) {
  const Bytes d = iota_bytes(1);
  for (std::string bad : {std::string("bad\xff"), std::string("bad\xc0\xaf"), std::string("bad\xed\xa0\x80"), std::string("bad\xe2\x82")}) {
    const std::vector<WriteTensor> tensors{tensor_of(bad, Dtype::U8, {1}, d)};
    EXPECT_TRUE(fails_with([&] { write_bytes(tensors, nullptr); }, ErrorCode::InvalidName, {"\"bad", "UTF-8"}));
  }
}

TEST(WriterErrors, NameWithNul) {
  const Bytes d = iota_bytes(1);
  const std::vector<WriteTensor> tensors{tensor_of(std::string("a\0b", 3), Dtype::U8, {1}, d)};
  EXPECT_TRUE(fails_with([&] { write_bytes(tensors, nullptr); }, ErrorCode::InvalidName, {"\"a\\u0000b\"", "NUL"}));
}

TEST(WriterErrors, DuplicateName) {
  const Bytes d = iota_bytes(4);
  const std::vector<WriteTensor> tensors{tensor_of("w", Dtype::U8, {1}, d), tensor_of("x", Dtype::U8, {1}, d), tensor_of("w", Dtype::F32, {1}, d)};
  EXPECT_TRUE(fails_with([&] { write_bytes(tensors, nullptr); }, ErrorCode::DuplicateName, {"\"w\""}));
}

TEST(WriterErrors, InvalidMetadata) {
  const Metadata bad_key{{"ok", "1"}, {"k\xff", "v"}};
  EXPECT_TRUE(fails_with([&] { write_bytes({}, &bad_key); }, ErrorCode::InvalidMetadata, {"\"k", "key", "UTF-8"}));
  const Metadata bad_value{{"key1", "v\xc3"}};
  EXPECT_TRUE(fails_with([&] { write_bytes({}, &bad_value); }, ErrorCode::InvalidMetadata, {"\"key1\"", "value"}));
}

TEST(WriterErrors, DuplicateMetadataKey) {
  const Metadata metadata{{"k", "1"}, {"a", "x"}, {"k", "2"}};
  EXPECT_TRUE(fails_with([&] { write_bytes({}, &metadata); }, ErrorCode::DuplicateKey, {"\"k\"", "twice"}));
}

TEST(WriterErrors, StridesCountMismatch) {
  const Bytes d = iota_bytes(16);
  const WriteTensor t{"s", Dtype::F32, {2, 2}, d.data(), {4}};
  EXPECT_TRUE(fails_with([&] { plan_layout(std::span(&t, 1), nullptr); }, ErrorCode::InvalidArgument, {"\"s\"", "1 strides for 2 dimensions"}));
  const WriteTensor scalar{"s", Dtype::F32, {}, d.data(), {4}};
  EXPECT_TRUE(fails_with([&] { plan_layout(std::span(&scalar, 1), nullptr); }, ErrorCode::InvalidArgument, {"\"s\"", "1 strides for 0 dimensions"}));
}

TEST(WriterErrors, NullDataWithNonzeroSize) {
  const WriteTensor t{"n", Dtype::F64, {1}, nullptr, {}};
  EXPECT_TRUE(fails_with([&] { write_bytes(std::span(&t, 1), nullptr); }, ErrorCode::InvalidArgument, {"\"n\"", "8 bytes"}));
  const WriteTensor s{"n", Dtype::U8, {3, 1}, nullptr, {1, 1}};
  EXPECT_TRUE(fails_with([&] { write_bytes(std::span(&s, 1), nullptr); }, ErrorCode::InvalidArgument, {"\"n\"", "3 bytes"}));
}

TEST(WriterErrors, StridesOnASubByteDtype) {
  const Bytes d = iota_bytes(4);
  const WriteTensor t{"q", Dtype::F4, {2, 4}, d.data(), {4, 1}};
  EXPECT_TRUE(fails_with([&] { write_bytes(std::span(&t, 1), nullptr); }, ErrorCode::InvalidArgument, {"\"q\"", "F4", "contiguous"}));
  const WriteTensor u{"q6", Dtype::F6_E3M2, {4}, d.data(), {1}};
  EXPECT_TRUE(fails_with([&] { write_bytes(std::span(&u, 1), nullptr); }, ErrorCode::InvalidArgument, {"\"q6\"", "F6_E3M2"}));
}

TEST(WriterErrors, ShapesThatCannotBeStored) {
  const Bytes d = iota_bytes(8);
  const WriteTensor odd{"odd", Dtype::F4, {3}, d.data(), {}};
  EXPECT_TRUE(fails_with([&] { plan_layout(std::span(&odd, 1), nullptr); }, ErrorCode::SubByteNotWhole, {"\"odd\"", "3 elements", "F4"}));
  const WriteTensor six{"six", Dtype::F6_E2M3, {6}, d.data(), {}};
  EXPECT_TRUE(fails_with([&] { plan_layout(std::span(&six, 1), nullptr); }, ErrorCode::SubByteNotWhole, {"\"six\"", "6 elements"}));
  const WriteTensor count{"count", Dtype::U8, {std::uint64_t{1} << 32, std::uint64_t{1} << 32}, d.data(), {}};
  EXPECT_TRUE(fails_with([&] { plan_layout(std::span(&count, 1), nullptr); }, ErrorCode::ShapeOverflow, {"\"count\"", "element count"}));
  const WriteTensor bytes{"bytes", Dtype::F64, {std::uint64_t{1} << 61}, d.data(), {}};
  EXPECT_TRUE(fails_with([&] { plan_layout(std::span(&bytes, 1), nullptr); }, ErrorCode::ShapeOverflow, {"\"bytes\"", "byte size"}));
}

TEST(WriterErrors, WriteIntoWrongSize) {
  const Bytes d = iota_bytes(4);
  const std::vector<WriteTensor> tensors{tensor_of("w", Dtype::F32, {1}, d)};
  const Layout layout = plan_layout(tensors, nullptr);
  Bytes small(layout.file_size() - 1), large(layout.file_size() + 1);
  EXPECT_TRUE(fails_with([&] { write_into(small, layout, tensors); }, ErrorCode::InvalidArgument, {std::to_string(layout.file_size())}));
  EXPECT_TRUE(fails_with([&] { write_into(large, layout, tensors); }, ErrorCode::InvalidArgument));
  Bytes exact(layout.file_size());
  write_into(exact, layout, tensors);
  EXPECT_EQ(exact, write_bytes(tensors, nullptr));
}

TEST(WriterErrors, HeaderOverTheLimit) {
  const Metadata metadata{{"b", "1"}, {"a", "x"}};
  // The padded header of this file is 40 bytes.
  EXPECT_TRUE(fails_with([&] { plan_layout({}, &metadata, 39); }, ErrorCode::HeaderTooLarge, {"40 bytes", "39"}));
  EXPECT_EQ(plan_layout({}, &metadata, 40).header.size(), 48u);
}

// --- write_file ---

TEST(WriteFile, ReadsBackEqual) {
  const auto dir = test::test_dir();
  const Bytes w = iota_bytes(24), b = iota_bytes(3, 9);
  const std::vector<WriteTensor> tensors{tensor_of("w", Dtype::F32, {2, 3}, w), tensor_of("b", Dtype::U8, {3}, b)};
  const Metadata metadata{{"format", "np"}};
  const auto path = dir / "model.safetensors";
  write_file(path, tensors, &metadata, WriteOptions{.fsync = true});
  EXPECT_EQ(test::read_file_bytes(path), write_bytes(tensors, &metadata));
  const Reader r = Reader::open(path);
  EXPECT_EQ(r.header().metadata, metadata);
  const auto wv = r.tensor("w").bytes;
  EXPECT_EQ(Bytes(wv.begin(), wv.end()), w);
  const auto bv = r.tensor("b").bytes;
  EXPECT_EQ(Bytes(bv.begin(), bv.end()), b);
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
}

TEST(WriteFile, ManyPiecesOfEverySizeGoOutInOrder) {
  // More pieces than one writev() takes (IOV_MAX), mixing pieces sent from the tensors' memory (32 KiB and up), small
  // ones copied into the buffer between them, pieces over the buffer's size, and a strided tensor staged in pieces.
  const auto dir = test::test_dir();
  std::vector<Bytes> storage;
  std::vector<WriteTensor> tensors;
  const std::size_t sizes[] = {4, 40 << 10, 100, 32 << 10, 7, 64 << 10};
  storage.push_back(iota_bytes((1 << 20) + 3, 5));
  for (std::size_t k = 0; k < 1300; ++k) {
    const std::size_t size = sizes[k % std::size(sizes)];
    storage.push_back(iota_bytes(size, static_cast<std::uint8_t>(k)));
  }
  for (std::size_t k = 0; k < storage.size(); ++k) {
    tensors.push_back(tensor_of(std::string("t").append(std::to_string(k)), Dtype::U8, {storage[k].size()}, storage[k]));
  }
  const std::size_t n = 300;
  const auto m = iota_values<std::uint64_t>(n * n, 1);
  tensors.push_back(strided("transposed", Dtype::U64, {n, n}, m.data(), {1, static_cast<std::int64_t>(n)}));
  write_file(dir / "many.safetensors", tensors, nullptr);
  EXPECT_EQ(test::read_file_bytes(dir / "many.safetensors"), write_bytes(tensors, nullptr));
}

TEST(WriteFile, FromAPlannedLayout) {
  const auto dir = test::test_dir();
  const Bytes w = iota_bytes(8);
  const std::vector<WriteTensor> tensors{tensor_of("w", Dtype::F64, {1}, w)};
  const Metadata metadata{{"k", "v"}};
  const Layout layout = plan_layout(tensors, &metadata);
  write_file(dir / "planned.safetensors", layout, tensors);
  EXPECT_EQ(test::read_file_bytes(dir / "planned.safetensors"), write_bytes(tensors, &metadata));
}

TEST(WriteFile, ReplacesAnExistingFileAtomically) {
  const auto dir = test::test_dir();
  const auto path = dir / "model.safetensors";
  const Bytes old_data = iota_bytes(8, 1), new_data = iota_bytes(16, 2);
  const std::vector<WriteTensor> old_tensors{tensor_of("t", Dtype::U8, {8}, old_data)};
  const std::vector<WriteTensor> new_tensors{tensor_of("t", Dtype::U8, {16}, new_data)};
  write_file(path, old_tensors, nullptr);
  // A reader mapping the old file keeps seeing the old bytes: the new file is a new inode, not a rewrite in place.
  const Reader old_reader = Reader::open(path);
  write_file(path, new_tensors, nullptr);
  const auto old_view = old_reader.tensor("t").bytes;
  EXPECT_EQ(Bytes(old_view.begin(), old_view.end()), old_data);
  EXPECT_EQ(test::read_file_bytes(path), write_bytes(new_tensors, nullptr));
  const Reader new_reader = Reader::open(path);
  const auto new_view = new_reader.tensor("t").bytes;
  EXPECT_EQ(Bytes(new_view.begin(), new_view.end()), new_data);
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
}

TEST(WriteFile, InvalidInputLeavesTheTargetAlone) {
  const auto dir = test::test_dir();
  const auto path = dir / "model.safetensors";
  const Bytes original = test::to_bytes("not even a safetensors file");
  test::write_file_bytes(path, original);
  const Bytes d = iota_bytes(4);
  const std::vector<WriteTensor> tensors{tensor_of("ok", Dtype::U8, {4}, d), tensor_of("__metadata__", Dtype::U8, {4}, d)};
  EXPECT_TRUE(fails_with([&] { write_file(path, tensors, nullptr); }, ErrorCode::InvalidName, {"\"__metadata__\""}));
  EXPECT_EQ(test::read_file_bytes(path), original);
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
}

TEST(WriteFile, MissingDirectoryIsAnIoError) {
  const auto dir = test::test_dir();
  const auto path = dir / "missing" / "model.safetensors";
  const Bytes d = iota_bytes(4);
  const std::vector<WriteTensor> tensors{tensor_of("t", Dtype::U8, {4}, d)};
  const Error e = test::error_of([&] { write_file(path, tensors, nullptr); });
  EXPECT_EQ(e.code(), ErrorCode::Io);
  EXPECT_EQ(e.sys_errno(), ENOENT);
  EXPECT_EQ(e.path(), path.string());
  EXPECT_NE(std::string_view(e.what()).find(path.string()), std::string_view::npos) << e.what();
  EXPECT_NE(std::string_view(e.what()).find(std::strerror(ENOENT)), std::string_view::npos) << e.what();
  EXPECT_FALSE(std::filesystem::exists(dir / "missing"));
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
}

TEST(WriteFile, TargetThatIsADirectoryIsAnIoError) {
  const auto dir = test::test_dir();
  const auto path = dir / "model.safetensors";
  std::filesystem::create_directory(path);
  const Bytes d = iota_bytes(4);
  const std::vector<WriteTensor> tensors{tensor_of("t", Dtype::U8, {4}, d)};
  const Error e = test::error_of([&] { write_file(path, tensors, nullptr); });
  EXPECT_EQ(e.code(), ErrorCode::Io);
  EXPECT_EQ(e.sys_errno(), EISDIR);
  EXPECT_EQ(e.path(), path.string());
  EXPECT_NE(std::string_view(e.what()).find(path.string()), std::string_view::npos) << e.what();
  EXPECT_TRUE(std::filesystem::is_directory(path));
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
}

TEST(WriteFile, FailedWriteRemovesTheTemporaryFile) {
  // A file size limit makes write() fail with EFBIG part way through the data, after the temporary file exists.
  const auto dir = test::test_dir();
  const auto path = dir / "model.safetensors";
  const Bytes original = test::to_bytes("old contents");
  test::write_file_bytes(path, original);
  const Bytes big = iota_bytes(3 << 20);
  const std::vector<WriteTensor> tensors{tensor_of("big", Dtype::U8, {big.size()}, big)};

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* const previous_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = saved;
  limited.rlim_cur = 1 << 20;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  const Error e = test::error_of([&] { write_file(path, tensors, nullptr); });
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, previous_handler);

  EXPECT_EQ(e.code(), ErrorCode::Io);
  EXPECT_EQ(e.sys_errno(), EFBIG);
  // The failing write is to the temporary file, so that is the path reported.
  EXPECT_EQ(std::filesystem::path(e.path()).parent_path(), dir);
  EXPECT_TRUE(std::filesystem::path(e.path()).filename().string().starts_with(".model.safetensors.")) << e.path();
  EXPECT_NE(std::string_view(e.what()).find("cannot write"), std::string_view::npos) << e.what();
  EXPECT_NE(std::string_view(e.what()).find(dir.string()), std::string_view::npos) << e.what();
  EXPECT_EQ(test::read_file_bytes(path), original);
  EXPECT_TRUE(test::temporary_files_in(dir).empty());
}

TEST(WriteFile, EmptyFile) {
  const auto dir = test::test_dir();
  write_file(dir / "empty.safetensors", {}, nullptr);
  EXPECT_EQ(to_text(test::read_file_bytes(dir / "empty.safetensors")), le64(8) + "{}      ");
  EXPECT_TRUE(Reader::open(dir / "empty.safetensors").header().tensors.empty());
}

}  // namespace
}  // namespace safestructures
