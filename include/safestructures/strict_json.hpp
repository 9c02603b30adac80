// The fast ways through the JSON this library writes: strict readers of exactly its layouts, which decline anything
// else so that simdjson, with every check and message, reads it instead.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/schema.hpp"

namespace safestructures {

// Reads a header laid out as the writer lays it out: `{`, then optionally "__metadata__" first, an object of string
// values (escapes in them only \" \\ \/), then the tensor entries, each exactly
// "name":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}, names without escapes, numbers of at most 19 digits
// without sign, fraction or exponent; no whitespace but spaces after the closing brace. Fills `header`'s metadata
// and tensors in file order, every dtype known, and nothing checked beyond that (the caller checks values as it
// checks simdjson's). Returns false, with `header` in any state, for any other text: that text is then valid or
// invalid exactly as simdjson's parse says. `json` has already been checked for a BOM, NUL bytes and UTF-8.
bool read_strict_header(std::string_view json, Header& header);

// Reads schema JSON whose strings hold no escape but \" \\ \/ \b \f \n \r \t and no control character, whose root is
// an object and whose numbers are integers of at most 18 digits (not "-0") or decimals std::from_chars reads to a
// finite double, into `nodes`, the same nodes the simdjson way makes; strings view `text`, a copy of the JSON that
// the call unescapes in place. Returns false, with `nodes` and `text` in any state, for anything else, and for a
// document that reaches `limits`' depth or node count: simdjson then decides, raising what it raises.
bool read_strict_schema(std::span<char> text, const SchemaLimits& limits, std::vector<Node>& nodes);

}  // namespace safestructures
