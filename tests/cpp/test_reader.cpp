// Tests of Reader: views over a private mapping or a caller's buffer, and the errors of opening files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/error.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/writer.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;
using test::fails_with;
using test::iota_bytes;
using test::tensor_of;

Bytes copy(std::span<const std::byte> bytes) { return Bytes(bytes.begin(), bytes.end()); }

// The source buffers of a small file: several dtypes, a scalar and a zero-size tensor.
struct Sample {
  Bytes w = iota_bytes(24, 1);
  Bytes b = iota_bytes(3, 90);
  Bytes s = iota_bytes(8, 200);
  std::vector<WriteTensor> tensors() const {
    return {tensor_of("w", Dtype::F32, {2, 3}, w), tensor_of("b", Dtype::BOOL, {3}, b), tensor_of("s", Dtype::F64, {}, s),
            tensor_of("e", Dtype::I16, {0, 5}, {})};
  }
};

TEST(Reader, OpenGivesTheWrittenBytes) {
  const auto dir = test::test_dir();
  const auto path = dir / "sample.safetensors";
  const Sample sample;
  const Metadata metadata{{"k", "v"}};
  write_file(path, sample.tensors(), &metadata);

  const Reader r = Reader::open(path);
  EXPECT_TRUE(r.writable());
  EXPECT_EQ(r.header().tensors.size(), 4u);
  EXPECT_EQ(r.header().metadata, metadata);
  EXPECT_EQ(copy(r.tensor("w").bytes), sample.w);
  EXPECT_EQ(copy(r.tensor("b").bytes), sample.b);
  EXPECT_EQ(copy(r.tensor("s").bytes), sample.s);
  EXPECT_TRUE(r.tensor("e").bytes.empty());
  const TensorView w = r.tensor("w");
  EXPECT_EQ(w.info, r.header().find("w"));
  EXPECT_EQ(w.info->dtype, Dtype::F32);
  EXPECT_EQ(w.info->shape, (std::vector<std::uint64_t>{2, 3}));
  // The overload taking the entry gives the same view.
  EXPECT_EQ(r.tensor(*r.header().find("b")).bytes.data(), r.tensor("b").bytes.data());
}

TEST(Reader, ViewsOutliveTheReaderThroughItsOwner) {
  const auto dir = test::test_dir();
  const auto path = dir / "sample.safetensors";
  const Sample sample;
  write_file(path, sample.tensors(), nullptr);
  std::shared_ptr<const void> owner;
  std::span<const std::byte> view;
  {
    const Reader r = Reader::open(path);
    owner = r.owner();
    view = r.tensor("w").bytes;
  }
  // The mapping is still alive because owner holds it.
  EXPECT_EQ(copy(view), sample.w);
}

TEST(Reader, MutableBytesDoNotReachTheFile) {
  const auto dir = test::test_dir();
  const auto path = dir / "sample.safetensors";
  const Sample sample;
  write_file(path, sample.tensors(), nullptr);
  const Bytes on_disk = test::read_file_bytes(path);

  const Reader r = Reader::open(path);
  const auto w = r.mutable_bytes(*r.header().find("w"));
  ASSERT_EQ(w.size(), sample.w.size());
  for (auto& byte : w) byte = std::byte{0xee};
  // The process sees its write, through every view of the mapping.
  EXPECT_EQ(copy(r.tensor("w").bytes), Bytes(24, std::byte{0xee}));

  EXPECT_EQ(test::read_file_bytes(path), on_disk);
  const Reader again = Reader::open(path);
  EXPECT_EQ(copy(again.tensor("w").bytes), sample.w);
}

TEST(Reader, MissingTensor) {
  const auto dir = test::test_dir();
  const auto path = dir / "sample.safetensors";
  write_file(path, Sample{}.tensors(), nullptr);
  const Reader r = Reader::open(path);
  EXPECT_TRUE(fails_with([&] { r.tensor("nope"); }, ErrorCode::TensorNotFound, {"\"nope\""}));
  EXPECT_TRUE(fails_with([&] { r.tensor("W"); }, ErrorCode::TensorNotFound, {"\"W\""}));
  EXPECT_TRUE(fails_with([&] { r.tensor(""); }, ErrorCode::TensorNotFound, {"\"\""}));
}

TEST(Reader, MissingFile) {
  const auto dir = test::test_dir();
  const auto path = dir / "absent.safetensors";
  const Error e = test::error_of([&] { Reader::open(path); });
  EXPECT_EQ(e.code(), ErrorCode::Io);
  EXPECT_EQ(e.sys_errno(), ENOENT);
  EXPECT_EQ(e.path(), path.string());
  EXPECT_NE(std::string_view(e.what()).find(path.string()), std::string_view::npos) << e.what();
  EXPECT_NE(std::string_view(e.what()).find(std::strerror(ENOENT)), std::string_view::npos) << e.what();
}

TEST(Reader, AFifoIsRefusedWithoutWaitingForAWriter) {
  const auto dir = test::test_dir();
  const auto path = dir / "pipe.safetensors";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  EXPECT_TRUE(fails_with([&] { Reader::open(path); }, ErrorCode::NotARegularFile, {path.string() + ": ", "a FIFO, not a regular file"}));
  // A link to a regular file is read through.
  const auto target = dir / "real.safetensors";
  const auto link = dir / "link.safetensors";
  write_file(target, {}, nullptr);
  std::filesystem::create_symlink(target, link);
  EXPECT_TRUE(Reader::open(link).header().tensors.empty());
}

