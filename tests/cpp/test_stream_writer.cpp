// Tests of write_stream: a file written once, in order, in chunks of at most stream_chunk_size, byte for byte the file
// write_bytes makes (checksums filled in by a first pass over the tensors), strided and large tensors included.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "safestructures/writer.hpp"
#include "test_util.hpp"

namespace safestructures {
namespace {

using test::Bytes;
using test::iota_bytes;
using test::tensor_of;

struct Streamed {
  Bytes bytes;
  std::vector<std::size_t> chunks;
};

Streamed stream(std::span<const WriteTensor> tensors, const Metadata* metadata, bool checksums) {
  Streamed out;
  const Layout layout = plan_layout(tensors, metadata, default_max_header_size, {}, checksums);
  write_stream(layout, tensors, [&](const std::byte* data, std::size_t size) {
    out.chunks.push_back(size);
    out.bytes.insert(out.bytes.end(), data, data + size);
  });
  return out;
}

TEST(StreamWriter, WritesTheBytesWriteBytesMakesInBoundedChunks) {
  const Bytes small = iota_bytes(24), large = iota_bytes((3u << 20) + 5, 3);
  std::vector<std::int32_t> grid(48);
  for (std::size_t i = 0; i < grid.size(); ++i) grid[i] = static_cast<std::int32_t>(i * 7);
  // Every other column of a 6 x 8 grid: gathered (and hashed) as it is written.
  const WriteTensor strided{"strided", Dtype::I32, {6, 4}, reinterpret_cast<const std::byte*>(grid.data()), {32, 8}};
  const std::vector<WriteTensor> tensors{tensor_of("small", Dtype::F32, {2, 3}, small),
                                         tensor_of("large", Dtype::U8, {large.size()}, large), strided};
  const Metadata metadata{{"run", "r1"}};
  for (const bool checksums : {true, false}) {
    const Streamed out = stream(tensors, &metadata, checksums);
    EXPECT_EQ(out.bytes, write_bytes(tensors, &metadata, checksums)) << "checksums " << checksums;
    for (const std::size_t size : out.chunks) {
      EXPECT_GT(size, 0u);
      EXPECT_LE(size, stream_chunk_size);
    }
    EXPECT_GE(out.chunks.size(), 4u);  // the large tensor alone is more than three chunks
  }
}

TEST(StreamWriter, AnErrorFromTheReceiverStopsTheWrite) {
  const Bytes a = iota_bytes(16);
  const std::vector<WriteTensor> tensors{tensor_of("a", Dtype::U8, {16}, a)};
  const Layout layout = plan_layout(tensors, nullptr, default_max_header_size, {}, true);
  int calls = 0;
  EXPECT_THROW(write_stream(layout, tensors, [&](const std::byte*, std::size_t) {
    ++calls;
    throw std::runtime_error("the pipe closed");
  }), std::runtime_error);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace safestructures
