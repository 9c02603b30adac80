// Tests of the checksums: digests written as the bytes stream out (contiguous, strided, large), read back, verified,
// and every damage found: a flipped byte in each tensor, a changed value in the header, a malformed entry.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "safestructures/checksum.hpp"
#include "safestructures/file.hpp"
#include "safestructures/format.hpp"
#include "safestructures/value.hpp"
#include "safestructures/writer.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;
using test::fails_with;
using test::iota_bytes;
using test::tensor_of;

TEST(Checksum, DigestsAreXxh3InSixteenHexDigits) {
  // XXH3-64 of the empty input and of "abc", as the reference implementation gives them.
  EXPECT_EQ(digest_hex(hash_bytes({})), "2d06800538d394c2");
  const Bytes abc = test::to_bytes("abc");
  EXPECT_EQ(digest_hex(hash_bytes(abc)), "78af5f94892f3950");
  EXPECT_EQ(digest_hex(0x1f), "000000000000001f");
  StreamHash pieces;
  pieces.update(abc.data(), 1);
  pieces.update(abc.data() + 1, 2);
  EXPECT_EQ(pieces.digest(), hash_bytes(abc));
}

struct Written {
  Bytes a = iota_bytes(24), b = iota_bytes(6, 7);
  std::vector<WriteTensor> tensors{tensor_of("a", Dtype::F32, {2, 3}, a), tensor_of("b", Dtype::U8, {6}, b)};
  Metadata metadata{{"run", "r1"}};
  Bytes file = write_bytes(tensors, &metadata, true);
};

TEST(Checksum, EachTensorsDigestIsTheHashOfItsBytes) {
  const Written w;
  const Reader reader = test::reader_of(w.file);
  const Header& header = reader.header();
  const std::optional<Checksums> sums = read_checksums(header);
  ASSERT_TRUE(sums.has_value());
  ASSERT_EQ(sums->tensors.size(), 2u);
  EXPECT_EQ(sums->tensors[header.position("a")], hash_bytes(w.a));
  EXPECT_EQ(sums->tensors[header.position("b")], hash_bytes(w.b));
  const auto span = checksums_entry_span(reader.header_text());
  ASSERT_TRUE(span.has_value());
  // The entry's content, between its quotes: JSON escaped as a string's content.
  const std::string_view opening = R"({\"algorithm\":\"xxh3-64)";
  EXPECT_EQ(reader.header_text().substr(span->first, opening.size()), opening);
  EXPECT_EQ(reader.header_text()[span->second], '"');
  EXPECT_EQ(sums->header, header_digest(reader.header_text(), span->first, span->second));
  const VerifyReport report = verify_file(reader);
  EXPECT_TRUE(report.has_checksums);
  EXPECT_TRUE(report.mismatches.empty());
  // The caller's metadata is unchanged beside the entry; the layout stays the reference one without checksums.
  EXPECT_EQ(*header.find_metadata("run"), "r1");
  EXPECT_EQ(write_bytes(w.tensors, &w.metadata, false).size() < w.file.size(), true);
}

TEST(Checksum, AFlippedByteInEachTensorIsFoundAndNamed) {
  const Written w;
  const Header header = test::reader_of(w.file).header();
  for (const TensorInfo& t : header.tensors) {
    for (std::uint64_t at : {t.begin, t.end - 1}) {
      Bytes damaged = w.file;
      damaged[header.data_offset() + at] ^= std::byte{0x01};
      const VerifyReport report = verify_file(test::reader_of(damaged));
      ASSERT_EQ(report.mismatches.size(), 1u) << t.name;
      EXPECT_NE(report.mismatches[0].find("tensor \"" + t.name + "\" does not match its checksum"), std::string::npos) << report.mismatches[0];
      const Reader reader = test::reader_of(damaged);
      const TensorInfo& info = reader.header().tensors[static_cast<std::size_t>(&t - header.tensors.data())];
      EXPECT_TRUE(fails_with([&] { verify_tensor(reader, info, *read_checksums(reader.header())); }, ErrorCode::ChecksumMismatch, {t.name}));
    }
  }
}

