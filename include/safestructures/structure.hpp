// Structured files: a schema document stored in __metadata__ (or spilled into a tensor) beside the tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/writer.hpp"

namespace safestructures {

// The metadata keys that belong to safestructures (v2's schema key, the checksums, 1.0.0's two keys); callers cannot
// set them.
bool is_reserved_metadata_key(std::string_view key);
// Raises InvalidMetadata for such a key in a caller's metadata.
void check_user_metadata(const Metadata& metadata);

// A structured file ready to be written: the tensors plus the final metadata (the caller's and the schema).
struct StructuredLayout {
  std::vector<WriteTensor> tensors;
  Metadata metadata;
  Layout layout;
  // Owns the schema text when it is spilled into a tensor (the tensor's data points into it). A spilled schema is
  // always longer than the small-string buffer, so moving the layout keeps that pointer valid; copying would not,
  // hence the layout is move-only.
  std::string spilled_schema;

  StructuredLayout() = default;
  StructuredLayout(StructuredLayout&&) noexcept = default;
  StructuredLayout& operator=(StructuredLayout&&) noexcept = default;
  StructuredLayout(const StructuredLayout&) = delete;
  StructuredLayout& operator=(const StructuredLayout&) = delete;
};

// Adds the schema document to the caller's metadata and lays the file out. When the header would exceed
// `max_header_size`, the schema goes into a U8 tensor named `__safestructures_schema__` and the metadata only points
// to it. Raises InvalidMetadata for a reserved key in `user_metadata`. `checksums`: as plan_layout's.
StructuredLayout plan_structured(std::vector<WriteTensor> tensors, const Metadata& user_metadata, std::string schema_document,
                                 std::uint64_t max_header_size = default_max_header_size, bool checksums = false);

// The same, for a schema rendered straight into its escaped header form (one pass instead of two over a large
// schema). A schema that does not fit the header is unescaped and spilled as above.
StructuredLayout plan_structured(std::vector<WriteTensor> tensors, const Metadata& user_metadata, EscapedSchema schema,
                                 std::uint64_t max_header_size = default_max_header_size, bool checksums = false);

void write_structured(const std::filesystem::path& path, const StructuredLayout& plan, const WriteOptions& options = {});
void write_structured_into(std::span<std::byte> out, const StructuredLayout& plan);

// The schema document of a file, parsed (nullopt for a plain safetensors file with no schema). Follows a spilled
// schema into its tensor. SchemaInvalid for a file holding a 1.0.0 schema too.
std::optional<Tape> read_schema(const Reader& reader, const SchemaLimits& limits = {});

// The caller's metadata of a structured file: the file's metadata without the reserved keys.
Metadata user_metadata(const Header& header);

}  // namespace safestructures
