// The tests' printer of a schema tape as JSON: the product writes schemas through SchemaText as it walks (a save) and
// never renders a tape; tests and the schema fuzzer print parsed tapes to compare them.
#pragma once

#include <cstddef>
#include <string>

#include "safestructures/schema.hpp"

namespace safestructures {

// Renders compact JSON. A container with an id is written with it: an array as {"$":"list","#":id,"items":[...]},
// a tagged object with "#":id right after its tag, an untagged object as {"$":"dict","#":id,"items":[[k,v],...]}.
std::string to_json(const Tape& tape);
void append_json(std::string& out, const Tape& tape, std::size_t root = 0);
// The schema document: {"format":"safestructures","version":2,"root":NODE}.
std::string make_schema_document(const Tape& root);
// The same document as it is written inside the header's JSON string (escaped, without the quotes).
EscapedSchema make_escaped_schema_document(const Tape& root, std::size_t reserve = 0);

}  // namespace safestructures
