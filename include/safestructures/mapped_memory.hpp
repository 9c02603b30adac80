// Memory mapped apart from the allocator's heap, for what a long run keeps and regrows between a framework's own
// allocations (a recording's header: recording_writer.hpp). Allocated between the frames' tensors (a torch forward
// pass's activations, allocated and freed around every hook), a small allocation each split the holes the next
// frame's tensors needed (the process grew by some 30 KB a record), and lists and buffers regrown on the heap pinned
// its top above the holes the activations left, which it could then neither reuse for larger ones nor give back (10
// to 20 MiB more at the peak of a recorded ResNet-50).
#pragma once

#include <array>
#include <cstddef>
#include <memory_resource>
#include <string_view>
#include <vector>

namespace safestructures {

// Pieces of 64 KiB and more are mapped each and unmapped when let go; smaller ones are carved from mapped blocks of a
// megabyte (only the pages written take memory), and a piece let go is reused for one of its size class (a power of
// two). Its blocks are unmapped with it (a container lets its large pieces go before).
class MappedMemory final : public std::pmr::memory_resource {
 public:
  MappedMemory() = default;
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;
  ~MappedMemory() override;
  // `text` copied into memory kept as long as this.
  std::string_view keep(std::string_view text);

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
  // `bytes` (a multiple of 16) from the current block, or from a new one.
  char* carve(std::size_t bytes);
  struct Block {
    char* data;
    std::size_t size;
  };
  std::vector<Block> blocks_;
  char* next_ = nullptr;
  std::size_t left_ = 0;
  // The pieces let go, by size class (16 << k bytes, up to 64 KiB), each holding the next's address.
  std::array<void*, 13> free_{};
};

}  // namespace safestructures
