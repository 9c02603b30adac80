// Text codecs shared by the tree reader and builder: base64, and strings as code points (lone surrogates included).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace safestructures::codec {

std::string base64_encode(std::span<const std::byte> data);
// Strict: length a multiple of 4, '=' padding only at the end; nullopt on anything else.
std::optional<std::vector<std::byte>> base64_decode(std::string_view text);

// Appends code point `cp` (0 to 0x10FFFF) as UTF-8; a surrogate (0xD800 to 0xDFFF) gets the 3-byte form that
// WTF-8 gives it, since UTF-8 proper has none.
void append_code_point(std::string& out, std::uint32_t cp);

// The code points of WTF-8 text: UTF-8 in which lone surrogates may appear in their 3-byte form. nullopt for
// anything else (overlong forms, bytes past 0x10FFFF, truncated sequences, a surrogate pair written as two
// surrogates, which WTF-8 forbids).
std::optional<std::vector<std::uint32_t>> decode_wtf8(std::string_view text);

}  // namespace safestructures::codec
