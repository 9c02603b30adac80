// Tests of the seeded hashes (seeded_hash.hpp): SipHash against published values, and keys that std::hash puts all in
// one bucket spread out by the seeded hash, in the tables that hold a file's names.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/seeded_hash.hpp"

namespace safestructures {
namespace {

std::string bytes_from_zero(std::size_t n) {
  std::string out;
  for (std::size_t k = 0; k < n; ++k) out += static_cast<char>(k);
  return out;
}

TEST(SeededHash, SipHash24MatchesThePapersVectors) {
  // Key 00 01 .. 0f; the reference implementation's vectors for the messages 00 01 .. (n-1).
  const std::string key = bytes_from_zero(16);
  std::uint64_t k0, k1;
  std::memcpy(&k0, key.data(), 8);
  std::memcpy(&k1, key.data() + 8, 8);
  EXPECT_EQ((siphash<2, 4>("", 0, k0, k1)), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ((siphash<2, 4>(bytes_from_zero(8).data(), 8, k0, k1)), 0x93f5f5799a932462ULL);
  EXPECT_EQ((siphash<2, 4>(bytes_from_zero(15).data(), 15, k0, k1)), 0xa129ca6149be45e5ULL);  // the paper's appendix
}

TEST(SeededHash, SipHash13MatchesPythonsBytesHashUnderTheZeroKey) {
  // CPython 3.11 hashes bytes with SipHash-1-3; PYTHONHASHSEED=0 makes its key zero: hash(b"a") % 2**64 and so on.
  EXPECT_EQ((siphash<1, 3>("a", 1, 0, 0)), 0x407448d2b89b1813ULL);
  EXPECT_EQ((siphash<1, 3>("abcdefgh", 8, 0, 0)), 0x3f7b849c0b8e35eaULL);
  EXPECT_EQ((siphash<1, 3>("tensor name 0123456789", 22, 0, 0)), 0xedc1d9bf38d45743ULL);
  EXPECT_EQ((siphash<1, 3>("model.layers.0.weight", 21, 0, 0)), 0x0cc30a428d434e57ULL);
}

// libstdc++'s string hash (MurmurHash-like, fixed seed 0xc70f6907): each 8-byte word w goes in as
// h = (h ^ mix(w)) * m, and mix is a bijection, so the last word that brings h to any value is computed, not searched.
// Names of 24 bytes whose std::hash are all `target`.
std::vector<std::string> std_hash_collisions(std::size_t count, std::uint64_t target) {
  const std::uint64_t m = (std::uint64_t{0xc6a4a793} << 32) + 0x5bd1e995;
  std::uint64_t m_inverse = m;  // Newton's iteration: each step doubles the bits of m * m_inverse that are right
  for (int k = 0; k < 6; ++k) m_inverse *= 2 - m * m_inverse;
  const auto shift_mix = [](std::uint64_t v) { return v ^ (v >> 47); };
  const auto mix = [&](std::uint64_t w) { return shift_mix(w * m) * m; };
  const auto unmix = [&](std::uint64_t v) { return shift_mix(v * m_inverse) * m_inverse; };
  std::vector<std::string> out;
  for (std::uint64_t n = 0; n < count; ++n) {
    std::string name = "tensor.n" + std::string(8, 'a');
    for (int k = 0; k < 8; ++k) name[8 + k] = static_cast<char>('a' + (n >> (4 * k) & 15));
    std::uint64_t h = 0xc70f6907ULL ^ (24 * m);
    for (int word = 0; word < 2; ++word) {
      std::uint64_t w;
      std::memcpy(&w, name.data() + 8 * word, 8);
      h = (h ^ mix(w)) * m;
    }
    // The last word: the h that the final shift_mix(shift_mix(h) * m) turns into target.
    const std::uint64_t before_final = shift_mix(shift_mix(target) * m_inverse);
    const std::uint64_t last = unmix((before_final * m_inverse) ^ h);
    name.append(reinterpret_cast<const char*>(&last), 8);
    out.push_back(name);
  }
  return out;
}

TEST(SeededHash, NamesOfOneStdHashSpreadOut) {
  const std::vector<std::string> names = std_hash_collisions(2000, 0x123456789abcdef);
  std::unordered_set<std::size_t> std_hashes, seeded;
  for (const std::string& name : names) {
    std_hashes.insert(std::hash<std::string_view>{}(name));
    seeded.insert(SeededStringHash{}(name));
  }
  ASSERT_EQ(std_hashes.size(), 1u);  // the attack's names: one hash for all
  EXPECT_EQ(seeded.size(), names.size());
  // The header's index of 2,000 such names: no bucket holds more than a few.
  Header header;
  for (std::size_t k = 0; k < names.size(); ++k) header.index.emplace(names[k], k);
  std::size_t fullest = 0;
  for (std::size_t b = 0; b < header.index.bucket_count(); ++b) fullest = std::max(fullest, header.index.bucket_size(b));
  EXPECT_LE(fullest, 12u);
}

TEST(SeededHash, IntegersOfOneBucketSpreadOut) {
  // Multiples of a bucket count share a bucket under std::hash (the integer itself).
  std::unordered_set<std::size_t, SeededIntHash> table;
  table.reserve(4096);
  const std::size_t buckets = table.bucket_count();
  for (std::size_t k = 0; k < 4096; ++k) table.insert(k * buckets);
  std::size_t fullest = 0;
  for (std::size_t b = 0; b < table.bucket_count(); ++b) fullest = std::max(fullest, table.bucket_size(b));
  EXPECT_LE(fullest, 12u);
}

}  // namespace
}  // namespace safestructures
