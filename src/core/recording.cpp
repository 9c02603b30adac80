// A recording's crash-safe header commit: the journal it appends, writes in place and cuts off, and reads back.
#include "safestructures/recording.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <span>
#include <vector>

#include "safestructures/checksum.hpp"
#include "safestructures/container.hpp"
#include "safestructures/error.hpp"
#include "safestructures/format.hpp"

namespace safestructures {
namespace {

// The journal's footer: the magic, N, the data size, and the digest of the header text with the two numbers.
constexpr std::size_t footer_size = 32;

void store_le64(std::byte* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

// Spaces, written in pieces: the padding of a header to its room is never built in memory.
constexpr std::size_t space_chunk = 64 << 10;
const char* spaces() {
  static const std::string chunk(space_chunk, ' ');
  return chunk.data();
}

// XXH3-64 of the header text padded with spaces to `room` bytes, then `room` and `data_size` (u64, little-endian).
std::uint64_t journal_digest(std::string_view text, std::uint64_t room, std::uint64_t data_size) {
  StreamHash hash;
  hash.update(reinterpret_cast<const std::byte*>(text.data()), text.size());
  for (std::uint64_t left = room - text.size(); left > 0;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, space_chunk));
    hash.update(reinterpret_cast<const std::byte*>(spaces()), n);
    left -= n;
  }
  std::array<std::byte, 16> numbers{};
  store_le64(numbers.data(), room);
  store_le64(numbers.data() + 8, data_size);
  hash.update(numbers.data(), numbers.size());
  return hash.digest();
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool read_exactly(int fd, void* out, std::size_t size, std::uint64_t offset) {
  auto* p = static_cast<char*>(out);
  while (size > 0) {
    const ssize_t got = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    size -= static_cast<std::size_t>(got);
    offset += static_cast<std::uint64_t>(got);
  }
  return true;
}

void write_exactly(int fd, const void* data, std::size_t size, std::uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t put = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) raise_io("cannot write", "the recording", errno);
    p += put;
    size -= static_cast<std::size_t>(put);
    offset += static_cast<std::uint64_t>(put);
  }
}

// The header text, then spaces up to `room` bytes, at `offset`.
void write_padded(int fd, std::string_view text, std::uint64_t room, std::uint64_t offset) {
  write_exactly(fd, text.data(), text.size(), offset);
  for (std::uint64_t at = offset + text.size(), end = offset + room; at < end;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(end - at, space_chunk));
    write_exactly(fd, spaces(), n, at);
    at += n;
  }
}

void sync(int fd, bool fsync) {
  if (fsync && ::fsync(fd) != 0) raise_io("cannot sync", "the recording", errno);
}

// The byte readers lock (shared) and a growing writer locks (exclusive): past any file's end, so no lock on data
// meets it.
constexpr off_t reader_lock_byte = off_t{1} << 62;

// Sets (or clears) a lock of `type` on that byte without waiting; returns 0 or the errno.
int set_reader_lock(int fd, short type) {
  struct flock lock {};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = reader_lock_byte;
  lock.l_len = 1;
  return ::fcntl(fd, F_OFD_SETLK, &lock) == 0 ? 0 : errno;
}

}  // namespace

bool hold_recording_read_lock(int fd, const std::string& name) {
  // Polled rather than waited on, so that a writer stopped mid-growth cannot hang a reader.
  for (int waited_ms = 0;; ++waited_ms) {
    const int error = set_reader_lock(fd, F_RDLCK);
    if (error == 0) return true;
    if (error != EAGAIN && error != EACCES && error != EINTR) return false;  // no such locks here
    if (waited_ms >= 30000) raise_io("cannot lock (its writer is growing its header room)", name, error);
    ::usleep(1000);
  }
}

