// Storing the schema document in a file's metadata, spilling it into a tensor when the header would be too large.
#include "safestructures/structure.hpp"

#include "safestructures/error.hpp"
#include "safestructures/schema_text.hpp"

namespace safestructures {
bool is_reserved_metadata_key(std::string_view key) {
  return key == schema_metadata_key || key == checksums_metadata_key || key == recording_metadata_key || key == v1_schema_key ||
         key == v1_version_key;
}

void check_user_metadata(const Metadata& metadata) {
  for (const auto& [key, _] : metadata) {
    if (is_reserved_metadata_key(key)) {
      raise(ErrorCode::InvalidMetadata, "metadata key " + quote_name(key) + " is reserved for safestructures' own use");
    }
  }
}

namespace {

// Too large for the header: the schema moves into a tensor and the metadata keeps a pointer to it.
void spill(StructuredLayout& plan, std::string schema_document, std::uint64_t max_header_size, bool checksums) {
  plan.spilled_schema = std::move(schema_document);
  std::string pointer = schema_envelope_head() + ",\"spill\":";
  append_json_string(pointer, schema_spill_tensor);
  plan.metadata.back().second = pointer + "}";
  plan.tensors.push_back(WriteTensor{std::string(schema_spill_tensor), Dtype::U8, {plan.spilled_schema.size()},
                                     reinterpret_cast<const std::byte*>(plan.spilled_schema.data()), {}});
  plan.layout = plan_layout(plan.tensors, &plan.metadata, max_header_size, {}, checksums);
}

// The schema is given as JSON, or `escaped` as the content of the header's JSON string.
StructuredLayout plan_with_schema(std::vector<WriteTensor> tensors, const Metadata& user_metadata, std::string schema, bool escaped,
                                  std::uint64_t max_header_size, bool checksums) {
  check_user_metadata(user_metadata);
  StructuredLayout plan;
  plan.metadata = user_metadata;
  plan.metadata.emplace_back(std::string(schema_metadata_key), std::move(schema));
  plan.tensors = std::move(tensors);
  try {
    plan.layout = plan_layout(plan.tensors, &plan.metadata, max_header_size, escaped ? schema_metadata_key : std::string_view(), checksums);
    return plan;
  } catch (const Error& e) {
    if (e.code() != ErrorCode::HeaderTooLarge) throw;
  }
  std::string& document = plan.metadata.back().second;
  spill(plan, escaped ? unescape_schema(document) : std::move(document), max_header_size, checksums);
  return plan;
}

}  // namespace

StructuredLayout plan_structured(std::vector<WriteTensor> tensors, const Metadata& user_metadata, std::string schema_document,
                                 std::uint64_t max_header_size, bool checksums) {
  return plan_with_schema(std::move(tensors), user_metadata, std::move(schema_document), false, max_header_size, checksums);
}

StructuredLayout plan_structured(std::vector<WriteTensor> tensors, const Metadata& user_metadata, EscapedSchema schema,
                                 std::uint64_t max_header_size, bool checksums) {
  return plan_with_schema(std::move(tensors), user_metadata, std::move(schema.text), true, max_header_size, checksums);
}

void write_structured(const std::filesystem::path& path, const StructuredLayout& plan, const WriteOptions& options) {
  write_file(path, plan.layout, plan.tensors, options);
}

void write_structured_into(std::span<std::byte> out, const StructuredLayout& plan) { write_into(out, plan.layout, plan.tensors); }

std::optional<Tape> read_schema(const Reader& reader, const SchemaLimits& limits) {
  const Header& header = reader.header();
  const std::string* value = header.find_metadata(schema_metadata_key);
  if (value == nullptr) return std::nullopt;
  // safestructures 1.0.0 reads its own key alone: a file holding both would be other data to it.
  if (header.find_metadata(v1_schema_key) != nullptr) {
    raise(ErrorCode::SchemaInvalid, "the file holds both a schema (" + quote_name(schema_metadata_key) + ") and a 1.0.0 schema (" +
                                        quote_name(v1_schema_key) + "), which the two versions would read as different data");
  }
  Tape document = parse_schema_string(*value, limits);
  if (document.size() && document[0].kind == NodeKind::Object) {
    const std::size_t spill = document.member(0, "spill");
    if (spill != Tape::npos) {
      check_schema_envelope(document);  // format and version; a pointer has no "root"
      if (document.member(0, "root") != Tape::npos) raise(ErrorCode::SchemaInvalid, std::string(spill_and_root));
      if (document[spill].kind != NodeKind::String) raise(ErrorCode::SchemaInvalid, "the schema's \"spill\" must name a tensor");
      const TensorInfo* info = header.find(document[spill].text);
      if (info == nullptr) raise(ErrorCode::TensorNotFound, "the schema is spilled into tensor " + quote_name(document[spill].text) + ", which the file lacks");
      if (info->dtype != Dtype::U8 || info->shape.size() != 1) {
        raise(ErrorCode::TensorMismatch, "the spilled schema tensor " + quote_name(info->name) + " must be a 1-D U8 tensor");
      }
      const auto bytes = reader.tensor(*info).bytes;
      const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      document = parse_schema_json(text, limits);
    }
  }
  return document;
}

Metadata user_metadata(const Header& header) {
  Metadata out;
  for (const auto& kv : header.metadata) {
    if (!is_reserved_metadata_key(kv.first)) out.push_back(kv);
  }
  return out;
}

}  // namespace safestructures
