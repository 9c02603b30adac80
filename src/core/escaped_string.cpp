// Unescaping the schema's string in a header 64 bytes at a time (AVX-512 VBMI2 compresses the escaping backslashes
// out of each block), or else 8 bytes at a time between escapes, where the ordinary JSON parser stops at every escape:
// in a schema escaped into the header, every quote is one, and unescaping cost a load as much as parsing the schema
// itself.
#include "safestructures/escaped_string.hpp"

#include <bit>
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
    const std::uint64_t backslash = _mm512_mask_cmpeq_epi8_mask(valid, block, backslash_byte);
    const std::uint64_t quote = _mm512_mask_cmpeq_epi8_mask(valid, block, quote_byte);
    const std::uint64_t slash = _mm512_mask_cmpeq_epi8_mask(valid, block, slash_byte);
    // Bytes below 0x20 (unsigned): control characters, which the ordinary parser judges.
    const std::uint64_t control = _mm512_mask_cmplt_epu8_mask(valid, block, space_byte);
    const std::uint64_t escaped = escaped_characters(backslash, next_is_escaped);
    if (escaped & ~(quote | backslash | slash)) return escaped_string_npos;  // another escape (\n, \u...)
    const std::uint64_t closing = quote & ~escaped;
    // The bytes of the string in this block: up to its closing quote, if it is here.
    const std::uint64_t inside = closing ? (closing & -closing) - 1 : static_cast<std::uint64_t>(valid);
    if (control & inside) return escaped_string_npos;
    const std::uint64_t keep = inside & ~(backslash & ~escaped);
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

}  // namespace
#endif

namespace {

// The bytes of `word` that are a backslash, a quote or a control character (below 0x20), each as its high bit: the
// classic bit tricks for a zero byte and a byte below n. A borrow may mark a byte after a marked one too, never one
// before it, so the lowest mark is exact (the text's first such byte: words are read little-endian).
std::uint64_t special_bytes(std::uint64_t word) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  const auto zero_bytes = [&](std::uint64_t x) { return (x - ones) & ~x & highs; };
  return zero_bytes(word ^ (ones * '\\')) | zero_bytes(word ^ (ones * '"')) | ((word - ones * 0x20) & ~word & highs);
}

// The same unescaping on any CPU: the bytes before each escape copied 8 at a time, each escape taken by itself.
std::size_t unescape_words(std::string_view text, std::string& out, std::size_t padding) {
  static_assert(std::endian::native == std::endian::little, "the first special byte is the word's lowest");
  out.resize(text.size() + padding);
  char* dst = out.data();
  const std::size_t n = text.size();
  std::size_t at = 0;
  while (at < n) {
    if (n - at >= 8) {
      std::uint64_t word;
      std::memcpy(&word, text.data() + at, 8);
      // Written whole (the output has room: it is never ahead of the input): only the bytes before the first special
      // one count.
      std::memcpy(dst, &word, 8);
      const std::uint64_t special = special_bytes(word);
      const std::size_t plain = special == 0 ? 8 : static_cast<std::size_t>(__builtin_ctzll(special)) / 8;
      dst += plain;
      at += plain;
      if (plain == 8) continue;
    }
    const char c = text[at];
    if (c == '"') {
      out.resize(static_cast<std::size_t>(dst - out.data()));  // shortened only: the capacity keeps the padding
      return at;
    }
    if (static_cast<unsigned char>(c) < 0x20) return escaped_string_npos;
    if (c == '\\') {
      const char escaped = at + 1 < n ? text[at + 1] : '\0';
      if (escaped != '"' && escaped != '\\' && escaped != '/') return escaped_string_npos;  // another escape
      *dst++ = escaped;
      at += 2;
      continue;
    }
    *dst++ = c;
    ++at;
  }
  return escaped_string_npos;  // no closing quote
}

}  // namespace

std::size_t unescape_simple_json_string(std::string_view text, std::string& out, std::size_t padding) {
#if defined(__x86_64__)
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("bmi2") &&
                                __builtin_cpu_supports("popcnt");
  if (supported) return unescape_vbmi2(text, out, padding);
#endif
  return unescape_words(text, out, padding);
}

}  // namespace safestructures
