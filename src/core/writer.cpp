// The reference writer's layout, streaming tensor bytes (gathering strided ones) to a file or a buffer, atomic replace.
#include "safestructures/writer.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <numeric>

#include "safestructures/checksum.hpp"
#include "safestructures/error.hpp"
#include "safestructures/format.hpp"

namespace safestructures {
namespace {

void check_name(const WriteTensor& t) {
  if (!is_valid_utf8(t.name)) raise(ErrorCode::InvalidName, "tensor name " + quote_name(t.name) + " is not valid UTF-8");
  if (t.name.find('\0') != std::string::npos) raise(ErrorCode::InvalidName, "tensor name " + quote_name(t.name) + " contains NUL");
  if (t.name == metadata_key) raise(ErrorCode::InvalidName, "\"__metadata__\" is reserved and cannot name a tensor");
}

std::uint64_t storage_size(const WriteTensor& t) {
  const std::uint64_t bytes = tensor_byte_size(t.name, t.dtype, t.shape);
  if (!t.strides.empty()) {
    if (t.strides.size() != t.shape.size()) {
      raise(ErrorCode::InvalidArgument, "tensor " + quote_name(t.name) + ": " + std::to_string(t.strides.size()) + " strides for " +
                                            std::to_string(t.shape.size()) + " dimensions");
    }
    if (dtype_is_sub_byte(t.dtype)) {
      raise(ErrorCode::InvalidArgument, "tensor " + quote_name(t.name) + ": sub-byte dtype " + std::string(dtype_name(t.dtype)) + " must be contiguous");
    }
  }
  if (bytes > 0 && t.data == nullptr) {
    raise(ErrorCode::InvalidArgument,
          "tensor " + quote_name(t.name) + ": no data for " + std::to_string(bytes) + " bytes");
  }
  return bytes;
}

// The sinks receive the file's bytes in order, into the caller's buffer or a file.
class MemorySink {
 public:
  explicit MemorySink(std::span<std::byte> out) : out_(out) {}
  void write(const std::byte* data, std::size_t size) {
    if (size > out_.size() - pos_) raise(ErrorCode::InvalidArgument, "output buffer too small for the file");
    if (size) std::memcpy(out_.data() + pos_, data, size);
    pos_ += size;
  }
  void rewrite_header(const std::string& header) { std::memcpy(out_.data(), header.data(), header.size()); }

