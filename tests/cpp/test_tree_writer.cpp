// Tests of the tensor-name rule of tree_writer.hpp: control characters replaced, and the first free name~N given even
// when the names proposed are not all claimed.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "safestructures/tree_writer.hpp"

namespace safestructures {
namespace {

// The rule as first written: name~1, name~2, ... tried from the start each time.
std::string first_free_name_from_the_start(const std::string& name, const std::set<std::string>& taken) {
  if (!taken.contains(name)) return name;
  for (std::size_t k = 1;; ++k) {
    std::string candidate = name + "~" + std::to_string(k);
    if (!taken.contains(candidate)) return candidate;
  }
}

TEST(FirstFreeName, GivesWhatTheSearchFromTheStartGives) {
  // Names proposed and claimed or not (a view proposes a name it does not store), some suffixed names taken by keys
  // of their own ("x~3"), over a few bases.
  std::mt19937 random(7);
  std::set<std::string> taken;
  NameSuffixes suffixes;
  const auto is_taken = [&](const std::string& candidate) { return taken.contains(candidate); };
  for (int step = 0; step < 3000; ++step) {
    std::string base(1, static_cast<char>('a' + random() % 3));
    if (random() % 10 == 0) {
      base += '~';
      base += std::to_string(random() % 40);
    }
    const std::string expected = first_free_name_from_the_start(base, taken);
    const std::string given = first_free_name(base, is_taken, suffixes);
    ASSERT_EQ(given, expected) << "at step " << step;
    if (random() % 4 != 0) taken.insert(given);
  }
  EXPECT_GT(taken.size(), 2000u);
}

TEST(FirstFreeName, ControlCharactersBecomeUnderscores) {
  std::string name("a\x01.b\x1f\x7f", 6);
  replace_control_characters(name);
  EXPECT_EQ(name, std::string("a_.b_\x7f"));
}

}  // namespace
}  // namespace safestructures
