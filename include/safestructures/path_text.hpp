// Paths in the data as messages show them: "$", then each part ("[0]", "[\"key\"]", ".field"). The one rule for
// every walk that names where it is, saving or loading.
#pragma once

#include <cstddef>
#include <string>

namespace safestructures {

// "$" followed by the `count` parts of a path, render(out, k) appending part k; a deep path keeps its two ends and
// only counts its middle, so a message about level 100,000 stays readable.
template <class Render>
std::string render_path(std::size_t count, Render render) {
  std::string out = "$";
  for (std::size_t k = 0; k < count; ++k) {
    if (count > 24 && k == 10) {
      out += "[... " + std::to_string(count - 20) + " more ...]";
      k = count - 10;
    }
    render(out, k);
  }
  return out;
}

}  // namespace safestructures
