// Text read from a file as error messages show it (shown_text.hpp): escaped where a terminal or a log viewer would act
// on it, and bounded.
#include "safestructures/shown_text.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "safestructures/container.hpp"

namespace safestructures {
namespace {

// Code points past ASCII that a message escapes: C1 controls, which some terminals act on as C0's ESC sequences;
// line and paragraph separators, which log viewers break lines at; and the invisible format characters (Unicode's
// Cf) that hide text or reorder it on screen (bidirectional embeddings, overrides and isolates, zero widths, tags).
bool unsafe_code_point(std::uint32_t c) {
  return (c >= 0x80 && c <= 0x9f) || c == 0xad || c == 0x61c || c == 0x180e || (c >= 0x200b && c <= 0x200f) ||
         (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb) ||
         (c >= 0xd800 && c <= 0xdfff) || (c >= 0xe0000 && c <= 0xe007f);
}

void append_hex(std::string& out, std::string_view prefix, std::uint32_t value, int digits) {
  static constexpr char hex[] = "0123456789abcdef";
  out += prefix;
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) out += hex[(value >> shift) & 0xf];
}

// The length of the UTF-8 sequence starting `text` and its code point, or 0 when it is not one. Surrogates' three
// bytes count as a sequence (they are escaped), overlong forms and values past U+10FFFF do not.
std::size_t decode(std::string_view text, std::uint32_t& c) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(0);
  std::size_t length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 0;
  if (length == 0 || lead > 0xf4 || text.size() < length) return 0;
  c = lead & (0x7f >> length);
  for (std::size_t k = 1; k < length; ++k) {
    if ((byte(k) & 0xc0) != 0x80) return 0;
    c = c << 6 | (byte(k) & 0x3f);
  }
  static constexpr std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
  return c >= smallest[length] && c <= 0x10ffff ? length : 0;
}

// `text` escaped into `out`, JSON's escapes too when `json_escapes`; returns how many of its bytes were written before
// `limit` stopped it.
std::size_t append_escaped(std::string& out, std::string_view text, bool json_escapes, std::size_t limit) {
  std::size_t at = 0;
  while (at < text.size() && at < limit) {
    const auto u = static_cast<unsigned char>(text[at]);
    if (u < 0x80) {
      char buffer[6];
      const std::string_view escape = json_escapes ? json_escape(text[at], buffer) : std::string_view();
      if (!escape.empty()) {
        out += escape;
      } else if (u == 0x7f || (u < 0x20 && !json_escapes)) {
        append_hex(out, "\\u", u, 4);
      } else {
        out += text[at];
      }
      ++at;
      continue;
    }
    std::uint32_t c = 0;
    const std::size_t length = decode(text.substr(at), c);
    if (length == 0) {
      append_hex(out, "\\x", u, 2);
      ++at;
    } else if (!unsafe_code_point(c)) {
      out.append(text.substr(at, length));
      at += length;
    } else {
      if (c > 0xffff) {  // as JSON writes it: a surrogate pair
        append_hex(out, "\\u", 0xd800 + ((c - 0x10000) >> 10), 4);
        c = 0xdc00 + ((c - 0x10000) & 0x3ff);
      }
      append_hex(out, "\\u", c, 4);
      at += length;
    }
  }
  return at;
}

void append_cut(std::string& out, std::size_t written, std::size_t size) {
  if (written < size) out += "... (" + std::to_string(size) + " bytes)";
}

}  // namespace

std::string quote_name(std::string_view name, std::size_t limit) {
  std::string out = "\"";
  const std::size_t written = append_escaped(out, name, true, limit);
  out += '"';
  append_cut(out, written, name.size());
  return out;
}

void append_shown_field(std::string& out, std::string_view name, std::size_t limit) {
  append_cut(out, append_escaped(out, name, true, limit), name.size());
}

std::string shown_json(std::string_view json, std::size_t limit) {
  std::string out;
  append_cut(out, append_escaped(out, json, false, limit), json.size());
  return out;
}

std::string unreadable_number(std::string_view json) {
  bool in_string = false;
  for (std::size_t k = 0; k < json.size(); ++k) {
    const char c = json[k];
    if (in_string) {
      if (c == '\\') ++k;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) continue;
    std::size_t end = k;
    while (end < json.size() && std::string_view("+-0123456789.eE").find(json[end]) != std::string_view::npos) ++end;
    const std::string token(json.substr(k, end - k));
    // Only a number JSON spells well that is out of range: a malformed one ("-", "1e") keeps simdjson's message.
    bool held = true;
    if (token.find_first_of(".eE") == std::string::npos) {
      std::int64_t i = 0;
      std::uint64_t u = 0;
      const char* last = token.data() + token.size();
      const auto as_signed = std::from_chars(token.data(), last, i);
      const auto as_unsigned = std::from_chars(token.data(), last, u);
      held = as_signed.ec != std::errc::result_out_of_range || (token[0] != '-' && as_unsigned.ec != std::errc::result_out_of_range);
    } else {
      // strtod: an underflow to zero (1e-400) is held, as JSON parsers read it; an overflow to infinity is not.
      char* stop = nullptr;
      const double value = std::strtod(token.c_str(), &stop);
      held = stop != token.c_str() + token.size() || !std::isinf(value);
    }
    if (!held) return "the number " + shown_json(token, 40) + " at byte " + std::to_string(k);
    k = end - 1;
  }
  return {};
}

}  // namespace safestructures