namespace {

// The room N_j and data size D a journal's footer states, when they fit a file of `size` bytes: the file is exactly
// prefix, room, data, journal header, footer (section 9). Compared so that no sum can overflow, whatever it claims.
std::optional<std::pair<std::uint64_t, std::uint64_t>> footer_fits(const std::array<std::byte, footer_size>& footer, std::uint64_t size,
                                                                   std::uint64_t max_header_size) {
  if (size < 8 + footer_size || std::memcmp(footer.data(), recording_journal_magic.data(), 8) != 0) return std::nullopt;
  const std::uint64_t room = load_le64(footer.data() + 8), data_size = load_le64(footer.data() + 16);
  if (room == 0 || room > max_header_size || room % 8 != 0 || room > (size - 8 - footer_size) / 2 ||
      data_size != size - 8 - footer_size - 2 * room) {
    return std::nullopt;
  }
  return std::pair{room, data_size};
}

// Where the data that header `header` describes ends in its file: no journal of a commit starts before it.
std::uint64_t described_end(const Header& header) {
  std::uint64_t end = 0;
  for (const TensorInfo& tensor : header.tensors) end = std::max(end, tensor.end);
  return header.data_offset() + end;
}

// The header in place of the file open as `fd`, nullopt where it does not parse (a commit tearing it, or no header).
std::optional<Header> header_in_place(int fd, std::uint64_t max_header_size) {
  struct stat st {};
  std::array<std::byte, 8> prefix{};
  if (::fstat(fd, &st) != 0 || !read_exactly(fd, prefix.data(), prefix.size(), 0)) return std::nullopt;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t room = load_le64(prefix.data());
  if (room > max_header_size || room > size - 8) return std::nullopt;
  std::string text(room, '\0');
  if (!read_exactly(fd, text.data(), room, 8)) return std::nullopt;
  try {
    return parse_header_text(text, size - 8 - room);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Io) throw;
    return std::nullopt;
  }
}

}  // namespace

std::optional<RecordingJournal> read_recording_journal(int fd, std::uint64_t max_header_size) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::array<std::byte, footer_size> footer{};
  if (size < 8 + footer_size || !read_exactly(fd, footer.data(), footer_size, size - footer_size)) return std::nullopt;
  // The journal's own room N_j, which a growth makes differ from the prefix's N until the commit ends.
  const auto fits = footer_fits(footer, size, max_header_size);
  if (!fits) return std::nullopt;
  const auto [room, data_size] = *fits;
  RecordingJournal journal;
  journal.data_size = data_size;
  journal.at = 8 + room + data_size;
  journal.header_text.resize(room);
  if (!read_exactly(fd, journal.header_text.data(), room, journal.at)) return std::nullopt;
  if (journal_digest(journal.header_text, room, journal.data_size) != load_le64(footer.data() + 24)) return std::nullopt;
  return journal;
}

std::optional<RecordingJournal> read_recording_journal(const std::filesystem::path& path, std::uint64_t max_header_size) {
  Fd file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) return std::nullopt;
  return read_recording_journal(file.fd, max_header_size);
}

std::optional<RecordingJournal> journal_over(int fd, const Header* in_place, std::uint64_t max_header_size) {
  if (in_place != nullptr && in_place->find_metadata(recording_metadata_key) == nullptr) return std::nullopt;
  auto journal = read_recording_journal(fd, max_header_size);
  if (journal && in_place != nullptr && journal->at < described_end(*in_place)) return std::nullopt;
  return journal;
}

std::optional<RecordingJournal> journal_over(const std::filesystem::path& path, const Header* in_place, std::uint64_t max_header_size) {
  if (in_place != nullptr && in_place->find_metadata(recording_metadata_key) == nullptr) return std::nullopt;
  Fd file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) return std::nullopt;
  return journal_over(file.fd, in_place, max_header_size);
}

bool finish_recording_commit(int fd, bool fsync) {
  // Only a journal that readers take: not one ending a file that is no recording, nor a record's bytes.
  const std::optional<Header> in_place = header_in_place(fd, default_max_header_size);
  const auto journal = journal_over(fd, in_place ? &*in_place : nullptr, default_max_header_size);
  if (!journal) return false;
  // Nor one whose header no reader accepts: the file is left as it is, for its readers to refuse.
  try {
    (void)parse_header_text(journal->header_text, journal->data_size);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Io) throw;
    return false;
  }
  // The journal stays whole while its room and text are written in place: a kill here leaves the same state to finish
  // again.
  const std::uint64_t room = journal->header_text.size();
  std::array<std::byte, 8> prefix{};
  store_le64(prefix.data(), room);
  write_exactly(fd, prefix.data(), prefix.size(), 0);
  write_exactly(fd, journal->header_text.data(), room, 8);
  sync(fd, fsync);
  if (::ftruncate(fd, static_cast<off_t>(8 + room + journal->data_size)) != 0) raise_io("cannot resize", "the recording", errno);
  sync(fd, fsync);
  return true;
}

