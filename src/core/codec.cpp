// Text codecs shared by the tree reader and builder: base64, and strings as code points (lone surrogates included).
#include "safestructures/codec.hpp"

#include <array>
#include <bit>

namespace safestructures::codec {
namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The value of each base64 digit by its byte, -1 for bytes that are not digits.
constexpr auto base64_values = [] {
  std::array<int, 256> values{};
  values.fill(-1);
  for (int i = 0; i < 64; ++i) values[static_cast<unsigned char>(alphabet[i])] = i;
  return values;
}();

}  // namespace

std::string base64_encode(std::span<const std::byte> data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  const auto at = [&](std::size_t i) { return i < data.size() ? std::to_integer<unsigned>(data[i]) : 0u; };
  for (std::size_t i = 0; i < data.size(); i += 3) {
    const unsigned v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < data.size() ? alphabet[(v >> 6) & 63] : '=';
    out += i + 2 < data.size() ? alphabet[v & 63] : '=';
  }
  return out;
}

std::optional<std::vector<std::byte>> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<std::byte> out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    unsigned v = 0;
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      int digit = 0;
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
      } else {
        digit = base64_values[static_cast<unsigned char>(c)];
        if (digit < 0 || pad) return std::nullopt;
      }
      v = (v << 6) | static_cast<unsigned>(digit);
    }
    out.push_back(static_cast<std::byte>(v >> 16));
    if (pad < 2) out.push_back(static_cast<std::byte>((v >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<std::byte>(v & 0xff));
  }
  return out;
}

void append_code_point(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
    return;
  }
  const int length = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  // The lead byte: `length` one bits, a zero, then the code point's top bits; then 6 bits per continuation byte.
  out += static_cast<char>(((0xFF00 >> length) & 0xFF) | (cp >> (6 * (length - 1))));
  for (int k = length - 2; k >= 0; --k) out += static_cast<char>(0x80 | ((cp >> (6 * k)) & 0x3F));
}

std::optional<std::vector<std::uint32_t>> decode_wtf8(std::string_view text) {
  std::vector<std::uint32_t> out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    // A lead byte's leading one bits count its sequence's bytes (none for ASCII; one is a continuation byte).
    const int ones = std::countl_one(lead);
    if (ones == 1 || ones > 4) return std::nullopt;
    const std::size_t length = ones ? static_cast<std::size_t>(ones) : 1;
    constexpr std::uint32_t shortest[] = {0, 0, 0x80, 0x800, 0x10000};
    const std::uint32_t min = shortest[ones];
    std::uint32_t cp = lead & (0x7F >> ones);
    if (i + length > text.size()) return std::nullopt;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (next & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF) return std::nullopt;
    // A high surrogate followed by a low one is a pair spelled the CESU way: WTF-8 writes the pair's code point.
    if (cp >= 0xDC00 && cp <= 0xDFFF && !out.empty() && out.back() >= 0xD800 && out.back() <= 0xDBFF) return std::nullopt;
    out.push_back(cp);
    i += length;
  }
  return out;
}

}  // namespace safestructures::codec
