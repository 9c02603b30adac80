// The hashes of hash tables keyed by what a file or the data chooses (tensor names, keys, reference ids, node
// positions): keyed by a seed drawn once per process, so that no file can pick keys that all land in one bucket.
//
// std::hash serves none of them. libstdc++ hashes a string with MurmurHash under a fixed seed, whose full collisions
// are computed (not searched for) in microseconds each: 40,000 tensor names of one hash make a 2 MB file that takes
// 7 s to open, quadratic in the count, hours at the header's limit. It hashes an integer as itself, so keys picked as
// multiples of a table's bucket count share a bucket. Strings take SipHash-1-3 (Python's str hash and Rust's
// HashMap's), a keyed function no file can aim at without the key; integers a seeded bijective mixer, which needs no
// more: two different integers never share a hash, and which buckets they share depends on the seed.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

namespace safestructures {

struct HashSeed {
  std::uint64_t k0;
  std::uint64_t k1;
};

// Drawn from the system's random device at first use; the same for every table of the process.
inline const HashSeed& process_hash_seed() {
  static const HashSeed seed = [] {
    std::random_device device;
    const auto draw = [&] { return (static_cast<std::uint64_t>(device()) << 32) ^ device(); };
    const std::uint64_t k0 = draw();
    return HashSeed{k0 ^ reinterpret_cast<std::uintptr_t>(&device), draw()};
  }();
  return seed;
}

// SipHash-c-d (Aumasson and Bernstein, 2012) of `size` bytes at `data` under the key (k0, k1): c compression rounds
// per 8-byte word, d finalization rounds. Tables use SipHash-1-3; the tests check SipHash-2-4 against the paper.
template <int C, int D>
std::uint64_t siphash(const void* data, std::size_t size, std::uint64_t k0, std::uint64_t k1) noexcept {
  std::uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
  std::uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
  std::uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
  std::uint64_t v3 = k1 ^ 0x7465646279746573ULL;
  const auto round = [&] {
    v0 += v1;
    v1 = std::rotl(v1, 13) ^ v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16) ^ v2;
    v0 += v3;
    v3 = std::rotl(v3, 21) ^ v0;
    v2 += v1;
    v1 = std::rotl(v1, 17) ^ v2;
    v2 = std::rotl(v2, 32);
  };
  const auto absorb = [&](std::uint64_t word, int rounds) {
    v3 ^= word;
    for (int r = 0; r < rounds; ++r) round();
    v0 ^= word;
  };
  static_assert(std::endian::native == std::endian::little, "words are read little-endian, as SipHash defines them");
  const auto* bytes = static_cast<const unsigned char*>(data);
  const std::size_t whole = size & ~std::size_t{7};
  for (std::size_t k = 0; k < whole; k += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes + k, 8);
    absorb(word, C);
  }
  std::uint64_t last = static_cast<std::uint64_t>(size) << 56;
  for (std::size_t k = whole; k < size; ++k) last |= static_cast<std::uint64_t>(bytes[k]) << (8 * (k - whole));
  absorb(last, C);
  v2 ^= 0xff;
  for (int r = 0; r < D; ++r) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

// For std::string and std::string_view keys; transparent, so a table of std::string is searched by a view.
struct SeededStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const noexcept {
    const HashSeed& seed = process_hash_seed();
    return static_cast<std::size_t>(siphash<1, 3>(text.data(), text.size(), seed.k0, seed.k1));
  }
};

// For integer keys: the key mixed with the seed by splitmix64's finalizer, a bijection.
struct SeededIntHash {
  std::size_t operator()(std::uint64_t x) const noexcept {
    x ^= process_hash_seed().k1;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::size_t>(x ^ (x >> 31));
  }
};

}  // namespace safestructures