 private:
  std::span<std::byte> out_;
  std::size_t pos_ = 0;
};

// Coalesces small pieces (many tiny tensors) into few write() calls; large pieces go straight to the kernel from the
// caller's memory.
class FileSink {
 public:
  static constexpr std::size_t capacity = 1 << 20;
  FileSink(int fd, const std::string& path) : fd_(fd), path_(path) { buffer_.reserve(capacity); }
  void write(const std::byte* data, std::size_t size) {
    if (size >= capacity) {
      flush();
      write_all(data, size);
      return;
    }
    if (buffer_.size() + size > capacity) flush();
    buffer_.insert(buffer_.end(), data, data + size);
  }
  void flush() {
    write_all(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  void rewrite_header(const std::string& header) {
    flush();
    for (std::size_t done = 0; done < header.size();) {
      const ssize_t n = ::pwrite(fd_, header.data() + done, header.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) raise_io("cannot write", path_, errno);
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  void write_all(const std::byte* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        raise_io("cannot write", path_, errno);
      }
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  }
  int fd_;
  const std::string& path_;
  std::vector<std::byte> buffer_;
};

// Copies a strided tensor into C order through a bounded staging buffer, so peak memory does not grow with the
// tensor. Positions are kept as byte offsets from the base pointer: a pointer is only formed for bytes that exist.
template <class Sink>
void write_strided(Sink& sink, const WriteTensor& t, std::uint64_t total) {
  const std::uint64_t itemsize = dtype_bits(t.dtype) / 8;
  struct Dim {
    std::uint64_t n;
    std::int64_t stride;
  };
  std::vector<Dim> dims;
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] == 0) return;
    if (t.shape[i] != 1) dims.push_back({t.shape[i], t.strides[i]});
  }
  // Trailing dimensions that are laid out contiguously form one block copied at once.
  std::uint64_t block = itemsize;
  while (!dims.empty() && dims.back().stride == static_cast<std::int64_t>(block)) {
    block *= dims.back().n;
    dims.pop_back();
  }
  if (dims.empty()) {
    sink.write(t.data, block);
    return;
  }
  constexpr std::uint64_t staging_capacity = 256 * 1024;
  std::vector<std::byte> staging;
  if (block < staging_capacity) staging.resize(std::min(staging_capacity, total));
  std::size_t used = 0;
  auto emit = [&](std::int64_t offset) {
    const std::byte* src = t.data + offset;
    if (block >= staging_capacity) {
      sink.write(src, block);
      return;
    }
    if (used + block > staging.size()) {
      sink.write(staging.data(), used);
      used = 0;
    }
    std::memcpy(staging.data() + used, src, block);
    used += block;
  };
  const Dim inner = dims.back();
  dims.pop_back();
  std::vector<std::uint64_t> index(dims.size(), 0);
  std::int64_t row = 0;
  while (true) {
    for (std::uint64_t k = 0; k < inner.n; ++k) emit(row + static_cast<std::int64_t>(k) * inner.stride);
    // Odometer over the outer dimensions.
    std::size_t d = dims.size();
    while (true) {
      if (d == 0) {
        if (used) sink.write(staging.data(), used);
        return;
      }
      --d;
      if (++index[d] < dims[d].n) {
        row += dims[d].stride;
        break;
      }
      row -= static_cast<std::int64_t>(index[d] - 1) * dims[d].stride;
      index[d] = 0;
    }
  }
}

// One tensor's bytes in C order: contiguous ones straight from their memory, strided ones gathered.
template <class Sink>
void write_tensor(Sink& sink, const WriteTensor& t, std::uint64_t size) {
  if (t.strides.empty()) {
    sink.write(t.data, size);
  } else {
    write_strided(sink, t, size);
  }
}

// Passes the bytes on to the sink, hashing them on the way (a strided tensor reaches the sink in gathered pieces).
template <class Sink>
struct HashingSink {
  Sink& sink;
  StreamHash hash;
  void write(const std::byte* data, std::size_t size) {
    hash.update(data, size);
    sink.write(data, size);
  }
};

// Passes the bytes on to the sink and tells `progress` of the tensor bytes among them, in pieces of at most
// progress_piece bytes; the header comes first, in one write, and is not counted.
template <class Sink>
class ProgressSink {
 public:
  static constexpr std::size_t progress_piece = 8 << 20;
  ProgressSink(Sink& sink, const std::function<void(std::uint64_t)>& progress, std::size_t header_size)
      : sink_(sink), progress_(progress), header_left_(header_size) {}
  void write(const std::byte* data, std::size_t size) {
    const std::size_t header = std::min(size, header_left_);
    if (header) sink_.write(data, header);
    header_left_ -= header;
    for (std::size_t done = header; done < size;) {
      const std::size_t piece = std::min(size - done, progress_piece);
      sink_.write(data + done, piece);
      progress_(piece);
      done += piece;
    }
  }
  void rewrite_header(const std::string& header) { sink_.rewrite_header(header); }