namespace {

// The file's status, once checked to end where its data does (8 + room + data_size): the journal must be the file's
// tail, and anything else there (another writer's bytes) would hide it.
struct stat ending_at(int fd, std::uint64_t end) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) raise_io("cannot stat", "the recording", errno);
  if (static_cast<std::uint64_t>(st.st_size) != end) {
    raise(ErrorCode::InvalidArgument, "the recording holds " + std::to_string(st.st_size) + " bytes where its data ends at " +
                                          std::to_string(end) + ": another process changed it");
  }
  return st;
}

// Syncs the data (which the new header describes, before anything points at it), then appends the journal at `end`
// (the header padded to `room`, then its footer) and syncs it.
void append_journal(int fd, std::string_view header_text, std::uint64_t room, std::uint64_t data_size, std::uint64_t end,
                    bool fsync) {
  std::array<std::byte, footer_size> footer{};
  std::memcpy(footer.data(), recording_journal_magic.data(), 8);
  store_le64(footer.data() + 8, room);
  store_le64(footer.data() + 16, data_size);
  store_le64(footer.data() + 24, journal_digest(header_text, room, data_size));
  sync(fd, fsync);
  write_padded(fd, header_text, room, end);
  write_exactly(fd, footer.data(), footer_size, end + room);
  sync(fd, fsync);
}

}  // namespace

void commit_recording_header(int fd, std::string_view header_text, std::uint64_t room, std::uint64_t data_size, bool fsync) {
  if (header_text.size() > room) {
    raise(ErrorCode::InvalidArgument, "a header of " + std::to_string(header_text.size()) + " bytes does not fit the room of " +
                                          std::to_string(room));
  }
  const std::uint64_t end = 8 + room + data_size;
  ending_at(fd, end);
  append_journal(fd, header_text, room, data_size, end, fsync);
  write_padded(fd, header_text, room, 8);
  std::array<std::byte, 8> prefix{};
  store_le64(prefix.data(), room);
  write_exactly(fd, prefix.data(), prefix.size(), 0);
  sync(fd, fsync);
  if (::ftruncate(fd, static_cast<off_t>(end)) != 0) raise_io("cannot resize", "the recording", errno);
  sync(fd, fsync);
}

bool grow_recording_header(int fd, std::string_view header_text, std::uint64_t room, std::uint64_t new_room,
                           std::uint64_t data_size, std::uint64_t new_data_size, bool fsync) {
  if (header_text.size() > new_room || new_room <= room || new_room % 8 != 0 || new_room > default_max_header_size ||
      new_data_size < data_size) {
    raise(ErrorCode::InvalidArgument, "a header of " + std::to_string(header_text.size()) + " bytes cannot grow a room of " +
                                          std::to_string(room) + " into one of " + std::to_string(new_room));
  }
  const std::uint64_t end = 8 + room + data_size;
  const struct stat st = ending_at(fd, end);
  // With fsync the growth must survive a power loss too, which an insert need not: ext4 shifts the extents of a file
  // of many in several journal transactions, and a crash between them leaves the data half shifted. The rewrite
  // (renamed over once synced) is then the way.
  if (fsync) return false;
  // The file system inserts whole blocks only: the data must start on a block and the room grow by whole blocks.
  const auto block = static_cast<std::uint64_t>(st.st_blksize > 0 ? st.st_blksize : 4096);
  const std::uint64_t inserted = new_room + new_data_size - room - data_size;
  if ((8 + room) % block != 0 || inserted % block != 0) return false;
  // No reader may hold the file mapped while blocks move under it: one that does (or a file system without these
  // locks) leaves the growth to a rewrite, which readers of the old file never see.
  if (set_reader_lock(fd, F_WRLCK) != 0) return false;
  struct Unlock {
    int fd;
    ~Unlock() { set_reader_lock(fd, F_UNLCK); }
  } unlock{fd};
  // The journal, for the grown room: until the insert, the file's size does not match it (section 9), so readers keep
  // the old header; from the insert on, it does, and readers take the journal, its data at 8 + new_room.
  append_journal(fd, header_text, new_room, new_data_size, end, fsync);
  if (::fallocate(fd, FALLOC_FL_INSERT_RANGE, static_cast<off_t>(8 + room), static_cast<off_t>(inserted)) != 0) {
    const int error = errno;
    // Not supported here (tmpfs, or blocks of another size): drop the journal, which nothing reads, and say so.
    if (::ftruncate(fd, static_cast<off_t>(end)) != 0) raise_io("cannot resize", "the recording", errno);
    if (error == EOPNOTSUPP || error == EINVAL || error == ENOSYS) return false;
    raise_io("cannot grow the header room of", "the recording", error);
  }
  sync(fd, fsync);
  // The inserted blocks read as zeros: the header written in place pads them with spaces, then the prefix says the
  // new room. A kill in between leaves the whole journal, which readers and a continuing writer take.
  std::array<std::byte, 8> prefix{};
  store_le64(prefix.data(), new_room);
  write_padded(fd, header_text, new_room, 8);
  write_exactly(fd, prefix.data(), prefix.size(), 0);
  sync(fd, fsync);
  if (::ftruncate(fd, static_cast<off_t>(8 + new_room + new_data_size)) != 0) raise_io("cannot resize", "the recording", errno);
  sync(fd, fsync);
  return true;
}

