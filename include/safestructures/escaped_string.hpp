// The fast way through the schema's string in a header: its JSON-string content unescaped 64 bytes at a time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace safestructures {

// Unescapes the content of the JSON string that starts at `text` (just past its opening quote), when every escape
// in it is \" \\ or \/ and it holds no control character: what the schema document of a file this library writes is,
// escaped once to sit in the header. Returns the length of the escaped content (the closing quote is
// text[returned]) with the unescaped bytes in `out`, followed by `padding` bytes of room; or npos when the string is
// anything else (another escape, a control character, no closing quote) or the CPU is not x86-64 with SSSE3: the caller
// then parses the header the ordinary way, which decides what the text is. Reads no byte past `text`'s end.
inline constexpr std::size_t escaped_string_npos = static_cast<std::size_t>(-1);
std::size_t unescape_simple_json_string(std::string_view text, std::string& out, std::size_t padding);

// The ways of x86-64 CPUs, named so that tests run each one this CPU has (the dispatch above takes the fastest).
enum class UnescapeWay { Vbmi2, Ssse3 };
bool unescape_way_available(UnescapeWay way);
// unescape_simple_json_string taking `way`, which must be available.
std::size_t unescape_simple_json_string_by(UnescapeWay way, std::string_view text, std::string& out, std::size_t padding);

}  // namespace safestructures