 private:
  Sink& sink_;
  const std::function<void(std::uint64_t)>& progress_;
  std::size_t header_left_;
};

// Contiguous tensors at least this large are hashed on a second thread while the first writes them: both read the
// same memory, and the write, not the hash, is the longer of the two.
constexpr std::uint64_t parallel_hash_size = 4 << 20;

template <class Sink>
std::uint64_t write_hashed(Sink& sink, const WriteTensor& t, std::uint64_t size) {
  if (!t.strides.empty()) {
    HashingSink<Sink> hashing{sink, {}};
    write_strided(hashing, t, size);
    return hashing.hash.digest();
  }
  // Contiguous: hashed in one call (no streaming state to allocate per tensor, which many small tensors would pay).
  const std::span<const std::byte> bytes(t.data, size);
  if (size < parallel_hash_size) {
    sink.write(t.data, size);
    return hash_bytes(bytes);
  }
  std::future<std::uint64_t> digest;
  try {
    digest = std::async(std::launch::async, [bytes] { return hash_bytes(bytes); });
  } catch (const std::system_error&) {  // no thread to be had: hash here
    sink.write(t.data, size);
    return hash_bytes(bytes);
  }
  sink.write(t.data, size);
  return digest.get();
}

template <class Sink>
void write_all_tensors(Sink& sink, const Layout& layout, std::span<const WriteTensor> tensors) {
  sink.write(reinterpret_cast<const std::byte*>(layout.header.data()), layout.header.size());
  if (layout.digest_at.empty()) {
    for (std::size_t i : layout.order) write_tensor(sink, tensors[i], layout.sizes[i]);
    return;
  }
  std::string header = layout.header;
  for (std::size_t i : layout.order) {
    const std::string hex = digest_hex(write_hashed(sink, tensors[i], layout.sizes[i]));
    header.replace(layout.digest_at[i], hex.size(), hex);
  }
  sink.rewrite_header(header);
}

// The chunk buffer of the last stream on this thread, kept for the next: a recording streams a record at a time, and
// a chunk allocated and freed for each, between the recording's own allocations, left the allocator holes it did not
// reuse (the process grew by some 30 KB a record).
thread_local std::vector<std::byte> spare_chunk;

// Coalesces small pieces into chunks of stream_chunk_size; large pieces go to the receiver in slices of the caller's
// memory, uncopied.
class ChunkSink {
 public:
  explicit ChunkSink(const ChunkWriter& out) : out_(out), buffer_(std::move(spare_chunk)) {
    buffer_.clear();
    buffer_.reserve(stream_chunk_size);
  }
  ~ChunkSink() { spare_chunk = std::move(buffer_); }
  ChunkSink(const ChunkSink&) = delete;
  ChunkSink& operator=(const ChunkSink&) = delete;
  void write(const std::byte* data, std::size_t size) {
    if (buffer_.size() + size > stream_chunk_size) flush();
    if (size < stream_chunk_size) {
      buffer_.insert(buffer_.end(), data, data + size);
      return;
    }
    for (std::size_t done = 0; done < size; done += stream_chunk_size) out_(data + done, std::min(stream_chunk_size, size - done));
  }
  void flush() {
    if (!buffer_.empty()) out_(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

 private:
  const ChunkWriter& out_;
  std::vector<std::byte> buffer_;
};

// Hashes without writing: the first pass of a streamed save, whose header must hold the digests before the data.
struct NullSink {
  void write(const std::byte*, std::size_t) {}
};

std::uint64_t tensor_digest(const WriteTensor& t, std::uint64_t size) {
  if (t.strides.empty()) return hash_bytes({t.data, static_cast<std::size_t>(size)});
  NullSink none;
  HashingSink<NullSink> hashing{none, {}};
  write_strided(hashing, t, size);
  return hashing.hash.digest();
}

}  // namespace

namespace {

// The checksums entry's value, escaped as the content of the header's JSON string: {"algorithm":"xxh3-64",
// "header":DIGEST,"tensors":{NAME:DIGEST,...}} with the tensors in data order and every digest left as zeros. The
// places of the tensors' go into `digest_at`; the place of the header's is returned.
std::size_t append_checksums_entry(std::string& json, std::span<const WriteTensor> tensors, const Layout& layout,
                                   std::vector<std::size_t>& digest_at) {
  // The value is JSON inside a JSON string: the names are escaped twice.
  json += "{\\\"algorithm\\\":\\\"";
  json += checksum_algorithm;
  json += "\\\",\\\"header\\\":\\\"";
  const std::size_t header_at = json.size();
  json.append(digest_hex_size, '0');
  json += "\\\",\\\"tensors\\\":{";
  std::string inner;
  for (std::size_t k = 0; k < layout.order.size(); ++k) {
    const std::size_t i = layout.order[k];
    if (k) json += ',';
    inner.clear();
    append_json_string(inner, tensors[i].name);
    append_json_escaped(json, inner);
    json += ":\\\"";
    digest_at[i] = json.size();
    json.append(digest_hex_size, '0');
    json += "\\\"";
  }
  json += "}}";
  return header_at;
}

}  // namespace

namespace {
// The memory of the last header laid out on this thread, given back by its layout: a large header (a schema's) freed and
// allocated again at each save is returned to the system in between and faulted in anew, page by page. Kept up to
// this size.
constexpr std::size_t kept_header_capacity = std::size_t{16} << 20;
thread_local std::string spare_header;
}  // namespace

Layout::~Layout() {
  if (header.capacity() <= kept_header_capacity && header.capacity() > spare_header.capacity()) spare_header = std::move(header);
}

Layout plan_layout(std::span<const WriteTensor> tensors, const Metadata* metadata, std::uint64_t max_header_size,
                   std::string_view escaped_key, bool checksums) {
  Layout layout;
  layout.sizes.resize(tensors.size());
  layout.offsets.resize(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    check_name(tensors[i]);
    layout.sizes[i] = storage_size(tensors[i]);
  }
  layout.order.resize(tensors.size());
  std::iota(layout.order.begin(), layout.order.end(), 0);
  std::sort(layout.order.begin(), layout.order.end(), [&](std::size_t a, std::size_t b) {
    if (tensors[a].dtype != tensors[b].dtype) return tensors[a].dtype > tensors[b].dtype;
    return tensors[a].name < tensors[b].name;
  });
  {
    std::vector<std::string_view> names;
    names.reserve(tensors.size());
    for (const auto& t : tensors) names.push_back(t.name);
    std::sort(names.begin(), names.end());
    const auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) raise(ErrorCode::DuplicateName, "two tensors are named " + quote_name(*dup));
  }
  std::uint64_t offset = 0;
  for (std::size_t i : layout.order) {
    layout.offsets[i] = offset;
    offset += layout.sizes[i];
  }
  layout.data_size = offset;

