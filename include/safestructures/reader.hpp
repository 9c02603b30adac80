// Reading safetensors files: a private copy-on-write memory mapping, the validated header, zero-copy tensor views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "safestructures/container.hpp"

namespace safestructures {

// How a mapping's pages are read: with the kernel's readahead (a whole load touches everything), or only where they
// are touched or prefetched (lazy access: readahead would read the neighbours of every tensor a partial load needs,
// 8 MiB around each on some machines).
enum class Access { Whole, Parts };

// A whole file mapped MAP_PRIVATE with read and write access: pages are read lazily, and a write to them changes only
// this process's copy, never the file. The mapping lives as long as the object.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path, Access access = Access::Whole);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<std::byte> bytes() const { return {data_, size_}; }
  // Advice to the kernel (a failure costs speed only, so none is reported): start reading [begin, end) now, or
  // switch the whole mapping's readahead.
  void prefetch(std::uint64_t begin, std::uint64_t end) const;
  void set_access(Access access) const;
  const std::string& path() const { return path_; }
  // Lets go of the file's recording read lock (recording.hpp), which a file that is no recording does not need.
  void release_recording_lock();

 private:
  MappedFile(std::string path, std::byte* data, std::size_t size, int lock_fd)
      : path_(std::move(path)), data_(data), size_(size), lock_fd_(lock_fd) {}
  std::string path_;
  std::byte* data_;
  std::size_t size_;
  int lock_fd_;  // the file, open while it holds the recording read lock; -1 once released
};

struct TensorView {
  const TensorInfo* info;
  std::span<const std::byte> bytes;
};

// A validated safetensors file over bytes that an owner keeps alive (a mapping or a caller's buffer).
class Reader {
 public:
  static Reader open(const std::filesystem::path& path, std::uint64_t max_header_size = default_max_header_size,
                     Access access = Access::Whole);
  // `owner` keeps `bytes` alive for as long as the reader or any copy of owner() lives.
  static Reader from_buffer(std::shared_ptr<const void> owner, std::span<const std::byte> bytes, bool writable,
                            std::uint64_t max_header_size = default_max_header_size);

  const Header& header() const { return header_; }
  // The header's JSON text as the file holds it (the N bytes after the length prefix, padding included).
  std::string_view header_text() const {
    return {reinterpret_cast<const char*>(bytes_.data()) + 8, static_cast<std::size_t>(header_.header_size)};
  }
  TensorView tensor(const TensorInfo& info) const;
  // Raises ErrorCode::TensorNotFound for a name the file does not hold.
  TensorView tensor(std::string_view name) const;
  // The bytes of a tensor, writable: only for readers over a private mapping or a writable buffer.
  std::span<std::byte> mutable_bytes(const TensorInfo& info) const;
  bool writable() const { return writable_; }
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  Reader(std::shared_ptr<const void> owner, std::span<const std::byte> bytes, bool writable, Header header)
      : owner_(std::move(owner)), bytes_(bytes), writable_(writable), header_(std::move(header)) {}
  std::shared_ptr<const void> owner_;
  std::span<const std::byte> bytes_;
  bool writable_;
  Header header_;
};

}  // namespace safestructures
