// Tests of the memory a recording keeps apart from the allocator's heap (mapped_memory.hpp): text kept, small pieces
// reused by size class, large ones mapped each, containers served whole.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "safestructures/mapped_memory.hpp"

namespace safestructures {
namespace {

TEST(MappedMemory, KeepsTextAlignedAndApart) {
  MappedMemory memory;
  const std::string_view a = memory.keep("abc"), b = memory.keep(std::string(3 << 20, 'x')), c = memory.keep("");
  EXPECT_EQ(a, "abc");
  EXPECT_EQ(b.size(), std::size_t{3} << 20);
  EXPECT_EQ(b.find_first_not_of('x'), std::string_view::npos);
  EXPECT_EQ(c, "");
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data()) % 16, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 16, 0u);
}

TEST(MappedMemory, ReusesASmallPieceLetGoForOneOfItsClass) {
  MappedMemory memory;
  void* p = memory.allocate(40, 8);  // the class of 64 bytes
  void* q = memory.allocate(64, 16);
  EXPECT_NE(p, q);
  EXPECT_EQ(static_cast<char*>(q) - static_cast<char*>(p), 64);
  memory.deallocate(p, 40, 8);
  EXPECT_EQ(memory.allocate(33, 8), p);                            // the same class: the piece let go
  EXPECT_EQ(static_cast<char*>(memory.allocate(65, 8)) - static_cast<char*>(q), 64);  // the next class: carved after q
  void* large = memory.allocate(std::size_t{1} << 16, 16);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(large) % 4096, 0u);  // mapped of its own
  memory.deallocate(large, std::size_t{1} << 16, 16);
  EXPECT_THROW(static_cast<void>(memory.allocate(64, 64)), std::bad_alloc);
}

TEST(MappedMemory, ServesContainersThatGrowAndShrink) {
  MappedMemory memory;
  std::pmr::vector<std::uint64_t> numbers(&memory);
  std::pmr::string text(&memory);
  for (std::uint64_t k = 0; k < 100000; ++k) {
    numbers.push_back(k * k);
    text += static_cast<char>('a' + k % 26);
  }
  EXPECT_EQ(numbers[99999], std::uint64_t{99999} * 99999);
  EXPECT_EQ(text.size(), 100000u);
  EXPECT_EQ(text.substr(26, 3), "abc");
  numbers.clear();
  numbers.shrink_to_fit();
  EXPECT_EQ(numbers.capacity(), 0u);
}

}  // namespace
}  // namespace safestructures