  std::vector<const std::pair<std::string, std::string>*> sorted;
  if (metadata != nullptr) {
    sorted.reserve(metadata->size());
    for (const auto& kv : *metadata) {
      if (!is_valid_utf8(kv.first)) raise(ErrorCode::InvalidMetadata, "metadata key " + quote_name(kv.first) + " is not valid UTF-8");
      if (!is_valid_utf8(kv.second)) raise(ErrorCode::InvalidMetadata, "metadata value of key " + quote_name(kv.first) + " is not valid UTF-8");
      if (checksums && kv.first == checksums_metadata_key) {
        raise(ErrorCode::InvalidMetadata, "metadata key " + quote_name(kv.first) + " is reserved for safestructures' own use");
      }
      sorted.push_back(&kv);
    }
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
    for (std::size_t k = 1; k < sorted.size(); ++k) {
      if (sorted[k - 1]->first == sorted[k]->first) raise(ErrorCode::DuplicateKey, "metadata key " + quote_name(sorted[k]->first) + " appears twice");
    }
  }
  if (checksums) layout.digest_at.resize(tensors.size());
  // With checksums: where the entry's string content lies in `json`, and where its header digest goes.
  std::size_t entry_begin = 0, entry_end = 0, header_digest_at = 0;

  std::string& json = layout.header;
  // Room for about all of it (the checksums entry's head, a tensor's entry and its checksum rarely take more than 256
  // bytes; a value escaped grows): a large schema in the metadata is not grown by doubling, copy after copy.
  std::size_t room = 256 * (1 + tensors.size());
  if (metadata != nullptr) {
    for (const auto& [key, value] : *metadata) room += key.size() + value.size() + 8;
  }
  json = std::move(spare_header);
  json.clear();
  // Memory far beyond this header's (a small save after a large one) is let go; reserve() below the capacity could
  // shrink it into a new allocation.
  if (json.capacity() > 2 * room + (std::size_t{64} << 10)) std::string().swap(json);
  if (json.capacity() < room) json.reserve(room);
  json.assign(8, '\0');
  json += '{';
  bool first = true;
  if (metadata != nullptr || checksums) {
    json += "\"__metadata__\":{";
    bool checksums_written = !checksums;
    bool any = false;
    const auto separate = [&] {
      if (any) json += ',';
      any = true;
    };
    const auto write_checksums = [&] {
      separate();
      append_json_string(json, checksums_metadata_key);
      json += ":\"";
      entry_begin = json.size();
      header_digest_at = append_checksums_entry(json, tensors, layout, layout.digest_at);
      entry_end = json.size();
      json += '"';
      checksums_written = true;
    };
    for (const auto* kv : sorted) {
      if (!checksums_written && checksums_metadata_key < kv->first) write_checksums();
      separate();
      append_json_string(json, kv->first);
      json += ':';
      if (!escaped_key.empty() && kv->first == escaped_key) {
        json += '"';
        json += kv->second;
        json += '"';
      } else {
        append_json_string(json, kv->second);
      }
    }
    if (!checksums_written) write_checksums();
    json += '}';
    first = false;
  }
  for (std::size_t i : layout.order) {
    const WriteTensor& t = tensors[i];
    if (!first) json += ',';
    first = false;
    append_json_string(json, t.name);
    json += ":{\"dtype\":\"";
    json += dtype_name(t.dtype);
    json += "\",\"shape\":[";
    for (std::size_t d = 0; d < t.shape.size(); ++d) {
      if (d) json += ',';
      json += std::to_string(t.shape[d]);
    }
    json += "],\"data_offsets\":[";
    json += std::to_string(layout.offsets[i]);
    json += ',';
    json += std::to_string(layout.offsets[i] + layout.sizes[i]);
    json += "]}";
  }
  json += '}';
  json.append((8 - json.size() % 8) % 8, ' ');
  if (checksums) {
    // The header's bytes but the entry's content, which holds this digest and the tensors' (filled in as they stream).
    const std::string hex = digest_hex(header_digest(std::string_view(json).substr(8), entry_begin - 8, entry_end - 8));
    json.replace(header_digest_at, hex.size(), hex);
  }
  const std::uint64_t n = json.size() - 8;
  for (int b = 0; b < 8; ++b) json[b] = static_cast<char>((n >> (8 * b)) & 0xff);
  if (n > max_header_size) {
    raise(ErrorCode::HeaderTooLarge, "the header would be " + std::to_string(n) + " bytes, over the limit of " +
                                         std::to_string(max_header_size) + " that readers accept");
  }
  return layout;
}

void write_into(std::span<std::byte> out, const Layout& layout, std::span<const WriteTensor> tensors) {
  if (out.size() != layout.file_size()) {
    raise(ErrorCode::InvalidArgument, "output buffer is " + std::to_string(out.size()) + " bytes, the file needs " + std::to_string(layout.file_size()));
  }
  MemorySink sink(out);
  write_all_tensors(sink, layout, tensors);
}

void write_stream(const Layout& layout, std::span<const WriteTensor> tensors, const ChunkWriter& out) {
  std::string header = layout.header;
  if (!layout.digest_at.empty()) {
    for (std::size_t i : layout.order) {
      const std::string hex = digest_hex(tensor_digest(tensors[i], layout.sizes[i]));
      header.replace(layout.digest_at[i], hex.size(), hex);
    }
  }
  ChunkSink sink(out);
  sink.write(reinterpret_cast<const std::byte*>(header.data()), header.size());
  for (std::size_t i : layout.order) write_tensor(sink, tensors[i], layout.sizes[i]);
  sink.flush();
}

std::vector<std::byte> write_bytes(std::span<const WriteTensor> tensors, const Metadata* metadata, bool checksums) {
  const Layout layout = plan_layout(tensors, metadata, default_max_header_size, {}, checksums);
  std::vector<std::byte> out(layout.file_size());
  write_into(out, layout, tensors);
  return out;
}

void write_file(const std::filesystem::path& path, std::span<const WriteTensor> tensors, const Metadata* metadata,
                const WriteOptions& options) {
  write_file(path, plan_layout(tensors, metadata, default_max_header_size, {}, options.checksums), tensors, options);
}

void write_file(const std::filesystem::path& path, const Layout& layout, std::span<const WriteTensor> tensors,
                const WriteOptions& options) {
  const std::string target = path.string();
  // An existing target keeps its permission bits (the new file replaces it under the same name).
  struct stat existing {};
  const bool keep_mode = ::stat(target.c_str(), &existing) == 0 && S_ISREG(existing.st_mode);
  std::string temporary;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    temporary = temporary_path_for(path);
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) raise_io("cannot create a temporary file beside", target, errno);
  }
  if (fd < 0) raise_io("cannot create a temporary file beside", target, EEXIST);
  // Whatever fails from here on, the temporary file goes and the target stays as it was.
  int lock = -1;
  struct Cleanup {
    int& fd;
    int& lock;
    const std::string& temporary;
    bool done = false;
    ~Cleanup() {
      if (fd >= 0) ::close(fd);
      if (!done) ::unlink(temporary.c_str());
      if (lock >= 0) ::close(lock);
    }
  } cleanup{fd, lock, temporary};
  // The temporary file is locked until it is renamed (through a duplicate descriptor, which keeps the lock when the
  // written one is closed): a later save removes only files that no one holds, of processes that are gone. Where the
  // file system has no locks, later saves cannot take one either, and remove nothing.
  lock = ::dup(fd);
  if (lock >= 0) ::fcntl(lock, F_SETFD, FD_CLOEXEC);
  if (lock >= 0 && ::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock);
    lock = -1;
  }
  // Temporary files of earlier saves of this target that were killed before they could remove theirs.
  remove_stale_temporaries(path);

  if (keep_mode && ::fchmod(fd, existing.st_mode & 07777) != 0) raise_io("cannot set the mode of", temporary, errno);
  FileSink sink(fd, temporary);
  if (options.progress) {
    ProgressSink<FileSink> reporting(sink, options.progress, layout.header.size());
    write_all_tensors(reporting, layout, tensors);
  } else {
    write_all_tensors(sink, layout, tensors);
  }
  sink.flush();
  if (options.fsync && ::fsync(fd) != 0) raise_io("cannot sync", temporary, errno);
  const int closing = fd;
  fd = -1;
  if (::close(closing) != 0) raise_io("cannot close", temporary, errno);
  if (::rename(temporary.c_str(), target.c_str()) != 0) raise_io("cannot replace", target, errno);
  cleanup.done = true;
  if (options.fsync) {
    const std::string dir = path.parent_path().empty() ? std::string(".") : path.parent_path().string();
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
}

}  // namespace safestructures