namespace {

// Whether a file of `size` bytes, open as `fd` and whose last footer_size bytes would be `footer` (the bytes before
// them written), would end in a whole journal of any room: its digest read back in pieces, never held in memory.
bool would_end_in_journal(int fd, const std::array<std::byte, footer_size>& footer, std::uint64_t size) {
  const auto fits = footer_fits(footer, size, UINT64_MAX);
  if (!fits) return false;
  const auto [room, data_size] = *fits;
  StreamHash hash;
  std::vector<std::byte> piece(static_cast<std::size_t>(std::min<std::uint64_t>(room, space_chunk)));
  for (std::uint64_t at = 8 + room + data_size, left = room; left > 0;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, piece.size()));
    if (!read_exactly(fd, piece.data(), n, at)) raise_io("cannot read", "the recording", errno);
    hash.update(piece.data(), n);
    at += n;
    left -= n;
  }
  std::array<std::byte, 16> numbers{};
  store_le64(numbers.data(), room);
  store_le64(numbers.data() + 8, data_size);
  hash.update(numbers.data(), numbers.size());
  return hash.digest() == load_le64(footer.data() + 24);
}

}  // namespace

void write_recording_data(int fd, std::uint64_t offset, const Layout& layout, std::span<const WriteTensor> tensors) {
  // The stream starts with the header, which the recording keeps elsewhere (in its own header): skipped. Its last
  // footer_size bytes are held back until they are known not to end the file as a journal does.
  std::uint64_t skip = layout.header.size();
  std::array<std::byte, footer_size> held{};
  std::size_t held_size = 0;
  write_stream(layout, tensors, [&](const std::byte* data, std::size_t size) {
    const std::size_t skipped = static_cast<std::size_t>(std::min<std::uint64_t>(skip, size));
    skip -= skipped;
    data += skipped;
    size -= skipped;
    // What no longer fits among the last footer_size bytes is written: the held bytes first, then the new ones.
    const std::size_t out = held_size + size > footer_size ? held_size + size - footer_size : 0;
    const std::size_t from_held = std::min(out, held_size);
    write_exactly(fd, held.data(), from_held, offset);
    write_exactly(fd, data, out - from_held, offset + from_held);
    offset += out;
    std::memmove(held.data(), held.data() + from_held, held_size - from_held);
    held_size -= from_held;
    std::memcpy(held.data() + held_size, data + (out - from_held), size - (out - from_held));
    held_size += size - (out - from_held);
  });
  // A record's bytes that would end the recording as a commit's journal does would be read, by readers and by a
  // writer continuing it, as the recording's header (section 9) until the next commit: refused. (A record of no bytes
  // leaves the end as it was: committed data, or a record checked before.)
  std::array<std::byte, footer_size> footer{};
  const std::size_t before = footer_size - held_size;
  if (held_size > 0 && offset >= before && read_exactly(fd, footer.data(), before, offset - before)) {
    std::memcpy(footer.data() + before, held.data(), held_size);
    if (would_end_in_journal(fd, footer, offset + held_size)) {
      raise(ErrorCode::InvalidArgument, "its bytes would end the recording as a commit's journal does (docs/format.md section 9), which "
                                        "readers would take for the recording's header");
    }
  }
  write_exactly(fd, held.data(), held_size, offset);
}

}  // namespace safestructures
