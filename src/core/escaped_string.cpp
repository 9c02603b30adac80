// Unescaping the schema's string in a header 64 bytes at a time (AVX-512 VBMI2 compresses the escaping backslashes
// out of each block, or SSSE3 each 8 bytes by a table's shuffle), where the ordinary JSON parser stops at every escape:
// in a schema escaped into the header, every quote is one, and unescaping cost a load as much as parsing the schema
// itself.
#include "safestructures/escaped_string.hpp"

#include <array>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace safestructures {

#if defined(__x86_64__)
namespace {

// Which characters of a 64-byte block a backslash escapes, given its backslashes and whether the block's first
// character is escaped by a backslash at the end of the block before (updated for the next block). The odd/even run
// rule of simdjson's stage 1: in a run of backslashes, every other one escapes the character after it.
std::uint64_t escaped_characters(std::uint64_t backslash, std::uint64_t& next_is_escaped) {
  backslash &= ~next_is_escaped;
  const std::uint64_t follows_escape = backslash << 1 | next_is_escaped;
  constexpr std::uint64_t even_bits = 0x5555555555555555ULL;
  const std::uint64_t odd_sequence_starts = backslash & ~even_bits & ~follows_escape;
  std::uint64_t sequences_starting_on_even_bits = 0;
  next_is_escaped = __builtin_add_overflow(odd_sequence_starts, backslash, &sequences_starting_on_even_bits) ? 1 : 0;
  const std::uint64_t invert_mask = sequences_starting_on_even_bits << 1;
  return (even_bits ^ invert_mask) & follows_escape;
}

// What a 64-byte block keeps of its bytes, from the masks of its backslashes, quotes, slashes, control characters
// (below 0x20) and valid bytes: false when the string holds another escape (\n, \u...) or a control character, which
// the ordinary parser judges; else `keep` (its bytes less the escaping backslashes) and `closing` (its closing quote,
// if it is in this block).
struct BlockMasks {
  std::uint64_t backslash, quote, slash, control, valid;
};

bool kept_bytes(const BlockMasks& m, std::uint64_t& next_is_escaped, std::uint64_t& keep, std::uint64_t& closing) {
  const std::uint64_t escaped = escaped_characters(m.backslash, next_is_escaped);
  if (escaped & ~(m.quote | m.backslash | m.slash)) return false;
  closing = m.quote & ~escaped;
  // The bytes of the string in this block: up to its closing quote, if it is here.
  const std::uint64_t inside = closing ? (closing & -closing) - 1 : m.valid;
  if (m.control & inside) return false;
  keep = inside & ~(m.backslash & ~escaped);
  return true;
}

__attribute__((target("avx512f,avx512bw,avx512vbmi2,bmi,bmi2,popcnt"))) std::size_t unescape_vbmi2(std::string_view text,
                                                                                                    std::string& out,
                                                                                                    std::size_t padding) {
  // Each block writes 64 bytes wherever its kept bytes end: room for one block past the output's longest length.
  out.resize(text.size() + 64 + padding);
  char* dst = out.data();
  const __m512i backslash_byte = _mm512_set1_epi8('\\');
  const __m512i quote_byte = _mm512_set1_epi8('"');
  const __m512i slash_byte = _mm512_set1_epi8('/');
  const __m512i space_byte = _mm512_set1_epi8(0x20);
  std::uint64_t next_is_escaped = 0;
  for (std::size_t at = 0; at < text.size(); at += 64) {
    const std::size_t left = text.size() - at;
    // The last block's load is masked: the header may end the caller's buffer.
    const __mmask64 valid = left >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << left) - 1;
    const __m512i block = _mm512_maskz_loadu_epi8(valid, text.data() + at);
    const BlockMasks masks{_mm512_mask_cmpeq_epi8_mask(valid, block, backslash_byte), _mm512_mask_cmpeq_epi8_mask(valid, block, quote_byte),
                           _mm512_mask_cmpeq_epi8_mask(valid, block, slash_byte), _mm512_mask_cmplt_epu8_mask(valid, block, space_byte),
                           valid};
    std::uint64_t keep = 0, closing = 0;
    if (!kept_bytes(masks, next_is_escaped, keep, closing)) return escaped_string_npos;
    _mm512_storeu_si512(dst, _mm512_maskz_compress_epi8(keep, block));
    dst += _mm_popcnt_u64(keep);
    if (closing) {
      // Shortened only: the capacity keeps the padding after the text.
      out.resize(static_cast<std::size_t>(dst - out.data()));
      return at + static_cast<std::size_t>(__builtin_ctzll(closing));
    }
  }
  return escaped_string_npos;  // no closing quote
}

