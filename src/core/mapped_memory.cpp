// Memory mapped apart from the allocator's heap (mapped_memory.hpp): blocks carved into pieces by size class, and
// large pieces mapped each.
#include "safestructures/mapped_memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <new>

namespace safestructures {
namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t mapped_block = std::size_t{1} << 20;
// Pieces from this size up are mapped each.
constexpr std::size_t mapped_piece = std::size_t{64} << 10;

void* map_pages(std::size_t bytes) {
  void* mapped = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  return mapped;
}

std::size_t whole_pages(std::size_t bytes) { return (bytes + page - 1) / page * page; }

// The size class of a small piece: k for pieces of up to 16 << k bytes.
std::size_t size_class(std::size_t bytes) { return static_cast<std::size_t>(std::bit_width((std::max<std::size_t>(bytes, 16) - 1) >> 4)); }

}  // namespace

MappedMemory::~MappedMemory() {
  for (const Block& block : blocks_) {
    if (block.data != nullptr) ::munmap(block.data, block.size);
  }
}

char* MappedMemory::carve(std::size_t bytes) {
  if (bytes > left_) {
    blocks_.push_back({nullptr, std::max(whole_pages(bytes), mapped_block)});  // listed first: a mapping is never lost
    blocks_.back().data = static_cast<char*>(map_pages(blocks_.back().size));
    next_ = blocks_.back().data;
    left_ = blocks_.back().size;
  }
  char* piece = next_;
  next_ += bytes;
  left_ -= bytes;
  return piece;
}

std::string_view MappedMemory::keep(std::string_view text) {
  char* kept = carve((text.size() + 15) / 16 * 16);
  std::copy(text.begin(), text.end(), kept);
  return {kept, text.size()};
}

void* MappedMemory::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (alignment > 16) throw std::bad_alloc();  // (pieces are aligned to 16; the containers served ask for no more)
  if (bytes >= mapped_piece) return map_pages(whole_pages(bytes));
  const std::size_t k = size_class(bytes);
  if (void* piece = free_[k]) {
    free_[k] = *static_cast<void**>(piece);
    return piece;
  }
  return carve(std::size_t{16} << k);
}

void MappedMemory::do_deallocate(void* p, std::size_t bytes, std::size_t) {
  if (bytes >= mapped_piece) {
    ::munmap(p, whole_pages(bytes));
    return;
  }
  const std::size_t k = size_class(bytes);
  *static_cast<void**>(p) = free_[k];
  free_[k] = p;
}

}  // namespace safestructures
