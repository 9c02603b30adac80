// The format's vocabulary: the table of kinds and the lookups over it.
#include "safestructures/format.hpp"

#include <algorithm>
#include <iterator>
#include <unordered_map>

namespace safestructures {

namespace {

constexpr KindTraits kind_table[] = {
#define SAFESTRUCTURES_KIND_TRAITS(kind, name, tag, shape, names_class) {#kind, name, tag, Shape::shape, names_class},
    SAFESTRUCTURES_KINDS(SAFESTRUCTURES_KIND_TRAITS)
#undef SAFESTRUCTURES_KIND_TRAITS
};

}  // namespace

const KindTraits& traits(Kind kind) { return kind_table[static_cast<std::size_t>(kind)]; }

std::span<const KindTraits> all_kinds() { return kind_table; }

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

bool is_transparent_field(std::string_view field) {
  return std::ranges::find(transparent_fields, field) != std::end(transparent_fields);
}

}  // namespace safestructures
