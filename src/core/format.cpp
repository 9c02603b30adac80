// The format's vocabulary: the table of kinds and the lookups over it.
#include "safestructures/format.hpp"

#include <algorithm>
#include <iterator>
#include <unordered_map>

namespace safestructures {

std::optional<Kind> kind_of_tag(std::string_view tag) {
  // A hash lookup: loads classify every tagged node they build.
  static const std::unordered_map<std::string_view, Kind> kinds = [] {
    std::unordered_map<std::string_view, Kind> out;
    for (std::size_t i = 0; i < std::size(kind_table); ++i) {
      if (!kind_table[i].tag.empty()) out.emplace(kind_table[i].tag, static_cast<Kind>(i));
    }
    return out;
  }();
  const auto it = kinds.find(tag);
  return it == kinds.end() ? std::nullopt : std::optional<Kind>(it->second);
}

bool is_own_field(Kind kind, std::string_view field) {
  // A word by word scan (not std::views::split, which clang 14 cannot compile with libstdc++ 12).
  for (std::string_view rest = traits(kind).own_fields; !rest.empty();) {
    const std::size_t space = std::min(rest.find(' '), rest.size());
    if (rest.substr(0, space) == field) return true;
    rest.remove_prefix(std::min(space + 1, rest.size()));
  }
  return false;
}

bool is_transparent_field(std::string_view field) {
  return std::ranges::find(transparent_fields, field) != std::end(transparent_fields);
}

}  // namespace safestructures