TEST(Checksum, AChangedValueInTheHeaderIsFound) {
  const Written w;
  std::string text = test::to_text(w.file);
  // Same length: the layout stays valid, only the content changed.
  text.replace(text.find("\"r1\""), 4, "\"r2\"");
  const VerifyReport report = verify_file(test::reader_of(test::to_bytes(text)));
  ASSERT_EQ(report.mismatches.size(), 1u);
  EXPECT_NE(report.mismatches[0].find("the structure does not match its checksum"), std::string::npos);
  // A shape changed to another of the same size.
  std::string reshaped = test::to_text(w.file);
  reshaped.replace(reshaped.find("[2,3]"), 5, "[3,2]");
  EXPECT_EQ(verify_file(test::reader_of(test::to_bytes(reshaped))).mismatches.size(), 1u);
}

TEST(Checksum, StridedAndLargeTensorsHashTheirBytesInFileOrder) {
  // A transposed 2x3 view of a 3x2 buffer, and a tensor over the size hashed on a second thread.
  const std::vector<float> base{0, 1, 2, 3, 4, 5};
  WriteTensor strided{"t", Dtype::F32, {2, 3}, reinterpret_cast<const std::byte*>(base.data()), {4, 8}};
  const Bytes large = iota_bytes(9 << 20);
  std::vector<WriteTensor> tensors{strided, tensor_of("large", Dtype::U8, {large.size()}, large)};
  const auto path = test::test_dir() / "f.safetensors";
  WriteOptions options;
  options.checksums = true;
  write_file(path, tensors, nullptr, options);
  const Reader reader = Reader::open(path);
  const std::vector<float> transposed{0, 2, 4, 1, 3, 5};
  const auto sums = read_checksums(reader.header());
  ASSERT_TRUE(sums.has_value());
  EXPECT_EQ(sums->tensors[reader.header().position("t")],
            hash_bytes({reinterpret_cast<const std::byte*>(transposed.data()), transposed.size() * 4}));
  EXPECT_EQ(sums->tensors[reader.header().position("large")], hash_bytes(large));
  EXPECT_TRUE(verify_file(reader).mismatches.empty());
}

TEST(Checksum, FilesWithoutChecksumsReportNone) {
  const Written w;
  const Bytes plain = write_bytes(w.tensors, &w.metadata);
  EXPECT_FALSE(read_checksums(test::reader_of(plain).header()).has_value());
  const VerifyReport report = verify_file(test::reader_of(plain));
  EXPECT_FALSE(report.has_checksums);
  EXPECT_TRUE(report.mismatches.empty());
}

TEST(Checksum, TheKeyIsReservedInTheCallersMetadata) {
  const Written w;
  const Metadata reserved{{std::string(checksums_metadata_key), "{}"}};
  EXPECT_TRUE(fails_with([&] { write_bytes(w.tensors, &reserved, true); }, ErrorCode::InvalidMetadata, {"reserved"}));
  // Without checksums of its own, the writer copies the key as any other: a file rewritten keeps its checksums.
  const Bytes copied = write_bytes(w.tensors, &reserved, false);
  EXPECT_EQ(*test::reader_of(copied).header().find_metadata(checksums_metadata_key), "{}");
  EXPECT_TRUE(fails_with([&] { save_bytes(Value::list(), reserved); }, ErrorCode::InvalidMetadata, {"reserved"}));
}

// A file whose checksums entry is `entry` (the header otherwise as written).
Bytes with_entry(const std::string& entry) {
  const Bytes data = iota_bytes(4);
  const std::string json = "{\"__metadata__\":{\"" + std::string(checksums_metadata_key) + "\":" + entry +
                           "},\"x\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
  return test::make_file(json, data);
}