// For each 8-bit mask, the pshufb indices that gather the bytes it keeps to the front (the rest zeroed).
constexpr std::array<std::uint64_t, 256> gather_indices = [] {
  std::array<std::uint64_t, 256> table{};
  for (std::uint32_t mask = 0; mask < 256; ++mask) {
    std::uint64_t indices = ~std::uint64_t{0};  // 0xff: pshufb zeroes the byte
    std::uint32_t out = 0;
    for (std::uint32_t k = 0; k < 8; ++k) {
      if (mask >> k & 1) {
        indices &= ~(std::uint64_t{0xff} << (8 * out));
        indices |= std::uint64_t{k} << (8 * out++);
      }
    }
    table[mask] = indices;
  }
  return table;
}();

// The same 64-byte blocks on CPUs without VBMI2 (SSSE3, every x86-64 CPU of the last 15 years): the masks from four
// 16-byte compares, and each 8 bytes compressed by a pshufb whose indices come from the table above.
__attribute__((target("ssse3,popcnt"))) std::size_t unescape_ssse3(std::string_view text, std::string& out, std::size_t padding) {
  out.resize(text.size() + 64 + padding);
  char* dst = out.data();
  const __m128i backslash_byte = _mm_set1_epi8('\\');
  const __m128i quote_byte = _mm_set1_epi8('"');
  const __m128i slash_byte = _mm_set1_epi8('/');
  const __m128i below_space = _mm_set1_epi8(0x1f);
  std::uint64_t next_is_escaped = 0;
  alignas(16) char tail[64];
  for (std::size_t at = 0; at < text.size(); at += 64) {
    const std::size_t left = text.size() - at;
    const char* block = text.data() + at;
    std::uint64_t valid = ~std::uint64_t{0};
    if (left < 64) {
      // The last block is copied out: the header may end the caller's buffer.
      std::memset(tail, 0, sizeof tail);
      std::memcpy(tail, block, left);
      block = tail;
      valid = (std::uint64_t{1} << left) - 1;
    }
    std::uint64_t backslash = 0, quote = 0, slash = 0, control = 0;
    for (int part = 0; part < 4; ++part) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16 * part));
      const auto bits = [&](__m128i eq) { return static_cast<std::uint64_t>(static_cast<std::uint16_t>(_mm_movemask_epi8(eq))) << (16 * part); };
      backslash |= bits(_mm_cmpeq_epi8(v, backslash_byte));
      quote |= bits(_mm_cmpeq_epi8(v, quote_byte));
      slash |= bits(_mm_cmpeq_epi8(v, slash_byte));
      control |= bits(_mm_cmpeq_epi8(_mm_min_epu8(v, below_space), v));
    }
    std::uint64_t keep = 0, closing = 0;
    if (!kept_bytes({backslash & valid, quote & valid, slash & valid, control & valid, valid}, next_is_escaped, keep, closing)) {
      return escaped_string_npos;
    }
    for (int group = 0; group < 8; ++group) {
      const auto kept = static_cast<std::uint32_t>(keep >> (8 * group) & 0xff);
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(block + 8 * group));
      const __m128i indices = _mm_cvtsi64_si128(static_cast<long long>(gather_indices[kept]));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm_shuffle_epi8(bytes, indices));
      dst += __builtin_popcount(kept);
    }
    if (closing) {
      out.resize(static_cast<std::size_t>(dst - out.data()));
      return at + static_cast<std::size_t>(__builtin_ctzll(closing));
    }
  }
  return escaped_string_npos;  // no closing quote
}

}  // namespace
#endif

bool unescape_way_available(UnescapeWay way) {
#if defined(__x86_64__)
  static const bool vbmi2 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("bmi2") &&
                            __builtin_cpu_supports("popcnt");
  static const bool ssse3 = __builtin_cpu_supports("ssse3") && __builtin_cpu_supports("popcnt");
  return way == UnescapeWay::Vbmi2 ? vbmi2 : ssse3;
#else
  (void)way;
  return false;
#endif
}

std::size_t unescape_simple_json_string_by(UnescapeWay way, std::string_view text, std::string& out, std::size_t padding) {
#if defined(__x86_64__)
  return way == UnescapeWay::Vbmi2 ? unescape_vbmi2(text, out, padding) : unescape_ssse3(text, out, padding);
#else
  (void)way, (void)text, (void)out, (void)padding;
  return escaped_string_npos;
#endif
}

std::size_t unescape_simple_json_string(std::string_view text, std::string& out, std::size_t padding) {
  static const bool vbmi2 = unescape_way_available(UnescapeWay::Vbmi2);
  static const bool ssse3 = unescape_way_available(UnescapeWay::Ssse3);
  if (vbmi2) return unescape_simple_json_string_by(UnescapeWay::Vbmi2, text, out, padding);
  if (ssse3) return unescape_simple_json_string_by(UnescapeWay::Ssse3, text, out, padding);
  return escaped_string_npos;
}

}  // namespace safestructures
