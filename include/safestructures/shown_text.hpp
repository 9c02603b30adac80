// Text read from a file as error messages show it. A file chooses its tensor names, keys and values, and messages
// reach terminals and logs: what could drive a terminal (C0 and C1 controls), break a line to forge another one
// (U+2028, U+2029) or reorder or hide text (bidirectional overrides, zero-width characters) is escaped, and a long
// text is cut, so that no file sets the size of a message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace safestructures {

// How many bytes of a name or value a message shows before cutting it ("..." and the full size follow).
inline constexpr std::size_t shown_text_limit = 200;

// A tensor name or key quoted for a message: a JSON string (`"`, `\` and C0 controls escaped as JSON escapes them),
// with DEL, C1 controls and invisible or reordering characters as \uXXXX and bytes that are not UTF-8 as \xNN (a
// surrogate's three bytes, which Python's "surrogatepass" writes, as \uXXXX); past `limit` bytes cut at a character,
// as `"abc"... (N bytes)`.
std::string quote_name(std::string_view name, std::size_t limit = shown_text_limit);

// The same escapes written into `out` without quotes: a field name in a path (`.name`).
void append_shown_field(std::string& out, std::string_view name, std::size_t limit = shown_text_limit);

// A JSON value's text (as simdjson::to_string writes it: strings already JSON-escaped), with the escapes above that
// JSON leaves out, cut past `limit` bytes.
std::string shown_json(std::string_view json, std::size_t limit = shown_text_limit);

// Where JSON text `json` holds a number that no 64-bit integer or finite double holds (simdjson's "Problem while
// parsing a number" names none): `the number 1e400 at byte 57`, the first such; empty when there is none.
std::string unreadable_number(std::string_view json);

}  // namespace safestructures