TEST(Checksum, MalformedEntriesAreRefused) {
  const std::string ok = "0123456789abcdef";
  const std::vector<std::pair<std::string, std::string>> cases{
      {"\"not json\"", "the checksums entry \"__safestructures_checksums__\" is not valid JSON"},
      // The parser's own words, naming the entry: a key twice once its escapes are decoded, its limits.
      {"\"{\\\"algorithm\\\":\\\"xxh3-64\\\",\\\"header\\\":\\\"" + ok + "\\\",\\\"tensors\\\":{\\\"x\\\":\\\"" + ok +
           "\\\",\\\"\\\\u0078\\\":\\\"" + ok + "\\\"}}\"",
       "the checksums entry \"__safestructures_checksums__\"'s JSON object at $[\"tensors\"] holds the key \"x\" twice"},
      {"\"{\\\"tensors\\\":" + std::string(20, '[') + std::string(20, ']') + "}\"", "the checksums entry \"__safestructures_checksums__\" nests deeper than 8 JSON levels"},
      {"\"[1]\"", "not a JSON object"},
      {"\"{\\\"algorithm\\\":\\\"md5\\\",\\\"header\\\":\\\"" + ok + "\\\",\\\"tensors\\\":{}}\"", "xxh3-64"},
      {"\"{\\\"algorithm\\\":\\\"xxh3-64\\\",\\\"tensors\\\":{}}\"", "header's digest"},
      {"\"{\\\"algorithm\\\":\\\"xxh3-64\\\",\\\"header\\\":\\\"" + ok + "\\\"}\"", "\"tensors\" of digests"},
      {"\"{\\\"algorithm\\\":\\\"xxh3-64\\\",\\\"header\\\":\\\"0123\\\",\\\"tensors\\\":{}}\"", "malformed digest for the header"},
      {"\"{\\\"algorithm\\\":\\\"xxh3-64\\\",\\\"header\\\":\\\"" + ok + "\\\",\\\"tensors\\\":{}}\"", "no digest for tensor \"x\""},
      {"\"{\\\"algorithm\\\":\\\"xxh3-64\\\",\\\"header\\\":\\\"" + ok + "\\\",\\\"tensors\\\":{\\\"x\\\":\\\"" + ok +
           "\\\",\\\"y\\\":\\\"" + ok + "\\\"}}\"",
       "tensor \"y\", which the file lacks"},
      {"\"{\\\"algorithm\\\":\\\"xxh3-64\\\",\\\"header\\\":\\\"" + ok + "\\\",\\\"tensors\\\":{\\\"x\\\":{\\\"a\\\":1}}}\"",
       "malformed digest for tensor \"x\""},
      {"\"{\\\"algorithm\\\":\\\"xxh3-64\\\",\\\"header\\\":\\\"" + ok + "\\\",\\\"tensors\\\":{\\\"x\\\":\\\"0123456789ABCDEF\\\"}}\"",
       "malformed digest for tensor \"x\""},
  };
  for (const auto& [entry, why] : cases) {
    const Bytes file = with_entry(entry);
    EXPECT_TRUE(fails_with([&] { verify_file(test::reader_of(file)); }, ErrorCode::ChecksumsInvalid, {why})) << entry;
  }
}

TEST(Checksum, ValueApiSavesThemByDefaultAndFileVerifies) {
  const Bytes data = iota_bytes(8);
  const Value root = Value::dict().set("w", Value::tensor(Dtype::U8, {8}, data));
  File file = File::from_bytes(save_bytes(root));
  const VerifyReport report = file.verify();
  EXPECT_TRUE(report.has_checksums);
  EXPECT_TRUE(report.mismatches.empty());
  EXPECT_TRUE(file.metadata().empty());  // the entry is not the caller's metadata
  SaveOptions off;
  off.checksums = false;
  EXPECT_FALSE(File::from_bytes(save_bytes(root, {}, off)).verify().has_checksums);
}

}  // namespace
}  // namespace safestructures
