// Writing safetensors files: the reference writer's layout, streamed from the caller's buffers, replaced atomically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "safestructures/container.hpp"
#include "safestructures/dtype.hpp"

namespace safestructures {

// One tensor to write. The bytes are read from `data` at write time and must stay valid until the write returns.
struct WriteTensor {
  std::string name;
  Dtype dtype;
  std::vector<std::uint64_t> shape;
  const std::byte* data = nullptr;
  // Byte strides per dimension (may be negative or zero). Empty means C-contiguous; sub-byte dtypes must be
  // contiguous. Strided tensors are gathered into C order through a bounded buffer.
  std::vector<std::int64_t> strides;
};

// The byte layout of a file: the 8-byte prefix and padded header, and where each tensor's bytes go.
struct Layout {
  // Prefix + JSON + space padding to a multiple of 8.
  std::string header;
  // Indices into the tensor list in data order (dtype descending, then name): the order bytes are written in.
  std::vector<std::size_t> order;
  // Per tensor index: offset within the data buffer, and byte size.
  std::vector<std::uint64_t> offsets;
  std::vector<std::uint64_t> sizes;
  std::uint64_t data_size = 0;
  // With checksums (section 8 of docs/format.md): per tensor index, where its digest goes in `header`, written there
  // once its bytes have streamed out. Empty without checksums.
  std::vector<std::size_t> digest_at;

  std::uint64_t file_size() const { return header.size() + data_size; }

  Layout() = default;
  // Gives the header's memory to the next layout planned on this thread (writer.cpp).
  ~Layout();
  Layout(const Layout&) = default;
  Layout& operator=(const Layout&) = default;
  Layout(Layout&&) noexcept = default;
  Layout& operator=(Layout&&) noexcept = default;
};

// Lays out a file as the reference writer does: compact JSON, `__metadata__` first with its keys sorted, entries in
// data order, header padded with spaces to a multiple of 8. `metadata == nullptr` writes no `__metadata__` key; an
// empty list writes `"__metadata__":{}`. Validates names (UTF-8, no NUL, unique, not `__metadata__`), metadata
// (UTF-8, unique keys), shapes and strides before anything is written. Raises HeaderTooLarge when the header would
// exceed `max_header_size`.
// `escaped_key` names a metadata key whose value is given already escaped (the JSON string's content without its
// quotes, as SchemaText writes the schema): it is copied as it is.
// `checksums` adds the `__safestructures_checksums__` entry (include/safestructures/checksum.hpp): the header's digest,
// and a digest of each tensor filled in by the write, which hashes the bytes as they stream out. The caller's metadata
// may not hold that key then (InvalidMetadata); without checksums it is copied as any key (a file rewritten as it was
// keeps checksums that still match).
Layout plan_layout(std::span<const WriteTensor> tensors, const Metadata* metadata,
                   std::uint64_t max_header_size = default_max_header_size, std::string_view escaped_key = {},
                   bool checksums = false);

struct WriteOptions {
  // fsync the temporary file before the rename, so that the new file survives a power loss, not only a crash.
  bool fsync = false;
  // Write the checksums entry (see plan_layout). Off here, as in every layout-level call, so that these functions lay
  // files out as the reference writer does; the save APIs (save_file of value.hpp, Python's) turn it on by default.
  bool checksums = false;
  // Told of each piece of tensor bytes as it streams out (its size; pieces of a few MiB at most, so that one large
  // tensor advances too), on the writing thread: what a progress bar counts. The header's bytes are not counted.
  std::function<void(std::uint64_t)> progress = {};
};

// Writes the file to a temporary file beside `path` (`.NAME.PID-N-STAMP.tmp`, locked with flock until it is renamed)
// and renames it over `path`. On any error the temporary file is removed and `path` is left as it was. Before writing,
// it removes the temporary files that killed saves of the same `path` left (remove_stale_temporaries).
void write_file(const std::filesystem::path& path, std::span<const WriteTensor> tensors, const Metadata* metadata,
                const WriteOptions& options = {});
// The same, for a layout already planned for these tensors.
void write_file(const std::filesystem::path& path, const Layout& layout, std::span<const WriteTensor> tensors,
                const WriteOptions& options = {});

// Removes the temporary files beside `path` of earlier saves of `path` that ended without removing them (a process
// killed mid-save): those whose writer, named by the pid in the file's name, is no longer a process on this host and
// whose lock no one holds. A live save's file (its process alive, or its lock held, as from another host sharing the
// directory) is never touched; links, FIFOs and names of another form are left alone. Returns how many it removed;
// errors (an unreadable directory) remove nothing and raise nothing.
std::size_t remove_stale_temporaries(const std::filesystem::path& path);
// The name of the temporary file write_file writes a save of `path` to: ".NAME.PID-N-STAMP.tmp" beside it, the
// writer's pid first, as remove_stale_temporaries expects.
std::string temporary_path_for(const std::filesystem::path& path);

// Writes the whole file into `out`, whose size must be layout.file_size().
void write_into(std::span<std::byte> out, const Layout& layout, std::span<const WriteTensor> tensors);

std::vector<std::byte> write_bytes(std::span<const WriteTensor> tensors, const Metadata* metadata, bool checksums = false);

// Receives a stream's bytes in order, in pieces of at most stream_chunk_size bytes.
using ChunkWriter = std::function<void(const std::byte* data, std::size_t size)>;
inline constexpr std::size_t stream_chunk_size = 1 << 20;
// Writes the whole file to `out` in order, never going back: a stream (a pipe, a socket) can take it. With checksums
// the tensors are hashed first, in a pass over their own memory, so that the header goes out complete; small pieces
// are coalesced, large ones handed over in slices of the tensor's memory. Memory stays bounded by one chunk.
void write_stream(const Layout& layout, std::span<const WriteTensor> tensors, const ChunkWriter& out);

}  // namespace safestructures
