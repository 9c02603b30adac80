// XXH3-64 digests of tensors and of the header's content, the checksums entry read back, and verification.
#include "safestructures/checksum.hpp"

#include <algorithm>
#include <charconv>

#include <simdjson.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "safestructures/error.hpp"
#include "safestructures/format.hpp"
#include "safestructures/schema.hpp"

namespace safestructures {

std::uint64_t hash_bytes(std::span<const std::byte> bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

std::string digest_hex(std::uint64_t digest) {
  std::string out(digest_hex_size, '0');
  char buffer[digest_hex_size];
  const auto end = std::to_chars(buffer, buffer + digest_hex_size, digest, 16).ptr;
  std::copy(buffer, end, out.end() - (end - buffer));
  return out;
}

StreamHash::StreamHash() : state_(XXH3_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
StreamHash::~StreamHash() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void StreamHash::update(const std::byte* data, std::size_t size) {
  if (size) XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}
std::uint64_t StreamHash::digest() const { return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_)); }

namespace {

[[noreturn]] void malformed(const std::string& why) {
  raise(ErrorCode::ChecksumsInvalid, "the checksums entry " + quote_name(checksums_metadata_key) + " " + why);
}

[[noreturn]] void malformed_entry() { malformed("cannot be located in the header"); }

std::uint64_t parse_digest(const Node& node, std::string_view of) {
  std::uint64_t value = 0;
  const std::string_view s = node.text;
  const bool hex = node.kind == NodeKind::String && s.size() == digest_hex_size &&
                   s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  if (!hex || std::from_chars(s.data(), s.data() + s.size(), value, 16).ptr != s.data() + s.size()) {
    malformed("has a malformed digest for " + std::string(of) + " (16 lowercase hex digits expected)");
  }
  return value;
}

// The digest of a sharded save's index (docs/format.md section 8): its metadata pairs by key, then its weight map's
// pairs by tensor name, each string hashed with its length before it.
class IndexDigest {
 public:
  void metadata(std::string_view key, std::string_view value) { pair("M", key, value); }
  void placement(std::string_view name, std::string_view file) { pair("W", name, file); }
  std::uint64_t digest() const { return hash_.digest(); }