TEST(Reader, EmptyFileIsTooSmall) {
  const auto dir = test::test_dir();
  const auto path = dir / "empty.safetensors";
  test::write_file_bytes(path, {});
  EXPECT_TRUE(fails_with([&] { Reader::open(path); }, ErrorCode::FileTooSmall, {path.string() + ": ", "0 bytes"}));
}

TEST(Reader, ShortFileIsTooSmall) {
  const auto dir = test::test_dir();
  const auto path = dir / "short.safetensors";
  test::write_file_bytes(path, iota_bytes(7));
  EXPECT_TRUE(fails_with([&] { Reader::open(path); }, ErrorCode::FileTooSmall, {path.string() + ": ", "7 bytes"}));
}

TEST(Reader, DirectoryIsAnIoError) {
  const auto dir = test::test_dir();
  const Error e = test::error_of([&] { Reader::open(dir); });
  EXPECT_EQ(e.code(), ErrorCode::Io);
  EXPECT_EQ(e.sys_errno(), EISDIR);
  EXPECT_EQ(e.path(), dir.string());
  EXPECT_NE(std::string_view(e.what()).find(dir.string()), std::string_view::npos) << e.what();
}

TEST(Reader, ValidationErrorsArePrefixedWithThePath) {
  const auto dir = test::test_dir();
  const auto path = dir / "bad.safetensors";
  test::write_file_bytes(path, test::make_file(std::string("{").append(test::entry("w", "F32", "[2]", 0, 4)).append("}"), 4));
  const Error e = test::error_of([&] { Reader::open(path); });
  EXPECT_EQ(e.code(), ErrorCode::SizeMismatch);
  EXPECT_EQ(e.sys_errno(), 0);
  const std::string_view message = e.what();
  EXPECT_TRUE(message.starts_with(path.string() + ": ")) << message;
  EXPECT_NE(message.find("tensor \"w\""), std::string_view::npos) << message;
}

TEST(Reader, CustomHeaderLimit) {
  const auto dir = test::test_dir();
  const auto path = dir / "sample.safetensors";
  write_file(path, Sample{}.tensors(), nullptr);
  const std::uint64_t n = Reader::open(path).header().header_size;
  EXPECT_TRUE(fails_with([&] { Reader::open(path, n - 1); }, ErrorCode::HeaderTooLarge, {path.string() + ": ", std::to_string(n)}));
  EXPECT_EQ(Reader::open(path, n).header().header_size, n);
}

TEST(Reader, FromBufferOverAVector) {
  const Sample sample;
  auto buffer = std::make_shared<Bytes>(write_bytes(sample.tensors(), nullptr));
  const std::span<const std::byte> bytes(*buffer);
  const Reader r = Reader::from_buffer(buffer, bytes, /*writable=*/true);
  EXPECT_EQ(copy(r.tensor("w").bytes), sample.w);
  EXPECT_EQ(copy(r.tensor("s").bytes), sample.s);
  // Views point into the caller's buffer, not a copy.
  EXPECT_GE(r.tensor("w").bytes.data(), buffer->data());
  EXPECT_LT(r.tensor("w").bytes.data(), buffer->data() + buffer->size());

  const auto b = r.mutable_bytes(*r.header().find("b"));
  b[0] = std::byte{0x7f};
  EXPECT_EQ((*buffer)[r.header().data_offset() + r.header().find("b")->begin], std::byte{0x7f});
  EXPECT_EQ(r.owner().get(), buffer.get());
}

TEST(Reader, ReadOnlyBufferRefusesMutableBytes) {
  const Sample sample;
  auto buffer = std::make_shared<const Bytes>(write_bytes(sample.tensors(), nullptr));
  const Reader r = Reader::from_buffer(buffer, *buffer, /*writable=*/false);
  EXPECT_FALSE(r.writable());
  EXPECT_EQ(copy(r.tensor("b").bytes), sample.b);
  EXPECT_TRUE(fails_with([&] { r.mutable_bytes(*r.header().find("b")); }, ErrorCode::InvalidArgument, {"read-only"}));
}

TEST(Reader, FromBufferValidates) {
  auto buffer = std::make_shared<Bytes>(test::make_file("{}", 2));
  EXPECT_TRUE(fails_with([&] { Reader::from_buffer(buffer, *buffer, false); }, ErrorCode::TrailingBytes, {"2 bytes"}));
  auto small = std::make_shared<Bytes>(3);
  EXPECT_TRUE(fails_with([&] { Reader::from_buffer(small, *small, false); }, ErrorCode::FileTooSmall));
}

TEST(Reader, FileWrittenByTheReferenceLayoutOpens) {
  // A file built by hand the way the reference writes it, with a scalar, a zero-size tensor and metadata.
  const auto dir = test::test_dir();
  const auto path = dir / "hand.safetensors";
  const std::string json = R"({"__metadata__":{"format":"pt"},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                           R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"u":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})";
  std::string padded = json;
  padded.append((8 - (padded.size() % 8)) % 8, ' ');
  test::write_file_bytes(path, test::make_file(padded, 6));
  const Reader r = Reader::open(path);
  EXPECT_EQ(r.header().header_size, padded.size());
  EXPECT_EQ(copy(r.tensor("s").bytes), iota_bytes(4));
  EXPECT_EQ(copy(r.tensor("u").bytes), iota_bytes(2, 4));
  EXPECT_TRUE(r.tensor("e").bytes.empty());
  EXPECT_EQ(*r.header().find_metadata("format"), "pt");
}

}  // namespace
}  // namespace safestructures
