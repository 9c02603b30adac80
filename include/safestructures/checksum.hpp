// Checksums written with the data: XXH3-64 of each tensor's bytes and of the header's content, kept in __metadata__
// (docs/format.md section 8), and their verification.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/reader.hpp"

namespace safestructures {

// The hash the checksums use, as the entry names it.
inline constexpr std::string_view checksum_algorithm = "xxh3-64";
// A digest as the file spells it: 16 lowercase hex digits.
inline constexpr std::size_t digest_hex_size = 16;

std::uint64_t hash_bytes(std::span<const std::byte> bytes);
std::string digest_hex(std::uint64_t digest);

// XXH3-64 over bytes given in pieces (a strided tensor gathered in chunks): the same digest as hash_bytes of the whole.
class StreamHash {
 public:
  StreamHash();
  ~StreamHash();
  StreamHash(const StreamHash&) = delete;
  StreamHash& operator=(const StreamHash&) = delete;
  void update(const std::byte* data, std::size_t size);
  std::uint64_t digest() const;

 private:
  void* state_;
};

// The header digest: XXH3-64 of the header's JSON text (padding included) with the checksums entry's string content,
// [entry_begin, entry_end), left out. Any other byte of the header that changes (the structure, the caller's
// metadata, a dtype, a shape, an offset) changes it.
std::uint64_t header_digest(std::string_view header_text, std::size_t entry_begin, std::size_t entry_end);

// Where the content of the checksums entry's JSON string lies in a validated header's text (between its quotes), or
// nullopt when the header has none.
std::optional<std::pair<std::size_t, std::size_t>> checksums_entry_span(std::string_view header_text);

// A file's checksums as its entry holds them: the header digest and, per tensor of the header (by index in
// Header::tensors), its digest.
struct Checksums {
  std::uint64_t header = 0;
  std::vector<std::uint64_t> tensors;
};

// The checksums of a file, or nullopt when it has none. Raises ChecksumsInvalid when the entry is not of the form
// section 8 gives (another algorithm, a malformed digest, a tensor without its digest or a digest for none).
std::optional<Checksums> read_checksums(const Header& header);

// Raises ChecksumMismatch when the header does not match its digest ("the structure": the metadata, or the tensors'
// entries, changed since the save).
void verify_header(const Reader& reader, const Checksums& checksums);
// Raises ChecksumMismatch naming the tensor when its bytes do not match their digest.
void verify_tensor(const Reader& reader, const TensorInfo& info, const Checksums& checksums);

// What verifying a whole file found: whether it has checksums, and each mismatch as a message naming what does not
// match ("the structure" or the tensor), in data order.
struct VerifyReport {
  bool has_checksums = false;
  std::vector<std::string> mismatches;
};
// Checks the header digest and every tensor. Raises ChecksumsInvalid for a malformed entry; mismatches are reported,
// not raised, so that one run names every damaged tensor. `progress`, when given, is told of each tensor's bytes once
// they are checked (what a progress bar counts).
VerifyReport verify_file(const Reader& reader, const std::function<void(std::uint64_t)>& progress = {});

// The digest of a file's checksums entry (its text), which covers the file whole: a sharded save's index records it
// for each shard. nullopt when the file has no entry.
std::optional<std::uint64_t> checksums_entry_digest(const Header& header);

// A sharded save's index: its checksums entry, {"algorithm":"xxh3-64","header":DIGEST,"shards":{FILE:DIGEST,...}},
// from its metadata (string values; the entry left out) and weight map (tensor -> file), with `shard_digests`
// (file -> checksums_entry_digest of that shard).
std::string index_checksums_entry(const Metadata& metadata, const Metadata& weight_map,
                                  const std::vector<std::pair<std::string, std::uint64_t>>& shard_digests);
// Checks an index's metadata and weight map against its entry (ChecksumMismatch naming the index's structure;
// ChecksumsInvalid for a malformed entry) and returns the digest it records for each shard file; nullopt when the
// index has no entry.
std::optional<std::vector<std::pair<std::string, std::uint64_t>>> verify_index(const Metadata& metadata, const Metadata& weight_map);

}  // namespace safestructures