 private:
  void pair(std::string_view marker, std::string_view first, std::string_view second) {
    text(marker);
    text(first);
    text(second);
  }
  void text(std::string_view s) {
    std::byte le[8];
    for (int b = 0; b < 8; ++b) le[b] = static_cast<std::byte>((s.size() >> (8 * b)) & 0xff);
    hash_.update(le, 8);
    hash_.update(reinterpret_cast<const std::byte*>(s.data()), s.size());
  }
  StreamHash hash_;
};

}  // namespace

std::uint64_t header_digest(std::string_view header_text, std::size_t entry_begin, std::size_t entry_end) {
  StreamHash hash;
  hash.update(reinterpret_cast<const std::byte*>(header_text.data()), entry_begin);
  hash.update(reinterpret_cast<const std::byte*>(header_text.data()) + entry_end, header_text.size() - entry_end);
  return hash.digest();
}

std::optional<std::pair<std::size_t, std::size_t>> checksums_entry_span(std::string_view header_text) {
  // The header was validated (one __metadata__, no duplicate key): the entry is the one member of that name.
  const simdjson::padded_string padded(header_text);
  simdjson::ondemand::parser parser;
  try {
    simdjson::ondemand::document document = parser.iterate(padded);
    for (auto top : document.get_object()) {
      if (std::string_view(top.unescaped_key()) != metadata_key) continue;
      for (auto member : top.value().get_object()) {
        if (std::string_view(member.unescaped_key()) != checksums_metadata_key) continue;
        const std::string_view token = member.value().raw_json_token();
        const std::size_t begin = static_cast<std::size_t>(token.data() - padded.data()) + 1;
        std::size_t end = begin;
        while (end < header_text.size() && header_text[end] != '"') end += header_text[end] == '\\' ? 2 : 1;
        return std::pair{begin, std::min(end, header_text.size())};
      }
      return std::nullopt;
    }
    return std::nullopt;
  } catch (const simdjson::simdjson_error&) {
    // Validated headers parse: a failure here is the entry's (a value of another type).
    malformed_entry();
  }
}

namespace {

// An entry's JSON parsed and its algorithm and header digest checked; `members` names the object of digests.
struct Entry {
  Tape tape;
  std::uint64_t header = 0;
  std::size_t digests = Tape::npos;
};

Entry parse_entry(std::string_view text, std::string_view members, std::uint64_t max_members) {
  Entry e;
  static const std::string document = "the checksums entry " + quote_name(checksums_metadata_key);
  try {
    e.tape = parse_schema_json(text, SchemaLimits{8, 2 * max_members + 16, document});
  } catch (const Error& error) {
    if (error.code() == ErrorCode::Io) throw;
    raise(ErrorCode::ChecksumsInvalid, error.what());  // the parser's words, naming the entry: its limits, a key twice
  }
  const Tape& tape = e.tape;
  if (tape[0].kind != NodeKind::Object) malformed("is not a JSON object");
  const std::size_t algorithm = tape.member(0, "algorithm");
  if (algorithm == Tape::npos || tape[algorithm].kind != NodeKind::String || tape[algorithm].text != checksum_algorithm) {
    malformed("does not name the algorithm \"" + std::string(checksum_algorithm) + "\"");
  }
  const std::size_t head = tape.member(0, "header");
  if (head == Tape::npos) malformed("lacks the header's digest");
  e.digests = tape.member(0, members);
  if (e.digests == Tape::npos || tape[e.digests].kind != NodeKind::Object) malformed("lacks the object \"" + std::string(members) + "\" of digests");
  e.header = parse_digest(tape[head], "the header");
  return e;
}

// Calls fn(name, digest) for each member of the entry's object of digests.
template <class Fn>
void for_each_digest(const Entry& e, std::string_view what, Fn fn) {
  const Tape& tape = e.tape;
  for (std::size_t i = e.digests + 1; i < tape[e.digests].end; i = tape.next(i + 1)) {
    fn(tape[i].text, parse_digest(tape[i + 1], std::string(what) + " " + quote_name(tape[i].text)));
  }
}

}  // namespace

std::optional<Checksums> read_checksums(const Header& header) {
  const std::string* text = header.find_metadata(checksums_metadata_key);
  if (text == nullptr) return std::nullopt;
  const Entry entry = parse_entry(*text, "tensors", header.tensors.size());
  Checksums out;
  out.header = entry.header;
  std::vector<bool> seen(header.tensors.size(), false);
  out.tensors.assign(header.tensors.size(), 0);
  for_each_digest(entry, "tensor", [&](std::string_view name, std::uint64_t digest) {
    const std::size_t at = header.position(name);
    if (at == header.tensors.size()) malformed("has a digest for tensor " + quote_name(name) + ", which the file lacks");
    if (seen[at]) malformed("has two digests for tensor " + quote_name(name));
    seen[at] = true;
    out.tensors[at] = digest;
  });
  for (std::size_t k = 0; k < seen.size(); ++k) {
    if (!seen[k]) malformed("has no digest for tensor " + quote_name(header.tensors[k].name));
  }
  return out;
}

void verify_header(const Reader& reader, const Checksums& checksums) {
  const auto span = checksums_entry_span(reader.header_text());
  if (!span || header_digest(reader.header_text(), span->first, span->second) != checksums.header) {
    raise(ErrorCode::ChecksumMismatch, "the structure does not match its checksum: the header's metadata or tensor entries changed since the save");
  }
}

void verify_tensor(const Reader& reader, const TensorInfo& info, const Checksums& checksums) {
  const std::size_t k = static_cast<std::size_t>(&info - reader.header().tensors.data());
  if (hash_bytes(reader.tensor(info).bytes) != checksums.tensors[k]) {
    raise(ErrorCode::ChecksumMismatch, "tensor " + quote_name(info.name) + " does not match its checksum: its bytes changed since the save");
  }
}

std::optional<std::uint64_t> checksums_entry_digest(const Header& header) {
  const std::string* text = header.find_metadata(checksums_metadata_key);
  if (text == nullptr) return std::nullopt;
  return hash_bytes({reinterpret_cast<const std::byte*>(text->data()), text->size()});
}

namespace {

std::uint64_t index_digest(const Metadata& metadata, const Metadata& weight_map) {
  const auto by_key = [](const Metadata& pairs) {
    std::vector<const std::pair<std::string, std::string>*> sorted;
    for (const auto& kv : pairs) {
      if (kv.first != checksums_metadata_key) sorted.push_back(&kv);
    }
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
    return sorted;
  };
  IndexDigest digest;
  for (const auto* kv : by_key(metadata)) digest.metadata(kv->first, kv->second);
  for (const auto* kv : by_key(weight_map)) digest.placement(kv->first, kv->second);
  return digest.digest();
}

}  // namespace

std::string index_checksums_entry(const Metadata& metadata, const Metadata& weight_map,
                                  const std::vector<std::pair<std::string, std::uint64_t>>& shard_digests) {
  std::string out = "{\"algorithm\":\"" + std::string(checksum_algorithm) + "\",\"header\":\"" +
                    digest_hex(index_digest(metadata, weight_map)) + "\",\"shards\":{";
  for (std::size_t k = 0; k < shard_digests.size(); ++k) {
    if (k) out += ',';
    append_json_string(out, shard_digests[k].first);
    out += ":\"" + digest_hex(shard_digests[k].second) + "\"";
  }
  return out + "}}";
}

std::optional<std::vector<std::pair<std::string, std::uint64_t>>> verify_index(const Metadata& metadata, const Metadata& weight_map) {
  const auto text = std::find_if(metadata.begin(), metadata.end(), [](const auto& kv) { return kv.first == checksums_metadata_key; });
  if (text == metadata.end()) return std::nullopt;
  const Entry entry = parse_entry(text->second, "shards", weight_map.size() + 1);
  if (entry.header != index_digest(metadata, weight_map)) {
    raise(ErrorCode::ChecksumMismatch, "the index's structure does not match its checksum: its metadata or weight map changed since the save");
  }
  std::vector<std::pair<std::string, std::uint64_t>> shards;
  for_each_digest(entry, "shard", [&](std::string_view file, std::uint64_t digest) { shards.emplace_back(std::string(file), digest); });
  return shards;
}

VerifyReport verify_file(const Reader& reader, const std::function<void(std::uint64_t)>& progress) {
  VerifyReport report;
  const Header& header = reader.header();
  const std::optional<Checksums> checksums = read_checksums(header);
  if (!checksums) return report;
  report.has_checksums = true;
  const auto record = [&](const auto& check) {
    try {
      check();
    } catch (const Error& e) {
      if (e.code() != ErrorCode::ChecksumMismatch) throw;
      report.mismatches.emplace_back(e.what());
    }
  };
  record([&] { verify_header(reader, *checksums); });
  std::vector<const TensorInfo*> in_data_order;
  for (const auto& t : header.tensors) in_data_order.push_back(&t);
  std::sort(in_data_order.begin(), in_data_order.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (const TensorInfo* t : in_data_order) {
    record([&] { verify_tensor(reader, *t, *checksums); });
    if (progress) progress(t->nbytes());
  }
  return report;
}

}  // namespace safestructures
