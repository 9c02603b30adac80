// Paths in the data as messages show them: "$", then each part ("[0]", "[\"key\"]", ".field"). The one rule for
// every walk that names where it is, saving or loading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "safestructures/container.hpp"

namespace safestructures {

// The parts: an index or int key `[3]`, a key as the walk shows it (`["a"]`, `[1.5]`), a field of a tagged node
// `.name`.
inline void append_index_part(std::string& out, std::int64_t index) { out += '[' + std::to_string(index) + ']'; }
inline void append_shown_key_part(std::string& out, std::string_view shown) { out.append("[").append(shown).append("]"); }
// A string key of the file, `["key"]`.
inline void append_key_part(std::string& out, std::string_view key) { append_shown_key_part(out, quote_name(key)); }
inline void append_field_part(std::string& out, std::string_view field) {
  out += '.';
  append_shown_field(out, field);
}

// Where a deep path is cut when shown: parts [first, last) stand as one "... N more ..." part. A path of 24 parts or
// fewer is shown whole (first == last). Messages, and descriptions naming a first place (`same_as`), share the rule:
// a path 1,000 levels deep is never written whole, however many times it is named.
struct PathCut {
  std::size_t first = 0;
  std::size_t last = 0;
};
inline PathCut path_cut(std::size_t count) { return count > 24 ? PathCut{10, count - 10} : PathCut{}; }

// "$" followed by the `count` parts of a path, render(out, k) appending part k; a deep path keeps its two ends and
// only counts its middle (path_cut), so a message about level 100,000 stays readable.
template <class Render>
std::string render_path(std::size_t count, Render render) {
  const PathCut cut = path_cut(count);
  std::string out = "$";
  for (std::size_t k = 0; k < count; ++k) {
    if (k == cut.first && cut.first != cut.last) {
      out += "[... " + std::to_string(cut.last - cut.first) + " more ...]";
      k = cut.last;
    }
    render(out, k);
  }
  return out;
}

}  // namespace safestructures
