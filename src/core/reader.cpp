// The private memory mapping of a file and the reader over validated bytes.
#include "safestructures/reader.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <optional>

#include "safestructures/error.hpp"
#include "safestructures/format.hpp"
#include "safestructures/recording.hpp"

namespace safestructures {
namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path, Access access) {
  const std::string name = path.string();
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer; it is refused below instead, and has no effect on
  // a regular file, which is only mapped.
  Fd file{::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) raise_io("cannot open", name, errno);
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) raise_io("cannot stat", name, errno);
  if (S_ISDIR(st.st_mode)) raise_io("cannot read", name, EISDIR);
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) ? "a device" : "not a regular file";
    raise(ErrorCode::NotARegularFile, name + ": the file is " + kind + ", not a regular file");
  }
  // Before the size is read and the file mapped: a recording's writer does not insert blocks under a mapping (section
  // 9), and one inserting now finishes first. Only a file whose first page names the recording key (as a recording's
  // always does) is locked: other files cost no lock, nor an open descriptor.
  std::string first_page(8 + 4096, '\0');
  const ssize_t got = ::pread(file.fd, first_page.data(), first_page.size(), 0);
  first_page.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  const bool locked = first_page.find(recording_metadata_key) != std::string::npos && hold_recording_read_lock(file.fd, name);
  if (::fstat(file.fd, &st) != 0) raise_io("cannot stat", name, errno);
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) {
    // mmap refuses an empty length; an empty file is a (too small) file, not an I/O failure.
    return std::shared_ptr<MappedFile>(new MappedFile(name, nullptr, 0, -1));
  }
  // MAP_NORESERVE: a private writable mapping of a large file must not be refused for lack of commit charge; pages
  // are only copied when written.
  void* data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, file.fd, 0);
  if (data == MAP_FAILED) raise_io("cannot map", name, errno);
  auto mapping = std::shared_ptr<MappedFile>(new MappedFile(name, static_cast<std::byte*>(data), size, locked ? file.fd : -1));
  if (locked) file.fd = -1;  // the mapping owns it now
  if (access == Access::Parts) {
    mapping->set_access(Access::Parts);
    // The header is read in full right away: fetch it in one go rather than a page per fault.
    if (size >= 8) mapping->prefetch(0, 8 + std::min<std::uint64_t>(load_le64(data), size));
  }
  return mapping;
}

void MappedFile::prefetch(std::uint64_t begin, std::uint64_t end) const {
  if (end > size_) end = size_;
  if (begin >= end) return;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<std::uintptr_t>(data_) + begin;
  const auto aligned = start & ~(page - 1);
  ::madvise(reinterpret_cast<void*>(aligned), start + (end - begin) - aligned, MADV_WILLNEED);
}

void MappedFile::set_access(Access access) const {
  if (data_ != nullptr) ::madvise(data_, size_, access == Access::Parts ? MADV_RANDOM : MADV_NORMAL);
}

void MappedFile::release_recording_lock() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
  release_recording_lock();
}

Reader Reader::open(const std::filesystem::path& path, std::uint64_t max_header_size, Access access) {
  // A recording may be committing while it is read (docs/format.md section 9): the header read in place may be
  // half-rewritten, or describe less data than the journal the mapping missed. Such a file is mapped again, a bounded
  // number of times.
  for (int attempt = 0;; ++attempt) {
    auto mapping = MappedFile::open(path, access);
    const auto bytes = mapping->bytes();
    try {
      std::optional<Header> in_place;
      std::optional<Error> failure;
      try {
        in_place = parse_header(bytes, max_header_size);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::Io) throw;
        failure = e;
      }
      // A recording's journal is newer than its header in place, and whole where that one may be torn.
      // Its room may differ from the prefix's while a commit grows it: the data then starts at 8 + its room.
      if (auto journal = journal_over(path, in_place ? &*in_place : nullptr, max_header_size)) {
        if (journal->at <= bytes.size()) {
          return Reader(std::move(mapping), bytes, true, parse_header_text(journal->header_text, journal->data_size));
        }
        if (attempt < 3) continue;  // the file grew since it was mapped: map it again
      }
      if (in_place) {
        if (in_place->find_metadata(recording_metadata_key) == nullptr) mapping->release_recording_lock();
        return Reader(std::move(mapping), bytes, true, std::move(*in_place));
      }
      // A recording's key leads its header (section 9), so even a header read while it was being rewritten shows it:
      // a commit finished between the reading of the header and the look for its journal is read again.
      const std::string_view start(reinterpret_cast<const char*>(bytes.data()), std::min<std::size_t>(bytes.size(), 4096));
      if (attempt < 3 && start.find(recording_metadata_key) != std::string_view::npos) {
        ::usleep(1000);
        continue;
      }
      throw *failure;
    } catch (const Error& e) {
      if (e.code() == ErrorCode::Io) throw;
      raise(e.code(), path.string() + ": " + e.what());
    }
  }
}

Reader Reader::from_buffer(std::shared_ptr<const void> owner, std::span<const std::byte> bytes, bool writable,
                           std::uint64_t max_header_size) {
  return Reader(std::move(owner), bytes, writable, parse_header(bytes, max_header_size));
}

TensorView Reader::tensor(const TensorInfo& info) const {
  return {&info, bytes_.subspan(header_.data_offset() + info.begin, info.nbytes())};
}

TensorView Reader::tensor(std::string_view name) const {
  const TensorInfo* info = header_.find(name);
  if (info == nullptr) raise(ErrorCode::TensorNotFound, "no tensor named " + quote_name(name) + " in the file");
  return tensor(*info);
}

std::span<std::byte> Reader::mutable_bytes(const TensorInfo& info) const {
  if (!writable_) raise(ErrorCode::InvalidArgument, "the reader's buffer is read-only");
  const auto view = tensor(info).bytes;
  return {const_cast<std::byte*>(view.data()), view.size()};
}

}  // namespace safestructures
